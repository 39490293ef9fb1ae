//! Image providers against local stubs that answer as their public API references document:
//! OpenAI's images API (generations, multipart edits, 429 with `retry-after`, 400 errors,
//! time-outs) and Replicate's predictions API (create, poll, succeeded / failed / canceled,
//! cancel, 429); fallback in a kind's order; per-request provider and model with per-model
//! prices; LOGO briefs rendered from a versioned template.

use std::{
    io::Cursor,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::Path,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use easel::{
    config::{ImageApiConfig, ProvidersConfig, ReplicateConfig},
    generation::{
        model as jobs,
        worker::{self, Ran},
    },
};
use image::{ImageFormat, Rgba, RgbaImage};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, code, field, user};

const GENERATE: &str = "mutation($i: GenerateInput!) { generate(input: $i) { id status costCredits provider model prompt promptTemplate promptTemplateVersion } }";

/// A real PNG: a gradient of `w`×`h` on a plain background colour.
fn png(w: u32, h: u32) -> Vec<u8> {
    let img = RgbaImage::from_fn(w, h, |x, y| {
        Rgba([(x * 5 % 256) as u8, (y * 9 % 256) as u8, 120, 255])
    });
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// Serves `router` on an ephemeral port; returns its base URL.
async fn serve(listener: tokio::net::TcpListener, router: Router) {
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
}

async fn bind() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    (listener, base)
}

/// One part of a `multipart/form-data` body: (name, filename, content type, bytes).
type Part = (String, Option<String>, Option<String>, Vec<u8>);

/// The parts of a `multipart/form-data` body.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("a boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut starts = Vec::new();
    let mut i = 0;
    while i + d.len() <= body.len() {
        if &body[i..i + d.len()] == d {
            starts.push(i);
            i += d.len();
        } else {
            i += 1;
        }
    }
    let mut parts = Vec::new();
    for w in starts.windows(2) {
        let chunk = &body[w[0] + d.len()..w[1]];
        let chunk = chunk.strip_prefix(b"\r\n").unwrap_or(chunk);
        let chunk = chunk.strip_suffix(b"\r\n").unwrap_or(chunk);
        let split = chunk
            .windows(4)
            .position(|x| x == b"\r\n\r\n")
            .expect("part headers");
        let headers = String::from_utf8_lossy(&chunk[..split]).to_string();
        let content = chunk[split + 4..].to_vec();
        let attr = |key: &str| {
            headers
                .split(&format!("{key}=\""))
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(String::from)
        };
        let mime = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("Content-Type: ")
                    .or(l.strip_prefix("content-type: "))
            })
            .map(|s| s.trim().to_string());
        parts.push((
            attr("name").unwrap_or_default(),
            attr("filename"),
            mime,
            content,
        ));
    }
    parts
}

// ---- OpenAI stub --------------------------------------------------------------------------

#[derive(Default)]
struct OpenAiSeen {
    /// (authorization, JSON body) of each generations call.
    generations: Vec<(String, Value)>,
    /// The parts of each edits call.
    edits: Vec<Vec<Part>>,
    /// Prompts answered 429 once already.
    limited: Vec<String>,
}

/// The images API: a prompt containing `reject` is refused (400, as the safety system does),
/// `rate-limit-once` gets one 429 with `retry-after: 0`, `down` always 503, `slow` answers
/// after 3 s; otherwise `b64_json` PNGs of the size asked for.
async fn openai_stub() -> (String, Arc<Mutex<OpenAiSeen>>) {
    let seen: Arc<Mutex<OpenAiSeen>> = Arc::default();
    let (listener, base) = bind().await;
    let image_answer = |size: &str, n: u64| {
        let (w, h) = size
            .split_once('x')
            .map(|(w, h)| {
                (
                    w.parse::<u32>().unwrap() / 16,
                    h.parse::<u32>().unwrap() / 16,
                )
            })
            .unwrap_or((32, 32));
        let data: Vec<Value> = (0..n)
            .map(|_| json!({ "b64_json": STANDARD.encode(png(w, h)) }))
            .collect();
        (StatusCode::OK, Json(json!({ "created": 1, "data": data }))).into_response()
    };
    let s1 = seen.clone();
    let s2 = seen.clone();
    let router = Router::new()
        .route(
            "/v1/images/generations",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let seen = s1.clone();
                async move {
                    let auth = headers["authorization"].to_str().unwrap().to_string();
                    let prompt = body["prompt"].as_str().unwrap_or_default().to_string();
                    let first_limit = {
                        let mut s = seen.lock().unwrap();
                        s.generations.push((auth, body.clone()));
                        let first = prompt.contains("rate-limit-once") && !s.limited.contains(&prompt);
                        if first {
                            s.limited.push(prompt.clone());
                        }
                        first
                    };
                    if prompt.contains("reject") {
                        return (StatusCode::BAD_REQUEST, Json(json!({ "error": { "message": "Your request was rejected as a result of our safety system.", "type": "image_generation_user_error", "param": null, "code": "moderation_blocked" } }))).into_response();
                    }
                    if first_limit {
                        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], Json(json!({ "error": { "message": "Rate limit reached for images per minute.", "type": "requests", "code": "rate_limit_exceeded" } }))).into_response();
                    }
                    if prompt.contains("down") {
                        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": { "message": "The engine is currently overloaded, please try again later.", "type": "server_error" } }))).into_response();
                    }
                    if prompt.contains("slow") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    image_answer(body["size"].as_str().unwrap_or(""), body["n"].as_u64().unwrap_or(1))
                }
            }),
        )
        .route(
            "/v1/images/edits",
            post(move |headers: HeaderMap, body: Bytes| {
                let seen = s2.clone();
                async move {
                    let ct = headers["content-type"].to_str().unwrap().to_string();
                    assert!(ct.starts_with("multipart/form-data"), "{ct}");
                    let parts = multipart_parts(&ct, &body);
                    let text = |name: &str| {
                        parts
                            .iter()
                            .find(|p| p.0 == name)
                            .map(|p| String::from_utf8_lossy(&p.3).to_string())
                            .unwrap_or_default()
                    };
                    let (size, n) = (text("size"), text("n").parse().unwrap_or(1));
                    seen.lock().unwrap().edits.push(parts);
                    image_answer(&size, n)
                }
            }),
        );
    serve(listener, router).await;
    (base, seen)
}

fn openai_config(base: &str, timeout: Duration) -> ImageApiConfig {
    ImageApiConfig {
        base_url: base.to_string(),
        api_key: secrecy::SecretString::from("sk-stub".to_string()),
        model: "gpt-image-1".into(),
        models: vec!["gpt-image-1".into(), "dall-e-3".into()],
        timeout,
    }
}

async fn job_row(app: &TestApp, id: &Value) -> jobs::JobRow {
    let id = Uuid::parse_str(id.as_str().unwrap()).unwrap();
    let mut conn = app.db().await;
    jobs::by_id(&mut conn, id).await.unwrap().unwrap()
}

async fn generate(app: &TestApp, token: &str, input: Value) -> Value {
    let (_, body) = app.gql_as(token, GENERATE, json!({ "i": input })).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["generate"].clone()
}

async fn run(app: &TestApp) -> Ran {
    worker::run_next(&app.state, app.state.provider.clone(), "w-providers")
        .await
        .unwrap()
        .expect("a queued job")
}

async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>) -> String {
    let operations = json!({ "query": "mutation($file: Upload!) { uploadImage(file: $file) { id } }", "variables": { "file": null } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("in.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let body: Value = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("apollo-require-preflight", "true")
        .multipart(form)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["uploadImage"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_string()
}

async fn refunds(app: &TestApp, job: &Value) -> i64 {
    app.scalar(&format!(
        "SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund' AND job_id = '{}'",
        job.as_str().unwrap()
    ))
    .await
}

/// Generations with the mapped size, quality, style and negative prompt; edits as multipart
/// with the input image's bytes; a 429 retried after its `retry-after`; a 400 fails the job
/// (refunded); a time-out is retryable.
#[tokio::test]
async fn openai_generations_and_edits_against_the_stub() {
    let (base, seen) = openai_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.signup_bonus = 100;
        c.providers = ProvidersConfig {
            enabled: vec!["openai".into()],
            default: "openai".into(),
            orders: vec![],
            openai: Some(openai_config(&base, Duration::from_secs(1))),
            replicate: None,
            gemini: None,
        };
    })
    .await;
    let (token, _) = user(&app, 7001).await;

    // A default-size (512×512) request reaches gpt-image-1 as 1024x1024, with its hints.
    let job = generate(&app, &token, json!({ "kind": "CHARACTER_GENERATION", "prompt": "a fox", "negativePrompt": "text, watermark", "params": { "styleType": "WATERCOLOR", "quality": "HIGH", "width": 768, "height": 512 } })).await;
    assert_eq!(
        (job["provider"].as_str(), job["model"].as_str()),
        (Some("openai"), Some("gpt-image-1"))
    );
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        let (auth, body) = s.generations.last().unwrap();
        assert_eq!(auth, "Bearer sk-stub");
        assert_eq!(body["model"], "gpt-image-1");
        assert_eq!(body["size"], "1536x1024", "3:2 maps to the landscape size");
        assert_eq!(body["quality"], "high");
        assert_eq!(body["n"], 1);
        assert_eq!(
            body["prompt"],
            "a fox. Style: watercolor. Avoid: text, watermark"
        );
    }
    let done = job_row(&app, &job["id"]).await;
    assert_eq!(
        (done.provider.as_str(), done.model.as_deref()),
        ("openai", Some("gpt-image-1"))
    );

    // 429 with retry-after: 0, then success.
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "rate-limit-once cat" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    let calls = seen
        .lock()
        .unwrap()
        .generations
        .iter()
        .filter(|(_, b)| b["prompt"] == "rate-limit-once cat")
        .count();
    assert_eq!(calls, 2, "the 429 was retried once");
    assert_eq!(
        job_row(&app, &job["id"]).await.status,
        easel::generation::JobStatus::Succeeded
    );

    // A refused prompt (400) fails the job at once, refunded.
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "reject me" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Failed);
    let failed = job_row(&app, &job["id"]).await;
    let err = failed.error.unwrap();
    assert_eq!(err["code"], "PROVIDER_ERROR");
    assert!(
        err["message"].as_str().unwrap().contains("safety system"),
        "{err}"
    );
    assert_eq!(refunds(&app, &job["id"]).await, 1);

    // A time-out is retryable: the job goes back to the queue.
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "slow" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Requeued);
    let again = job_row(&app, &job["id"]).await;
    assert_eq!(again.error.unwrap()["code"], "PROVIDER_UNAVAILABLE");
    app.exec(&format!(
        "UPDATE generation_jobs SET status = 'cancelled', completed_at = now() WHERE id = '{}'",
        job["id"].as_str().unwrap()
    ))
    .await;

    // STYLE_TRANSFER and VARIATION go to the edits endpoint with the input image's bytes.
    let input = png(64, 48);
    let image = upload(&app, &token, input.clone()).await;
    let stored = {
        let key: String = {
            use diesel_async::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct K {
                #[diesel(sql_type = diesel::sql_types::Text)]
                storage_key: String,
            }
            let mut conn = app.db().await;
            diesel::sql_query(format!(
                "SELECT storage_key FROM images WHERE id = '{image}'"
            ))
            .get_result::<K>(&mut conn)
            .await
            .unwrap()
            .storage_key
        };
        app.state.media.get(&key).await.unwrap().unwrap().to_vec()
    };
    let job = generate(&app, &token, json!({ "kind": "STYLE_TRANSFER", "prompt": "ukiyo-e woodblock", "inputImageIds": [image], "params": { "quality": "LOW" } })).await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        let parts = s.edits.last().unwrap();
        let part = |n: &str| {
            parts
                .iter()
                .find(|p| p.0 == n)
                .unwrap_or_else(|| panic!("no {n} part"))
        };
        let img = part("image[]");
        assert_eq!(img.3, stored, "the input image's bytes as uploaded");
        assert_eq!(img.2.as_deref(), Some("image/png"));
        assert!(img.1.as_deref().unwrap().ends_with(".png"));
        assert_eq!(part("model").3, b"gpt-image-1");
        assert_eq!(part("size").3, b"1024x1024");
        assert_eq!(part("quality").3, b"low");
        assert_eq!(
            String::from_utf8_lossy(&part("prompt").3),
            "Redraw this image in this style: ukiyo-e woodblock"
        );
    }
    assert_eq!(job_row(&app, &job["id"]).await.provider, "openai");
    generate(
        &app,
        &token,
        json!({ "kind": "VARIATION", "inputImageIds": [image], "outputCount": 2 }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        let parts = s.edits.last().unwrap();
        assert!(parts.iter().any(|p| p.0 == "n" && p.3 == b"2"));
        assert!(parts.iter().any(|p| p.0 == "image[]" && p.3 == stored));
    }
    // OpenAI does not upscale: the request is refused before anything is charged.
    let (_, body) = app
        .gql_as(
            &token,
            GENERATE,
            json!({ "i": { "kind": "UPSCALE", "inputImageIds": [image] } }),
        )
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.kind"),
        "{body}"
    );
    app.assert_ledger_ok().await;
}

/// A kind's fallback order: the first provider's 503 moves to the next, which produces; the
/// job records the provider and model that made it. A request that chose its provider gets no
/// fallback.
#[tokio::test]
async fn fallback_moves_on_after_a_retryable_failure() {
    let (base, seen) = openai_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.signup_bonus = 100;
        c.providers = ProvidersConfig {
            enabled: vec!["procedural".into(), "openai".into()],
            default: "procedural".into(),
            orders: vec![(
                "character_generation".into(),
                vec!["openai".into(), "procedural".into()],
            )],
            openai: Some(openai_config(&base, Duration::from_secs(1))),
            replicate: None,
            gemini: None,
        };
    })
    .await;
    let (token, _) = user(&app, 7002).await;
    let job = generate(&app, &token, json!({ "kind": "CHARACTER_GENERATION", "prompt": "down again", "params": { "width": 64, "height": 64 } })).await;
    assert_eq!(job["provider"], "openai", "planned first");
    assert_eq!(run(&app).await, Ran::Succeeded);
    let done = job_row(&app, &job["id"]).await;
    assert_eq!(
        (done.provider.as_str(), done.model.as_deref()),
        ("procedural", Some("procedural-v1"))
    );
    let tries = seen
        .lock()
        .unwrap()
        .generations
        .iter()
        .filter(|(_, b)| b["prompt"] == "down again")
        .count();
    assert_eq!(
        tries, 3,
        "openai was tried (three times) before falling back"
    );
    let (_, body) = app
        .gql_as(
            &token,
            "query($id: ID!) { generationJob(id: $id) { provider model outputs { width } } }",
            json!({ "id": job["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["generationJob"]["provider"], "procedural",
        "{body}"
    );
    assert_eq!(body["data"]["generationJob"]["outputs"][0]["width"], 64);

    // Chosen explicitly: no fallback, the job is re-queued.
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "down again", "provider": "openai" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Requeued);
    assert_eq!(job_row(&app, &job["id"]).await.provider, "openai");
    // A permanent failure does not fall back either.
    app.exec("UPDATE generation_jobs SET status = 'cancelled', completed_at = now() WHERE status = 'queued'").await;
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "reject this" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Failed);
    assert_eq!(refunds(&app, &job["id"]).await, 1);
}

/// `provider` and `model` on generate's input are checked against the allow-list (nothing
/// charged when refused); a model's own price is charged; `operationPrices` shows it;
/// `imageProviders` lists what may be chosen.
#[tokio::test]
async fn per_request_provider_and_model_with_per_model_prices() {
    let (base, _) = openai_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.providers = ProvidersConfig {
            enabled: vec!["procedural".into(), "openai".into()],
            default: "procedural".into(),
            orders: vec![],
            openai: Some(openai_config(&base, Duration::from_secs(5))),
            replicate: None,
            gemini: None,
        };
    })
    .await;
    let (token, _) = user(&app, 7003).await;
    let balance = "SELECT balance AS n FROM credit_accounts";
    let before = app.scalar(balance).await;
    for (input, want) in [
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "provider": "gemini" }),
            "input.provider",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "provider": "replicate" }),
            "input.provider",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "provider": "openai", "model": "dall-e-2" }),
            "input.model",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "model": "midjourney" }),
            "input.model",
        ),
        (
            json!({ "kind": "UPSCALE", "inputImageIds": [Uuid::now_v7()], "provider": "openai" }),
            "input.provider",
        ),
    ] {
        let (_, body) = app.gql_as(&token, GENERATE, json!({ "i": input })).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", want),
            "{input}: {body}"
        );
    }
    assert_eq!(app.scalar(balance).await, before, "nothing charged");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM generation_jobs")
            .await,
        0
    );

    app.exec("INSERT INTO operation_prices (operation, base_cost, description) VALUES ('generate.character.dall_e_3', 5, 'dall-e-3 images')").await;
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "model": "dall-e-3" }),
    )
    .await;
    assert_eq!(
        (
            job["provider"].as_str(),
            job["model"].as_str(),
            job["costCredits"].as_i64()
        ),
        (Some("openai"), Some("dall-e-3"), Some(5))
    );
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "provider": "openai" }),
    )
    .await;
    assert_eq!(
        (job["model"].as_str(), job["costCredits"].as_i64()),
        (Some("gpt-image-1"), Some(2)),
        "the kind's price"
    );
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "x" }),
    )
    .await;
    assert_eq!(
        (job["provider"].as_str(), job["model"].as_str()),
        (Some("procedural"), Some("procedural-v1"))
    );
    assert_eq!(
        app.scalar("SELECT sum(cost_credits)::bigint AS n FROM generation_jobs")
            .await,
        9
    );

    let (_, body) = app
        .gql(
            "{ operationPrices { operation model baseCost } }",
            json!({}),
        )
        .await;
    let prices = body["data"]["operationPrices"].as_array().unwrap();
    let own = prices
        .iter()
        .find(|p| p["operation"] == "generate.character.dall_e_3")
        .unwrap();
    assert_eq!(own["model"], "dall-e-3");
    assert!(
        prices
            .iter()
            .any(|p| p["operation"] == "generate.character" && p["model"].is_null())
    );

    app.exec("UPDATE operation_prices SET is_enabled = false WHERE operation = 'generate.character.dall_e_3'").await;
    let (_, body) = app
        .gql_as(
            &token,
            GENERATE,
            json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "x", "model": "dall-e-3" } }),
        )
        .await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "input.model"),
        "{body}"
    );

    let (_, body) = app
        .gql(
            "{ imageProviders { name kinds models { name kinds } } }",
            json!({}),
        )
        .await;
    let list = &body["data"]["imageProviders"];
    assert_eq!(list[0]["name"], "procedural", "{body}");
    assert_eq!(list[1]["name"], "openai");
    let dalle3 = list[1]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "dall-e-3")
        .unwrap();
    assert_eq!(
        dalle3["kinds"],
        json!(["CHARACTER_GENERATION", "LOGO"]),
        "dall-e-3 has no edits"
    );
    app.assert_ledger_ok().await;
}

// ---- Replicate stub -----------------------------------------------------------------------

#[derive(Default)]
struct ReplicateSeen {
    /// (model, authorization, body) of each create call.
    created: Vec<(String, String, Value)>,
    /// (id, model, input, polls so far).
    predictions: Vec<(String, String, Value, u32)>,
    cancelled: Vec<String>,
    /// Create calls still to answer 429.
    busy: u32,
}

/// The predictions API. Models: `stub/upscaler` (processing, then succeeded with an output
/// URL served here: the input at twice its size), `stub/remover` (succeeded at once with a
/// `data:` URL), `stub/failing` (failed), `stub/canceling` (canceled), `stub/slow` (runs
/// until cancelled). While `busy` > 0, creates answer 429.
async fn replicate_stub() -> (String, Arc<Mutex<ReplicateSeen>>) {
    let seen: Arc<Mutex<ReplicateSeen>> = Arc::default();
    let (listener, base) = bind().await;
    let prediction = {
        let base = base.clone();
        move |id: &str, model: &str, status: &str, input: &Value| -> Value {
            let output = match (model, status) {
                ("stub/upscaler", "succeeded") => json!(format!("{base}/files/{id}.png")),
                ("stub/remover", "succeeded") => {
                    json!([format!(
                        "data:image/png;base64,{}",
                        STANDARD.encode(png(8, 8))
                    )])
                }
                _ => Value::Null,
            };
            let error = if status == "failed" {
                json!("NSFW content detected in the input image")
            } else {
                Value::Null
            };
            json!({
                "id": id, "model": model, "version": "v1", "input": input, "status": status,
                "output": output, "error": error, "logs": "",
                "created_at": "2026-12-02T10:00:00.000Z",
                "urls": {
                    "get": format!("{base}/v1/predictions/{id}"),
                    "cancel": format!("{base}/v1/predictions/{id}/cancel"),
                    "stream": format!("{base}/stream/{id}"),
                }
            })
        }
    };
    let (s1, s2, s3, s4) = (seen.clone(), seen.clone(), seen.clone(), seen.clone());
    let (p1, p2, p3) = (prediction.clone(), prediction.clone(), prediction);
    let router = Router::new()
        .route(
            "/v1/models/{owner}/{name}/predictions",
            post(move |Path((owner, name)): Path<(String, String)>, headers: HeaderMap, Json(body): Json<Value>| {
                let (seen, prediction) = (s1.clone(), p1.clone());
                async move {
                    let model = format!("{owner}/{name}");
                    let auth = headers.get("authorization").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                    let mut s = seen.lock().unwrap();
                    s.created.push((model.clone(), auth, body.clone()));
                    if s.busy > 0 {
                        s.busy -= 1;
                        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "0")], Json(json!({ "title": "Request was throttled", "detail": "Request was throttled. Expected available in 1 second.", "status": 429 }))).into_response();
                    }
                    if body["input"].get("image").is_some_and(|i| i.is_null()) {
                        return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "title": "Input validation failed", "detail": "- image: Invalid type", "status": 422 }))).into_response();
                    }
                    let id = format!("p{}", s.predictions.len() + 1);
                    s.predictions.push((id.clone(), model.clone(), body["input"].clone(), 0));
                    let status = if model == "stub/remover" { "succeeded" } else { "starting" };
                    (StatusCode::CREATED, Json(prediction(&id, &model, status, &body["input"]))).into_response()
                }
            }),
        )
        .route(
            "/v1/predictions/{id}",
            get(move |Path(id): Path<String>| {
                let (seen, prediction) = (s2.clone(), p2.clone());
                async move {
                    let mut s = seen.lock().unwrap();
                    let cancelled = s.cancelled.contains(&id);
                    let Some(p) = s.predictions.iter_mut().find(|p| p.0 == id) else {
                        return (StatusCode::NOT_FOUND, Json(json!({ "detail": "Not found." }))).into_response();
                    };
                    p.3 += 1;
                    let status = match (p.1.as_str(), p.3) {
                        _ if cancelled => "canceled",
                        ("stub/upscaler", 1) => "processing",
                        ("stub/upscaler", _) => "succeeded",
                        ("stub/failing", _) => "failed",
                        ("stub/canceling", _) => "canceled",
                        _ => "processing",
                    };
                    Json(prediction(&p.0, &p.1, status, &p.2)).into_response()
                }
            }),
        )
        .route(
            "/v1/predictions/{id}/cancel",
            post(move |Path(id): Path<String>| {
                let (seen, prediction) = (s3.clone(), p3.clone());
                async move {
                    let mut s = seen.lock().unwrap();
                    s.cancelled.push(id.clone());
                    let p = s.predictions.iter().find(|p| p.0 == id).cloned().unwrap();
                    Json(prediction(&p.0, &p.1, "canceled", &p.2))
                }
            }),
        )
        .route(
            "/files/{file}",
            get(move |Path(file): Path<String>| {
                let seen = s4.clone();
                async move {
                    let id = file.trim_end_matches(".png");
                    let input = seen.lock().unwrap().predictions.iter().find(|p| p.0 == id).unwrap().2.clone();
                    let data = input["image"].as_str().unwrap().split_once(";base64,").unwrap().1.to_string();
                    let img = image::load_from_memory(&STANDARD.decode(data).unwrap()).unwrap();
                    let big = img.resize_exact(img.width() * 2, img.height() * 2, image::imageops::FilterType::Triangle);
                    let mut out = Vec::new();
                    big.write_to(&mut Cursor::new(&mut out), ImageFormat::Png).unwrap();
                    Response::builder().header("content-type", "image/png").body(axum::body::Body::from(out)).unwrap()
                }
            }),
        );
    serve(listener, router).await;
    (base, seen)
}

fn replicate_config(base: &str) -> ReplicateConfig {
    ReplicateConfig {
        base_url: base.to_string(),
        api_token: secrecy::SecretString::from("r8_stub".to_string()),
        models: [
            ("upscale", "stub/upscaler"),
            ("background_removal", "stub/remover"),
            ("upscale", "stub/failing"),
            ("upscale", "stub/canceling"),
            ("upscale", "stub/slow"),
        ]
        .into_iter()
        .map(|(k, m)| (k.to_string(), m.to_string()))
        .collect(),
        timeout: Duration::from_secs(20),
        poll_interval: Duration::from_millis(50),
    }
}

fn replicate_app_config(base: &str) -> ProvidersConfig {
    ProvidersConfig {
        enabled: vec!["procedural".into(), "replicate".into()],
        default: "procedural".into(),
        orders: vec![
            (
                "upscale".into(),
                vec!["replicate".into(), "procedural".into()],
            ),
            (
                "background_removal".into(),
                vec!["replicate".into(), "procedural".into()],
            ),
        ],
        openai: None,
        replicate: Some(replicate_config(base)),
        gemini: None,
    }
}

/// UPSCALE and BACKGROUND_REMOVAL through predictions: create, poll until succeeded, the
/// output downloaded; a synchronous success; failed (refunded); canceled by the provider
/// (retryable); 429 on create falls back to the next provider.
#[tokio::test]
async fn replicate_predictions_against_the_stub() {
    let (base, seen) = replicate_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.signup_bonus = 100;
        c.providers = replicate_app_config(&base);
    })
    .await;
    let (token, _) = user(&app, 7004).await;
    let image = upload(&app, &token, png(64, 48)).await;

    let job = generate(
        &app,
        &token,
        json!({ "kind": "UPSCALE", "inputImageIds": [image] }),
    )
    .await;
    assert_eq!(
        (job["provider"].as_str(), job["model"].as_str()),
        (Some("replicate"), Some("stub/upscaler"))
    );
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        let (model, auth, body) = s.created.last().unwrap();
        assert_eq!(
            (model.as_str(), auth.as_str()),
            ("stub/upscaler", "Bearer r8_stub")
        );
        assert_eq!(body["input"]["scale"], 2);
        assert!(
            body["input"]["image"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert!(s.predictions[0].3 >= 2, "polled until it succeeded");
    }
    let (_, body) = app
        .gql_as(&token, "query($id: ID!) { generationJob(id: $id) { status provider model outputs { width height } } }", json!({ "id": job["id"] }))
        .await;
    let j = &body["data"]["generationJob"];
    assert_eq!(
        (
            j["status"].as_str(),
            j["provider"].as_str(),
            j["model"].as_str()
        ),
        (Some("SUCCEEDED"), Some("replicate"), Some("stub/upscaler")),
        "{body}"
    );
    assert_eq!(
        (
            j["outputs"][0]["width"].as_i64(),
            j["outputs"][0]["height"].as_i64()
        ),
        (Some(128), Some(96))
    );

    // A prediction that succeeded at once (an output as a data: URL).
    let job = generate(
        &app,
        &token,
        json!({ "kind": "BACKGROUND_REMOVAL", "inputImageIds": [image] }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    assert_eq!(
        job_row(&app, &job["id"]).await.model.as_deref(),
        Some("stub/remover")
    );

    // Failed: permanent, refunded.
    let job = generate(
        &app,
        &token,
        json!({ "kind": "UPSCALE", "inputImageIds": [image], "model": "stub/failing" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Failed);
    let failed = job_row(&app, &job["id"]).await;
    assert!(
        failed.error.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("NSFW")
    );
    assert_eq!(refunds(&app, &job["id"]).await, 1);

    // Canceled on the provider's side: retryable (the model was chosen: no fallback).
    let job = generate(&app, &token, json!({ "kind": "UPSCALE", "inputImageIds": [image], "provider": "replicate", "model": "stub/canceling" })).await;
    assert_eq!(run(&app).await, Ran::Requeued);
    assert_eq!(
        job_row(&app, &job["id"]).await.error.unwrap()["code"],
        "PROVIDER_UNAVAILABLE"
    );
    app.exec("UPDATE generation_jobs SET status = 'cancelled', completed_at = now() WHERE status = 'queued'").await;

    // 429 on every try: the next provider in the order renders it.
    seen.lock().unwrap().busy = 3;
    let job = generate(
        &app,
        &token,
        json!({ "kind": "UPSCALE", "inputImageIds": [image] }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    let done = job_row(&app, &job["id"]).await;
    assert_eq!(
        (done.provider.as_str(), done.model.as_deref()),
        ("procedural", Some("procedural-v1"))
    );
    assert_eq!(
        seen.lock().unwrap().busy,
        0,
        "replicate was tried three times"
    );
}

/// Cancelling a job while its prediction runs cancels the prediction too.
#[tokio::test]
async fn cancelling_a_job_cancels_its_prediction() {
    let (base, seen) = replicate_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.job_lease = Duration::from_millis(600);
        c.providers = replicate_app_config(&base);
    })
    .await;
    let (token, _) = user(&app, 7005).await;
    let image = upload(&app, &token, png(32, 32)).await;
    let job = generate(
        &app,
        &token,
        json!({ "kind": "UPSCALE", "inputImageIds": [image], "model": "stub/slow" }),
    )
    .await;
    let state = app.state.clone();
    let running =
        tokio::spawn(
            async move { worker::run_next(&state, state.provider.clone(), "w-cancel").await },
        );
    for _ in 0..200 {
        if seen.lock().unwrap().predictions.iter().any(|p| p.3 > 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(seen.lock().unwrap().cancelled.is_empty());
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status cancelRequested } }",
            json!({ "id": job["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"]["cancelRequested"], true,
        "{body}"
    );
    let ran = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(ran, Some(Ran::Cancelled));
    for _ in 0..200 {
        if !seen.lock().unwrap().cancelled.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        seen.lock().unwrap().cancelled,
        ["p1"],
        "the prediction's cancel endpoint was called"
    );
    assert_eq!(refunds(&app, &job["id"]).await, 1);
    app.assert_ledger_ok().await;
}

/// A LOGO brief is rendered from the versioned template; the template and its version are
/// stored on the job; the brief is validated.
#[tokio::test]
async fn logo_briefs_use_a_versioned_template() {
    let app = TestApp::spawn_with(|c| c.signup_bonus = 100).await;
    let (token, _) = user(&app, 7006).await;
    let brief = json!({ "appName": "Fitly", "appFocus": "home workouts", "colors": ["#FF6600", "#222"], "style": "playful" });
    let job = generate(&app, &token, json!({ "kind": "LOGO", "logo": brief, "prompt": "a running fox", "params": { "width": 64, "height": 64 } })).await;
    assert_eq!(job["promptTemplateVersion"], "logo-brief.v1");
    assert!(
        job["promptTemplate"]
            .as_str()
            .unwrap()
            .contains("{app_name}")
    );
    let prompt = job["prompt"].as_str().unwrap();
    assert!(
        prompt.contains(
            "\"Fitly\", an app about home workouts. Style: playful. Colour palette: #ff6600, #222."
        ),
        "{prompt}"
    );
    assert!(prompt.ends_with("Notes: a running fox"), "{prompt}");
    assert_eq!(run(&app).await, Ran::Succeeded);
    let row = job_row(&app, &job["id"]).await;
    assert_eq!(
        row.prompt_template_version.as_deref(),
        Some("logo-brief.v1")
    );
    assert_eq!(row.params["logo"]["appName"], "Fitly");

    // Without a brief, a LOGO prompt still goes through a template (no fixed prefix).
    let job = generate(
        &app,
        &token,
        json!({ "kind": "LOGO", "prompt": "acme", "params": { "width": 64, "height": 64 } }),
    )
    .await;
    assert_eq!(
        (
            job["prompt"].as_str(),
            job["promptTemplateVersion"].as_str()
        ),
        (Some("A clean vector logo: acme"), Some("logo-prompt.v1"))
    );
    let job = generate(
        &app,
        &token,
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "acme" }),
    )
    .await;
    assert!(job["promptTemplate"].is_null());

    for (input, want) in [
        (
            json!({ "kind": "LOGO", "logo": { "appName": "A", "appFocus": "b", "colors": ["red"] } }),
            "input.logo.colors",
        ),
        (
            json!({ "kind": "LOGO", "logo": { "appName": "A", "appFocus": "b", "colors": [] } }),
            "input.logo.colors",
        ),
        (
            json!({ "kind": "LOGO", "logo": { "appName": " ", "appFocus": "b", "colors": ["#fff"] } }),
            "input.logo.appName",
        ),
        (
            json!({ "kind": "LOGO", "logo": { "appName": "A", "appFocus": "b".repeat(301), "colors": ["#fff"] } }),
            "input.logo.appFocus",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "x", "logo": { "appName": "A", "appFocus": "b", "colors": ["#fff"] } }),
            "input.logo",
        ),
        (json!({ "kind": "LOGO" }), "input.prompt"),
    ] {
        let (_, body) = app.gql_as(&token, GENERATE, json!({ "i": input })).await;
        assert_eq!(
            (code(&body), field(&body)),
            ("BAD_USER_INPUT", want),
            "{input}: {body}"
        );
    }
}

// ---- Gemini stub --------------------------------------------------------------------------

#[derive(Default)]
struct GeminiSeen {
    /// (model:action path segment, x-goog-api-key, body) of each call.
    calls: Vec<(String, String, Value)>,
    limited: bool,
}

/// `generateContent`: a prompt containing `blocked` gets `promptFeedback.blockReason` and no
/// candidates; `quota-once` one 429 `RESOURCE_EXHAUSTED`; otherwise a candidate with a text part
/// and an `inlineData` PNG in the requested aspect ratio.
async fn gemini_stub() -> (String, Arc<Mutex<GeminiSeen>>) {
    let seen: Arc<Mutex<GeminiSeen>> = Arc::default();
    let (listener, base) = bind().await;
    let s = seen.clone();
    let router = Router::new().route(
        "/v1beta/models/{spec}",
        post(move |Path(spec): Path<String>, headers: HeaderMap, Json(body): Json<Value>| {
            let seen = s.clone();
            async move {
                let key = headers.get("x-goog-api-key").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
                let text = body["contents"][0]["parts"][0]["text"].as_str().unwrap_or_default().to_string();
                let limit = {
                    let mut s = seen.lock().unwrap();
                    s.calls.push((spec, key, body.clone()));
                    let first = text.contains("quota-once") && !s.limited;
                    s.limited |= first;
                    first
                };
                if limit {
                    return (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": { "code": 429, "message": "Resource has been exhausted (e.g. check quota).", "status": "RESOURCE_EXHAUSTED" } }))).into_response();
                }
                if text.contains("blocked") {
                    return Json(json!({ "promptFeedback": { "blockReason": "PROHIBITED_CONTENT" }, "usageMetadata": { "promptTokenCount": 8 } })).into_response();
                }
                let (w, h) = match body["generationConfig"]["imageConfig"]["aspectRatio"].as_str() {
                    Some("16:9") => (64, 36),
                    _ => (32, 32),
                };
                Json(json!({
                    "candidates": [{
                        "content": { "role": "model", "parts": [
                            { "text": "Here is your image." },
                            { "inlineData": { "mimeType": "image/png", "data": STANDARD.encode(png(w, h)) } }
                        ] },
                        "finishReason": "STOP", "index": 0
                    }],
                    "modelVersion": "gemini-2.5-flash-image"
                }))
                .into_response()
            }
        }),
    );
    serve(listener, router).await;
    (base, seen)
}

/// Gemini's `generateContent`: the prompt and input images as parts, the aspect ratio closest
/// to the requested size, one call per image; 429 retried; a blocked prompt fails the job.
#[tokio::test]
async fn gemini_against_the_stub() {
    let (base, seen) = gemini_stub().await;
    let app = TestApp::spawn_with(|c| {
        c.signup_bonus = 100;
        c.providers = ProvidersConfig {
            enabled: vec!["gemini".into()],
            default: "gemini".into(),
            orders: vec![],
            openai: None,
            replicate: None,
            gemini: Some(easel::config::ImageApiConfig {
                base_url: base.clone(),
                api_key: secrecy::SecretString::from("g-stub".to_string()),
                model: "gemini-2.5-flash-image".into(),
                models: vec!["gemini-2.5-flash-image".into()],
                timeout: Duration::from_secs(5),
            }),
        };
    })
    .await;
    let (token, _) = user(&app, 7007).await;
    let job = generate(&app, &token, json!({ "kind": "CHARACTER_GENERATION", "prompt": "quota-once lighthouse", "outputCount": 2, "params": { "width": 1024, "height": 576, "seed": 5 } })).await;
    assert_eq!(
        (job["provider"].as_str(), job["model"].as_str()),
        (Some("gemini"), Some("gemini-2.5-flash-image"))
    );
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.calls.len(), 3, "one 429, then one call per image");
        let (spec, key, body) = &s.calls[2];
        assert_eq!(
            (spec.as_str(), key.as_str()),
            ("gemini-2.5-flash-image:generateContent", "g-stub")
        );
        assert_eq!(
            body["generationConfig"]["imageConfig"]["aspectRatio"],
            "16:9"
        );
        assert_eq!(
            body["generationConfig"]["responseModalities"],
            json!(["TEXT", "IMAGE"])
        );
        assert_ne!(
            s.calls[1].2["generationConfig"]["seed"],
            body["generationConfig"]["seed"]
        );
    }
    let (_, body) = app
        .gql_as(
            &token,
            "query($id: ID!) { generationJob(id: $id) { outputs { width height } } }",
            json!({ "id": job["id"] }),
        )
        .await;
    assert_eq!(
        body["data"]["generationJob"]["outputs"],
        json!([{ "width": 64, "height": 36 }, { "width": 64, "height": 36 }]),
        "{body}"
    );

    let input = png(40, 40);
    let image = upload(&app, &token, input).await;
    generate(
        &app,
        &token,
        json!({ "kind": "STYLE_TRANSFER", "prompt": "pixel art", "inputImageIds": [image] }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Succeeded);
    {
        let s = seen.lock().unwrap();
        let parts = &s.calls.last().unwrap().2["contents"][0]["parts"];
        assert_eq!(
            parts[0]["text"],
            "Redraw this image in this style: pixel art"
        );
        assert_eq!(parts[1]["inlineData"]["mimeType"], "image/png");
        let sent = STANDARD
            .decode(parts[1]["inlineData"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(image::load_from_memory(&sent).unwrap().width(), 40);
    }

    let job = generate(
        &app,
        &token,
        json!({ "kind": "LOGO", "prompt": "blocked words" }),
    )
    .await;
    assert_eq!(run(&app).await, Ran::Failed);
    let failed = job_row(&app, &job["id"]).await;
    assert!(
        failed.error.unwrap()["message"]
            .as_str()
            .unwrap()
            .contains("PROHIBITED_CONTENT")
    );
    assert_eq!(refunds(&app, &job["id"]).await, 1);
    app.assert_ledger_ok().await;
}
