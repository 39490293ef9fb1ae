//! Operability: `/metrics`, the access log, CORS preflights, GraphiQL's websocket wiring.

use std::{collections::HashMap, time::Duration};

use easel::generation::worker::{self, Ran};
use serde_json::{Value, json};

use crate::support::{TestApp, code, fresh_database, start_binary_logged, stop_binary, user};

/// `/metrics` parsed: `name{labels}` (labels as rendered) → value.
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("`series value`");
            values.insert(series.to_string(), value.parse::<f64>().expect("a number"));
        }
        Scrape(values)
    }

    /// The value of `name` with exactly `labels` (0 when absent).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let series = if labels.is_empty() {
            name.to_string()
        } else {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", labels.join(","))
        };
        self.0.get(&series).copied().unwrap_or(0.0)
    }
}

async fn scrape(app: &TestApp) -> Scrape {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    Scrape::parse(&resp.text().await.unwrap())
}

async fn post(app: &TestApp, token: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.client.post(app.url("/graphql")).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

const GENERATE: &str =
    "mutation Generate($i: GenerateInput!) { generate(input: $i) { id costCredits } }";

fn requests(op: &str, status: &str) -> [(&'static str, String); 4] {
    [
        ("route", "/graphql".into()),
        ("operation", op.into()),
        ("method", "POST".into()),
        ("status", status.into()),
    ]
}

fn get_requests(s: &Scrape, op: &str, status: &str) -> f64 {
    let labels = requests(op, status);
    let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.get("easel_http_requests_total", &labels)
}

/// Requests, errors, jobs, worker outcomes, credits, the pool, websockets: each counter moves
/// by what was done, read back from the scraped text.
#[tokio::test]
async fn metrics_count_what_happened() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 7101).await;
    let before = scrape(&app).await;

    // Named, anonymous, unknown-name and over-long operations.
    for _ in 0..2 {
        let (status, body) = post(
            &app,
            None,
            json!({ "query": "query MetricsProbe { __typename }" }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    post(&app, None, json!({ "query": "{ __typename }" })).await;
    let long = format!("query {} {{ __typename }}", "L".repeat(80));
    post(&app, None, json!({ "query": long })).await;
    let (status, unknown) = post(
        &app,
        None,
        json!({ "query": "query A { __typename }", "operationName": "NotInTheDocument" }),
    )
    .await;
    assert_eq!(status, 400);
    // A resolver error and a validation error, by code.
    let (_, denied) = post(
        &app,
        None,
        json!({ "query": GENERATE, "variables": { "i": { "kind": "CHARACTER_GENERATION", "prompt": "x" } } }),
    )
    .await;
    let denied_code = code(&denied).to_string();
    let (status, invalid) = post(
        &app,
        None,
        json!({ "query": "query Invalid { noSuchField }" }),
    )
    .await;
    assert_eq!(status, 400, "{invalid}");
    let invalid_code = code(&invalid).to_string();

    // Two jobs: one cancelled while queued (refunded), one run by a worker.
    let input = json!({ "kind": "CHARACTER_GENERATION", "prompt": "a fox", "params": { "width": 64, "height": 64 } });
    let (_, a) = post(
        &app,
        Some(&token),
        json!({ "query": GENERATE, "variables": { "i": input } }),
    )
    .await;
    let (_, b) = post(
        &app,
        Some(&token),
        json!({ "query": GENERATE, "variables": { "i": input } }),
    )
    .await;
    let cost = a["data"]["generate"]["costCredits"]
        .as_f64()
        .expect("a job");
    let queued = scrape(&app).await;
    assert_eq!(queued.get("easel_jobs", &[("status", "queued")]), 2.0);
    assert!(queued.get("easel_jobs_oldest_queued_age_seconds", &[]) > 0.0);
    let (_, cancelled) = post(
        &app,
        Some(&token),
        json!({ "query": "mutation Cancel($id: ID!) { cancelGenerationJob(id: $id) { status } }", "variables": { "id": b["data"]["generate"]["id"] } }),
    )
    .await;
    assert_eq!(
        cancelled["data"]["cancelGenerationJob"]["status"], "CANCELLED",
        "{cancelled}"
    );
    let ran = worker::run_next(&app.state, app.state.provider.clone(), "metrics-worker")
        .await
        .unwrap();
    assert!(matches!(ran, Some(Ran::Succeeded)), "{ran:?}");

    // A websocket running one subscription.
    let mut ws = app.ws_as(&token).await;
    ws.subscribe("subscription { myGenerationJobs { id } }", json!({}))
        .await;
    let mut open = scrape(&app).await;
    for _ in 0..50 {
        if open.get("easel_websocket_operations", &[]) == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        open = scrape(&app).await;
    }
    assert_eq!(open.get("easel_websocket_connections", &[]), 1.0);
    assert_eq!(open.get("easel_websocket_operations", &[]), 1.0);
    drop(ws);

    let after = scrape(&app).await;
    let delta = |f: &dyn Fn(&Scrape) -> f64| f(&after) - f(&before);
    assert_eq!(delta(&|s| get_requests(s, "MetricsProbe", "200")), 2.0);
    assert_eq!(delta(&|s| get_requests(s, "anonymous", "200")), 1.0);
    // The over-long name, and a name the document does not hold.
    assert_eq!(delta(&|s| get_requests(s, "other", "200")), 1.0);
    assert_eq!(delta(&|s| get_requests(s, "other", "400")), 1.0);
    assert_eq!(delta(&|s| get_requests(s, "Invalid", "400")), 1.0);
    assert_eq!(delta(&|s| get_requests(s, "Generate", "200")), 3.0);
    assert_eq!(delta(&|s| get_requests(s, "Cancel", "200")), 1.0);
    assert_eq!(
        after.get(
            "easel_http_request_duration_seconds_count",
            &[
                ("route", "/graphql"),
                ("operation", "MetricsProbe"),
                ("method", "POST")
            ]
        ),
        2.0
    );
    // Three errors, one per response, each counted under its `extensions.code`.
    let mut expected: HashMap<String, f64> = HashMap::new();
    for body in [&denied, &invalid, &unknown] {
        *expected.entry(code(body).to_string()).or_default() += 1.0;
    }
    assert!(expected.contains_key(&denied_code) && expected.contains_key(&invalid_code));
    for (c, n) in &expected {
        assert_eq!(
            delta(&|s| s.get("easel_graphql_errors_total", &[("code", c)])),
            *n,
            "{c}: {denied} {invalid} {unknown}"
        );
    }
    assert_eq!(
        delta(&|s| s.get("easel_worker_jobs_total", &[("outcome", "succeeded")])),
        1.0
    );
    assert_eq!(
        delta(&|s| s.get("easel_credits_charged_total", &[])),
        2.0 * cost
    );
    assert_eq!(delta(&|s| s.get("easel_credits_refunded_total", &[])), cost);
    assert_eq!(after.get("easel_jobs", &[("status", "queued")]), 0.0);
    assert_eq!(after.get("easel_jobs", &[("status", "succeeded")]), 1.0);
    assert_eq!(after.get("easel_jobs", &[("status", "cancelled")]), 1.0);
    assert_eq!(after.get("easel_jobs_oldest_queued_age_seconds", &[]), 0.0);
    assert_eq!(
        after.get("easel_db_pool_connections", &[("state", "max")]),
        8.0
    );
    assert!(after.get("easel_db_pool_connections", &[("state", "idle")]) >= 1.0);
    assert_eq!(after.get("easel_db_pool_waiting", &[]), 0.0);
    // Every query above ran SQL on the pool.
    assert!(
        delta(&|s| s.get("easel_db_statements_total", &[])) > 0.0,
        "{:?} then {:?}",
        before.get("easel_db_statements_total", &[]),
        after.get("easel_db_statements_total", &[])
    );
    assert_eq!(after.get("easel_event_listener_connected", &[]), 1.0);
    // The closed websocket is gone once the server noticed.
    let mut connections = after.get("easel_websocket_connections", &[]);
    for _ in 0..50 {
        if connections == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        connections = scrape(&app).await.get("easel_websocket_connections", &[]);
    }
    assert_eq!(connections, 0.0);
    assert_eq!(
        scrape(&app).await.get("easel_websocket_operations", &[]),
        0.0
    );
}

/// `EASEL_METRICS_TOKEN` guards `/metrics`; `EASEL_METRICS=false` removes it.
#[tokio::test]
async fn metrics_token_and_switch() {
    let app = TestApp::spawn_with(|c| {
        c.metrics_token = Some(secrecy::SecretString::from("scrape-me".to_string()));
    })
    .await;
    let url = app.url("/metrics");
    let none = app.client.get(&url).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let wrong = app
        .client
        .get(&url)
        .bearer_auth("scrape-you")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .client
        .get(&url)
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    assert!(
        right
            .text()
            .await
            .unwrap()
            .contains("easel_db_pool_connections")
    );

    let off = TestApp::spawn_with(|c| c.metrics = false).await;
    let resp = off.client.get(off.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

/// The real binary with JSON logs writes one access line per request (method, path,
/// operation, status, duration, request id), and no JSON object repeats a key.
#[tokio::test]
async fn access_log_lines_in_json() {
    let db = fresh_database().await;
    let (mut child, base, mut lines) = start_binary_logged(&[
        ("DATABASE_URL", db.as_str()),
        ("RUST_BACKTRACE", "1"),
        ("EASEL_LOG", "info"),
    ])
    .await;
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{base}graphql"))
        .header("x-request-id", "access-log-test-1")
        .json(&json!({ "query": "query AccessProbe { __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client.get(format!("{base}nowhere")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let generated_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();

    let mut access = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while access.len() < 2 {
        let line = tokio::time::timeout_at(deadline, lines.recv())
            .await
            .expect("two access lines within 10 s")
            .expect("the log goes on");
        assert_no_duplicate_keys(&line);
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["target"] == "easel::access" {
            access.push(value);
        }
    }
    let graphql = &access[0]["fields"];
    assert_eq!(access[0]["level"], "INFO");
    assert_eq!(graphql["message"], "request");
    assert_eq!(graphql["method"], "POST");
    assert_eq!(graphql["path"], "/graphql");
    assert_eq!(graphql["operation"], "AccessProbe");
    assert_eq!(graphql["status"], 200);
    assert_eq!(graphql["request_id"], "access-log-test-1");
    assert!(graphql["duration_ms"].as_f64().unwrap() >= 0.0);
    let missing = &access[1]["fields"];
    assert_eq!(missing["path"], "/nowhere");
    assert_eq!(missing["status"], 404);
    assert!(missing.get("operation").is_none(), "{missing}");
    assert_eq!(missing["request_id"], generated_id.as_str());
    stop_binary(&mut child).await;
}

/// Every JSON object in `line` has distinct keys (serde_json would keep the last silently).
fn assert_no_duplicate_keys(line: &str) {
    struct Checked;
    impl<'de> serde::Deserialize<'de> for Checked {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visitor)
        }
    }
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Checked;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
                }
                map.next_value::<Checked>()?;
            }
            Ok(Checked)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
            while seq.next_element::<Checked>()?.is_some() {}
            Ok(Checked)
        }
        fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
            Ok(Checked)
        }
        fn visit_unit<E>(self) -> Result<Checked, E> {
            Ok(Checked)
        }
    }
    if let Err(e) = serde_json::from_str::<Checked>(line) {
        panic!("{e}: {line}");
    }
}

/// A preflight from an allowed origin may send the tracing and Apollo headers by default,
/// and `EASEL_CORS_HEADERS` replaces the list.
#[tokio::test]
async fn cors_preflight_allows_the_configured_headers() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let asked = "authorization, content-type, traceparent, tracestate, baggage, sentry-trace, apollographql-client-name, apollographql-client-version, x-request-id";
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", asked)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let h = resp.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    for name in asked.split(", ") {
        assert!(
            allowed.split(',').any(|a| a.trim() == name),
            "{name} in {allowed}"
        );
    }

    let custom = TestApp::spawn_with(|c| {
        c.cors_origins = vec!["https://app.example".into()];
        c.cors_headers = vec!["x-custom".into(), "content-type".into()];
    })
    .await;
    let resp = custom
        .client
        .request(reqwest::Method::OPTIONS, custom.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-custom")
        .send()
        .await
        .unwrap();
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allowed.contains("x-custom"), "{allowed}");
    assert!(!allowed.contains("traceparent"), "{allowed}");
}

/// GraphiQL passes the Headers tab to its fetcher with lower-cased names, so a subscription's
/// `connection_init` payload carries `authorization` (GraphiQL's toolkit spreads the request
/// headers into it). With node installed, the page's script runs against a stand-in toolkit.
#[tokio::test]
async fn graphiql_sends_the_authorization_header_on_websockets() {
    let app = TestApp::spawn_with(|c| c.graphiql = true).await;
    let html = app
        .client
        .get(app.url("/graphiql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("subscriptionUrl: url('/graphql/ws', true)"));
    assert!(html.contains("headers: lowerCased(opts && opts.headers)"));
    assert!(!html.contains("localStorage"), "no dead wiring left");
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .expect("the inline script");
    let harness = format!(
        r#"
const window = {{ location: {{ href: 'http://127.0.0.1:1/graphiql' }} }};
let payload = null, rendered = null;
const GraphiQL = {{ createFetcher: (options) => (params, opts) => {{
  // What @graphiql/toolkit's getWsFetcher hands graphql-ws as connectionParams.
  payload = {{ ...options.wsConnectionParams, ...(opts && opts.headers) }};
  return payload;
}} }};
const React = {{ createElement: (_, props) => props }};
const document = {{ getElementById: () => null }};
const ReactDOM = {{ createRoot: () => ({{ render: (props) => {{ rendered = props; }} }}) }};
{script}
rendered.fetcher({{ query: 'subscription {{ x }}' }}, {{ headers: {{ Authorization: 'Bearer t0k' }} }});
console.log(JSON.stringify(payload));
"#
    );
    match tokio::process::Command::new("node")
        .arg("-e")
        .arg(&harness)
        .output()
        .await
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let payload: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(payload, json!({ "authorization": "Bearer t0k" }));
        }
        Err(e) => eprintln!("node not found ({e}); the page's script was not run"),
    }

    // And the server takes that payload (any case) as the socket's viewer.
    let (token, id) = user(&app, 7102).await;
    let mut ws = app
        .ws(
            "/graphql/ws",
            json!({ "AUTHORIZATION": format!("Bearer {token}") }),
        )
        .await;
    ws.subscribe("{ me { id } }", json!({})).await;
    let msg = ws.recv().await.unwrap().unwrap();
    assert_eq!(msg["type"], "next", "{msg}");
    assert_eq!(msg["payload"]["data"]["me"]["id"], id.as_str(), "{msg}");
}

/// With `RUST_BACKTRACE=1`, a retry loop whose database went away logs one line per failed
/// attempt: the error and its causes, never a backtrace.
#[tokio::test]
async fn retry_warnings_stay_on_one_line() {
    use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
    let db = fresh_database().await;
    let (mut child, _base, mut lines) = start_binary_logged(&[
        ("DATABASE_URL", db.as_str()),
        ("RUST_BACKTRACE", "1"),
        ("EASEL_JOB_LEASE_SECS", "1"),
    ])
    .await;
    let name = match db.split_once("dbname=") {
        Some((_, rest)) => rest.split_whitespace().next().unwrap().to_string(),
        None => db
            .rsplit('/')
            .next()
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string(),
    };
    let mut admin = AsyncPgConnection::establish(&crate::support::with_database(&db, "postgres"))
        .await
        .unwrap();
    diesel::sql_query(format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    // The reaper runs every 0.5 s, outbox delivery every second: a few of each.
    let mut warnings = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(4);
    while let Ok(Some(line)) = tokio::time::timeout_at(until, lines.recv()).await {
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if value["level"] == "WARN" {
            warnings.push(value);
        }
    }
    child.start_kill().unwrap();
    let failed = |m: &str| {
        warnings
            .iter()
            .filter(|w| w["fields"]["message"] == m)
            .collect::<Vec<_>>()
    };
    let reaper = failed("reaper pass failed");
    let outbox = failed("outbox delivery round failed");
    assert!(reaper.len() >= 2, "{warnings:#?}");
    assert!(!outbox.is_empty(), "{warnings:#?}");
    for w in reaper.iter().chain(&outbox) {
        let error = w["fields"]["error"].as_str().expect("an error field");
        assert!(!error.contains('\n'), "{error}");
        assert!(!error.to_lowercase().contains("backtrace"), "{error}");
        // A connection in use when the database was dropped reports its termination; every
        // later attempt reports the missing database.
        assert!(
            error.contains("database") || error.contains("terminating connection"),
            "the cause is named: {error}"
        );
    }
    assert!(
        reaper
            .iter()
            .chain(&outbox)
            .any(|w| w["fields"]["error"].as_str().unwrap().contains("does not exist")),
        "{warnings:#?}"
    );
}
