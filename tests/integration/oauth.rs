//! Social sign-in against local stub identity providers (an axum server per provider inside
//! the test: OpenID discovery, JWKS, token endpoint checking the PKCE verifier, userinfo, and
//! GitHub's token endpoint and REST API); the user's own sessions; `updateVendorProfile`.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::IntoResponse,
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use easel::config::{GithubConfig, OAuthConfig, OidcConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{TestApp, code, field, user, vendor};

const REDIRECT: &str = "https://app.example/oauth/callback";
/// The test-only RSA key the stub signs ID tokens with (its public half is in the JWKS).
const KEY_A: &str = include_str!("../fixtures/oauth-test-key-a.pem");
const KEY_A_N: &str = include_str!("../fixtures/oauth-test-key-a.n");
/// Another test-only RSA key, which the stub does not publish.
const KEY_B: &str = include_str!("../fixtures/oauth-test-key-b.pem");

const START: &str = "mutation($p: String!, $r: String!) { startOAuth(input: { provider: $p, redirectUri: $r }) { authorizationUrl state } }";
const COMPLETE: &str = "mutation($c: String!, $s: String!) { completeOAuth(input: { code: $c, state: $s }) { accessToken refreshToken isNewUser user { id email } } }";
const LINKED: &str = "{ me { id linkedAccounts { provider email createdAt } } }";
const SIGN_UP: &str = "mutation($e: String!, $p: String!) { signUp(input: { email: $e, password: $p }) { accessToken refreshToken user { id } } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(input: { email: $e, password: $p }) { accessToken refreshToken user { id } } }";

/// What the stub answers for one authorization: who signed in, and what to get wrong.
#[derive(Clone, Default)]
struct Account {
    sub: String,
    email: Option<String>,
    verified: bool,
    /// The ID token omits the email (the userinfo endpoint has it).
    via_userinfo: bool,
    tweak: Tweak,
}

#[derive(Clone, Copy, Default, PartialEq)]
enum Tweak {
    #[default]
    None,
    WrongNonce,
    WrongKey,
    WrongAudience,
    Expired,
}

fn account(sub: &str, email: &str, verified: bool) -> Account {
    Account {
        sub: sub.into(),
        email: Some(email.into()),
        verified,
        ..Account::default()
    }
}

struct Grant {
    account: Account,
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    used: bool,
}

#[derive(Default)]
struct Stub {
    issuer: String,
    client_id: String,
    client_secret: String,
    codes: HashMap<String, Grant>,
    /// Access token → account (userinfo, GitHub's API).
    tokens: HashMap<String, Account>,
    token_calls: usize,
}

type Shared = Arc<Mutex<Stub>>;

/// A stub identity provider on its own port.
struct Idp {
    url: String,
    stub: Shared,
}

impl Idp {
    async fn spawn(client_id: &str, client_secret: &str) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stub: Shared = Arc::new(Mutex::new(Stub {
            issuer: url.clone(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            ..Stub::default()
        }));
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(oidc_token))
            .route("/userinfo", get(userinfo))
            .route("/login/oauth/access_token", post(github_token))
            .route("/api/user", get(github_user))
            .route("/api/user/emails", get(github_emails))
            .with_state(stub.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Idp { url, stub }
    }

    /// The user consents on the provider's page: checks the authorization URL and returns
    /// the code the provider would redirect back with.
    fn authorize(&self, authorization_url: &str, account: Account) -> String {
        let url = reqwest::Url::parse(authorization_url).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        let mut stub = self.stub.lock().unwrap();
        assert!(
            authorization_url.starts_with(&self.url),
            "{authorization_url}"
        );
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], stub.client_id);
        assert_eq!(q["redirect_uri"], REDIRECT);
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43, "a SHA-256 challenge");
        assert!(q["state"].len() >= 32);
        let code = format!("code-{}", uuid::Uuid::now_v7().simple());
        stub.codes.insert(
            code.clone(),
            Grant {
                account,
                challenge: q["code_challenge"].clone(),
                redirect_uri: q["redirect_uri"].clone(),
                nonce: q.get("nonce").cloned(),
                used: false,
            },
        );
        code
    }

    fn token_calls(&self) -> usize {
        self.stub.lock().unwrap().token_calls
    }
}

async fn discovery(State(stub): State<Shared>) -> Json<Value> {
    let issuer = stub.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks() -> Json<Value> {
    Json(json!({ "keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": "k1",
        "n": KEY_A_N.trim(), "e": "AQAB",
    }]}))
}

fn refuse(error: &str) -> axum::response::Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response()
}

/// Takes the grant of `code` when the request proves it: unused, same redirect URI, and the
/// PKCE verifier whose S256 hash is the challenge the authorization URL carried.
fn redeem(stub: &mut Stub, form: &HashMap<String, String>) -> Result<Account, &'static str> {
    stub.token_calls += 1;
    let grant = form
        .get("code")
        .and_then(|c| stub.codes.get_mut(c))
        .ok_or("invalid_grant")?;
    if grant.used {
        return Err("invalid_grant");
    }
    grant.used = true;
    let verifier = form.get("code_verifier").ok_or("invalid_request")?;
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
    {
        return Err("invalid_grant");
    }
    Ok(grant.account.clone())
}

async fn oidc_token(
    State(stub): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> axum::response::Response {
    let mut stub = stub.lock().unwrap();
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", stub.client_id, stub.client_secret))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({ "error": "invalid_client" })),
        )
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    let nonce = form
        .get("code")
        .and_then(|c| stub.codes.get(c))
        .and_then(|g| g.nonce.clone());
    let account = match redeem(&mut stub, &form) {
        Ok(a) => a,
        Err(e) => return refuse(e),
    };
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": stub.issuer,
        "aud": if account.tweak == Tweak::WrongAudience { "someone-else".to_string() } else { stub.client_id.clone() },
        "sub": account.sub,
        "iat": now,
        "exp": if account.tweak == Tweak::Expired { now - 600 } else { now + 600 },
        "nonce": if account.tweak == Tweak::WrongNonce { Some("another-nonce".to_string()) } else { nonce },
    });
    if !account.via_userinfo {
        claims["email"] = json!(account.email);
        claims["email_verified"] = json!(account.verified);
    }
    let key = if account.tweak == Tweak::WrongKey {
        KEY_B
    } else {
        KEY_A
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let id_token = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(key.as_bytes()).unwrap(),
    )
    .unwrap();
    let access = format!("at-{}", uuid::Uuid::now_v7().simple());
    stub.tokens.insert(access.clone(), account);
    Json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": 3600, "id_token": id_token,
    }))
    .into_response()
}

fn bearer_account(stub: &Shared, headers: &HeaderMap) -> Option<Account> {
    let token = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    stub.lock().unwrap().tokens.get(token).cloned()
}

async fn userinfo(State(stub): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    match bearer_account(&stub, &headers) {
        Some(a) => Json(json!({ "sub": a.sub, "email": a.email, "email_verified": a.verified }))
            .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// GitHub answers 200 with an `error` field, and takes the client secret in the form.
async fn github_token(
    State(stub): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let mut stub = stub.lock().unwrap();
    if form.get("client_id") != Some(&stub.client_id)
        || form.get("client_secret") != Some(&stub.client_secret)
    {
        return Json(json!({ "error": "incorrect_client_credentials" }));
    }
    match redeem(&mut stub, &form) {
        Ok(account) => {
            let access = format!("gho_{}", uuid::Uuid::now_v7().simple());
            stub.tokens.insert(access.clone(), account);
            Json(
                json!({ "access_token": access, "token_type": "bearer", "scope": "read:user,user:email" }),
            )
        }
        Err(_) => Json(json!({ "error": "bad_verification_code" })),
    }
}

async fn github_user(State(stub): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    match bearer_account(&stub, &headers) {
        // GitHub's `email` is the public profile address (often null).
        Some(a) => {
            Json(json!({ "id": a.sub.parse::<u64>().unwrap(), "login": "octo", "email": null }))
                .into_response()
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

async fn github_emails(State(stub): State<Shared>, headers: HeaderMap) -> axum::response::Response {
    match bearer_account(&stub, &headers) {
        Some(a) => Json(json!([
            { "email": "noreply-octo@users.noreply.github.com", "verified": false, "primary": false, "visibility": null },
            { "email": a.email, "verified": a.verified, "primary": true, "visibility": "private" },
        ]))
        .into_response(),
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// The three stub providers and an app configured with them (`google`, `github`, `acme`).
struct World {
    app: TestApp,
    google: Idp,
    github: Idp,
    acme: Idp,
}

async fn world() -> World {
    let google = Idp::spawn("easel-google", "google-secret").await;
    let github = Idp::spawn("easel-github", "github-secret").await;
    let acme = Idp::spawn("easel-acme", "acme-secret").await;
    let (g, gh, a) = (google.url.clone(), github.url.clone(), acme.url.clone());
    let app = TestApp::spawn_with(move |cfg| {
        cfg.oauth = OAuthConfig {
            redirect_uris: vec![REDIRECT.into(), "com.example.app:/oauth".into()],
            google: Some(OidcConfig {
                name: "google".into(),
                issuer: g,
                client_id: "easel-google".into(),
                client_secret: "google-secret".to_string().into(),
            }),
            github: Some(GithubConfig {
                base_url: gh.clone(),
                api_url: format!("{gh}/api"),
                client_id: "easel-github".into(),
                client_secret: "github-secret".to_string().into(),
            }),
            oidc: Some(OidcConfig {
                name: "acme".into(),
                issuer: a,
                client_id: "easel-acme".into(),
                client_secret: "acme-secret".to_string().into(),
            }),
        };
    })
    .await;
    World {
        app,
        google,
        github,
        acme,
    }
}

impl World {
    fn idp(&self, provider: &str) -> &Idp {
        match provider {
            "google" => &self.google,
            "github" => &self.github,
            _ => &self.acme,
        }
    }

    /// `startOAuth` (as `token`'s user, or signed out): (authorization URL, state).
    async fn start(&self, token: Option<&str>, provider: &str) -> (String, String) {
        let (_, body) = self
            .app
            .gql_with(token, START, json!({ "p": provider, "r": REDIRECT }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
        let start = &body["data"]["startOAuth"];
        (
            start["authorizationUrl"].as_str().unwrap().to_string(),
            start["state"].as_str().unwrap().to_string(),
        )
    }

    async fn complete(&self, token: Option<&str>, code: &str, state: &str) -> Value {
        self.app
            .gql_with(token, COMPLETE, json!({ "c": code, "s": state }))
            .await
            .1
    }

    /// The whole round trip: start, consent as `account`, complete.
    async fn sign_in(&self, token: Option<&str>, provider: &str, account: Account) -> Value {
        let (url, state) = self.start(token, provider).await;
        let code = self.idp(provider).authorize(&url, account);
        self.complete(token, &code, &state).await
    }

    async fn counts(&self) -> (i64, i64, i64) {
        (
            self.app.scalar("SELECT count(*) AS n FROM users").await,
            self.app
                .scalar("SELECT count(*) AS n FROM oauth_accounts")
                .await,
            self.app.scalar("SELECT count(*) AS n FROM sessions").await,
        )
    }
}

fn ok<'a>(body: &'a Value, name: &str) -> &'a Value {
    assert!(body["errors"].is_null(), "{body}");
    &body["data"][name]
}

#[tokio::test]
async fn oauth_providers_are_listed_when_configured() {
    let app = TestApp::spawn().await;
    let (_, body) = app.gql("{ oauthProviders }", json!({})).await;
    assert_eq!(body["data"]["oauthProviders"], json!([]), "{body}");
    let w = world().await;
    let (_, body) = w.app.gql("{ oauthProviders }", json!({})).await;
    assert_eq!(
        body["data"]["oauthProviders"],
        json!(["google", "github", "acme"])
    );
}

#[tokio::test]
async fn oauth_google_signs_up_a_new_user_then_signs_them_in() {
    let w = world().await;
    let (url, state) = w.start(None, "google").await;
    let q: HashMap<String, String> = reqwest::Url::parse(&url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert!(
        url.starts_with(&format!("{}/authorize?", w.google.url)),
        "{url}"
    );
    assert_eq!(q["state"], state);
    assert_eq!(q["scope"], "openid email profile");
    assert!(q["nonce"].len() >= 32);
    // The state is stored hashed, with the verifier (never in the URL).
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM oauth_states WHERE consumed_at IS NULL AND expires_at BETWEEN now() + interval '9 minutes' AND now() + interval '11 minutes'")
            .await,
        1
    );
    assert!(!url.contains(&state_verifier(&w).await));

    let code = w
        .google
        .authorize(&url, account("g-100", "Grace@Example.com", true));
    let body = w.complete(None, &code, &state).await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["isNewUser"], true);
    assert_eq!(auth["user"]["email"], "grace@example.com");
    let id = auth["user"]["id"].as_str().unwrap().to_string();
    // The sign-up path: verified email, sign-up bonus, audit entry.
    assert_eq!(
        w.app
            .scalar(&format!("SELECT count(*) AS n FROM users WHERE id = '{id}' AND email_verified_at IS NOT NULL"))
            .await,
        1
    );
    assert_eq!(
        w.app
            .scalar(&format!(
                "SELECT balance AS n FROM credit_accounts WHERE user_id = '{id}'"
            ))
            .await,
        w.app.state.config.signup_bonus
    );
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.sign_up' AND metadata->>'method' = 'oauth'")
            .await,
        1
    );
    let token = auth["accessToken"].as_str().unwrap();
    let (_, body) = w.app.gql_as(token, LINKED, json!({})).await;
    assert_eq!(
        body["data"]["me"]["linkedAccounts"][0]["provider"], "google",
        "{body}"
    );
    assert_eq!(
        body["data"]["me"]["linkedAccounts"][0]["email"],
        "grace@example.com"
    );

    // Returning: the same Google account signs the same user in, creating nothing.
    let before = w.counts().await;
    let body = w
        .sign_in(None, "google", account("g-100", "grace@example.com", true))
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(
        (auth["isNewUser"].as_bool(), auth["user"]["id"].as_str()),
        (Some(false), Some(id.as_str()))
    );
    let after = w.counts().await;
    assert_eq!(
        (after.0, after.1, after.2),
        (before.0, before.1, before.2 + 1)
    );

    // A code works once at the provider: replaying it with a fresh state is refused.
    let (_, state2) = w.start(None, "google").await;
    let body = w.complete(None, &code, &state2).await;
    assert_eq!(
        (code_of(&body), field(&body)),
        ("BAD_USER_INPUT", "input.code"),
        "{body}"
    );
    assert_eq!(w.counts().await, after);
}

async fn state_verifier(w: &World) -> String {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Text)]
        v: String,
    }
    use diesel_async::RunQueryDsl;
    let mut conn = w.app.db().await;
    diesel::sql_query("SELECT pkce_verifier AS v FROM oauth_states LIMIT 1")
        .get_result::<V>(&mut conn)
        .await
        .unwrap()
        .v
}

fn code_of(body: &Value) -> &str {
    code(body)
}

#[tokio::test]
async fn oauth_links_by_verified_email_only() {
    let w = world().await;
    let (_, body) = w
        .app
        .gql(
            SIGN_UP,
            json!({ "e": "ada@example.com", "p": "a long password" }),
        )
        .await;
    let ada = ok(&body, "signUp")["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Ada's own email is not verified: even a verified Google email does not reach her
    // account.
    let before = w.counts().await;
    let body = w
        .sign_in(None, "google", account("g-ada", "ada@example.com", true))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(w.counts().await, before);

    w.app
        .exec(&format!(
            "UPDATE users SET email_verified_at = now() WHERE id = '{ada}'"
        ))
        .await;
    // An email Google did not verify never links.
    let body = w
        .sign_in(None, "google", account("g-ada", "ADA@example.com", false))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("link the provider"),
        "{body}"
    );
    assert_eq!(w.counts().await, before);

    // A verified one links to Ada and signs her in.
    let body = w
        .sign_in(None, "google", account("g-ada", "ada@example.com", true))
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["user"]["id"], ada.as_str());
    assert_eq!(auth["isNewUser"], false);
    let after = w.counts().await;
    assert_eq!((after.0, after.1), (before.0, before.1 + 1));

    // An unverified email nobody uses makes a new account whose email is not verified.
    let body = w
        .sign_in(None, "acme", account("acme-7", "new@example.com", false))
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["isNewUser"], true);
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM users WHERE email = 'new@example.com' AND email_verified_at IS NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn oauth_state_must_be_known_fresh_unused_and_the_starters() {
    let w = world().await;
    let before = w.counts().await;
    // Unknown state.
    let (url, _state) = w.start(None, "google").await;
    let code = w
        .google
        .authorize(&url, account("g-1", "one@example.com", true));
    let body = w.complete(None, &code, "not-the-state").await;
    assert_eq!(
        (code_of(&body), field(&body)),
        ("BAD_USER_INPUT", "input.state"),
        "{body}"
    );
    assert_eq!(w.counts().await, before);
    assert_eq!(w.google.token_calls(), 0, "the code was not even exchanged");

    // Expired state.
    let (url, state) = w.start(None, "google").await;
    let code = w
        .google
        .authorize(&url, account("g-1", "one@example.com", true));
    w.app
        .exec("UPDATE oauth_states SET expires_at = now() - interval '1 second', created_at = now() - interval '601 seconds'")
        .await;
    let body = w.complete(None, &code, &state).await;
    assert_eq!(
        (code_of(&body), field(&body)),
        ("BAD_USER_INPUT", "input.state"),
        "{body}"
    );
    assert_eq!(w.counts().await, before);

    // Reused state: it works once.
    let (url, state) = w.start(None, "google").await;
    let code = w
        .google
        .authorize(&url, account("g-1", "one@example.com", true));
    ok(&w.complete(None, &code, &state).await, "completeOAuth");
    let after = w.counts().await;
    let body = w.complete(None, &code, &state).await;
    assert_eq!(
        (code_of(&body), field(&body)),
        ("BAD_USER_INPUT", "input.state"),
        "{body}"
    );
    assert_eq!(w.counts().await, after);

    // A state started by a signed-in user (to link) cannot be completed by anyone else.
    let (token, _) = user(&w.app, 1).await;
    let (other, _) = user(&w.app, 2).await;
    let before = w.counts().await;
    let (url, state) = w.start(Some(&token), "google").await;
    let code = w
        .google
        .authorize(&url, account("g-2", "two@example.com", true));
    for caller in [None, Some(other.as_str())] {
        let body = w.complete(caller, &code, &state).await;
        assert_eq!(
            (code_of(&body), field(&body)),
            ("BAD_USER_INPUT", "input.state"),
            "{body}"
        );
    }
    assert_eq!(w.counts().await, before);

    // The hourly clean-up drops requests expired over a day ago, and only those.
    let states = "SELECT count(*) AS n FROM oauth_states";
    let total = w.app.scalar(states).await;
    w.app
        .exec("UPDATE oauth_states SET expires_at = now() - interval '25 hours' WHERE consumed_at IS NOT NULL")
        .await;
    let pruned = easel::accounts::service::prune_oauth_states(&mut w.app.db().await)
        .await
        .unwrap_or_else(|_| panic!("pruning"));
    assert!(pruned >= 1);
    assert_eq!(w.app.scalar(states).await, total - pruned as i64);
    assert_eq!(
        w.app
            .scalar(
                "SELECT count(*) AS n FROM oauth_states WHERE expires_at < now() - interval '1 day'"
            )
            .await,
        0
    );
}

#[tokio::test]
async fn oauth_id_token_is_verified() {
    let w = world().await;
    let before = w.counts().await;
    for (tweak, message) in [
        (Tweak::WrongNonce, "nonce"),
        (Tweak::WrongKey, "signature"),
        (Tweak::WrongAudience, "another app"),
        (Tweak::Expired, "expired"),
    ] {
        let body = w
            .sign_in(
                None,
                "google",
                Account {
                    tweak,
                    ..account("g-9", "nine@example.com", true)
                },
            )
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{message}: {body}"
        );
        assert_eq!(w.counts().await, before);
    }
    // The same account with a proper token works.
    ok(
        &w.sign_in(None, "google", account("g-9", "nine@example.com", true))
            .await,
        "completeOAuth",
    );
}

#[tokio::test]
async fn oauth_start_checks_the_provider_and_the_redirect_uri() {
    let w = world().await;
    for (provider, redirect, field_name) in [
        ("google", "https://evil.example/cb", "input.redirectUri"),
        (
            "google",
            "https://app.example/oauth/callback/x",
            "input.redirectUri",
        ),
        ("facebook", REDIRECT, "input.provider"),
    ] {
        let (_, body) = w
            .app
            .gql(START, json!({ "p": provider, "r": redirect }))
            .await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", field_name),
            "{body}"
        );
    }
    assert_eq!(
        w.app.scalar("SELECT count(*) AS n FROM oauth_states").await,
        0
    );
    // Another allowed URI (a mobile app's scheme) is fine.
    let (_, body) = w
        .app
        .gql(
            START,
            json!({ "p": "github", "r": "com.example.app:/oauth" }),
        )
        .await;
    ok(&body, "startOAuth");
}

#[tokio::test]
async fn oauth_github_uses_verified_emails_only() {
    let w = world().await;
    let (url, _) = w.start(None, "github").await;
    assert!(
        url.starts_with(&format!("{}/login/oauth/authorize?", w.github.url)),
        "{url}"
    );
    // A verified primary email: a new account with it verified.
    let body = w
        .sign_in(None, "github", account("4242", "octo@example.com", true))
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["isNewUser"], true);
    assert_eq!(auth["user"]["email"], "octo@example.com");
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM oauth_accounts WHERE provider = 'github' AND provider_user_id = '4242' AND email = 'octo@example.com'")
            .await,
        1
    );
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM users WHERE email = 'octo@example.com' AND email_verified_at IS NOT NULL")
            .await,
        1
    );
    // Another GitHub account whose address (taken) GitHub did not verify: refused.
    let before = w.counts().await;
    let body = w
        .sign_in(None, "github", account("777", "octo@example.com", false))
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(w.counts().await, before);
    // The same, verified: links to the account (its email was verified by GitHub).
    let body = w
        .sign_in(None, "github", account("777", "octo@example.com", true))
        .await;
    assert_eq!(ok(&body, "completeOAuth")["user"]["id"], auth["user"]["id"]);
}

#[tokio::test]
async fn oauth_generic_issuer_reads_the_email_from_userinfo() {
    let w = world().await;
    let body = w
        .sign_in(
            None,
            "acme",
            Account {
                via_userinfo: true,
                ..account("acme-1", "staff@acme.example", true)
            },
        )
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["user"]["email"], "staff@acme.example");
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM users WHERE email = 'staff@acme.example' AND email_verified_at IS NOT NULL")
            .await,
        1
    );
}

#[tokio::test]
async fn oauth_link_list_and_unlink() {
    let w = world().await;
    let (token, phone_user) = user(&w.app, 11).await;
    // Signed in, completing links the provider to the caller.
    let body = w
        .sign_in(
            Some(&token),
            "google",
            account("g-link", "link@example.com", true),
        )
        .await;
    let auth = ok(&body, "completeOAuth");
    assert_eq!(auth["user"]["id"], phone_user.as_str());
    assert_eq!(auth["isNewUser"], false);
    let (_, body) = w.app.gql_as(&token, LINKED, json!({})).await;
    let links = &body["data"]["me"]["linkedAccounts"];
    assert_eq!(links.as_array().unwrap().len(), 1, "{body}");
    assert_eq!(links[0]["email"], "link@example.com");
    // Signed out, that Google account now signs in to the phone user.
    let body = w
        .sign_in(None, "google", account("g-link", "link@example.com", true))
        .await;
    assert_eq!(
        ok(&body, "completeOAuth")["user"]["id"],
        phone_user.as_str()
    );

    // Another user cannot link the same Google account.
    let (other, other_id) = user(&w.app, 12).await;
    let before = w.counts().await;
    let body = w
        .sign_in(
            Some(&other),
            "google",
            account("g-link", "link@example.com", true),
        )
        .await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    let after = w.counts().await;
    assert_eq!((after.0, after.1), (before.0, before.1));
    // Others do not see anyone's links or sessions.
    let (_, body) = w
        .app
        .gql_as(
            &other,
            "query($id: ID!) { user(id: $id) { linkedAccounts { provider } sessions { id } } }",
            json!({ "id": phone_user }),
        )
        .await;
    assert!(body["data"]["user"]["linkedAccounts"].is_null(), "{body}");
    assert!(body["data"]["user"]["sessions"].is_null(), "{body}");

    // The phone user may unlink (the phone still signs in).
    const UNLINK: &str = "mutation($p: String!) { unlinkOAuth(provider: $p) { id } }";
    let (_, body) = w.app.gql_as(&token, UNLINK, json!({ "p": "google" })).await;
    assert_eq!(ok(&body, "unlinkOAuth")["id"], phone_user.as_str());
    let (_, body) = w.app.gql_as(&token, UNLINK, json!({ "p": "google" })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let _ = other_id;

    // An account made by GitHub has no other way in: unlinking it is refused...
    let body = w
        .sign_in(None, "github", account("5150", "solo@example.com", true))
        .await;
    let solo = ok(&body, "completeOAuth")["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let links = w
        .app
        .scalar("SELECT count(*) AS n FROM oauth_accounts")
        .await;
    let (_, body) = w.app.gql_as(&solo, UNLINK, json!({ "p": "github" })).await;
    assert_eq!(code(&body), "CONFLICT", "{body}");
    assert_eq!(
        w.app
            .scalar("SELECT count(*) AS n FROM oauth_accounts")
            .await,
        links
    );
    // ...until another provider is linked.
    ok(
        &w.sign_in(
            Some(&solo),
            "acme",
            account("acme-solo", "solo@example.com", true),
        )
        .await,
        "completeOAuth",
    );
    let (_, body) = w.app.gql_as(&solo, UNLINK, json!({ "p": "github" })).await;
    ok(&body, "unlinkOAuth");
    let (_, body) = w.app.gql_as(&solo, LINKED, json!({})).await;
    assert_eq!(
        body["data"]["me"]["linkedAccounts"],
        json!([{ "provider": "acme", "email": "solo@example.com", "createdAt": body["data"]["me"]["linkedAccounts"][0]["createdAt"] }])
    );
}

#[tokio::test]
async fn oauth_suspended_users_are_refused() {
    let w = world().await;
    let body = w
        .sign_in(None, "google", account("g-bad", "bad@example.com", true))
        .await;
    let id = ok(&body, "completeOAuth")["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.app
        .exec(&format!(
            "UPDATE users SET account_status = 'suspended' WHERE id = '{id}'"
        ))
        .await;
    let sessions = w.app.scalar("SELECT count(*) AS n FROM sessions").await;
    let body = w
        .sign_in(None, "google", account("g-bad", "bad@example.com", true))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    assert_eq!(
        w.app.scalar("SELECT count(*) AS n FROM sessions").await,
        sessions
    );
}

// ---- sessions ---------------------------------------------------------------------------

const SESSIONS: &str = "{ me { sessions { id userAgent ip createdAt lastUsedAt current } } }";

/// Runs `query` from a client sending `User-Agent: <agent>`; returns `data.<name>`.
async fn from_agent(
    app: &TestApp,
    agent: &str,
    query: &str,
    variables: Value,
    name: &str,
) -> Value {
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .header("user-agent", agent)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ok(&body, name).clone()
}

/// Signs in with a `User-Agent`; returns the AuthPayload JSON.
async fn sign_in_from(app: &TestApp, agent: &str) -> Value {
    let sam = json!({ "e": "sam@example.com", "p": "a long password" });
    from_agent(app, agent, SIGN_IN, sam, "signIn").await
}

#[tokio::test]
async fn sessions_are_listed_and_revoked_one_by_one() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .gql(
            SIGN_UP,
            json!({ "e": "sam@example.com", "p": "a long password" }),
        )
        .await;
    ok(&body, "signUp");
    let laptop = sign_in_from(&app, "Laptop/1.0").await;
    let phone = sign_in_from(&app, "Phone/2.0").await;
    let laptop_token = laptop["accessToken"].as_str().unwrap();
    let phone_token = phone["accessToken"].as_str().unwrap();
    // A refresh keeps the session (same id, its latest use).
    let refreshed = from_agent(
        &app,
        "Phone/2.0",
        "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }",
        json!({ "t": phone["refreshToken"] }),
        "refreshSession",
    )
    .await;
    // The session's current refresh token (the first one was exchanged).
    let phone = refreshed;
    let phone_token_2 = phone["accessToken"].as_str().unwrap();

    let (_, body) = app.gql_as(laptop_token, SESSIONS, json!({})).await;
    let sessions = body["data"]["me"]["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "sign-up, laptop, phone: {body}");
    assert_eq!(
        sessions[0]["userAgent"], "Phone/2.0",
        "most recently used first"
    );
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    let current: Vec<&Value> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["userAgent"], "Laptop/1.0");
    let phone_session = sessions[0]["id"].as_str().unwrap().to_string();
    let at = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!(at(&sessions[0]["createdAt"]) < at(&sessions[0]["lastUsedAt"]));

    // Someone else's session, or an unknown id: NOT_FOUND, nothing changes.
    let (mallory, _) = user(&app, 66).await;
    const REVOKE: &str = "mutation($id: ID!) { revokeSession(id: $id) }";
    let revoked = "SELECT count(*) AS n FROM sessions WHERE revoked_at IS NOT NULL";
    let before = app.scalar(revoked).await;
    for (token, id) in [
        (mallory.as_str(), phone_session.clone()),
        (laptop_token, uuid::Uuid::now_v7().to_string()),
    ] {
        let (_, body) = app.gql_as(token, REVOKE, json!({ "id": id })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{body}");
    }
    assert_eq!(app.scalar(revoked).await, before);
    let (_, body) = app.gql_as(phone_token_2, "{ me { id } }", json!({})).await;
    assert!(body["errors"].is_null(), "{body}");

    // The owner revokes the phone's session: its refresh and access tokens stop working.
    let (_, body) = app
        .gql_as(laptop_token, REVOKE, json!({ "id": phone_session }))
        .await;
    assert_eq!(ok(&body, "revokeSession"), true);
    for t in [phone_token, phone_token_2] {
        let (_, body) = app.gql_as(t, "{ me { id } }", json!({})).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    }
    let (_, body) = app
        .gql(
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": phone["refreshToken"] }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let (_, body) = app.gql_as(laptop_token, SESSIONS, json!({})).await;
    assert_eq!(
        body["data"]["me"]["sessions"].as_array().unwrap().len(),
        2,
        "{body}"
    );
    // Revoking it again: no longer active.
    let (_, body) = app
        .gql_as(laptop_token, REVOKE, json!({ "id": phone_session }))
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.session_revoked'")
            .await,
        1
    );
}

// ---- vendor profile -----------------------------------------------------------------------

#[tokio::test]
async fn update_vendor_profile_is_for_vendors_and_validated() {
    let app = TestApp::spawn().await;
    let (token, _) = vendor(&app, 31, "Old Name").await;
    const UPDATE: &str = "mutation($i: UpdateVendorProfileInput!) { updateVendorProfile(input: $i) { vendorProfile { businessName contactInfo socialLinks } } }";
    let (_, body) = app
        .gql_as(
            &token,
            UPDATE,
            json!({ "i": { "businessName": "  New Name ", "socialLinks": { "instagram": "https://instagram.com/new" } } }),
        )
        .await;
    let profile = &ok(&body, "updateVendorProfile")["vendorProfile"];
    assert_eq!(profile["businessName"], "New Name");
    assert_eq!(profile["contactInfo"], json!({}), "unchanged when omitted");
    assert_eq!(
        profile["socialLinks"]["instagram"],
        "https://instagram.com/new"
    );

    let snapshot = "SELECT count(*) AS n FROM vendor_profiles WHERE business_name = 'New Name' AND contact_info = '{}' AND social_links ? 'instagram'";
    for (input, bad_field) in [
        (json!({ "businessName": "  " }), "input.businessName"),
        (
            json!({ "businessName": "x".repeat(101) }),
            "input.businessName",
        ),
        (json!({ "contactInfo": [1, 2] }), "input.contactInfo"),
        (
            json!({ "socialLinks": { "x": "y".repeat(5000) } }),
            "input.socialLinks",
        ),
    ] {
        let (_, body) = app.gql_as(&token, UPDATE, json!({ "i": input })).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", bad_field),
            "{body}"
        );
        assert_eq!(app.scalar(snapshot).await, 1);
    }

    let (plain, _) = user(&app, 32).await;
    let (_, body) = app
        .gql_as(&plain, UPDATE, json!({ "i": { "businessName": "Sneaky" } }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let (_, body) = app
        .gql(UPDATE, json!({ "i": { "businessName": "Sneaky" } }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM vendor_profiles")
            .await,
        1
    );
}
