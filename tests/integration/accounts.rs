//! Accounts: OTP login, email and password, tokens and sessions, profiles, roles, and the
//! attacks on each.

use std::time::Duration;

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use crate::support::{REQUEST_OTP, TestApp, VERIFY_OTP, WsClient};
use crate::support::{code, field};

const ME: &str = "{ me { id phone email role username displayName accountStatus } }";
const SIGN_UP: &str = "mutation($e: String!, $p: String!, $u: String) { signUp(input: { email: $e, password: $p, username: $u }) { accessToken refreshToken isNewUser user { id email username } } }";
const SIGN_IN: &str = "mutation($e: String!, $p: String!) { signIn(input: { email: $e, password: $p }) { accessToken refreshToken user { id } } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken user { id } } }";

#[tokio::test]
async fn otp_signs_up_then_signs_in_with_signup_bonus() {
    let app = TestApp::spawn_with(|c| c.otp_resend = Duration::from_secs(2)).await;
    let first = app.sign_up_by_phone("+1 (415) 555-2671").await;
    assert_eq!(first["isNewUser"], true);
    assert_eq!(first["user"]["phone"], "+14155552671", "stored as E.164");
    assert_eq!(first["user"]["role"], "USER");
    let token = first["accessToken"].as_str().unwrap();
    let (_, me) = app.gql_as(token, ME, json!({})).await;
    assert_eq!(me["data"]["me"]["id"], first["user"]["id"]);
    assert_eq!(me["data"]["me"]["accountStatus"], "ACTIVE");

    // The account opened with the sign-up bonus, as a balance and as its ledger row.
    assert_eq!(
        app.scalar("SELECT balance AS n FROM credit_accounts").await,
        10
    );
    assert_eq!(
        app.scalar(
            "SELECT sum(amount)::bigint AS n FROM credit_transactions WHERE kind = 'signup_bonus'"
        )
        .await,
        10
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM users WHERE phone_verified_at IS NOT NULL")
            .await,
        1
    );

    // A later code signs the same user in; asking again at once is throttled.
    let (_, body) = app
        .gql(REQUEST_OTP, json!({ "phone": "+14155552671" }))
        .await;
    assert_eq!(code(&body), "RATE_LIMITED", "resend is throttled: {body}");
    let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap();
    assert!((1..=2).contains(&retry), "{body}");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let again = app.sign_up_by_phone("+14155552671").await;
    assert_eq!(again["isNewUser"], false);
    assert_eq!(again["user"]["id"], first["user"]["id"]);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions")
            .await,
        1,
        "no second bonus"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action IN ('auth.sign_up', 'auth.sign_in') AND ip IS NOT NULL").await,
        3
    );
    // The delivered code is not kept in the outbox.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM outbox_messages WHERE body ~ '[0-9]{6}'")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM otp_codes WHERE code_hash ~ '^[0-9]{6}$'")
            .await,
        0
    );
}

#[tokio::test]
async fn phone_numbers_are_validated() {
    let app = TestApp::spawn().await;
    for bad in [
        "12345",
        "hello",
        "",
        "+1",
        "'; DROP TABLE users; --",
        &"9".repeat(10_000),
    ] {
        let (status, body) = app.gql(REQUEST_OTP, json!({ "phone": bad })).await;
        assert_eq!(status, 200);
        assert_eq!(code(&body), "BAD_USER_INPUT", "{bad:.20}: {body}");
        assert_eq!(field(&body), "input.phone");
    }
    assert_eq!(app.scalar("SELECT count(*) AS n FROM otp_codes").await, 0);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM outbox_messages")
            .await,
        0
    );
}

#[tokio::test]
async fn wrong_reused_expired_and_brute_forced_codes_fail() {
    let app = TestApp::spawn_with(|c| c.otp_resend = Duration::from_secs(1)).await;
    let phone = "+442079460958";
    let real = app.request_code(phone).await;
    let wrong = if real == "000000" { "111111" } else { "000000" };

    // Four wrong tries, then the right code still works...
    for left in (1..=4).rev() {
        let (_, body) = app
            .gql(VERIFY_OTP, json!({ "phone": phone, "code": wrong }))
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT");
        assert_eq!(field(&body), "input.code");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("{left} tries left")),
            "{body}"
        );
    }
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": phone, "code": real }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // ...once: it is single use.
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": phone, "code": real }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );

    // Five wrong tries kill a code: the right one no longer works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let real = app.request_code(phone).await;
    let wrong = if real == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        app.gql(VERIFY_OTP, json!({ "phone": phone, "code": wrong }))
            .await;
    }
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": phone, "code": real }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("too many"),
        "{body}"
    );

    // Malformed codes are refused without spending a try.
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": phone, "code": "12ab56" }))
        .await;
    assert_eq!(field(&body), "input.code");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 1);
}

#[tokio::test]
async fn expired_codes_fail() {
    let app = TestApp::spawn_with(|c| c.otp_ttl = Duration::from_secs(1)).await;
    let phone = "+14155552672";
    let real = app.request_code(phone).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": phone, "code": real }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 0);
}

/// The right code used in parallel signs in exactly once; parallel wrong guesses cannot
/// spend more than five tries.
#[tokio::test]
async fn parallel_verifications_are_bounded_and_single_use() {
    let app = TestApp::spawn().await;
    let phone = "+14155552673";
    let real = app.request_code(phone).await;
    let attempts: Vec<_> = (0..8)
        .map(|_| app.gql(VERIFY_OTP, json!({ "phone": phone, "code": real.clone() })))
        .collect();
    let results = futures_util::future::join_all(attempts).await;
    let ok = results
        .iter()
        .filter(|(_, b)| b["errors"].is_null())
        .count();
    assert_eq!(ok, 1, "{results:?}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_accounts")
            .await,
        1
    );

    let victim = "+14155552663";
    let real = app.request_code(victim).await;
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let guess = format!("{:06}", (real.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
            app.gql(VERIFY_OTP, json!({ "phone": victim, "code": guess }))
        })
        .collect();
    let results = futures_util::future::join_all(guesses).await;
    let wrong = results
        .iter()
        .filter(|(_, b)| {
            b["errors"][0]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("wrong code")
        })
        .count();
    assert_eq!(wrong, 5, "exactly five guesses were checked: {results:?}");
    assert_eq!(app.scalar("SELECT max(attempt_count)::bigint AS n FROM otp_codes WHERE destination = '+14155552663'").await, 5);
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": victim, "code": real }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "the code died: {body}");
}

/// Parallel requests for one phone send one code: the resend check holds under concurrency.
#[tokio::test]
async fn parallel_code_requests_send_once() {
    let app = TestApp::spawn().await;
    let requests: Vec<_> = (0..6)
        .map(|_| app.gql(REQUEST_OTP, json!({ "phone": "+14155552690" })))
        .collect();
    let results = futures_util::future::join_all(requests).await;
    let sent = results
        .iter()
        .filter(|(_, b)| b["errors"].is_null())
        .count();
    assert_eq!(sent, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(_, b)| b["errors"].is_null() || code(b) == "RATE_LIMITED")
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM otp_codes").await, 1);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM outbox_messages")
            .await,
        1
    );
}

#[tokio::test]
async fn resend_is_limited_per_ip_across_phones() {
    let app = TestApp::spawn_with(|c| c.otp_max_per_hour_per_ip = 3).await;
    for i in 0..3 {
        let (_, body) = app
            .gql(
                REQUEST_OTP,
                json!({ "phone": format!("+1415555{:04}", 2680 + i) }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let (_, body) = app
        .gql(REQUEST_OTP, json!({ "phone": "+14155552699" }))
        .await;
    assert_eq!(code(&body), "RATE_LIMITED");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM otp_codes").await,
        3,
        "a refused request stores nothing"
    );
}

#[tokio::test]
async fn referral_codes_link_new_users() {
    let app = TestApp::spawn().await;
    let referrer = app.sign_up_by_phone("+14155552674").await;
    let code_ = referrer["user"]["referralCode"]
        .as_str()
        .unwrap()
        .to_string();
    let otp = app.request_code("+14155552675").await;
    let (_, body) = app
        .gql(
            VERIFY_OTP,
            json!({ "phone": "+14155552675", "code": otp.clone(), "ref": "NOPE0000" }),
        )
        .await;
    assert_eq!(field(&body), "input.referralCode");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM users").await,
        1,
        "nothing half-written"
    );
    // The failed attempt rolled back the code's consumption: it still works.
    let (_, body) = app
        .gql(
            VERIFY_OTP,
            json!({ "phone": "+14155552675", "code": otp, "ref": code_ }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM referrals").await, 1);
}

#[tokio::test]
async fn email_and_password() {
    let app = TestApp::spawn().await;
    let (_, body) = app
        .gql(
            SIGN_UP,
            json!({ "e": "Ada@Example.com", "p": "correct horse battery", "u": "ada" }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["signUp"]["user"]["email"], "ada@example.com");

    let (_, body) = app
        .gql(
            SIGN_IN,
            json!({ "e": "ADA@example.com", "p": "correct horse battery" }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, wrong_pw) = app
        .gql(
            SIGN_IN,
            json!({ "e": "ada@example.com", "p": "wrong horse battery" }),
        )
        .await;
    let (_, unknown) = app
        .gql(
            SIGN_IN,
            json!({ "e": "nobody@example.com", "p": "wrong horse battery" }),
        )
        .await;
    assert_eq!(code(&wrong_pw), "UNAUTHENTICATED");
    assert_eq!(
        wrong_pw["errors"][0]["message"], unknown["errors"][0]["message"],
        "no account enumeration"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.sign_in_failed'")
            .await,
        2
    );

    let (_, dup) = app
        .gql(
            SIGN_UP,
            json!({ "e": "ada@EXAMPLE.com", "p": "another password" }),
        )
        .await;
    assert_eq!(code(&dup), "BAD_USER_INPUT");
    assert_eq!(field(&dup), "input.email");
    let (_, taken) = app
        .gql(
            SIGN_UP,
            json!({ "e": "bob@example.com", "p": "another password", "u": "ada" }),
        )
        .await;
    assert_eq!(field(&taken), "input.username");

    let huge = "x".repeat(10_000);
    for (vars, f) in [
        (
            json!({ "e": "not-an-email", "p": "long enough" }),
            "input.email",
        ),
        (
            json!({ "e": "c@example.com", "p": "short" }),
            "input.password",
        ),
        (json!({ "e": "c@example.com", "p": huge }), "input.password"),
        (
            json!({ "e": format!("{huge}@example.com"), "p": "long enough" }),
            "input.email",
        ),
        (
            json!({ "e": "c@example.com", "p": "long enough", "u": "x'; DROP TABLE users;--" }),
            "input.username",
        ),
    ] {
        let (_, body) = app.gql(SIGN_UP, vars).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(field(&body), f);
    }
    let (_, body) = app.gql(SIGN_IN, json!({ "e": huge, "p": huge })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 1);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_accounts")
            .await,
        1
    );
}

#[tokio::test]
async fn bad_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552676").await;
    let good = auth["accessToken"].as_str().unwrap();
    let other_key = easel::accounts::tokens::Keys::new(
        b"some-other-servers-secret-key-xyz",
        &[],
        Duration::from_secs(900),
    );
    let (foreign, _) = other_key.issue(
        uuid::Uuid::now_v7(),
        easel::accounts::Role::Admin,
        uuid::Uuid::now_v7(),
    );
    let parts: Vec<&str> = good.split('.').collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none_header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let tampered_claims = {
        let mut claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        claims["role"] = json!("admin");
        b64.encode(claims.to_string())
    };
    let cases = [
        "garbage".to_string(),
        format!("{}.{}.{}", parts[0], tampered_claims, parts[2]),
        format!("{none_header}.{}.", parts[1]),
        foreign,
        format!("{good}x"),
    ];
    for token in cases {
        let (status, body) = app.gql_as(&token, ME, json!({})).await;
        assert_eq!(status, 401, "{token}");
        assert_eq!(code(&body), "UNAUTHENTICATED");
    }
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("authorization", "Basic abc")
        .json(&json!({"query": ME}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );

    // An expired token says so.
    let short = TestApp::spawn_with(|c| c.access_token_ttl = Duration::from_secs(1)).await;
    let auth = short.sign_up_by_phone("+14155552677").await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = short
        .gql_as(auth["accessToken"].as_str().unwrap(), ME, json!({}))
        .await;
    assert_eq!(status, 401);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552678").await;
    let first = auth["refreshToken"].as_str().unwrap().to_string();
    let (_, body) = app.gql(REFRESH, json!({ "t": first })).await;
    assert!(body["errors"].is_null(), "{body}");
    let second = body["data"]["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(first, second);
    let token = body["data"]["refreshSession"]["accessToken"]
        .as_str()
        .unwrap();
    assert_eq!(
        app.gql_as(token, ME, json!({})).await.1["data"]["me"]["id"],
        auth["user"]["id"]
    );

    // The old token is spent; presenting it again revokes the whole family...
    let (_, body) = app.gql(REFRESH, json!({ "t": first })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    // ...so the thief's or the user's newer token stops working too.
    let (_, body) = app.gql(REFRESH, json!({ "t": second })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.refresh_reuse'")
            .await,
        1
    );
    let (_, body) = app.gql(REFRESH, json!({ "t": "made-up-token" })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_refresh_token_used_twice_in_parallel_wins_once() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552679").await;
    let t = auth["refreshToken"].as_str().unwrap().to_string();
    let (a, b) = tokio::join!(
        app.gql(REFRESH, json!({ "t": t.clone() })),
        app.gql(REFRESH, json!({ "t": t }))
    );
    let oks = [&a.1, &b.1]
        .iter()
        .filter(|b| b["errors"].is_null())
        .count();
    assert!(oks <= 1, "{a:?} {b:?}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM sessions WHERE revoked_at IS NULL")
            .await,
        0,
        "reuse revoked the family"
    );
}

#[tokio::test]
async fn sign_out_ends_one_or_all_sessions() {
    let app = TestApp::spawn_with(|c| c.otp_resend = Duration::from_secs(1)).await;
    let one = app.sign_up_by_phone("+14155552680").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let two = app.sign_up_by_phone("+14155552680").await;
    let (_, body) = app
        .gql_as(
            one["accessToken"].as_str().unwrap(),
            "mutation { signOut }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["signOut"], true, "{body}");
    assert_eq!(
        code(
            &app.gql(REFRESH, json!({ "t": one["refreshToken"] }))
                .await
                .1
        ),
        "UNAUTHENTICATED"
    );
    let (_, body) = app.gql(REFRESH, json!({ "t": two["refreshToken"] })).await;
    assert!(body["errors"].is_null(), "the other session lives: {body}");
    let token = body["data"]["refreshSession"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let refresh = body["data"]["refreshSession"]["refreshToken"].clone();
    app.gql_as(&token, "mutation { signOut(allSessions: true) }", json!({}))
        .await;
    assert_eq!(
        code(&app.gql(REFRESH, json!({ "t": refresh })).await.1),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'auth.sign_out'")
            .await,
        2
    );
    let (_, body) = app.gql("mutation { signOut }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn suspended_accounts_cannot_sign_in_or_refresh() {
    let app = TestApp::spawn_with(|c| c.otp_resend = Duration::from_secs(1)).await;
    let user = app.sign_up_by_phone("+14155552681").await;
    let admin = make_admin(&app, "+14155552682").await;
    let (_, body) = app
        .gql_as(&admin, "mutation($id: ID!) { setAccountStatus(userId: $id, status: SUSPENDED) { id accountStatus } }", json!({ "id": user["user"]["id"] }))
        .await;
    assert_eq!(
        body["data"]["setAccountStatus"]["accountStatus"], "SUSPENDED",
        "{body}"
    );
    assert_eq!(
        code(
            &app.gql(REFRESH, json!({ "t": user["refreshToken"] }))
                .await
                .1
        ),
        "UNAUTHENTICATED"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let otp = app.request_code("+14155552681").await;
    let (_, body) = app
        .gql(VERIFY_OTP, json!({ "phone": "+14155552681", "code": otp }))
        .await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    // The suspended user's access token stopped working with the suspension.
    let reactivate = "mutation($id: ID!) { setAccountStatus(userId: $id, status: ACTIVE) { id } }";
    let (status, body) = app
        .gql_as(
            user["accessToken"].as_str().unwrap(),
            reactivate,
            json!({ "id": user["user"]["id"] }),
        )
        .await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    // Only admins may do that.
    let other = app.sign_up_by_phone("+14155552683").await;
    let (_, body) = app
        .gql_as(
            other["accessToken"].as_str().unwrap(),
            reactivate,
            json!({ "id": user["user"]["id"] }),
        )
        .await;
    assert_eq!(code(&body), "FORBIDDEN");
}

/// Promotes through the CLI path (the service `easel create-admin` calls) and signs in anew.
async fn make_admin(app: &TestApp, phone: &str) -> String {
    app.sign_up_by_phone(phone).await;
    easel::accounts::service::create_admin(&app.state, Some(phone), None, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let auth = app.sign_up_by_phone(phone).await;
    assert_eq!(auth["user"]["role"], "ADMIN");
    auth["accessToken"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn profiles_honour_privacy_and_validation() {
    let app = TestApp::spawn().await;
    let ada = app.sign_up_by_phone("+14155552683").await;
    let bob = app.sign_up_by_phone("+14155552684").await;
    let ada_token = ada["accessToken"].as_str().unwrap();
    let bob_token = bob["accessToken"].as_str().unwrap();
    const UPDATE: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { username displayName bio avatarUrl timezone profileVisibility } }";
    let (_, body) = app
        .gql_as(ada_token, UPDATE, json!({ "i": { "username": "ada", "displayName": " Ada L. ", "bio": "Engines", "avatarUrl": "https://cdn.example/ada.png", "timezone": "Europe/London" } }))
        .await;
    assert_eq!(
        body["data"]["updateProfile"]["displayName"], "Ada L.",
        "{body}"
    );
    assert_eq!(body["data"]["updateProfile"]["timezone"], "Europe/London");

    let bad = [
        (json!({ "username": "a" }), "input.username"),
        (
            json!({ "displayName": "x".repeat(10_000) }),
            "input.displayName",
        ),
        (
            json!({ "avatarUrl": "javascript:alert(1)" }),
            "input.avatarUrl",
        ),
        (json!({ "timezone": "Mars/Olympus" }), "input.timezone"),
        (
            json!({ "preferredLanguage": "'; DROP TABLE users; --" }),
            "input.preferredLanguage",
        ),
    ];
    for (input, f) in bad {
        let (_, body) = app.gql_as(ada_token, UPDATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(field(&body), f);
    }
    let (_, body) = app
        .gql_as(bob_token, UPDATE, json!({ "i": { "username": "ada" } }))
        .await;
    assert_eq!(field(&body), "input.username", "taken: {body}");

    const USER: &str = "query($u: String) { user(username: $u) { id username bio phone email } }";
    let (_, body) = app.gql_as(bob_token, USER, json!({ "u": "ada" })).await;
    assert_eq!(body["data"]["user"]["bio"], "Engines");
    assert_eq!(
        body["data"]["user"]["phone"],
        Value::Null,
        "private fields stay private"
    );
    let (_, body) = app.gql(USER, json!({ "u": "ada" })).await;
    assert_eq!(
        body["data"]["user"]["username"], "ada",
        "anonymous sees public profiles"
    );

    app.gql_as(
        ada_token,
        UPDATE,
        json!({ "i": { "profileVisibility": "PRIVATE" } }),
    )
    .await;
    let (_, body) = app.gql_as(bob_token, USER, json!({ "u": "ada" })).await;
    assert_eq!(
        body["data"]["user"],
        Value::Null,
        "private profiles are invisible to others"
    );
    let (_, body) = app.gql_as(ada_token, USER, json!({ "u": "ada" })).await;
    assert_eq!(
        body["data"]["user"]["phone"], "+14155552683",
        "the owner sees everything"
    );
    let (_, body) = app
        .gql_as(
            bob_token,
            "query($id: ID) { user(id: $id) { id } }",
            json!({ "id": ada["user"]["id"] }),
        )
        .await;
    assert_eq!(body["data"]["user"], Value::Null);
    let (_, body) = app
        .gql("query { user(id: \"not-a-uuid\") { id } }", json!({}))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    let (_, body) = app.gql(UPDATE, json!({ "i": { "bio": "anon" } })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
}

#[tokio::test]
async fn becoming_a_vendor() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552685").await;
    let token = auth["accessToken"].as_str().unwrap();
    const BECOME: &str = "mutation($n: String!) { becomeVendor(input: { businessName: $n, socialLinks: { instagram: \"@studio\" } }) { role vendorProfile { businessName freeGalleryRemaining socialLinks } } }";
    let (_, body) = app
        .gql_as(token, BECOME, json!({ "n": "Studio Nine" }))
        .await;
    assert_eq!(body["data"]["becomeVendor"]["role"], "VENDOR", "{body}");
    assert_eq!(
        body["data"]["becomeVendor"]["vendorProfile"]["freeGalleryRemaining"],
        10
    );
    let (_, body) = app.gql_as(token, BECOME, json!({ "n": "Again" })).await;
    assert_eq!(code(&body), "CONFLICT");
    let (_, body) = app.gql_as(token, BECOME, json!({ "n": "  " })).await;
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'account.role_changed'")
            .await,
        1
    );
}

#[tokio::test]
async fn websocket_authenticates_in_connection_init() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = Duration::from_secs(3)).await;
    let auth = app.sign_up_by_phone("+14155552686").await;
    let token = auth["accessToken"].as_str().unwrap();
    let mut ws = app
        .ws(
            "/graphql/ws",
            json!({ "authorization": format!("Bearer {token}") }),
        )
        .await;
    ws.subscribe("{ me { id } }", json!({})).await;
    let next = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        next["payload"]["data"]["me"]["id"], auth["user"]["id"],
        "{next}"
    );

    // A bad token closes the socket with 4403.
    let url = format!("ws://{}/graphql/ws", app.addr);
    let err = WsClient::connect(&url, json!({ "authorization": "Bearer nonsense" }))
        .await
        .err()
        .unwrap();
    assert!(err.contains("4403"), "{err}");

    // When the token expires the socket is closed with 4403.
    let closed = loop {
        match ws.recv().await {
            Some(Ok(_)) => continue,
            Some(Err(close)) => break close,
            None => panic!("socket ended without a close frame"),
        }
    };
    assert_eq!(closed.0, 4403, "{closed:?}");
    assert!(closed.1.contains("expired"));
}

#[tokio::test]
async fn the_log_sender_delivers_and_redacts() {
    use easel::outbox;
    let (state, mut conn) = quiet_state().await;
    outbox::enqueue_sms(
        &mut conn,
        "+14155552687",
        "otp_login",
        "Your Easel code is 123456.",
    )
    .await
    .unwrap();
    assert_eq!(
        outbox::deliver_due(&state.pool, &outbox::LogSender)
            .await
            .unwrap(),
        1
    );
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Text)]
        body: String,
    }
    let row: Row = diesel::sql_query("SELECT status, body FROM outbox_messages")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (row.status.as_str(), row.body.as_str()),
        ("sent", "[delivered]")
    );
    assert_eq!(
        outbox::deliver_due(&state.pool, &outbox::LogSender)
            .await
            .unwrap(),
        0,
        "sent once"
    );
}

/// State over a fresh database with no background delivery running.
async fn quiet_state() -> (easel::AppState, diesel_async::AsyncPgConnection) {
    use diesel_async::AsyncConnection;
    let url = crate::support::fresh_database().await;
    let state = easel::server::app_state(crate::support::test_config(), &url).unwrap();
    (
        state,
        diesel_async::AsyncPgConnection::establish(&url)
            .await
            .unwrap(),
    )
}

/// The HTTP SMS sender against a local stub gateway: retries a 503, then delivers.
#[tokio::test]
async fn http_sms_sender_retries_then_delivers() {
    use axum::{
        Json, Router,
        http::{HeaderMap, StatusCode},
        routing::post,
    };
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let record = seen.clone();
    let gateway = Router::new().route(
        "/send",
        post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let record = record.clone();
            async move {
                let mut seen = record.lock().unwrap();
                seen.push((headers, body));
                if seen.len() == 1 {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::ACCEPTED
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, gateway).await.unwrap() });

    let (state, mut conn) = quiet_state().await;
    let sender = easel::outbox::HttpSmsSender::new(
        format!("http://{addr}/send"),
        Some(secrecy::SecretString::from("gw-token".to_string())),
    );
    let id = easel::outbox::enqueue_sms(
        &mut conn,
        "+14155552688",
        "otp_login",
        "Your Easel code is 654321.",
    )
    .await
    .unwrap();
    assert_eq!(
        easel::outbox::deliver_due(&state.pool, &sender)
            .await
            .unwrap(),
        0,
        "503 is retried later"
    );
    assert_eq!(
        easel::outbox::deliver_due(&state.pool, &sender)
            .await
            .unwrap(),
        0,
        "not before its backoff"
    );
    diesel::sql_query("UPDATE outbox_messages SET next_attempt_at = now()")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        easel::outbox::deliver_due(&state.pool, &sender)
            .await
            .unwrap(),
        1
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let (headers, body) = &seen[1];
    assert_eq!(headers["authorization"], "Bearer gw-token");
    assert_eq!(headers["idempotency-key"], id.to_string().as_str());
    assert_eq!(body["to"], "+14155552688");
    assert!(body["message"].as_str().unwrap().contains("654321"));
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        status: String,
    }
    let row: Row = diesel::sql_query("SELECT status FROM outbox_messages")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(row.status, "sent");
}

#[tokio::test]
async fn create_admin_cli_promotes_by_email() {
    let app = TestApp::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .args(["create-admin", "--email", "root@example.com"])
        .env("DATABASE_URL", &app.db_url)
        .env("EASEL_ADMIN_PASSWORD", "a strong admin password")
        .env("EASEL_JWT_SECRET", "cli-test-secret-cli-test-secret-cli")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, body) = app
        .gql("mutation { signIn(input: { email: \"root@example.com\", password: \"a strong admin password\" }) { user { role } } }", json!({}))
        .await;
    assert_eq!(body["data"]["signIn"]["user"]["role"], "ADMIN", "{body}");
}

/// Every way an account comes to be (a first one-time code, email and password, the
/// `create-admin` CLI) goes through one `create_user_in`: the account opens with its sign-up
/// bonus, as a balance and as its ledger row, and the sign-up is in the audit log with how it
/// happened.
#[tokio::test]
async fn every_sign_up_path_opens_credits_and_is_audited() {
    let app = TestApp::spawn().await;
    app.sign_up_by_phone("+14155552690").await;
    let (_, body) = app
        .gql(
            SIGN_UP,
            json!({ "e": "paths@example.com", "p": "correct horse battery" }),
        )
        .await;
    assert_eq!(body["data"]["signUp"]["isNewUser"], true, "{body}");
    easel::accounts::service::create_admin(&app.state, Some("+14155552691"), None, None)
        .await
        .unwrap();
    for method in ["otp", "password", "cli"] {
        assert_eq!(
            app.scalar(&format!(
                "SELECT count(*) AS n FROM audit_logs l JOIN credit_accounts a ON a.user_id = l.actor_id \
                 JOIN credit_transactions t ON t.user_id = l.actor_id AND t.kind = 'signup_bonus' \
                 WHERE l.action = 'auth.sign_up' AND l.metadata->>'method' = '{method}' \
                   AND a.balance = 10 AND t.amount = 10 AND t.balance_after = 10"
            ))
            .await,
            1,
            "{method}"
        );
    }
    assert_eq!(app.scalar("SELECT count(*) AS n FROM users").await, 3);
    app.assert_ledger_ok().await;
}
