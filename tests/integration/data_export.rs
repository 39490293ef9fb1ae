//! Issue #15, data rights: `requestDataExport`, the background export builder and the
//! download route.

use std::io::Read;

use serde_json::{Value, json};

use crate::{
    gallery::{basic, character, upload},
    support::{TestApp, code, user, vendor},
};

const REQUEST: &str = "mutation { requestDataExport { id status downloadUrl } }";
const SHOW: &str = "query($id: ID!) { dataExport(id: $id) { id status createdAt completedAt expiresAt byteSize downloadUrl } }";

/// Polls `dataExport(id)` until it is ready (or fails the test after a deadline).
async fn wait_ready(app: &TestApp, token: &str, id: &Value) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = app.gql_as(token, SHOW, json!({ "id": id })).await;
        let export = body["data"]["dataExport"].clone();
        if export["status"] == "READY" {
            return export;
        }
        assert_ne!(export["status"], "FAILED", "{body}");
        assert!(
            std::time::Instant::now() < deadline,
            "not ready in time: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_export_holds_the_users_data_and_is_served_to_its_link_only() {
    let app = TestApp::spawn().await;
    let (token, user_id) = vendor(&app, 1, "Studio").await;
    let (other, _) = user(&app, 2).await;
    let image = upload(&app, &token, false).await;
    let image_key = image["url"]
        .as_str()
        .unwrap()
        .split_once("/media/")
        .unwrap()
        .1
        .to_string();
    let image_bytes = std::fs::read(app.state.config.media_dir().join(&image_key)).unwrap();
    character(&app, &token, basic("Captain Marmalade", false)).await;
    let ledger = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE user_id = '{user_id}'"
        ))
        .await;
    assert!(ledger > 0, "the sign-up bonus is a ledger row");

    // Requesting twice while pending returns the same export; one row. The background
    // exporter is stopped so the first one is surely still pending; one pass builds it.
    app.stop_background();
    let (_, body) = app.gql_as(&token, REQUEST, json!({})).await;
    let id = body["data"]["requestDataExport"]["id"].clone();
    assert!(id.is_string(), "{body}");
    assert!(body["data"]["requestDataExport"]["downloadUrl"].is_null());
    let (_, body) = app.gql_as(&token, REQUEST, json!({})).await;
    assert_eq!(body["data"]["requestDataExport"]["id"], id, "{body}");
    assert!(easel::rights::export::run_one(&app.state).await.unwrap());
    let export = wait_ready(&app, &token, &id).await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM data_exports WHERE user_id = '{user_id}'"
        ))
        .await,
        1
    );
    assert!(export["byteSize"].as_i64().unwrap() > 0);
    assert!(export["expiresAt"].is_string() && export["completedAt"].is_string());
    let url = export["downloadUrl"].as_str().unwrap().to_string();
    assert!(
        url.starts_with(&format!("{}/exports/", app.state.config.public_url)),
        "{url}"
    );

    // Someone else sees nothing.
    let (_, body) = app.gql_as(&other, SHOW, json!({ "id": id })).await;
    assert!(body["data"]["dataExport"].is_null(), "{body}");

    // The download over HTTP.
    let path = url.split_once("/exports/").unwrap().1;
    let res = app
        .client
        .get(app.url(&format!("/exports/{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/zip");
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment")
    );
    let zip_bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec())).unwrap();
    let mut data = String::new();
    zip.by_name("data.json")
        .unwrap()
        .read_to_string(&mut data)
        .unwrap();
    let data: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(data["users"][0]["id"], user_id.as_str());
    assert!(data["users"][0].get("password_hash").is_none());
    assert_eq!(data["characters"][0]["name"], "Captain Marmalade");
    assert_eq!(
        data["credit_transactions"].as_array().unwrap().len() as i64,
        ledger
    );
    assert_eq!(data["images"].as_array().unwrap().len(), 1);
    let mut media = Vec::new();
    zip.by_name(&format!("media/{image_key}"))
        .unwrap()
        .read_to_end(&mut media)
        .unwrap();
    assert_eq!(media, image_bytes);

    // Wrong or missing token, or through /media: refused.
    let export_id = id.as_str().unwrap();
    for bad in [
        format!("/exports/{export_id}?token=wrong"),
        format!("/exports/{export_id}"),
        format!("/exports/{}?token=x", uuid::Uuid::now_v7()),
    ] {
        let res = app.client.get(app.url(&bad)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
    let key: String = {
        use diesel::prelude::*;
        use diesel_async::RunQueryDsl;
        use easel::db::schema::data_exports::dsl::*;
        let mut conn = app.db().await;
        data_exports
            .select(storage_key)
            .first::<Option<String>>(&mut conn)
            .await
            .unwrap()
            .unwrap()
    };
    assert!(key.starts_with(&format!("exports/{export_id}/")));
    let res = app
        .client
        .get(app.url(&format!("/media/{key}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // The ready notice: one SMS (no verified email).
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM outbox_messages WHERE template = 'data_export_ready' AND channel = 'sms' AND destination = '+14155550001'").await,
        1
    );

    // Expired: 410, no link; the sweeper then deletes the row and the file.
    app.exec(&format!(
        "UPDATE data_exports SET expires_at = now() - interval '1 minute' WHERE id = '{export_id}'"
    ))
    .await;
    let res = app
        .client
        .get(app.url(&format!("/exports/{path}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    let (_, body) = app.gql_as(&token, SHOW, json!({ "id": id })).await;
    assert!(
        body["data"]["dataExport"]["downloadUrl"].is_null(),
        "{body}"
    );
    let file = app.state.config.media_dir().join(&key);
    assert!(file.exists());
    let purged = easel::rights::service::sweep(&app.state).await.unwrap();
    assert_eq!(purged["data_exports"], 1);
    assert!(!file.exists());
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM data_exports").await,
        0
    );
}

#[tokio::test]
async fn exports_are_rate_limited_and_go_with_the_account() {
    let app = TestApp::spawn().await;
    let (token, user_id) = user(&app, 3).await;
    let mut last = Value::Null;
    for _ in 0..3 {
        let (_, body) = app.gql_as(&token, REQUEST, json!({})).await;
        last = body["data"]["requestDataExport"]["id"].clone();
        wait_ready(&app, &token, &last).await;
    }
    let before = app.scalar("SELECT count(*) AS n FROM data_exports").await;
    let (_, body) = app.gql_as(&token, REQUEST, json!({})).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    assert!(
        body["errors"][0]["extensions"]["retryAfterSeconds"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM data_exports").await,
        before
    );
    let dir = app.state.config.media_dir().join("exports");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);

    let (_, body) = app
        .gql_as(
            &token,
            "mutation { deleteAccount(input: { confirm: \"DELETE\" }) }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM data_exports WHERE user_id = '{user_id}'"
        ))
        .await,
        0
    );
    let files = walk(&dir);
    assert!(files.is_empty(), "{files:?} {last}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
