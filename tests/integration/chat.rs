//! Image chat (issue #14): threads and messages in order, a message that asks for a
//! generation (charged and queued with it, answered by the assistant when the job ends),
//! idempotency, privacy, limits, soft delete with restore and purge, and the thread's event
//! stream replayed after a reconnect.

use std::{sync::Arc, time::Duration};

use easel::generation::{
    model as jobs,
    providers::{ImageProvider, Procedural, ProviderError, RenderRequest, Rendered},
    worker::{self, Ran},
};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, WsClient, code, user};

const CREATE: &str = "mutation($t: String) { createChatThread(input: { title: $t }) { id title eventCursor messageCount } }";
const SEND: &str = "mutation($i: SendChatMessageInput!) { sendChatMessage(input: $i) { id role content cursor images { id } job { id status costCredits prompt } } }";
const THREAD: &str = "query($id: ID!, $first: Int, $after: String, $order: ChatMessageOrder) { chatThread(id: $id) { id title messageCount deletedAt eventCursor messages(first: $first, after: $after, order: $order) { edges { cursor node { id role content images { id url } job { id status } } } pageInfo { hasNextPage endCursor } } } }";
const THREADS: &str = "query($first: Int, $after: String, $deleted: Boolean) { chatThreads(first: $first, after: $after, deleted: $deleted) { edges { node { id title deletedAt restorableUntil } } pageInfo { hasNextPage endCursor } } }";
const UPDATED: &str = "subscription($t: ID!, $after: String) { chatThreadUpdated(threadId: $t, after: $after) { cursor kind message { id role content images { id } } job { id status } thread { id title } } }";

async fn create(app: &TestApp, token: &str, title: Option<&str>) -> String {
    let (_, body) = app.gql_as(token, CREATE, json!({ "t": title })).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["createChatThread"]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Sends `input` (with `threadId`); returns the whole answer.
async fn send(app: &TestApp, token: &str, thread: &str, mut input: Value) -> Value {
    input["threadId"] = json!(thread);
    app.gql_as(token, SEND, json!({ "i": input })).await.1
}

/// Sends a plain message; returns the message.
async fn say(app: &TestApp, token: &str, thread: &str, content: &str) -> Value {
    let body = send(app, token, thread, json!({ "content": content })).await;
    assert!(body["errors"].is_null(), "{body}");
    body["data"]["sendChatMessage"].clone()
}

fn small_image() -> Value {
    json!({ "kind": "CHARACTER_GENERATION", "outputCount": 2, "params": { "width": 64, "height": 64, "seed": 3 } })
}

async fn balance(app: &TestApp, user: &str) -> i64 {
    app.scalar(&format!(
        "SELECT balance - daily_used AS n FROM credit_accounts WHERE user_id = '{user}'"
    ))
    .await
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.scalar(&format!("SELECT count(*) AS n FROM {sql}"))
        .await
}

fn instant() -> Arc<dyn ImageProvider> {
    Arc::new(Procedural {
        delay: Duration::ZERO,
    })
}

/// A provider that refuses every prompt.
struct Refusing;

impl ImageProvider for Refusing {
    fn name(&self) -> &'static str {
        "refusing"
    }
    fn model(&self) -> Option<String> {
        None
    }
    fn render<'a>(
        &'a self,
        _: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async { Err(ProviderError::Permanent("prompt refused".into())) })
    }
}

fn messages(body: &Value) -> Vec<Value> {
    body["data"]["chatThread"]["messages"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

fn contents(body: &Value) -> Vec<String> {
    messages(body)
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn threads_and_messages_page_in_order_and_titles_default_to_the_first_message() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 8101).await;
    let first = create(&app, &token, None).await;
    let second = create(&app, &token, Some("  Logos  for   Acme ")).await;
    let third = create(&app, &token, None).await;
    for i in 1..=5 {
        say(&app, &token, &first, &format!("message {i}")).await;
    }
    let m = say(&app, &token, &second, "hello").await;
    assert_eq!(m["role"], "USER");
    assert!(m["job"].is_null());
    say(&app, &token, &third, "  a cat\n  on   the moon  ").await;

    // Titles: given (tidied), or the first message (trimmed, one line).
    let (_, body) = app.gql_as(&token, THREADS, json!({})).await;
    let nodes: Vec<Value> = body["data"]["chatThreads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    // Newest activity first: third and second had the latest messages.
    assert_eq!(
        ids,
        [third.as_str(), second.as_str(), first.as_str()],
        "{body}"
    );
    assert_eq!(nodes[0]["title"], "a cat on the moon");
    assert_eq!(nodes[1]["title"], "Logos for Acme");
    assert_eq!(nodes[2]["title"], "message 1");
    // A new message moves its thread to the top.
    say(&app, &token, &first, "message 6").await;
    let (_, body) = app.gql_as(&token, THREADS, json!({ "first": 2 })).await;
    let page = &body["data"]["chatThreads"];
    assert_eq!(page["edges"][0]["node"]["id"], first.as_str(), "{body}");
    assert_eq!(page["edges"][1]["node"]["id"], third.as_str());
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let (_, body) = app
        .gql_as(
            &token,
            THREADS,
            json!({ "first": 2, "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let rest = &body["data"]["chatThreads"];
    assert_eq!(rest["edges"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(rest["edges"][0]["node"]["id"], second.as_str());
    assert_eq!(rest["pageInfo"]["hasNextPage"], false);

    // Messages: newest first by default, paging back in time.
    let (_, body) = app
        .gql_as(&token, THREAD, json!({ "id": first, "first": 4 }))
        .await;
    assert_eq!(
        contents(&body),
        ["message 6", "message 5", "message 4", "message 3"],
        "{body}"
    );
    assert_eq!(body["data"]["chatThread"]["messageCount"], 6);
    let messages_page = &body["data"]["chatThread"]["messages"];
    assert_eq!(messages_page["pageInfo"]["hasNextPage"], true);
    let (_, body) = app
        .gql_as(
            &token,
            THREAD,
            json!({ "id": first, "first": 4, "after": messages_page["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(contents(&body), ["message 2", "message 1"], "{body}");
    // Oldest first, paging forward.
    let (_, body) = app
        .gql_as(
            &token,
            THREAD,
            json!({ "id": first, "first": 3, "order": "OLDEST_FIRST" }),
        )
        .await;
    assert_eq!(contents(&body), ["message 1", "message 2", "message 3"]);
    let (_, body) = app
        .gql_as(
            &token,
            THREAD,
            json!({ "id": first, "first": 3, "order": "OLDEST_FIRST", "after": body["data"]["chatThread"]["messages"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(contents(&body), ["message 4", "message 5", "message 6"]);

    // Renaming wins over the default; the first message no longer renames it.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { renameChatThread(id: $id, title: \" Moon cats \") { title } }",
            json!({ "id": third }),
        )
        .await;
    assert_eq!(
        body["data"]["renameChatThread"]["title"], "Moon cats",
        "{body}"
    );
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { renameChatThread(id: $id, title: \"   \") { title } }",
            json!({ "id": third }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    // Page sizes are bounded.
    let (_, body) = app
        .gql_as(&token, THREAD, json!({ "id": first, "first": 101 }))
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn a_message_that_asks_for_images_is_charged_queued_and_answered_with_them() {
    let app = TestApp::spawn().await;
    let (token, uid) = user(&app, 8102).await;
    let thread = create(&app, &token, None).await;
    let before = balance(&app, &uid).await;
    let body = send(
        &app,
        &token,
        &thread,
        json!({ "content": " a fox in a hat ", "generate": small_image() }),
    )
    .await;
    let message = body["data"]["sendChatMessage"].clone();
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(message["content"], "a fox in a hat");
    assert_eq!(message["job"]["status"], "QUEUED");
    assert_eq!(message["job"]["costCredits"], 4);
    assert_eq!(
        message["job"]["prompt"], "a fox in a hat",
        "the message is the prompt"
    );
    assert_eq!(balance(&app, &uid).await, before - 4);
    let job_id = Uuid::parse_str(message["job"]["id"].as_str().unwrap()).unwrap();
    // The job is tied to the thread and the message.
    assert_eq!(
        count(
            &app,
            &format!("generation_jobs WHERE id = '{job_id}' AND thread_id = '{thread}'")
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            &format!(
                "chat_messages WHERE id = '{}' AND job_id = '{job_id}'",
                message["id"].as_str().unwrap()
            )
        )
        .await,
        1
    );

    assert_eq!(
        worker::run_next(&app.state, instant(), "w-chat")
            .await
            .unwrap(),
        Some(Ran::Succeeded)
    );
    let (_, body) = app
        .gql_as(
            &token,
            THREAD,
            json!({ "id": thread, "order": "OLDEST_FIRST" }),
        )
        .await;
    let all = messages(&body);
    assert_eq!(all.len(), 2, "{body}");
    let answer = &all[1];
    assert_eq!(answer["role"], "ASSISTANT");
    assert_eq!(answer["content"], "Here are your 2 images.");
    assert_eq!(answer["job"]["id"], job_id.to_string());
    assert_eq!(answer["job"]["status"], "SUCCEEDED");
    let images = answer["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{answer}");
    // The images are the job's outputs, and they are served.
    assert_eq!(
        count(
            &app,
            &format!("images WHERE job_id = '{job_id}' AND kind = 'result'")
        )
        .await,
        2
    );
    let url = images[0]["url"].as_str().unwrap();
    let fetched = app.client.get(url).send().await.unwrap();
    assert_eq!(fetched.status(), 200, "{url}");
    // The user's message shows the finished job too.
    assert_eq!(all[0]["job"]["status"], "SUCCEEDED");
    assert_eq!(balance(&app, &uid).await, before - 4, "charged once");
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn a_failed_generation_is_refunded_and_the_assistant_says_so() {
    let app = TestApp::spawn().await;
    let (token, uid) = user(&app, 8103).await;
    let thread = create(&app, &token, None).await;
    let before = balance(&app, &uid).await;
    let body = send(
        &app,
        &token,
        &thread,
        json!({ "content": "something forbidden", "generate": small_image() }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(balance(&app, &uid).await, before - 4);
    assert_eq!(
        worker::run_next(&app.state, Arc::new(Refusing), "w-refuse")
            .await
            .unwrap(),
        Some(Ran::Failed)
    );
    assert_eq!(balance(&app, &uid).await, before, "refunded");
    assert_eq!(
        count(&app, "credit_transactions WHERE kind = 'refund'").await,
        1
    );
    let (_, body) = app
        .gql_as(
            &token,
            THREAD,
            json!({ "id": thread, "order": "OLDEST_FIRST" }),
        )
        .await;
    let all = messages(&body);
    assert_eq!(all.len(), 2, "{body}");
    assert_eq!(all[1]["role"], "ASSISTANT");
    assert_eq!(
        all[1]["content"],
        "The generation failed: prompt refused. Your 4 credits were refunded."
    );
    assert_eq!(all[1]["job"]["status"], "FAILED");
    assert_eq!(all[1]["images"], json!([]));
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn the_same_key_in_the_same_thread_sends_and_charges_once() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 16).await;
    let (token, uid) = user(&app, 8104).await;
    let thread = create(&app, &token, None).await;
    let other = create(&app, &token, None).await;
    let before = balance(&app, &uid).await;
    let input =
        json!({ "content": "a red kite", "generate": small_image(), "idempotencyKey": "msg-1" });
    // Retries, some at once.
    let answers =
        futures_util::future::join_all((0..4).map(|_| send(&app, &token, &thread, input.clone())))
            .await;
    let again = send(&app, &token, &thread, input.clone()).await;
    let first = &answers[0]["data"]["sendChatMessage"];
    assert!(first["id"].is_string(), "{:?}", answers);
    for body in answers.iter().chain([&again]) {
        let m = &body["data"]["sendChatMessage"];
        assert_eq!(m["id"], first["id"], "{body}");
        assert_eq!(m["job"]["id"], first["job"]["id"], "{body}");
    }
    assert_eq!(
        count(&app, &format!("chat_messages WHERE thread_id = '{thread}'")).await,
        1
    );
    assert_eq!(count(&app, "generation_jobs").await, 1);
    assert_eq!(
        count(&app, "credit_transactions WHERE kind = 'usage'").await,
        1
    );
    assert_eq!(balance(&app, &uid).await, before - 4);
    // The same key for another message: CONFLICT, nothing stored.
    let changed = send(
        &app,
        &token,
        &thread,
        json!({ "content": "a blue kite", "idempotencyKey": "msg-1" }),
    )
    .await;
    assert_eq!(code(&changed), "CONFLICT", "{changed}");
    // Keys are per thread.
    let elsewhere = send(
        &app,
        &token,
        &other,
        json!({ "content": "a red kite", "idempotencyKey": "msg-1" }),
    )
    .await;
    assert!(elsewhere["errors"].is_null(), "{elsewhere}");
    assert_ne!(elsewhere["data"]["sendChatMessage"]["id"], first["id"]);
    assert_eq!(count(&app, "chat_messages").await, 2);
    assert_eq!(count(&app, "generation_jobs").await, 1);
    app.assert_ledger_ok().await;
}

#[tokio::test]
async fn refusals_and_limits_store_nothing() {
    let app = TestApp::spawn_with(|c| {
        c.chat_max_threads_per_user = 2;
        c.chat_max_message_chars = 50;
        c.chat_max_images_per_message = 1;
    })
    .await;
    let (token, uid) = user(&app, 8105).await;
    let thread = create(&app, &token, None).await;
    let big = json!({ "kind": "CHARACTER_GENERATION", "outputCount": 4, "params": { "width": 64, "height": 64 } });
    // 10 balance + 3 allowance: eight credits fit once.
    let ok = send(
        &app,
        &token,
        &thread,
        json!({ "content": "four foxes", "generate": big }),
    )
    .await;
    assert!(ok["errors"].is_null(), "{ok}");
    let state = || async {
        (
            count(&app, "chat_messages").await,
            count(&app, "chat_events").await,
            count(&app, "generation_jobs").await,
            count(&app, "credit_transactions").await,
            balance(&app, &uid).await,
            app.scalar(&format!(
                "SELECT last_seq AS n FROM chat_threads WHERE id = '{thread}'"
            ))
            .await,
        )
    };
    let before = state().await;
    let short = send(
        &app,
        &token,
        &thread,
        json!({ "content": "four more", "generate": big }),
    )
    .await;
    assert_eq!(code(&short), "INSUFFICIENT_CREDITS", "{short}");
    assert_eq!(state().await, before, "no message, no job, no charge");

    let image = crate::gallery::upload(&app, &token, false).await["id"].clone();
    let image2 = crate::gallery::upload(&app, &token, false).await["id"].clone();
    let (bob, _) = user(&app, 8106).await;
    let bobs_image = crate::gallery::upload(&app, &bob, false).await["id"].clone();
    let cases = [
        (json!({ "content": "x".repeat(51) }), "input.content"),
        (json!({ "content": "   " }), "input.content"),
        (
            json!({ "content": "two", "inputImageIds": [image, image2] }),
            "input.inputImageIds",
        ),
        (
            json!({ "content": "not mine", "inputImageIds": [bobs_image] }),
            "input.inputImageIds",
        ),
        (
            json!({ "content": "five", "generate": { "kind": "CHARACTER_GENERATION", "outputCount": 5 } }),
            "input.generate.outputCount",
        ),
        (
            json!({ "content": "tiny", "generate": { "kind": "CHARACTER_GENERATION", "params": { "width": 10 } } }),
            "input.generate.params.width",
        ),
        (
            json!({ "content": "", "inputImageIds": [image], "generate": { "kind": "LOGO" } }),
            "input.content",
        ),
        (
            json!({ "content": "keyed", "generate": { "kind": "LOGO", "idempotencyKey": "k" } }),
            "input.generate.idempotencyKey",
        ),
    ];
    let before = state().await;
    for (input, field) in cases {
        let body = send(&app, &token, &thread, input.clone()).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{input}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["field"], field,
            "{input}: {body}"
        );
    }
    assert_eq!(state().await, before, "no refusal changed anything");
    // An image alone is a message.
    let body = send(
        &app,
        &token,
        &thread,
        json!({ "content": "", "inputImageIds": [image] }),
    )
    .await;
    assert_eq!(
        body["data"]["sendChatMessage"]["images"][0]["id"], image,
        "{body}"
    );

    // Threads per user (deleted ones do not count).
    create(&app, &token, None).await;
    let (_, body) = app.gql_as(&token, CREATE, json!({})).await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(body["errors"][0]["extensions"]["reason"], "THREAD_LIMIT");
    assert_eq!(count(&app, "chat_threads").await, 2);
    app.gql_as(
        &token,
        "mutation($id: ID!) { deleteChatThread(id: $id) { id } }",
        json!({ "id": thread }),
    )
    .await;
    let third = create(&app, &token, None).await;
    // Restoring would pass the limit.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { restoreChatThread(id: $id) { id } }",
            json!({ "id": thread }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert!(!third.is_empty());
    app.assert_ledger_ok().await;
}

/// The other user's view of a thread: `NOT_FOUND` for every query, mutation and the
/// subscription; nothing of it in their lists.
#[tokio::test]
async fn others_threads_are_not_found_everywhere() {
    let app = TestApp::spawn().await;
    let (alice, _) = user(&app, 8107).await;
    let (bob, _) = user(&app, 8108).await;
    let thread = create(&app, &alice, Some("private")).await;
    say(&app, &alice, &thread, "my secret").await;
    let before = count(&app, "chat_messages").await;

    let (_, body) = app.gql_as(&bob, THREAD, json!({ "id": thread })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert!(body["data"]["chatThread"].is_null(), "{body}");
    assert!(!body.to_string().contains("my secret"));
    let body = send(
        &app,
        &bob,
        &thread,
        json!({ "content": "hi", "generate": small_image() }),
    )
    .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    for mutation in [
        "mutation($id: ID!) { renameChatThread(id: $id, title: \"mine\") { id } }",
        "mutation($id: ID!) { deleteChatThread(id: $id) { id } }",
        "mutation($id: ID!) { restoreChatThread(id: $id) { id } }",
    ] {
        let (_, body) = app.gql_as(&bob, mutation, json!({ "id": thread })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{mutation}: {body}");
    }
    for deleted in [false, true] {
        let (_, body) = app
            .gql_as(&bob, THREADS, json!({ "deleted": deleted }))
            .await;
        assert_eq!(body["data"]["chatThreads"]["edges"], json!([]), "{body}");
    }
    let mut ws = app.ws_as(&bob).await;
    ws.subscribe(UPDATED, json!({ "t": thread })).await;
    let refused = ws.recv().await.unwrap().unwrap();
    let errors = if refused["type"] == "error" {
        refused["payload"].clone()
    } else {
        refused["payload"]["errors"].clone()
    };
    assert_eq!(errors[0]["extensions"]["code"], "NOT_FOUND", "{refused}");
    // Anonymous callers are not signed in.
    let (_, body) = app.gql(THREAD, json!({ "id": thread })).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    assert_eq!(count(&app, "chat_messages").await, before);
    assert_eq!(count(&app, "generation_jobs").await, 0);
    let (_, body) = app.gql_as(&alice, THREAD, json!({ "id": thread })).await;
    assert_eq!(body["data"]["chatThread"]["title"], "private", "{body}");
}

/// The next `next` message of subscription `id`: the event.
async fn event(ws: &mut WsClient) -> Value {
    let msg = ws.recv().await.unwrap().unwrap();
    assert_eq!(msg["type"], "next", "{msg}");
    msg["payload"]["data"]["chatThreadUpdated"].clone()
}

/// (kind, role or job status, content) of an event, to compare sequences.
fn summary(e: &Value) -> (String, String, String) {
    let kind = e["kind"].as_str().unwrap().to_string();
    match kind.as_str() {
        "MESSAGE" => (
            kind,
            e["message"]["role"].as_str().unwrap().to_string(),
            e["message"]["content"].as_str().unwrap().to_string(),
        ),
        "JOB" => (
            kind,
            e["job"]["status"].as_str().unwrap().to_string(),
            String::new(),
        ),
        _ => (
            kind,
            e["thread"]["title"].as_str().unwrap_or("").to_string(),
            String::new(),
        ),
    }
}

fn expect(items: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

#[tokio::test]
async fn the_thread_stream_replays_exactly_what_a_reconnecting_client_missed() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 8109).await;
    let thread = create(&app, &token, None).await;
    let mut ws = app.ws_as(&token).await;
    ws.subscribe(UPDATED, json!({ "t": thread })).await;
    ws.sync().await;
    say(&app, &token, &thread, "first").await;
    let body = send(
        &app,
        &token,
        &thread,
        json!({ "content": "a lighthouse", "generate": small_image() }),
    )
    .await;
    assert!(body["errors"].is_null(), "{body}");
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(event(&mut ws).await);
    }
    assert_eq!(
        seen.iter().map(summary).collect::<Vec<_>>(),
        expect(&[
            ("MESSAGE", "USER", "first"),
            ("MESSAGE", "USER", "a lighthouse"),
            ("JOB", "QUEUED", ""),
        ])
    );
    assert_eq!(seen[0]["thread"]["title"], "first");
    let last = seen[2]["cursor"].clone();
    drop(ws);

    // While the client is away: a message, the job's progress and the assistant's answer,
    // another message, a rename.
    say(&app, &token, &thread, "while away").await;
    assert_eq!(
        worker::run_next(&app.state, instant(), "w-away")
            .await
            .unwrap(),
        Some(Ran::Succeeded)
    );
    say(&app, &token, &thread, "still away").await;
    app.gql_as(
        &token,
        "mutation($id: ID!) { renameChatThread(id: $id, title: \"Lighthouses\") { id } }",
        json!({ "id": thread }),
    )
    .await;

    let mut ws = app.ws_as(&token).await;
    ws.subscribe(UPDATED, json!({ "t": thread, "after": last }))
        .await;
    let mut missed = Vec::new();
    for _ in 0..6 {
        missed.push(event(&mut ws).await);
    }
    assert_eq!(
        missed.iter().map(summary).collect::<Vec<_>>(),
        expect(&[
            ("MESSAGE", "USER", "while away"),
            ("JOB", "PROCESSING", ""),
            ("JOB", "SUCCEEDED", ""),
            ("MESSAGE", "ASSISTANT", "Here are your 2 images."),
            ("MESSAGE", "USER", "still away"),
            ("THREAD", "Lighthouses", ""),
        ])
    );
    assert_eq!(
        missed[3]["message"]["images"].as_array().unwrap().len(),
        2,
        "{}",
        missed[3]
    );
    // Exactly those: nothing more is waiting.
    ws.sync().await;
    // Then live, in order.
    say(&app, &token, &thread, "back").await;
    let live = event(&mut ws).await;
    assert_eq!(
        summary(&live),
        ("MESSAGE".into(), "USER".into(), "back".into())
    );

    // A message's cursor works as `after` too; so does the thread's eventCursor.
    let (_, body) = app
        .gql_as(&token, THREAD, json!({ "id": thread, "first": 2 }))
        .await;
    let newest = body["data"]["chatThread"]["messages"]["edges"][1]["cursor"].clone();
    let mut ws2 = app.ws_as(&token).await;
    ws2.subscribe(UPDATED, json!({ "t": thread, "after": newest }))
        .await;
    let after_message = [event(&mut ws2).await, event(&mut ws2).await];
    assert_eq!(
        after_message.iter().map(summary).collect::<Vec<_>>(),
        expect(&[("THREAD", "Lighthouses", ""), ("MESSAGE", "USER", "back")])
    );
    ws2.sync().await;
    let cursor = body["data"]["chatThread"]["eventCursor"].clone();
    let mut ws3 = app.ws_as(&token).await;
    ws3.subscribe(UPDATED, json!({ "t": thread, "after": cursor }))
        .await;
    ws3.sync().await;

    // Deleting ends the stream after the event.
    app.gql_as(
        &token,
        "mutation($id: ID!) { deleteChatThread(id: $id) { id } }",
        json!({ "id": thread }),
    )
    .await;
    let gone = event(&mut ws3).await;
    assert_eq!(gone["kind"], "THREAD");
    let done = ws3.recv().await.unwrap().unwrap();
    assert_eq!(done["type"], "complete", "{done}");
}

#[tokio::test]
async fn deleted_threads_can_be_restored_for_thirty_days_then_are_purged() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 8110).await;
    let thread = create(&app, &token, Some("old")).await;
    let kept = create(&app, &token, Some("kept")).await;
    let body = send(
        &app,
        &token,
        &thread,
        json!({ "content": "a tree", "generate": small_image() }),
    )
    .await;
    let job = body["data"]["sendChatMessage"]["job"]["id"].clone();
    assert!(job.is_string(), "{body}");
    say(&app, &token, &kept, "hello").await;

    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { deleteChatThread(id: $id) { id deletedAt restorableUntil } }",
            json!({ "id": thread }),
        )
        .await;
    assert!(
        body["data"]["deleteChatThread"]["deletedAt"].is_string(),
        "{body}"
    );
    assert!(body["data"]["deleteChatThread"]["restorableUntil"].is_string());
    let (_, body) = app.gql_as(&token, THREADS, json!({})).await;
    let live: Vec<&Value> = body["data"]["chatThreads"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["id"])
        .collect();
    assert_eq!(live, [&json!(kept)], "{body}");
    let (_, body) = app
        .gql_as(&token, THREADS, json!({ "deleted": true }))
        .await;
    assert_eq!(
        body["data"]["chatThreads"]["edges"][0]["node"]["id"],
        thread.as_str(),
        "{body}"
    );
    let (_, body) = app.gql_as(&token, THREAD, json!({ "id": thread })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    let (_, body) = app
        .gql_as(&token, "query($d: Boolean) { chatThreads(deleted: $d) { edges { node { messages { edges { node { id } } } } } } }", json!({ "d": true }))
        .await;
    assert_eq!(
        code(&body),
        "NOT_FOUND",
        "the trash shows no messages: {body}"
    );
    let body = send(&app, &token, &thread, json!({ "content": "more" })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");

    // Restore: back with its messages.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { restoreChatThread(id: $id) { id deletedAt } }",
            json!({ "id": thread }),
        )
        .await;
    assert!(
        body["data"]["restoreChatThread"]["deletedAt"].is_null(),
        "{body}"
    );
    let (_, body) = app.gql_as(&token, THREAD, json!({ "id": thread })).await;
    assert_eq!(contents(&body), ["a tree"], "{body}");

    // Deleted 31 days ago: no longer restorable, and purged with its messages; a thread
    // deleted yesterday stays.
    for (id, days) in [(&thread, 31), (&kept, 1)] {
        app.gql_as(
            &token,
            "mutation($id: ID!) { deleteChatThread(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        app.exec(&format!(
            "UPDATE chat_threads SET deleted_at = now() - interval '{days} days' WHERE id = '{id}'"
        ))
        .await;
    }
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { restoreChatThread(id: $id) { id } }",
            json!({ "id": thread }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(
        easel::chat::service::purge_deleted(&app.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        count(&app, &format!("chat_threads WHERE id = '{thread}'")).await,
        0
    );
    assert_eq!(
        count(&app, &format!("chat_messages WHERE thread_id = '{thread}'")).await,
        0
    );
    assert_eq!(
        count(&app, &format!("chat_events WHERE thread_id = '{thread}'")).await,
        0
    );
    // The job stays (its charge is in the ledger), without a thread.
    assert_eq!(
        count(
            &app,
            &format!(
                "generation_jobs WHERE id = '{}' AND thread_id IS NULL",
                job.as_str().unwrap()
            )
        )
        .await,
        1
    );
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { restoreChatThread(id: $id) { id title } }",
            json!({ "id": kept }),
        )
        .await;
    assert_eq!(body["data"]["restoreChatThread"]["title"], "kept", "{body}");
    // The job of a purged thread still runs; it has no thread to answer in.
    assert_eq!(
        worker::run_next(&app.state, instant(), "w-purged")
            .await
            .unwrap(),
        Some(Ran::Succeeded)
    );
    let mut conn = app.db().await;
    let done = jobs::by_id(&mut conn, Uuid::parse_str(job.as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(done.thread_id.is_none());
    app.assert_ledger_ok().await;
}
