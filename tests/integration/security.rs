//! The security probe's findings (issue #18) that are not about payments or the gallery:
//! hostile documents against the real binary, NUL characters, slow and idle connections,
//! revoked sessions, sign-in lockouts, websocket operation caps, production settings, and
//! the embedded database under a second process.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    TestApp, WsClient, code, field, fresh_database, start_binary, stop_binary, with_database,
};

/// `galleryFeed(filter: {tags: [[[...]]]})` nested `n` deep: 2,000 used to overflow a worker's
/// stack and abort the process.
fn nested_list(n: usize) -> String {
    format!(
        "{{ galleryFeed(filter: {{ tags: {}\"a\"{} }}) {{ edges {{ cursor }} }} }}",
        "[".repeat(n),
        "]".repeat(n)
    )
}

/// `n` fragments, each spreading the one before twice: 2^n fields from a 1 KB document
/// (n = 30 used to take a core and 11 GB).
fn fragment_bomb(n: usize) -> String {
    let mut q = format!("query {{ ...F{n} }}\nfragment F0 on Query {{ __typename }}\n");
    for i in 1..=n {
        q.push_str(&format!(
            "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
            p = i - 1
        ));
    }
    q
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> (u16, Value) {
    let resp = client.post(url).json(&body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn first_code(body: &Value) -> &str {
    // A batch answers an array; a single request an object.
    let one = if body.is_array() { &body[0] } else { body };
    code(one)
}

/// The crash and exhaustion inputs, sent to the real binary over POST, GET, a batch and a
/// websocket: each is refused at once with 400 / an error, and the process stays up,
/// answers health checks meanwhile, and stops cleanly on SIGTERM.
#[tokio::test]
async fn hostile_documents_leave_the_real_server_up() {
    let db = fresh_database().await;
    let (mut child, base) = start_binary(&[("DATABASE_URL", db.as_str())]).await;
    let client = reqwest::Client::new();
    let gql = format!("{base}graphql");
    let deep = nested_list(2_000);
    let bomb = fragment_bomb(30);
    assert!(bomb.len() < 2_048, "a small document: {} bytes", bomb.len());

    // Health checks are answered while the hostile requests run.
    let health = {
        let client = client.clone();
        let url = format!("{base}healthz");
        tokio::spawn(async move {
            let mut answered = 0;
            for _ in 0..20 {
                if client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    answered += 1;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            answered
        })
    };
    for (query, code_expected) in [(&deep, "QUERY_TOO_COMPLEX"), (&bomb, "QUERY_TOO_COMPLEX")] {
        let (status, body) = post(&client, &gql, json!({ "query": query })).await;
        assert_eq!((status, first_code(&body)), (400, code_expected), "{body}");
        assert!(body["data"].is_null());
        // Batched, several times over.
        let batch: Vec<Value> = (0..5).map(|_| json!({ "query": query })).collect();
        let (status, body) = post(&client, &gql, Value::Array(batch)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(first_code(&body), code_expected, "{body}");
        // Over GET.
        let resp = client
            .get(&gql)
            .query(&[("query", query.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), code_expected, "{body}");
    }
    // Over a websocket.
    let ws_url = format!("{}graphql/ws", base.replacen("http", "ws", 1));
    let mut ws = WsClient::connect(&ws_url, json!({})).await.unwrap();
    for query in [&deep, &bomb] {
        let id = ws.subscribe(query, json!({})).await;
        let msg = ws.recv().await.unwrap().unwrap();
        assert_eq!(msg["id"].as_str(), Some(id.as_str()), "{msg}");
        // async-graphql sends request errors as a `next` with `data: null`.
        let errors = if msg["type"] == "error" {
            &msg["payload"]
        } else {
            &msg["payload"]["errors"]
        };
        assert_eq!(
            errors[0]["extensions"]["code"], "QUERY_TOO_COMPLEX",
            "{msg}"
        );
        if msg["type"] == "next" {
            assert_eq!(ws.recv().await.unwrap().unwrap()["type"], "complete");
        }
    }
    assert_eq!(health.await.unwrap(), 20, "/healthz answered throughout");

    // Still serving, then a clean stop.
    let (status, body) = post(&client, &gql, json!({ "query": "{ __typename }" })).await;
    assert_eq!(
        (status, body),
        (200, json!({ "data": { "__typename": "Query" } }))
    );
    stop_binary(&mut child).await;
}

/// Each document bound answers its own message, and what stays within the bounds works.
#[tokio::test]
async fn document_bounds_and_what_they_allow() {
    let app = TestApp::spawn_with(|c| {
        c.graphql_max_fields = 50;
        c.graphql_max_tokens = 400;
        c.graphql_max_nesting = 12;
    })
    .await;
    // `__typename` counts: 51 aliases are one too many, 50 are fine.
    let aliases = |n: usize| {
        let fields: String = (0..n).map(|i| format!("t{i}: __typename ")).collect();
        format!("{{ {fields} }}")
    };
    let (status, body) = app.gql(&aliases(50), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["t49"], "Query");
    let (status, body) = app.gql(&aliases(51), json!({})).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("51 fields"),
        "{body}"
    );
    // Fragments are expanded before counting: 2^6 = 64 fields from a few lines.
    let (status, body) = app.gql(&fragment_bomb(6), json!({})).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");
    let (status, body) = app.gql(&fragment_bomb(5), json!({})).await;
    assert_eq!(status, 200, "{body}");
    // A fragment cycle is refused before validation could loop on it.
    let (status, body) = app
        .gql(
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (400, "BAD_USER_INPUT"), "{body}");
    // Nesting and tokens.
    let (status, body) = app.gql(&nested_list(13), json!({})).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");
    let (status, body) = app.gql(&nested_list(1), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["data"]["galleryFeed"]["edges"].is_array(), "{body}");
    let (status, body) = app.gql(&aliases(200), json!({})).await;
    assert_eq!((status, code(&body)), (400, "QUERY_TOO_COMPLEX"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("tokens"),
        "{body}"
    );
}

/// A NUL character in any string input is `BAD_USER_INPUT` naming it, never `INTERNAL`, and
/// changes nothing.
#[tokio::test]
async fn nul_characters_are_bad_user_input_everywhere() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552790").await;
    let other = app.sign_up_by_phone("+14155552791").await;
    let token = auth["accessToken"].as_str().unwrap();
    let nul = "a\u{0}b";
    let cases: Vec<(&str, Value)> = vec![
        (
            "query($s: String!) { user(username: $s) { id } }",
            json!({ "s": nul }),
        ),
        (
            "query($s: String!) { gallery(username: $s) { owner { id } } }",
            json!({ "s": nul }),
        ),
        (
            "mutation($e: String!) { signIn(input: { email: $e, password: \"whatever-123\" }) { accessToken } }",
            json!({ "e": nul }),
        ),
        (
            "mutation($to: ID!, $n: String) { giftCredits(input: { toUserId: $to, amount: 1, note: $n }) { id } }",
            json!({ "to": other["user"]["id"], "n": nul }),
        ),
        (
            "mutation($p: String, $s: String) { generate(input: { kind: CHARACTER_GENERATION, prompt: $p, params: { sampler: $s } }) { id } }",
            json!({ "p": "ok", "s": nul }),
        ),
        (
            "mutation($p: String) { generate(input: { kind: CHARACTER_GENERATION, prompt: $p }) { id } }",
            json!({ "p": nul }),
        ),
        (
            "mutation($b: String!) { becomeVendor(input: { businessName: $b }) { id } }",
            json!({ "b": nul }),
        ),
        (
            "mutation($t: String) { updateProfile(input: { timezone: $t }) { id } }",
            json!({ "t": nul }),
        ),
        (
            "mutation($i: JSON) { becomeVendor(input: { businessName: \"Shop\", contactInfo: $i }) { id } }",
            json!({ "i": { "email\u{0}": "x" } }),
        ),
        // Written in the document itself, as an escape.
        (r#"{ user(username: "a\u0000b") { id } }"#, json!({})),
    ];
    for (query, vars) in cases {
        let (status, body) = app.gql_as(token, query, vars).await;
        assert_eq!(
            (status, code(&body)),
            (400, "BAD_USER_INPUT"),
            "{query}: {body}"
        );
        assert_ne!(field(&body), "<none>", "{query}: {body}");
    }
    let (_, body) = app
        .gql_as(token, "{ me { credits { balance } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"]["credits"]["balance"], 10,
        "nothing was spent: {body}"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM generation_jobs")
            .await,
        0
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM vendor_profiles")
            .await,
        0
    );
}

/// Reads from `stream` until the server closes it (or `limit` passes); returns what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(end, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

/// Slowloris: a connection that trickles its headers, or idles between requests, is closed
/// after the header-read timeout; at most `EASEL_MAX_CONNECTIONS` are served at once.
#[tokio::test]
async fn slow_and_idle_connections_are_closed_and_connections_are_capped() {
    let app = TestApp::spawn_with(|c| {
        c.header_read_timeout = Duration::from_secs(1);
        c.max_connections = 2;
    })
    .await;
    // Headers that never end.
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut slow, Duration::from_secs(20))
        .await
        .expect("the server closes a connection whose headers never end");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "not before the timeout"
    );
    assert!(!answer.contains("200 OK"), "{answer}");

    // One request, then silence: the idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, Duration::from_secs(20))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Two silent connections fill the cap: a third is not served until one goes away.
    let a = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let b = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        tokio::time::timeout(Duration::from_millis(400), third.read(&mut buf))
            .await
            .is_err(),
        "not served while two connections hold the cap"
    );
    drop((a, b));
    let answer = read_until_closed(&mut third, Duration::from_secs(20))
        .await
        .expect("served once the cap frees");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // Open websockets are capped too (they leave the connection count once upgraded).
    let first = app.ws("/graphql/ws", json!({})).await;
    let _second = app.ws("/graphql/ws", json!({})).await;
    let err = WsClient::connect(&format!("ws://{}/graphql/ws", app.addr), json!({}))
        .await
        .err()
        .expect("a third websocket is refused");
    assert!(err.contains("503"), "{err}");
    drop(first);
    let mut retried = None;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Ok(ws) = WsClient::connect(&format!("ws://{}/graphql/ws", app.addr), json!({})).await
        {
            retried = Some(ws);
            break;
        }
    }
    assert!(retried.is_some(), "a closed websocket frees its place");
}

const ME: &str = "{ me { id } }";
const REFRESH: &str =
    "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }";

async fn me_status(app: &TestApp, token: &str) -> (u16, Value) {
    app.gql_as(token, ME, json!({})).await
}

/// An access token stops working at once when its session is signed out (one or all),
/// revoked for refresh-token reuse, or its account is banned: on this process, on another
/// process sharing the database, and on a process started afterwards.
#[tokio::test]
async fn revoked_sessions_refuse_their_access_tokens_everywhere() {
    let app = TestApp::spawn_with(|c| c.otp_resend = Duration::from_secs(1)).await;
    let same_keys =
        |c: &mut easel::config::Config| c.jwt_secret = app.state.config.jwt_secret.clone();
    let second = TestApp::spawn_on(app.db_url.clone(), same_keys).await;
    let phone = "+14155552770";
    let one = app.sign_up_by_phone(phone).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let two = app.sign_up_by_phone(phone).await;
    let (t1, t2) = (
        one["accessToken"].as_str().unwrap(),
        two["accessToken"].as_str().unwrap(),
    );
    for t in [t1, t2] {
        assert_eq!(me_status(&second, t).await.0, 200);
    }

    // Sign out one session: its token dies, the other lives.
    let (_, body) = app.gql_as(t1, "mutation { signOut }", json!({})).await;
    assert_eq!(body["data"]["signOut"], true, "{body}");
    let (status, body) = me_status(&app, t1).await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    assert_eq!(me_status(&app, t2).await.0, 200);
    // The other process hears of it through the database.
    let mut refused = false;
    for _ in 0..100 {
        if me_status(&second, t1).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "the second process refuses the signed-out token");
    assert_eq!(me_status(&second, t2).await.0, 200);

    // Refresh-token reuse revokes that session and its fresh access token.
    let (_, body) = app.gql(REFRESH, json!({ "t": two["refreshToken"] })).await;
    let fresh = body["data"]["refreshSession"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(me_status(&app, &fresh).await.0, 200);
    let (_, body) = app.gql(REFRESH, json!({ "t": two["refreshToken"] })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "reuse: {body}");
    assert_eq!(
        me_status(&app, &fresh).await.0,
        401,
        "the thief's and the owner's token die"
    );

    // A process started afterwards loads what was revoked while it did not exist.
    let third = TestApp::spawn_on(app.db_url.clone(), same_keys).await;
    assert_eq!(me_status(&third, t1).await.0, 401);
    assert_eq!(me_status(&third, &fresh).await.0, 401);

    // A ban ends every session, and the banned user cannot gift while a token lives.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let three = app.sign_up_by_phone(phone).await;
    let t3 = three["accessToken"].as_str().unwrap();
    let friend = app.sign_up_by_phone("+14155552771").await;
    let admin = app.admin_token("+14155552772").await;
    let (_, body) = app
        .gql_as(&admin, "mutation($id: ID!) { setAccountStatus(userId: $id, status: BANNED) { accountStatus } }", json!({ "id": three["user"]["id"] }))
        .await;
    assert_eq!(
        body["data"]["setAccountStatus"]["accountStatus"], "BANNED",
        "{body}"
    );
    let (status, body) = app
        .gql_as(
            t3,
            "mutation($to: ID!) { giftCredits(input: { toUserId: $to, amount: 5 }) { id } }",
            json!({ "to": friend["user"]["id"] }),
        )
        .await;
    assert_eq!((status, code(&body)), (401, "UNAUTHENTICATED"), "{body}");
    let (_, body) = app
        .gql_as(
            friend["accessToken"].as_str().unwrap(),
            "{ me { credits { balance } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["me"]["credits"]["balance"], 10,
        "no gift arrived: {body}"
    );

    // Sign out everywhere ends every session of the user at once.
    let a = app.sign_up_by_phone("+14155552773").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = app.sign_up_by_phone("+14155552773").await;
    let (ta, tb) = (
        a["accessToken"].as_str().unwrap(),
        b["accessToken"].as_str().unwrap(),
    );
    app.gql_as(ta, "mutation { signOut(allSessions: true) }", json!({}))
        .await;
    assert_eq!(me_status(&app, ta).await.0, 401);
    assert_eq!(me_status(&app, tb).await.0, 401);
    // Signing in again works.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = app.sign_up_by_phone("+14155552773").await;
    assert_eq!(
        me_status(&app, c["accessToken"].as_str().unwrap()).await.0,
        200
    );
}

/// A websocket whose session is signed out is closed with 4403, ending its subscriptions.
#[tokio::test]
async fn revoking_a_session_closes_its_websockets() {
    let app = TestApp::spawn().await;
    let auth = app.sign_up_by_phone("+14155552775").await;
    let token = auth["accessToken"].as_str().unwrap();
    let mut ws = app.ws_as(token).await;
    ws.subscribe(
        "subscription { creditBalanceChanged { balance } }",
        json!({}),
    )
    .await;
    // Another socket of someone else stays open.
    let other = app.sign_up_by_phone("+14155552776").await;
    let other_token = other["accessToken"].as_str().unwrap();
    let mut bystander = app.ws_as(other_token).await;
    app.gql_as(token, "mutation { signOut(allSessions: true) }", json!({}))
        .await;
    match ws.recv().await {
        Some(Err((code, reason))) => assert_eq!(code, 4403, "{reason}"),
        other => panic!("expected a 4403 close, got {other:?}"),
    }
    let id = bystander.subscribe("{ __typename }", json!({})).await;
    let msg = bystander.recv().await.unwrap().unwrap();
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("next"), Some(id.as_str()))
    );
    // A token that is no longer valid cannot open a socket either.
    let err = WsClient::connect(
        &format!("ws://{}/graphql/ws", app.addr),
        json!({ "authorization": format!("Bearer {token}") }),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.contains("4403"), "{err}");
}

/// Ten wrong passwords from one address stop that address, not the owner elsewhere; a
/// higher per-email ceiling stops guessing from many addresses.
#[tokio::test]
async fn sign_in_guessing_does_not_lock_the_owner_out() {
    let app = TestApp::spawn_with(|c| {
        c.trust_proxy = true;
        c.signin_max_per_email = 15;
    })
    .await;
    let sign_up = "mutation { signUp(input: { email: \"owner@example.com\", password: \"correct-horse-battery\" }) { accessToken } }";
    let (_, body) = app.gql(sign_up, json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    let sign_in = "mutation($p: String!) { signIn(input: { email: \"owner@example.com\", password: $p }) { accessToken } }";
    let attempt = |ip: &'static str, password: &'static str| {
        let req = app
            .client
            .post(app.url("/graphql"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "query": sign_in, "variables": { "p": password } }));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    for _ in 0..10 {
        assert_eq!(
            code(&attempt("203.0.113.7", "wrong-password-1").await),
            "UNAUTHENTICATED"
        );
    }
    let body = attempt("203.0.113.7", "correct-horse-battery").await;
    assert_eq!(
        code(&body),
        "RATE_LIMITED",
        "the guessing address is stopped: {body}"
    );
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    let body = attempt("198.51.100.2", "correct-horse-battery").await;
    assert!(
        body["errors"].is_null(),
        "the owner elsewhere signs in: {body}"
    );
    // Many addresses: the per-email ceiling (15 here; 11 attempts counted so far, the refused
    // ones are not) holds.
    for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        attempt(ip, "wrong-password-2").await;
    }
    assert_eq!(
        code(&attempt("192.0.2.5", "correct-horse-battery").await),
        "RATE_LIMITED"
    );
}

/// Operations per websocket and per user are capped; a duplicate id closes with 4409; the
/// counts come back when operations complete or sockets close.
#[tokio::test]
async fn websocket_operations_are_capped() {
    let app = TestApp::spawn_with(|c| {
        c.ws_max_subscriptions = 3;
        c.ws_max_subscriptions_per_user = 4;
    })
    .await;
    let auth = app.sign_up_by_phone("+14155552780").await;
    let init =
        json!({ "authorization": format!("Bearer {}", auth["accessToken"].as_str().unwrap()) });
    let sub = "subscription { creditBalanceChanged { balance } }";
    let mut a = app.ws("/graphql/ws", init.clone()).await;
    for _ in 0..3 {
        a.subscribe(sub, json!({})).await;
    }
    let id = a.subscribe(sub, json!({})).await;
    let msg = a.recv().await.unwrap().unwrap();
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("error"), Some(id.as_str())),
        "{msg}"
    );
    assert_eq!(msg["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    // The same user's second socket may run one more (4 per user), not two.
    let mut b = app.ws("/graphql/ws", init.clone()).await;
    b.subscribe(sub, json!({})).await;
    let id = b.subscribe(sub, json!({})).await;
    let msg = b.recv().await.unwrap().unwrap();
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("error"), Some(id.as_str())),
        "{msg}"
    );
    // Completing one frees a slot.
    a.send(json!({ "type": "complete", "id": "1" })).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = b.subscribe("{ __typename }", json!({})).await;
    let msg = b.recv().await.unwrap().unwrap();
    assert_eq!(
        (msg["type"].as_str(), msg["id"].as_str()),
        (Some("next"), Some(id.as_str())),
        "{msg}"
    );
    assert_eq!(b.recv().await.unwrap().unwrap()["type"], "complete");
    // A second `subscribe` with a running id is a protocol violation: 4409.
    a.send(json!({ "id": "2", "type": "subscribe", "payload": { "query": sub } }))
        .await;
    loop {
        match a.recv().await {
            Some(Ok(msg)) if msg["type"] == "complete" => continue,
            Some(Err((code, _))) => break assert_eq!(code, 4409),
            other => panic!("expected 4409, got {other:?}"),
        }
    }
    // Socket `a` is gone with its two operations: the user may start two more on `b`.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        app.state
            .ws_operations
            .running(auth["user"]["id"].as_str().unwrap().parse().unwrap()),
        1
    );
}

/// Production turns off introspection, suggestions and GraphiQL; readiness hides database
/// errors; websockets refuse a non-string `authorization`; the Bearer scheme is
/// case-insensitive.
#[tokio::test]
async fn production_settings_and_authorization_forms() {
    let app = TestApp::spawn_with(|c| {
        c.graphql_introspection = false;
        c.graphiql = false;
    })
    .await;
    let (status, body) = app.gql("{ __schema { types { name } } }", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        !body["data"]["__schema"]["types"].is_array(),
        "no schema leaks: {body}"
    );
    let (_, body) = app
        .gql("{ galleryFed { edges { cursor } } }", json!({}))
        .await;
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(!message.contains("Did you mean"), "{message}");
    for path in ["/", "/graphiql"] {
        assert_eq!(
            app.client.get(app.url(path)).send().await.unwrap().status(),
            404
        );
    }
    // The development defaults keep them.
    let dev = TestApp::spawn().await;
    let (_, body) = dev
        .gql("{ galleryFed { edges { cursor } } }", json!({}))
        .await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "{body}"
    );
    assert_eq!(
        dev.client
            .get(dev.url("/graphiql"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Bearer in any case.
    let auth = app.sign_up_by_phone("+14155552785").await;
    let token = auth["accessToken"].as_str().unwrap();
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let resp = app
            .client
            .post(app.url("/graphql"))
            .header("authorization", format!("{scheme} {token}"))
            .json(&json!({ "query": ME }))
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["data"]["me"]["id"], auth["user"]["id"],
            "{scheme}: {body}"
        );
    }
    // A websocket `authorization` that is not a string is refused, never anonymous.
    for bad in [
        json!(12),
        json!({ "token": token }),
        json!([token]),
        json!(true),
    ] {
        let err = WsClient::connect(
            &format!("ws://{}/graphql/ws", app.addr),
            json!({ "authorization": bad }),
        )
        .await
        .err()
        .expect("refused");
        assert!(err.contains("4403"), "{err}");
    }

    // Readiness on an unreachable database says so without the driver's words.
    let mut config = crate::support::test_config();
    config.db_pool_timeout = Duration::from_millis(500);
    config.db_connect_timeout = Duration::from_millis(500);
    let missing = with_database(&app.db_url, "easel_no_such_database");
    let state = easel::server::app_state(config, &missing).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = easel::http::serve::ServeOptions::from_config(&state.config);
    tokio::spawn(easel::http::serve::serve(
        listener,
        easel::http::router(state),
        options,
        std::future::pending(),
    ));
    let resp = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(text.contains("database unreachable"), "{text}");
    assert!(
        !text.contains("easel_no_such_database") && !text.contains("FATAL"),
        "{text}"
    );
}

/// `easel create-admin` (and `migrate`) beside a running server use its embedded database
/// and leave it running; the server stops it when it stops.
#[tokio::test]
async fn a_second_process_never_stops_the_servers_embedded_database() {
    let data_dir =
        std::env::temp_dir().join(format!("easel-adopt-{}", uuid::Uuid::now_v7().simple()));
    let dir = data_dir.display().to_string();
    let (mut server, base) = start_binary(&[("EASEL_DATA_DIR", dir.as_str())]).await;
    for args in [
        vec!["create-admin", "--email", "root@example.com"],
        vec!["migrate"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_easel"))
            .args(&args)
            .env_remove("DATABASE_URL")
            .env("EASEL_DATA_DIR", &data_dir)
            .env("EASEL_ADMIN_PASSWORD", "a-long-admin-password")
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client = reqwest::Client::new();
    let ready = client.get(format!("{base}readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "the server's database still runs");
    let (status, body) = post(
        &client,
        &format!("{base}graphql"),
        json!({ "query": "mutation { signIn(input: { email: \"root@example.com\", password: \"a-long-admin-password\" }) { user { role } } }" }),
    )
    .await;
    assert_eq!(
        body["data"]["signIn"]["user"]["role"], "ADMIN",
        "{status} {body}"
    );
    stop_binary(&mut server).await;
    assert!(
        !data_dir.join("postgres/postmaster.pid").exists(),
        "the owner stopped its cluster"
    );
    let _ = std::fs::remove_dir_all(&data_dir);
}
