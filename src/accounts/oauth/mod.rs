//! Social sign-in, the identity providers' side: the OAuth 2 authorization-code flow with
//! PKCE (S256) against Google and any configured OpenID Connect issuer (discovery, token
//! endpoint, ID token checked against the issuer's JWKS, userinfo) and against GitHub (plain
//! OAuth 2, then its REST API for the user and their verified emails).
//!
//! The few HTTP calls are made with the reqwest client already in the tree rather than the
//! `oauth2`/`openidconnect` crates: the flow is three requests, and the ID token is checked
//! with `jsonwebtoken`, which the access tokens already use. What the server keeps between
//! `startOAuth` and `completeOAuth` (state, nonce, PKCE verifier) and what it does with the
//! identity are the accounts service's (`service::oauth`).

pub(crate) mod model;

use std::{
    collections::HashMap,
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind, jwk::JwkSet};
use secrecy::ExposeSecret;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{GithubConfig, OAuthConfig, OidcConfig};

/// How long a discovery document is reused before it is fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// A configured identity provider.
#[derive(Clone, Copy)]
pub enum Provider<'a> {
    /// Google or the generic issuer: OpenID Connect.
    Oidc(&'a OidcConfig),
    /// GitHub: OAuth 2 and its REST API.
    Github(&'a GithubConfig),
}

impl<'a> Provider<'a> {
    /// The configured providers, by name, in the order `oauthProviders` lists them.
    pub fn all(config: &'a OAuthConfig) -> Vec<Provider<'a>> {
        let mut all = Vec::new();
        all.extend(config.google.as_ref().map(Provider::Oidc));
        all.extend(config.github.as_ref().map(Provider::Github));
        all.extend(config.oidc.as_ref().map(Provider::Oidc));
        all
    }

    /// The configured provider called `name`.
    pub fn named(config: &'a OAuthConfig, name: &str) -> Option<Provider<'a>> {
        Self::all(config).into_iter().find(|p| p.name() == name)
    }

    /// The name apps use (`google`, `github`, or `EASEL_OIDC_NAME`).
    pub fn name(&self) -> &'a str {
        match self {
            Provider::Oidc(c) => &c.name,
            Provider::Github(_) => "github",
        }
    }
}

/// What one authorization request carries, kept by the server until it completes.
pub struct Pending<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub redirect_uri: &'a str,
}

/// Who the provider says signed in.
#[derive(Debug)]
pub struct Identity {
    /// The provider's stable id of the account (OpenID `sub`, GitHub's numeric id).
    pub subject: String,
    /// The account's email address, lowercased, if the provider gave one.
    pub email: Option<String>,
    /// Whether the provider vouches that the address belongs to the account.
    pub email_verified: bool,
}

/// Why a provider's answer was not taken.
#[derive(Debug)]
pub enum OAuthError {
    /// The provider refused the authorization code (unknown, used, expired, or the PKCE
    /// verifier did not match): its error code and description.
    Rejected(String),
    /// The answer failed a check (signature, issuer, audience, expiry, nonce, ...).
    Invalid(&'static str),
    /// The provider could not be reached or answered nonsense.
    Unavailable(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for OAuthError {
    fn from(e: E) -> Self {
        OAuthError::Unavailable(e.into())
    }
}

/// The PKCE S256 challenge of `verifier` (RFC 7636 section 4.2).
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The one HTTP client of social sign-in: short timeouts, no redirects followed.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("easel")
            .build()
            .expect("the TLS backend initialises")
    })
}

/// The parts of an issuer's discovery document that are used.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

/// The issuer's discovery document, reused for an hour.
async fn discovery(config: &OidcConfig) -> Result<Discovery, OAuthError> {
    static CACHE: OnceLock<Mutex<HashMap<String, (Instant, Discovery)>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some((at, doc)) = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&config.issuer)
        && at.elapsed() < DISCOVERY_TTL
    {
        return Ok(doc.clone());
    }
    let url = format!("{}/.well-known/openid-configuration", config.issuer);
    let doc: Discovery = client()
        .get(&url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // OpenID Connect Discovery 1.0 section 4.3: the document must name the issuer it was
    // fetched for.
    if doc.issuer.trim_end_matches('/') != config.issuer {
        return Err(OAuthError::Unavailable(anyhow::anyhow!(
            "the discovery document of {} names the issuer {}",
            config.issuer,
            doc.issuer
        )));
    }
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(config.issuer.clone(), (Instant::now(), doc.clone()));
    Ok(doc)
}

/// The URL to send the user to: the provider's consent page, asking for the account's id and
/// email, carrying the state, the nonce (OpenID Connect) and the PKCE challenge.
pub async fn authorization_url(
    provider: Provider<'_>,
    pending: &Pending<'_>,
) -> Result<String, OAuthError> {
    let challenge = pkce_challenge(pending.pkce_verifier);
    let (endpoint, client_id, scope, nonce) = match provider {
        Provider::Oidc(c) => (
            discovery(c).await?.authorization_endpoint,
            c.client_id.as_str(),
            "openid email profile",
            Some(pending.nonce),
        ),
        Provider::Github(c) => (
            format!("{}/login/oauth/authorize", c.base_url),
            c.client_id.as_str(),
            "read:user user:email",
            None,
        ),
    };
    let mut url = reqwest::Url::parse(&endpoint)?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", pending.redirect_uri)
            .append_pair("scope", scope)
            .append_pair("state", pending.state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(nonce) = nonce {
            query.append_pair("nonce", nonce);
        }
    }
    Ok(url.into())
}

/// A token endpoint's answer (RFC 6749 section 5).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    id_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl TokenResponse {
    fn refused(&self) -> Option<OAuthError> {
        self.error.as_ref().map(|e| {
            OAuthError::Rejected(match &self.error_description {
                Some(d) => format!("{e}: {d}"),
                None => e.clone(),
            })
        })
    }
}

/// Exchanges the authorization code (with the PKCE verifier) and returns who signed in,
/// after checking what the provider answered.
pub async fn identity(
    provider: Provider<'_>,
    code: &str,
    pending: &Pending<'_>,
) -> Result<Identity, OAuthError> {
    match provider {
        Provider::Oidc(c) => oidc_identity(c, code, pending).await,
        Provider::Github(c) => github_identity(c, code, pending).await,
    }
}

async fn oidc_identity(
    config: &OidcConfig,
    code: &str,
    pending: &Pending<'_>,
) -> Result<Identity, OAuthError> {
    let doc = discovery(config).await?;
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", pending.redirect_uri),
        ("code_verifier", pending.pkce_verifier),
    ];
    // `client_secret_basic` is the default (OpenID Connect Core section 9); the form is used
    // only for an issuer that supports nothing else.
    let methods = &doc.token_endpoint_auth_methods_supported;
    let post = methods.iter().any(|m| m == "client_secret_post")
        && !methods.iter().any(|m| m == "client_secret_basic");
    if post {
        form.push(("client_id", &config.client_id));
        form.push(("client_secret", config.client_secret.expose_secret()));
    }
    let mut request = client().post(&doc.token_endpoint).form(&form);
    if !post {
        request = request.basic_auth(
            form_encode(&config.client_id),
            Some(form_encode(config.client_secret.expose_secret())),
        );
    }
    let token = token_response(request).await?;
    let id_token = token.id_token.ok_or(OAuthError::Invalid(
        "the provider answered without an ID token",
    ))?;
    let claims = verify_id_token(config, &doc, &id_token).await?;
    if claims.nonce.as_deref() != Some(pending.nonce) {
        return Err(OAuthError::Invalid(
            "the ID token's nonce does not match this sign-in",
        ));
    }
    let (mut email, mut verified) = (claims.email, verified_flag(claims.email_verified.as_ref()));
    // Some issuers leave the email out of the ID token; the userinfo endpoint has it.
    if email.is_none()
        && let (Some(endpoint), Some(access)) = (&doc.userinfo_endpoint, &token.access_token)
    {
        let info: UserInfo = client()
            .get(endpoint)
            .bearer_auth(access)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        // OpenID Connect Core section 5.3.2: a userinfo answer about someone else is void.
        if info.sub != claims.sub {
            return Err(OAuthError::Invalid(
                "the userinfo answer is about another account",
            ));
        }
        email = info.email;
        verified = verified_flag(info.email_verified.as_ref());
    }
    Ok(Identity {
        subject: claims.sub,
        email: email.map(|e| e.trim().to_lowercase()),
        email_verified: verified,
    })
}

/// `application/x-www-form-urlencoded` encoding of a client id or secret in the Basic
/// header (RFC 6749 section 2.3.1).
fn form_encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s.trim_start_matches('=').to_string())
        .unwrap_or_default()
}

/// `email_verified` as a boolean (some issuers send the string `"true"`).
fn verified_flag(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

async fn token_response(request: reqwest::RequestBuilder) -> Result<TokenResponse, OAuthError> {
    let response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await?;
    let status = response.status();
    let body = response.bytes().await?;
    match serde_json::from_slice::<TokenResponse>(&body) {
        Ok(token) => match token.refused() {
            Some(refused) => Err(refused),
            None if status.is_success() && token.access_token.is_some() => Ok(token),
            None => Err(OAuthError::Unavailable(anyhow::anyhow!(
                "the token endpoint answered {status} without a token"
            ))),
        },
        Err(e) => Err(OAuthError::Unavailable(anyhow::anyhow!(
            "the token endpoint answered {status}: {e}"
        ))),
    }
}

/// The claims of an ID token that are used (the standard ones are checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<serde_json::Value>,
}

/// Checks the ID token's signature against the issuer's published keys, and its issuer,
/// audience (this app's client id) and expiry. Only asymmetric algorithms are accepted: an
/// `HS256` token "signed" with the public client id or `alg: none` is refused.
async fn verify_id_token(
    config: &OidcConfig,
    doc: &Discovery,
    id_token: &str,
) -> Result<IdClaims, OAuthError> {
    const MALFORMED: OAuthError = OAuthError::Invalid("the ID token is malformed");
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| MALFORMED)?;
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    ) {
        return Err(OAuthError::Invalid(
            "the ID token is not signed with an asymmetric key",
        ));
    }
    let keys: JwkSet = client()
        .get(&doc.jwks_uri)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let jwk = match &header.kid {
        Some(kid) => keys.find(kid),
        None if keys.keys.len() == 1 => keys.keys.first(),
        None => None,
    }
    .ok_or(OAuthError::Invalid(
        "the ID token is signed with a key the provider does not publish",
    ))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| {
        OAuthError::Invalid("the ID token is signed with a key the provider does not publish")
    })?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[&config.client_id]);
    let mut issuers = vec![config.issuer.clone()];
    // Google's ID tokens may name the issuer without the scheme.
    if config.issuer == "https://accounts.google.com" {
        issuers.push("accounts.google.com".into());
    }
    validation.set_issuer(&issuers);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            OAuthError::Invalid(match e.kind() {
                ErrorKind::InvalidSignature => "the ID token's signature is not valid",
                ErrorKind::ExpiredSignature => "the ID token has expired",
                ErrorKind::InvalidAudience => "the ID token was issued to another app",
                ErrorKind::InvalidIssuer => "the ID token was issued by another issuer",
                _ => "the ID token is not valid",
            })
        })
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
    email: Option<String>,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    verified: bool,
    primary: bool,
}

async fn github_identity(
    config: &GithubConfig,
    code: &str,
    pending: &Pending<'_>,
) -> Result<Identity, OAuthError> {
    let request = client()
        .post(format!("{}/login/oauth/access_token", config.base_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirect_uri),
            ("code_verifier", pending.pkce_verifier),
            ("client_id", config.client_id.as_str()),
            ("client_secret", config.client_secret.expose_secret()),
        ]);
    let token = token_response(request).await?;
    let access = token.access_token.unwrap_or_default();
    let api = |path: &str| {
        client()
            .get(format!("{}{path}", config.api_url))
            .bearer_auth(&access)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    };
    let user: GithubUser = api("/user")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let emails: Vec<GithubEmail> = api("/user/emails")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    // The primary address if verified, else any verified one; an address GitHub did not
    // verify is only reported as such.
    let verified = emails
        .iter()
        .filter(|e| e.verified)
        .max_by_key(|e| e.primary)
        .map(|e| e.email.clone());
    let (email, email_verified) = match verified {
        Some(email) => (Some(email), true),
        None => (
            emails
                .iter()
                .find(|e| e.primary)
                .map(|e| e.email.clone())
                .or(user.email),
            false,
        ),
    };
    Ok(Identity {
        subject: user.id.to_string(),
        email: email.map(|e| e.trim().to_lowercase()),
        email_verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn email_verified_may_be_a_string() {
        use serde_json::json;
        assert!(verified_flag(Some(&json!(true))));
        assert!(verified_flag(Some(&json!("true"))));
        assert!(!verified_flag(Some(&json!("false"))));
        assert!(!verified_flag(None));
        assert_eq!(form_encode("a b:c"), "a+b%3Ac");
    }
}
