//! Generation: pricing and queueing, workers and crash safety, refunds, providers, and job
//! status over websockets (also across two server processes).

use std::{sync::Arc, time::Duration};

use diesel_async::RunQueryDsl;
use easel::{
    accounts::viewer::ViewerUser,
    generation::{
        GenerationKind, JobStatus, model as jobs,
        providers::{ImageProvider, Procedural, ProviderError, RenderRequest, Rendered},
        service::{self, GenerateParams, GenerateRequest},
        worker::{self, Ran},
    },
};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::TestApp;
use crate::support::code;

async fn user(app: &TestApp, phone: &str) -> (String, ViewerUser) {
    let auth = app.sign_up_by_phone(phone).await;
    let id = Uuid::parse_str(auth["user"]["id"].as_str().unwrap()).unwrap();
    let token = auth["accessToken"].as_str().unwrap().to_string();
    let claims = app.state.keys.verify(&token).unwrap();
    (
        token,
        ViewerUser {
            id,
            role: claims.role,
            session_id: claims.sid,
            expires_at: claims.exp,
        },
    )
}

const GENERATE: &str =
    "mutation($i: GenerateInput!) { generate(input: $i) { id status costCredits kind } }";

/// A one-image 64×64 character job (shared with the shutdown tests).
pub(crate) fn character_request(prompt: &str) -> GenerateRequest {
    GenerateRequest {
        kind: GenerationKind::CharacterGeneration,
        prompt: Some(prompt.into()),
        negative_prompt: None,
        character_id: None,
        input_image_ids: vec![],
        output_count: Some(1),
        params: GenerateParams {
            width: Some(64),
            height: Some(64),
            seed: Some(1),
            ..Default::default()
        },
        idempotency_key: None,
    }
}

async fn wait_terminal(app: &TestApp, id: Uuid) -> jobs::JobRow {
    for _ in 0..300 {
        let mut conn = app.db().await;
        let job = jobs::by_id(&mut conn, id).await.unwrap().unwrap();
        if job.status.is_terminal() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

/// Generate over HTTP, watch queued → processing → succeeded arrive in order on a websocket,
/// and find the charge in the history and the output in storage.
#[tokio::test]
async fn generate_and_watch_it_finish() {
    let app = TestApp::spawn_with(|c| c.workers = 1).await;
    let (token, viewer) = user(&app, "+14155554001").await;
    let mut ws = app
        .ws(
            "/graphql/ws",
            json!({ "authorization": format!("Bearer {token}") }),
        )
        .await;
    ws.subscribe(
        "subscription { myGenerationJobs { id status costCredits } }",
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_, body) = app
        .gql_as(&token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a fox in a hat", "outputCount": 2, "params": { "width": 64, "height": 64 } } }))
        .await;
    let job = body["data"]["generate"].clone();
    assert_eq!(job["status"], "QUEUED", "{body}");
    assert_eq!(job["costCredits"], 4, "2 credits × 2 images");
    let mut statuses = Vec::new();
    while statuses.last().map(String::as_str) != Some("SUCCEEDED") {
        let msg = ws.recv().await.unwrap().unwrap();
        assert_eq!(
            msg["payload"]["data"]["myGenerationJobs"]["id"], job["id"],
            "{msg}"
        );
        statuses.push(
            msg["payload"]["data"]["myGenerationJobs"]["status"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(statuses, ["QUEUED", "PROCESSING", "SUCCEEDED"]);

    let id = Uuid::parse_str(job["id"].as_str().unwrap()).unwrap();
    let (_, body) = app
        .gql_as(&token, "query($id: ID!) { generationJob(id: $id) { status outputs { url thumbnailUrl width height mimeType kind } } }", json!({ "id": id }))
        .await;
    let outputs = body["data"]["generationJob"]["outputs"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(outputs.len(), 2, "{body}");
    assert_eq!(
        (outputs[0]["width"].as_i64(), outputs[0]["kind"].as_str()),
        (Some(64), Some("RESULT"))
    );
    let resp = app
        .client
        .get(outputs[0]["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&resp.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (64, 64));
    let thumb = app
        .client
        .get(outputs[0]["thumbnailUrl"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(thumb.status(), 200);
    // The upload thumbnail maker, which never enlarges: a 64-pixel output keeps its size.
    let thumb = image::load_from_memory(&thumb.bytes().await.unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (64, 64));
    let (_, hist) = app.gql_as(&token, "{ creditHistory(filter: { kinds: [USAGE] }) { edges { node { amount allowanceUsed jobId } } } }", json!({})).await;
    assert_eq!(
        hist["data"]["creditHistory"]["edges"][0]["node"],
        json!({ "amount": -1, "allowanceUsed": 3, "jobId": job["id"] }),
        "{hist}"
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM job_events WHERE job_id = '{}'",
            viewer.id
        ))
        .await,
        0
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM job_events WHERE job_id = '{id}'"
        ))
        .await,
        3
    );
    app.assert_ledger_ok().await;
}

/// A job for a character adds its images to the character and completes it.
#[tokio::test]
async fn character_jobs_fill_their_character() {
    let app = TestApp::spawn_with(|c| c.workers = 1).await;
    let (token, _) = user(&app, "+14155554013").await;
    let (_, body) = app
        .gql_as(&token, "mutation { createCharacter(input: { name: \"Kit\", prompt: \"a fox\", styleType: ANIME }) { id } }", json!({}))
        .await;
    let character = body["data"]["createCharacter"]["id"].clone();
    assert!(character.is_string(), "{body}");
    let (_, body) = app
        .gql_as(&token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a fox", "characterId": character, "outputCount": 2, "params": { "width": 64, "height": 64 } } }))
        .await;
    let id = Uuid::parse_str(body["data"]["generate"]["id"].as_str().unwrap()).unwrap();
    assert_eq!(wait_terminal(&app, id).await.status, JobStatus::Succeeded);
    let (_, body) = app
        .gql_as(&token, "query($id: ID!) { character(id: $id) { status primaryImage { id } images { id } } generationJob(id: \"00000000-0000-0000-0000-000000000000\") { id } }", json!({ "id": character }))
        .await;
    let c = &body["data"]["character"];
    assert_eq!(c["status"], "COMPLETED", "{body}");
    assert_eq!(c["images"].as_array().unwrap().len(), 2);
    assert_eq!(c["primaryImage"]["id"], c["images"][0]["id"]);
}

#[tokio::test]
async fn job_subscriptions_start_with_the_current_state_and_complete() {
    let app = TestApp::spawn_with(|c| c.workers = 1).await;
    let (token, viewer) = user(&app, "+14155554002").await;
    let (other, _) = user(&app, "+14155554003").await;
    let job = service::generate(&app.state, &viewer, character_request("a lighthouse"))
        .await
        .unwrap();
    let done = wait_terminal(&app, job.id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    // Reconnecting after the end: the first (and last) event is the current state.
    let mut ws = app
        .ws(
            "/graphql",
            json!({ "authorization": format!("Bearer {token}") }),
        )
        .await;
    let op = ws
        .subscribe(
            "subscription($id: ID!) { generationJobUpdated(id: $id) { status } }",
            json!({ "id": job.id }),
        )
        .await;
    let first = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        first["payload"]["data"]["generationJobUpdated"]["status"], "SUCCEEDED",
        "{first}"
    );
    let complete = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        (complete["type"].as_str(), complete["id"].as_str()),
        (Some("complete"), Some(op.as_str()))
    );

    // Someone else's job: not found, and the subscription is refused.
    let (_, body) = app
        .gql_as(
            &other,
            "query($id: ID!) { generationJob(id: $id) { id } }",
            json!({ "id": job.id }),
        )
        .await;
    assert_eq!(body["data"]["generationJob"], Value::Null);
    let (_, body) = app
        .gql_as(
            &other,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { id } }",
            json!({ "id": job.id }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND");
    let mut ws = app
        .ws(
            "/graphql/ws",
            json!({ "authorization": format!("Bearer {other}") }),
        )
        .await;
    ws.subscribe(
        "subscription($id: ID!) { generationJobUpdated(id: $id) { status } }",
        json!({ "id": job.id }),
    )
    .await;
    let refused = ws.recv().await.unwrap().unwrap();
    let errors = if refused["type"] == "error" {
        refused["payload"].clone()
    } else {
        refused["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{refused}");
}

#[tokio::test]
async fn bad_requests_and_short_credits_queue_nothing() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, "+14155554004").await;
    let cases = [
        (json!({ "kind": "CHARACTER_GENERATION" }), "input.prompt"),
        (
            json!({ "kind": "LOGO", "prompt": "x".repeat(2001) }),
            "input.prompt",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "a", "outputCount": 5 }),
            "input.outputCount",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "a", "params": { "width": 10 } }),
            "input.params.width",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "a", "params": { "steps": 500 } }),
            "input.params.steps",
        ),
        (
            json!({ "kind": "CHARACTER_GENERATION", "prompt": "a", "params": { "cfgScale": 99.0 } }),
            "input.params.cfgScale",
        ),
        (json!({ "kind": "UPSCALE" }), "input.inputImageIds"),
        (
            json!({ "kind": "UPSCALE", "inputImageIds": [Uuid::now_v7()] }),
            "input.inputImageIds",
        ),
        (
            json!({ "kind": "UPSCALE", "inputImageIds": ["nope"] }),
            "input.inputImageIds",
        ),
    ];
    for (input, field) in cases {
        let (_, body) = app.gql_as(&token, GENERATE, json!({ "i": input })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(body["errors"][0]["extensions"]["field"], field, "{body}");
    }
    let (_, body) = app.gql_as(&token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a", "characterId": Uuid::now_v7() } })).await;
    assert_eq!(code(&body), "NOT_FOUND");
    // 10 balance + 3 allowance: four images of 2 credits each fit once, not twice.
    let big = json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a", "outputCount": 4 } });
    let (_, body) = app.gql_as(&token, GENERATE, big.clone()).await;
    assert_eq!(body["data"]["generate"]["costCredits"], 8, "{body}");
    let (_, body) = app.gql_as(&token, GENERATE, big).await;
    assert_eq!(code(&body), "INSUFFICIENT_CREDITS", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["missing"], 3);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM generation_jobs")
            .await,
        1,
        "nothing else was queued"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")
            .await,
        1
    );
    let (_, body) = app
        .gql(GENERATE, json!({ "i": { "kind": "LOGO", "prompt": "a" } }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED");
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn idempotency_keys_and_rate_limits() {
    let app = TestApp::spawn().await;
    let admin = app.admin_token("+14155554005").await;
    let (token, _) = user(&app, "+14155554006").await;
    let input = json!({ "kind": "LOGO", "prompt": "acme", "idempotencyKey": "logo-1" });
    let (_, a) = app.gql_as(&token, GENERATE, json!({ "i": input })).await;
    let (_, b) = app.gql_as(&token, GENERATE, json!({ "i": input })).await;
    assert_eq!(
        a["data"]["generate"]["id"], b["data"]["generate"]["id"],
        "{a} {b}"
    );
    let (_, c) = app
        .gql_as(
            &token,
            GENERATE,
            json!({ "i": { "kind": "LOGO", "prompt": "other", "idempotencyKey": "logo-1" } }),
        )
        .await;
    assert_eq!(code(&c), "CONFLICT");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM generation_jobs")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")
            .await,
        1,
        "charged once"
    );

    app.gql_as(&admin, r#"mutation { setOperationPrice(input: { operation: "generate.upscale", baseCost: 0, perMinuteLimit: 2 }) { price } }"#, json!({})).await;
    app.gql_as(&admin, r#"mutation { setOperationPrice(input: { operation: "generate.variation", baseCost: 1, isEnabled: false }) { price } }"#, json!({})).await;
    let (_, body) = app
        .gql_as(
            &token,
            GENERATE,
            json!({ "i": { "kind": "VARIATION", "inputImageIds": [Uuid::now_v7()] } }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["field"], "input.kind",
        "disabled: {body}"
    );
    let mut conn = app.db().await;
    let viewer = Uuid::parse_str(a["data"]["generate"]["id"].as_str().unwrap()).unwrap();
    let owner = jobs::by_id(&mut conn, viewer)
        .await
        .unwrap()
        .unwrap()
        .user_id;
    let image = Uuid::now_v7();
    diesel::sql_query(format!("INSERT INTO images (id, owner_id, kind, storage_key, mime_type, byte_size) VALUES ('{image}', '{owner}', 'upload', 'uploads/{image}.png', 'image/png', 1)"))
        .execute(&mut conn)
        .await
        .unwrap();
    let up = json!({ "i": { "kind": "UPSCALE", "inputImageIds": [image] } });
    for _ in 0..2 {
        let (_, body) = app.gql_as(&token, GENERATE, up.clone()).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let (_, body) = app.gql_as(&token, GENERATE, up).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            <= 60
    );
}

#[tokio::test]
async fn cancelling_refunds_once() {
    let app = TestApp::spawn_with(|c| c.job_lease = Duration::from_millis(600)).await;
    let (token, viewer) = user(&app, "+14155554007").await;
    let queued = service::generate(&app.state, &viewer, character_request("queued"))
        .await
        .unwrap();
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status } }",
            json!({ "id": queued.id }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"]["status"], "CANCELLED",
        "{body}"
    );
    app.gql_as(
        &token,
        "mutation($id: ID!) { cancelGenerationJob(id: $id) { status } }",
        json!({ "id": queued.id }),
    )
    .await;
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        1
    );

    // A processing job stops at its worker's next heartbeat.
    let slow: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::from_secs(20),
    });
    let running = service::generate(&app.state, &viewer, character_request("running"))
        .await
        .unwrap();
    let state = app.state.clone();
    let work = tokio::spawn(async move { worker::run_next(&state, slow, "w-cancel").await });
    for _ in 0..100 {
        if wait_status(&app, running.id).await == JobStatus::Processing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status cancelRequested } }",
            json!({ "id": running.id }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"],
        json!({ "status": "PROCESSING", "cancelRequested": true }),
        "{body}"
    );
    let ran = tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .expect("the worker stops soon")
        .unwrap()
        .unwrap();
    assert_eq!(ran, Some(Ran::Cancelled));
    assert_eq!(
        wait_terminal(&app, running.id).await.status,
        JobStatus::Cancelled
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        2
    );
    app.assert_ledger_ok().await;
}

async fn wait_status(app: &TestApp, id: Uuid) -> JobStatus {
    let mut conn = app.db().await;
    jobs::by_id(&mut conn, id).await.unwrap().unwrap().status
}

/// A provider that always fails (permanently or not) and counts its calls.
struct Failing {
    permanent: bool,
    calls: std::sync::atomic::AtomicUsize,
}

impl ImageProvider for Failing {
    fn name(&self) -> &'static str {
        "failing"
    }
    fn model(&self) -> Option<String> {
        None
    }
    fn render<'a>(
        &'a self,
        _: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let err = if self.permanent {
            ProviderError::Permanent("prompt refused".into())
        } else {
            ProviderError::Retryable("upstream 503".into())
        };
        Box::pin(async move { Err(err) })
    }
}

#[tokio::test]
async fn provider_failures_refund_once_and_retry_charges_afresh() {
    let app = TestApp::spawn_with(|c| c.job_max_attempts = 3).await;
    let (token, viewer) = user(&app, "+14155554008").await;
    let permanent = Arc::new(Failing {
        permanent: true,
        calls: Default::default(),
    });
    let job = service::generate(&app.state, &viewer, character_request("refused"))
        .await
        .unwrap();
    assert_eq!(
        worker::run_next(&app.state, permanent.clone(), "w1")
            .await
            .unwrap(),
        Some(Ran::Failed)
    );
    let failed = wait_terminal(&app, job.id).await;
    assert_eq!(failed.error.as_ref().unwrap()["code"], "PROVIDER_ERROR");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        1
    );

    // Transient failures are retried up to max_attempts, then refunded once.
    let flaky = Arc::new(Failing {
        permanent: false,
        calls: Default::default(),
    });
    let job2 = service::generate(&app.state, &viewer, character_request("flaky"))
        .await
        .unwrap();
    let mut outcomes = Vec::new();
    while let Some(ran) = worker::run_next(&app.state, flaky.clone(), "w2")
        .await
        .unwrap()
    {
        outcomes.push(ran);
    }
    assert_eq!(outcomes, [Ran::Requeued, Ran::Requeued, Ran::Failed]);
    assert_eq!(wait_terminal(&app, job2.id).await.attempts, 3);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        2
    );

    // Retry: a fresh charge, then success.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { retryGenerationJob(id: $id) { status attempts } }",
            json!({ "id": job.id }),
        )
        .await;
    assert_eq!(
        body["data"]["retryGenerationJob"],
        json!({ "status": "QUEUED", "attempts": 0 }),
        "{body}"
    );
    let ok: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::ZERO,
    });
    assert_eq!(
        worker::run_next(&app.state, ok, "w3").await.unwrap(),
        Some(Ran::Succeeded)
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE job_id = '{}' AND kind = 'usage'",
            job.id
        ))
        .await,
        2
    );
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { retryGenerationJob(id: $id) { status } }",
            json!({ "id": job.id }),
        )
        .await;
    assert_eq!(
        code(&body),
        "BAD_USER_INPUT",
        "a succeeded job is not retried"
    );
    app.assert_ledger_ok().await;
}

/// A worker killed mid-job: the reaper re-queues the job when the lease runs out, another
/// worker finishes it, and the user is charged exactly once.
#[tokio::test]
async fn a_killed_worker_loses_nothing_and_charges_once() {
    let app = TestApp::spawn_with(|c| c.job_lease = Duration::from_millis(800)).await;
    let (_, viewer) = user(&app, "+14155554009").await;
    let job = service::generate(&app.state, &viewer, character_request("survivor"))
        .await
        .unwrap();
    let slow: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::from_secs(30),
    });
    let state = app.state.clone();
    let doomed = tokio::spawn(async move { worker::run_next(&state, slow, "doomed").await });
    while wait_status(&app, job.id).await != JobStatus::Processing {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    doomed.abort(); // the worker dies: no more heartbeats, no result
    let _ = doomed.await;
    // This reaper pass, or the app's own background reaper (whichever locks the job first),
    // re-queues it once the lease runs out.
    let reaped = async {
        loop {
            worker::reap(&app.state).await.unwrap();
            if wait_status(&app, job.id).await == JobStatus::Queued {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), reaped)
        .await
        .expect("the lease runs out");
    let fast: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::ZERO,
    });
    assert_eq!(
        worker::run_next(&app.state, fast, "rescuer").await.unwrap(),
        Some(Ran::Succeeded)
    );
    let done = wait_terminal(&app, job.id).await;
    assert_eq!((done.status, done.attempts), (JobStatus::Succeeded, 2));
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        0
    );
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn jobs_past_their_deadline_time_out_and_refund() {
    let app = TestApp::spawn_with(|c| c.job_deadline = Duration::from_secs(1)).await;
    let (_, viewer) = user(&app, "+14155554010").await;
    let job = service::generate(&app.state, &viewer, character_request("too late"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(worker::reap(&app.state).await.unwrap(), 1);
    let done = wait_terminal(&app, job.id).await;
    assert_eq!(done.status, JobStatus::TimedOut);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        1
    );
    assert_eq!(worker::reap(&app.state).await.unwrap(), 0, "refunded once");
    app.assert_ledger_ok().await;
}

/// 200 jobs, 4 workers: every job ends, none is processed twice, the ledger holds.
#[tokio::test]
async fn two_hundred_jobs_four_workers() {
    let app = TestApp::spawn_with(|c| {
        c.db_pool_size = 16;
        c.procedural_delay = Duration::ZERO;
    })
    .await;
    let (_, viewer) = user(&app, "+14155554011").await;
    app.exec("UPDATE operation_prices SET per_minute_limit = NULL")
        .await;
    app.exec(&format!(
        "UPDATE credit_accounts SET balance = balance + 1000 WHERE user_id = '{}'",
        viewer.id
    ))
    .await;
    app.exec(&format!("INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, description) VALUES ('{}', '{}', 'bonus', 1000, 1010, 'test credits')", Uuid::now_v7(), viewer.id)).await;
    let mut ids = Vec::new();
    for i in 0..200 {
        ids.push(
            service::generate(&app.state, &viewer, character_request(&format!("job {i}")))
                .await
                .unwrap()
                .id,
        );
    }
    let workers = worker::spawn_workers(
        &app.state,
        Arc::new(Procedural {
            delay: Duration::ZERO,
        }),
        4,
        "bulk",
    );
    for id in &ids {
        assert_eq!(wait_terminal(&app, *id).await.status, JobStatus::Succeeded);
    }
    workers.abort();
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM job_events WHERE status = 'processing'")
            .await,
        200,
        "each processed once"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM job_events WHERE status = 'succeeded'")
            .await,
        200
    );
    assert_eq!(
        app.scalar("SELECT count(DISTINCT job_id) AS n FROM images")
            .await,
        200
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")
            .await,
        200
    );
    app.assert_ledger_ok().await;
}

/// A subscriber on one server process sees a job finished by a worker of another.
#[tokio::test]
async fn events_cross_server_processes() {
    let api = TestApp::spawn().await;
    let workers = TestApp::spawn_on(api.db_url.clone(), |c| c.workers = 1).await;
    let (token, viewer) = user(&api, "+14155554012").await;
    let mut ws = api
        .ws(
            "/graphql/ws",
            json!({ "authorization": format!("Bearer {token}") }),
        )
        .await;
    let job = service::generate(&api.state, &viewer, character_request("far away"))
        .await
        .unwrap();
    ws.subscribe(
        "subscription($id: ID!) { generationJobUpdated(id: $id) { status } }",
        json!({ "id": job.id }),
    )
    .await;
    let mut last = String::new();
    while last != "SUCCEEDED" {
        let msg = ws.recv().await.unwrap().unwrap();
        last = msg["payload"]["data"]["generationJobUpdated"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
    }
    let mut conn = workers.db().await;
    let done = jobs::by_id(&mut conn, job.id).await.unwrap().unwrap();
    assert!(done.lease_owner.is_none() && done.status == JobStatus::Succeeded);
}

/// The OpenAI-compatible provider against a local stub answering as the images API does.
#[tokio::test]
async fn openai_provider_against_a_stub() {
    use axum::{
        Json, Router,
        http::{HeaderMap, StatusCode},
        routing::{get, post},
    };
    use base64::Engine;
    use easel::generation::providers::OpenAi;
    use std::sync::Mutex;
    let png = {
        let p = Procedural {
            delay: Duration::ZERO,
        };
        p.render(&RenderRequest {
            seed: 1,
            ..RenderRequest::new(GenerationKind::Logo, "stub", 32, 32)
        })
        .await
        .unwrap()
        .remove(0)
        .png
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
    let calls: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::default();
    let record = calls.clone();
    let png_for_url = png.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let file_url = format!("http://{addr}/files/out.png");
    let stub = Router::new()
        .route(
            "/v1/images/generations",
            post(move |headers: HeaderMap, Json(body): Json<Value>| {
                let record = record.clone();
                let b64 = b64.clone();
                let file_url = file_url.clone();
                async move {
                    let n = {
                        let mut calls = record.lock().unwrap();
                        calls.push((headers, body.clone()));
                        calls.len()
                    };
                    match (n, body["prompt"].as_str().unwrap_or("")) {
                        (1, _) => (StatusCode::TOO_MANY_REQUESTS, Json(json!({ "error": { "message": "Rate limit reached", "type": "requests" } }))),
                        (_, p) if p.contains("forbidden") => (StatusCode::BAD_REQUEST, Json(json!({ "error": { "message": "Your request was rejected by the safety system.", "code": "content_policy_violation" } }))),
                        (_, p) if p.contains("by url") => (StatusCode::OK, Json(json!({ "created": 1, "data": [{ "url": file_url }] }))),
                        _ => (StatusCode::OK, Json(json!({ "created": 1, "data": [{ "b64_json": b64 }] }))),
                    }
                }
            }),
        )
        .route("/files/out.png", get(move || async move { png_for_url.clone() }));
    tokio::spawn(async move { axum::serve(listener, stub).await.unwrap() });

    let mut provider = OpenAi::new(
        format!("http://{addr}"),
        secrecy::SecretString::from("sk-test".to_string()),
        "gpt-image-1".into(),
        Duration::from_secs(10),
    );
    provider.retry_delay = Duration::from_millis(10);
    let mut req = RenderRequest {
        seed: 1,
        ..RenderRequest::new(GenerationKind::Logo, "acme", 1024, 1024)
    };
    let out = provider.render(&req).await.expect("a 429 is retried");
    assert_eq!((out[0].width, out[0].height), (32, 32));
    {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].0["authorization"], "Bearer sk-test");
        assert_eq!(calls[1].1["model"], "gpt-image-1");
        assert_eq!(calls[1].1["size"], "1024x1024");
    }
    req.prompt = "forbidden thing".into();
    assert!(
        matches!(provider.render(&req).await, Err(ProviderError::Permanent(m)) if m.contains("safety"))
    );
    req.prompt = "by url".into();
    let out = provider
        .render(&req)
        .await
        .expect("URL answers are fetched");
    assert_eq!(
        out[0].png, png,
        "the fetched image is stored as the same PNG"
    );
    req.kind = GenerationKind::Upscale;
    assert!(matches!(
        provider.render(&req).await,
        Err(ProviderError::Permanent(_))
    ));
}

/// Cancelling a character's job leaves the character CANCELLED (not FAILED), refunded.
#[tokio::test]
async fn cancelling_a_character_job_marks_the_character_cancelled() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, "+14155554014").await;
    let (_, body) = app
        .gql_as(&token, "mutation { createCharacter(input: { name: \"Kit\", prompt: \"a fox\", styleType: ANIME }) { id status } }", json!({}))
        .await;
    let character = body["data"]["createCharacter"]["id"].clone();
    assert_eq!(
        body["data"]["createCharacter"]["status"], "PENDING",
        "{body}"
    );
    let (_, body) = app
        .gql_as(&token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a fox", "characterId": character, "params": { "width": 64, "height": 64 } } }))
        .await;
    let job = body["data"]["generate"]["id"].clone();
    assert!(job.is_string(), "{body}");
    const STATUS: &str = "query($id: ID!) { character(id: $id) { status } }";
    let (_, body) = app.gql_as(&token, STATUS, json!({ "id": character })).await;
    assert_eq!(body["data"]["character"]["status"], "PROCESSING", "{body}");
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { cancelGenerationJob(id: $id) { status } }",
            json!({ "id": job }),
        )
        .await;
    assert_eq!(
        body["data"]["cancelGenerationJob"]["status"], "CANCELLED",
        "{body}"
    );
    let (_, body) = app.gql_as(&token, STATUS, json!({ "id": character })).await;
    assert_eq!(body["data"]["character"]["status"], "CANCELLED", "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        1
    );
    app.assert_ledger_ok().await;
}
