//! The websocket endpoint keeps the `graphql-transport-ws` protocol
//! (https://github.com/enisdenjo/graphql-ws/blob/master/PROTOCOL.md) over a real socket, and
//! the legacy `graphql-ws` protocol keeps working.

use std::time::Duration;

use easel::events::Event;
use serde_json::json;
use uuid::Uuid;

use crate::support::{TestApp, WsClient, user};

async fn raw(app: &TestApp, protocol: &'static str) -> WsClient {
    WsClient::open(&format!("ws://{}/graphql/ws", app.addr), protocol)
        .await
        .expect("websocket upgrade")
}

#[tokio::test]
async fn subscribe_before_connection_init_closes_with_4401() {
    let app = TestApp::spawn().await;
    let mut ws = raw(&app, "graphql-transport-ws").await;
    ws.subscribe("{ __typename }", json!({})).await;
    assert_eq!(
        ws.recv().await,
        Some(Err((4401, "Unauthorized".to_string())))
    );
}

#[tokio::test]
async fn no_connection_init_in_time_closes_with_4408() {
    let app = TestApp::spawn_with(|c| c.ws_init_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let mut silent = raw(&app, "graphql-transport-ws").await;
    // One that did send `connection_init` stays open past the timeout.
    let mut greeted = app.ws("/graphql/ws", json!({})).await;
    assert_eq!(
        silent.recv().await,
        Some(Err((4408, "Connection initialisation timeout".to_string())))
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id = greeted.subscribe("{ __typename }", json!({})).await;
    let next = greeted.recv().await.unwrap().unwrap();
    assert_eq!(
        (next["type"].as_str(), next["id"].as_str()),
        (Some("next"), Some(id.as_str()))
    );
    assert_eq!(next["payload"]["data"]["__typename"], "Query");
}

#[tokio::test]
async fn a_second_connection_init_closes_with_4429() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws("/graphql/ws", json!({})).await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(
        ws.recv().await,
        Some(Err((4429, "Too many initialisation requests".to_string())))
    );
}

#[tokio::test]
async fn a_message_the_protocol_does_not_know_closes_with_4400() {
    let app = TestApp::spawn().await;
    for msg in [
        json!({ "type": "nonsense" }),
        json!({ "type": "subscribe", "payload": { "query": "{ __typename }" } }),
        json!([1, 2]),
    ] {
        let mut ws = app.ws("/graphql/ws", json!({})).await;
        ws.send(msg.clone()).await;
        match ws.recv().await {
            Some(Err((code, _))) => assert_eq!(code, 4400, "{msg}"),
            other => panic!("{msg}: expected a 4400 close, got {other:?}"),
        }
    }
}

/// Validation and syntax errors (the operation never ran) are one `error` message carrying
/// the GraphQL errors with their codes, and no `complete` follows; the id is free again.
#[tokio::test]
async fn request_errors_are_error_messages_with_nothing_after_them() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws("/graphql/ws", json!({})).await;
    for (id, query) in [
        ("1", "subscription { noSuchField }"),
        ("2", "subscription {"),
        ("3", "{ noSuchField }"),
    ] {
        ws.send(json!({ "id": id, "type": "subscribe", "payload": { "query": query } }))
            .await;
        let msg = ws.recv().await.unwrap().unwrap();
        assert_eq!(msg["type"], "error", "{query}: {msg}");
        assert_eq!(msg["id"], id, "{msg}");
        let errors = msg["payload"].as_array().expect("an array of errors");
        assert!(!errors.is_empty(), "{msg}");
        for e in errors {
            assert!(e["message"].is_string(), "{msg}");
            assert_eq!(e["extensions"]["code"], "BAD_USER_INPUT", "{msg}");
        }
        // No `complete` for it: the next message is the answer to a ping.
        ws.sync().await;
    }
    // The id may be used again, and a running operation still completes.
    ws.send(json!({ "id": "1", "type": "subscribe", "payload": { "query": "{ __typename }" } }))
        .await;
    let next = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        (next["type"].as_str(), next["id"].as_str()),
        (Some("next"), Some("1"))
    );
    let done = ws.recv().await.unwrap().unwrap();
    assert_eq!(done, json!({ "type": "complete", "id": "1" }));
}

/// After the client completes an operation, the server sends nothing more for it (no
/// `complete` either), and the operation no longer counts against the user.
#[tokio::test]
async fn an_operation_the_client_completes_gets_no_complete() {
    let app = TestApp::spawn().await;
    let (token, user_id) = user(&app, 3101).await;
    let mut ws = app.ws_as(&token).await;
    let id = ws
        .subscribe(
            "subscription { creditBalanceChanged { balance } }",
            json!({}),
        )
        .await;
    ws.sync().await;
    let user_id = user_id.parse().unwrap();
    assert_eq!(app.state.ws_operations.running(user_id), 1);
    let balance_changed = || async {
        let event = Event::CreditBalance {
            user_id,
            balance: 10,
            transaction_id: Uuid::now_v7(),
        };
        easel::events::notify(&mut app.db().await, &event)
            .await
            .unwrap();
    };
    balance_changed().await;
    let next = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        (next["type"].as_str(), next["id"].as_str()),
        (Some("next"), Some(id.as_str())),
        "{next}"
    );
    ws.send(json!({ "type": "complete", "id": id })).await;
    ws.sync().await;
    assert_eq!(app.state.ws_operations.running(user_id), 0);
    // An event the completed subscription would have carried: still nothing arrives.
    balance_changed().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ws.sync().await;
}

/// The legacy `graphql-ws` protocol (subscriptions-transport-ws) keeps its behaviour.
#[tokio::test]
async fn the_legacy_graphql_ws_protocol_still_works() {
    let app = TestApp::spawn().await;
    let mut ws = raw(&app, "graphql-ws").await;
    ws.send(json!({ "type": "connection_init", "payload": {} }))
        .await;
    assert_eq!(ws.recv().await.unwrap().unwrap()["type"], "connection_ack");
    ws.send(json!({ "type": "start", "id": "a", "payload": { "query": "{ __typename }" } }))
        .await;
    let data = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        data,
        json!({ "type": "data", "id": "a", "payload": { "data": { "__typename": "Query" } } })
    );
    assert_eq!(
        ws.recv().await.unwrap().unwrap(),
        json!({ "type": "complete", "id": "a" })
    );
}
