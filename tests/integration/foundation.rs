//! The foundation: transport, bad input, GraphiQL, health, websockets, migrations, schema
//! drift, the pool, and the embedded database of the real binary.

use std::{collections::BTreeMap, time::Duration};

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::RunQueryDsl;
use easel::{db, error::AppError};
use serde_json::{Value, json};

use crate::support::{self, code, stop_binary};
use crate::support::{TestApp, blank_database, fresh_database};

#[tokio::test]
async fn typename_over_post_and_get() {
    let app = TestApp::spawn().await;
    let (status, body) = app.gql("{ __typename }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));

    let resp = app
        .client
        .get(app.url("/graphql?query=%7B__typename%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );

    // operationName and variables in the query string, as the GraphQL-over-HTTP spec names them.
    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[
            (
                "query",
                "query A { a: __typename } query B($n: String!) { __type(name: $n) { name } }",
            ),
            ("operationName", "B"),
            ("variables", r#"{"n": "Query"}"#),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "data": { "__type": { "name": "Query" } } })
    );
    let resp = app
        .client
        .get(app.url("/graphql?query=%7B__typename%7D&variables=nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

/// The introspection query GraphiQL and codegen tools send (graphql-js `getIntrospectionQuery`)
/// passes the depth and complexity limits.
#[tokio::test]
async fn the_standard_introspection_query_is_allowed() {
    const TYPE_REF: &str = "fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }";
    let query = format!(
        "query IntrospectionQuery {{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }} \
         types {{ ...FullType }} directives {{ name description locations args {{ ...InputValue }} }} }} }} \
         fragment FullType on __Type {{ kind name description fields(includeDeprecated: true) {{ name description \
         args {{ ...InputValue }} type {{ ...TypeRef }} isDeprecated deprecationReason }} inputFields {{ ...InputValue }} \
         interfaces {{ ...TypeRef }} enumValues(includeDeprecated: true) {{ name description isDeprecated deprecationReason }} \
         possibleTypes {{ ...TypeRef }} }} \
         fragment InputValue on __InputValue {{ name description type {{ ...TypeRef }} defaultValue }} {TYPE_REF}"
    );
    let app = TestApp::spawn().await;
    let (status, body) = app.gql(&query, json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(
        body["data"]["__schema"]["subscriptionType"]["name"],
        "Subscription"
    );
}

#[tokio::test]
async fn me_is_null_when_anonymous() {
    let app = TestApp::spawn().await;
    let (status, body) = app.gql("{ me { id username role } }", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({ "data": { "me": null } }));
}

#[tokio::test]
async fn mutations_over_get_are_refused() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", "mutation { signOut }")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("POST"),
        "{body}"
    );

    // A named query in a document that also holds a mutation is fine over GET.
    let doc = "query Q { __typename } mutation M { x }";
    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[("query", doc), ("operationName", "M")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

/// Every kind of garbage gets a 4xx with a GraphQL `errors` array and a code; never a 500.
#[tokio::test]
async fn garbage_requests_get_4xx_with_errors() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 64 * 1024).await;
    let post = |body: Vec<u8>, content_type: Option<&'static str>| {
        let mut req = app.client.post(app.url("/graphql")).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    let json_ct = Some("application/json");
    let cases: Vec<(&str, reqwest::Response, u16, &str)> = vec![
        ("malformed JSON", post(b"{\"query\": ".to_vec(), json_ct).await.unwrap(), 400, "BAD_USER_INPUT"),
        ("not a GraphQL request", post(br#"{"hello":"world"}"#.to_vec(), json_ct).await.unwrap(), 400, "BAD_USER_INPUT"),
        ("a JSON string", post(br#""{ __typename }""#.to_vec(), json_ct).await.unwrap(), 400, "BAD_USER_INPUT"),
        ("wrong content type", post(b"{ __typename }".to_vec(), Some("text/plain")).await.unwrap(), 415, "BAD_USER_INPUT"),
        ("no content type", post(br#"{"query":"{ __typename }"}"#.to_vec(), None).await.unwrap(), 415, "BAD_USER_INPUT"),
        ("oversized body", post(format!(r#"{{"query":"{{ __typename }}","x":"{}"}}"#, "a".repeat(100_000)).into_bytes(), json_ct).await.unwrap(), 413, "BAD_USER_INPUT"),
        (
            "unknown operation name",
            post(json!({"query": "query A { __typename }", "operationName": "B"}).to_string().into_bytes(), json_ct).await.unwrap(),
            400,
            "BAD_USER_INPUT",
        ),
        ("syntax error", post(json!({"query": "{ __typename"}).to_string().into_bytes(), json_ct).await.unwrap(), 400, "BAD_USER_INPUT"),
        ("unknown field", post(json!({"query": "{ nope }"}).to_string().into_bytes(), json_ct).await.unwrap(), 400, "BAD_USER_INPUT"),
        (
            "variables of the wrong shape",
            post(json!({"query": "{ __typename }", "variables": [1, 2]}).to_string().into_bytes(), json_ct).await.unwrap(),
            400,
            "BAD_USER_INPUT",
        ),
        (
            "too deep",
            post(
                json!({"query": "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } } } } } } } }"})
                    .to_string()
                    .into_bytes(),
                json_ct,
            )
            .await
            .unwrap(),
            400,
            "QUERY_TOO_COMPLEX",
        ),
    ];
    for (what, resp, status, expected_code) in cases {
        assert_eq!(resp.status().as_u16(), status, "{what}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            ct.starts_with("application/json"),
            "{what}: content-type {ct}"
        );
        let body: Value = resp.json().await.unwrap();
        assert!(body["errors"][0]["message"].is_string(), "{what}: {body}");
        assert_eq!(code(&body), expected_code, "{what}: {body}");
    }

    let resp = app
        .client
        .get(app.url("/no/such/thing"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(code(&resp.json().await.unwrap()), "NOT_FOUND");

    let resp = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(resp.status(), 400, "GET without a query");

    // After all that the server still answers.
    assert_eq!(app.gql("{ __typename }", json!({})).await.0, 200);
}

#[tokio::test]
async fn graphql_response_json_is_honoured_when_accepted() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "application/graphql-response+json"
    );
}

#[tokio::test]
async fn batches_are_answered_in_order_and_bounded() {
    let app = TestApp::spawn_with(|c| c.graphql_max_batch = 3).await;
    let resp = app
        .client
        .post(app.url("/graphql"))
        .json(&json!([{ "query": "{ a: __typename }" }, { "query": "{ b: __typename }" }]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!([{ "data": { "a": "Query" } }, { "data": { "b": "Query" } }])
    );
    let four: Vec<Value> = (0..4)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let resp = app
        .client
        .post(app.url("/graphql"))
        .json(&four)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn graphiql_is_served_with_its_subscription_endpoint() {
    let app =
        TestApp::spawn_with(|c| c.graphiql_assets_url = "http://assets.test/npm".into()).await;
    for path in ["/", "/graphiql"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("http://assets.test/npm/graphiql@4/graphiql.min.js"),
            "{path}"
        );
        assert!(html.contains("url('/graphql/ws', true)"), "{path}");
        assert!(html.contains("url('/graphql')"), "{path}");
    }
}

#[tokio::test]
async fn cors_preflight_allows_browser_apps() {
    let app = TestApp::spawn_with(|c| c.cors_origins = vec!["https://app.example".into()]).await;
    let resp = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/graphql"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    let resp = app
        .client
        .post(app.url("/graphql"))
        .header("origin", "https://evil.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["migration"], db::latest_migration_version());
    assert!(resp_has_request_id(&app).await);

    // A database without the schema is not ready.
    let unmigrated = TestApp::spawn_on(blank_database().await, |_| {}).await;
    let resp = unmigrated
        .client
        .get(unmigrated.url("/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(
        unmigrated
            .client
            .get(unmigrated.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn resp_has_request_id(app: &TestApp) -> bool {
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    resp.headers()
        .get("x-request-id")
        .is_some_and(|v| v == "abc-123")
}

/// With every connection taken, a request gets a clean error within the wait timeout.
#[tokio::test]
async fn an_exhausted_pool_answers_cleanly() {
    let app = TestApp::spawn_with(|c| {
        c.db_pool_size = 1;
        c.db_pool_timeout = Duration::from_millis(200);
    })
    .await;
    let held = app.state.pool.get().await.unwrap();
    let started = std::time::Instant::now();
    let err = db::conn(&app.state.pool)
        .await
        .err()
        .expect("no connection while the only one is held");
    assert!(matches!(err, AppError::Busy), "{err:?}");
    assert_eq!(err.code(), "INTERNAL");
    assert!(err.message().contains("busy"));
    assert!(started.elapsed() < Duration::from_secs(5));
    let resp = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    drop(held);
    assert!(db::conn(&app.state.pool).await.is_ok());
}

#[tokio::test]
async fn websocket_speaks_graphql_transport_ws_on_both_paths() {
    let app = TestApp::spawn().await;
    for path in ["/graphql/ws", "/graphql"] {
        let mut ws = app.ws(path, json!({})).await;
        let id = ws.subscribe("{ __typename }", json!({})).await;
        let next = ws.recv().await.unwrap().unwrap();
        assert_eq!(next["type"], "next", "{path}: {next}");
        assert_eq!(next["id"], id.as_str());
        assert_eq!(
            next["payload"],
            json!({ "data": { "__typename": "Query" } })
        );
        let done = ws.recv().await.unwrap().unwrap();
        assert_eq!(done["type"], "complete", "{path}: {done}");

        // Errors over the socket carry codes too (as an `error` message or a `next` with errors).
        ws.subscribe("{ nope }", json!({})).await;
        let err = ws.recv().await.unwrap().unwrap();
        let errors = match err["type"].as_str() {
            Some("error") => &err["payload"],
            Some("next") => &err["payload"]["errors"],
            _ => panic!("{path}: {err}"),
        };
        assert_eq!(errors[0]["extensions"]["code"], "BAD_USER_INPUT", "{err}");
    }
}

#[derive(QueryableByName, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
}

async fn columns(url: &str) -> Vec<Column> {
    use diesel_async::AsyncConnection;
    let mut conn = diesel_async::AsyncPgConnection::establish(url)
        .await
        .unwrap();
    diesel::sql_query(
        "SELECT table_name::text, column_name::text, \
                CASE WHEN data_type = 'ARRAY' THEN udt_name::text ELSE data_type::text END AS data_type, \
                is_nullable::text \
         FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name <> '__diesel_schema_migrations' \
         ORDER BY table_name, column_name",
    )
    .load(&mut conn)
    .await
    .unwrap()
}

/// Every `down.sql` undoes its `up.sql`: after all downs nothing is left, and all ups
/// rebuild exactly the same schema.
#[tokio::test]
async fn migrations_reverse_and_reapply() {
    let url = fresh_database().await;
    let before = columns(&url).await;
    assert!(
        before.len() > 100,
        "the template holds the whole data model"
    );
    let total = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&db::MIGRATIONS)
        .unwrap()
        .len();
    assert!(total >= 6);
    let reverted = db::revert_all_migrations(&url).await.unwrap();
    assert_eq!(reverted.len(), total);
    assert!(
        columns(&url).await.is_empty(),
        "downs leave no table behind"
    );
    let applied = db::run_migrations(&url).await.unwrap();
    assert_eq!(applied.len(), total);
    assert_eq!(columns(&url).await, before);
}

/// Processes that start together on a new database (replicas, workers, a migration job) take
/// turns: one applies every migration, the others find nothing to do, none fails.
#[tokio::test]
async fn parallel_migrations_take_turns() {
    let url = crate::support::blank_database().await;
    let total = diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&db::MIGRATIONS)
        .unwrap()
        .len();
    let runs = futures_util::future::join_all((0..4).map(|_| db::run_migrations(&url))).await;
    let mut applied: Vec<usize> = runs
        .into_iter()
        .map(|r| r.expect("every run succeeds").len())
        .collect();
    applied.sort_unstable();
    assert_eq!(applied, [0, 0, 0, total]);
}

/// `src/db/schema.rs` (generated by `diesel print-schema`) matches what the migrations build.
#[tokio::test]
async fn schema_rs_matches_the_migrations() {
    let url = fresh_database().await;
    let mut in_db: BTreeMap<(String, String), (String, bool)> = BTreeMap::new();
    for c in columns(&url).await {
        in_db.insert(
            (c.table_name, c.column_name),
            (c.data_type, c.is_nullable == "YES"),
        );
    }
    let in_rs = parse_schema_rs(include_str!("../../src/db/schema.rs"));
    let db_keys: Vec<_> = in_db.keys().collect();
    let rs_keys: Vec<_> = in_rs.keys().collect();
    assert_eq!(
        rs_keys, db_keys,
        "schema.rs and the migrations list different columns; regenerate schema.rs"
    );
    for (key, (rs_type, rs_nullable)) in &in_rs {
        let (db_type, db_nullable) = &in_db[key];
        assert_eq!(rs_nullable, db_nullable, "nullability of {key:?}");
        assert_eq!(sql_type(rs_type), db_type.as_str(), "type of {key:?}");
    }
}

/// `table -> (column -> (diesel type without Nullable, nullable))`.
fn parse_schema_rs(src: &str) -> BTreeMap<(String, String), (String, bool)> {
    let mut out = BTreeMap::new();
    let mut table: Option<String> = None;
    for line in src.lines().map(str::trim) {
        if let Some(name) = line
            .strip_suffix('{')
            .and_then(|l| l.split_once(" ("))
            .map(|(t, _)| t.trim())
        {
            if !name.contains(' ') && !name.is_empty() && name != "diesel::table!" {
                table = Some(name.to_string());
            }
            continue;
        }
        if line == "}" {
            table = None;
            continue;
        }
        if let (Some(t), Some((col, ty))) = (&table, line.trim_end_matches(',').split_once(" -> "))
        {
            let ty = ty.trim();
            let (ty, nullable) = match ty
                .strip_prefix("Nullable<")
                .and_then(|t| t.strip_suffix('>'))
            {
                Some(inner) => (inner, true),
                None => (ty, false),
            };
            out.insert(
                (t.clone(), col.trim().trim_start_matches("r#").to_string()),
                (ty.to_string(), nullable),
            );
        }
    }
    out
}

fn sql_type(diesel: &str) -> &str {
    match diesel {
        "Uuid" => "uuid",
        "Text" => "text",
        "Bool" => "boolean",
        "Int2" => "smallint",
        "Int4" => "integer",
        "Int8" => "bigint",
        "Jsonb" => "jsonb",
        "Date" => "date",
        "Timestamptz" => "timestamp with time zone",
        "Numeric" => "numeric",
        "Inet" => "inet",
        "Array<Text>" => "_text",
        "Array<Uuid>" => "_uuid",
        other => panic!("schema.rs uses a type this test does not know: {other}"),
    }
}

/// `schema.graphql` is the generated SDL. When it drifts this test rewrites it and fails,
/// so the change shows up in review.
#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let current = std::fs::read_to_string(path).unwrap_or_default();
    let generated = easel::schema::sdl();
    if current != generated {
        std::fs::write(path, &generated).unwrap();
        panic!("schema.graphql was out of date and has been rewritten; review and commit it");
    }
}

/// The real binary with no `DATABASE_URL`: it creates its own cluster, serves, stops it on
/// SIGTERM, and finds the same data on the next start.
#[tokio::test]
async fn embedded_database_survives_a_restart() {
    use diesel_async::AsyncConnection;
    let data_dir =
        std::env::temp_dir().join(format!("easel-embedded-{}", uuid::Uuid::now_v7().simple()));
    let client = reqwest::Client::new();

    let (mut child, base) = start_binary(&data_dir).await;
    let resp = client
        .post(format!("{base}graphql"))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({ "data": { "__typename": "Query" } })
    );
    let socket_url = format!(
        "host={} port=5432 user=easel dbname=easel",
        data_dir.join("postgres").display()
    );
    let mut conn = diesel_async::AsyncPgConnection::establish(&socket_url)
        .await
        .unwrap();
    diesel::sql_query("INSERT INTO users (id, email) VALUES ($1, 'kept@example.com')")
        .bind::<diesel::sql_types::Uuid, _>(uuid::Uuid::now_v7())
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    stop_binary(&mut child).await;
    assert!(
        !data_dir.join("postgres/postmaster.pid").exists(),
        "the cluster was stopped"
    );

    let (mut child, base) = start_binary(&data_dir).await;
    assert_eq!(
        client
            .get(format!("{base}readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mut conn = diesel_async::AsyncPgConnection::establish(&socket_url)
        .await
        .unwrap();
    #[derive(QueryableByName)]
    struct Email {
        #[diesel(sql_type = Text)]
        email: String,
    }
    let kept: Vec<Email> = diesel::sql_query("SELECT email FROM users")
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        kept.iter().map(|e| e.email.as_str()).collect::<Vec<_>>(),
        vec!["kept@example.com"]
    );
    drop(conn);
    stop_binary(&mut child).await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

async fn start_binary(data_dir: &std::path::Path) -> (tokio::process::Child, String) {
    let dir = data_dir.display().to_string();
    support::start_binary(&[("EASEL_DATA_DIR", dir.as_str())]).await
}

#[tokio::test]
async fn missing_postgres_binaries_are_explained() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("EASEL_PG_BIN_DIR", "/nonexistent/pg/bin")
        .env(
            "EASEL_DATA_DIR",
            std::env::temp_dir().join("easel-never-created"),
        )
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL server programs") && stderr.contains("DATABASE_URL"),
        "{stderr}"
    );
}

#[test]
fn easel_schema_prints_the_checked_in_sdl() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_easel"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), easel::schema::sdl());
}
