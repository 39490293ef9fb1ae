//! Issue #15, data rights: `updateImage` / `deleteImage`, `deleteAccount` (a tombstone that
//! keeps the ledger), and the retention sweeper.

use serde_json::{Value, json};

use crate::{
    gallery::{character, upload},
    support::{TestApp, code, field, user, vendor},
};

/// The local media file behind a URL the API gave.
fn media_file(app: &TestApp, url: &Value) -> std::path::PathBuf {
    let url = url.as_str().unwrap();
    let key = url.split_once("/media/").unwrap().1;
    app.state.config.media_dir().join(key)
}

const UPDATE: &str = "mutation($id: ID!, $input: UpdateImageInput!) { updateImage(id: $id, input: $input) { id isPublic tags } }";
const DELETE: &str = "mutation($id: ID!) { deleteImage(id: $id) }";
const ADD: &str = "mutation($a: ID!, $ids: [ID!]!) { addImagesToAlbum(albumId: $a, imageIds: $ids) { imageCount } }";

#[tokio::test]
async fn images_are_updated_and_deleted_by_their_owner_only() {
    let app = TestApp::spawn().await;
    let (token, vendor_id) = vendor(&app, 1, "Studio").await;
    let (other, _) = user(&app, 2).await;
    let a = upload(&app, &token, false).await;
    let b = upload(&app, &token, true).await;
    let (a_file, a_thumb) = (
        media_file(&app, &a["url"]),
        media_file(&app, &a["thumbnailUrl"]),
    );
    assert!(a_file.exists() && a_thumb.exists());

    // updateImage: the owner changes the flag and tags; bad tags and others change nothing.
    let (_, body) = app
        .gql_as(&token, UPDATE, json!({ "id": a["id"], "input": { "isPublic": true, "tags": [" Cat ", "cat", "Sky"] } }))
        .await;
    assert_eq!(body["data"]["updateImage"]["isPublic"], true, "{body}");
    assert_eq!(body["data"]["updateImage"]["tags"], json!(["cat", "sky"]));
    let (_, body) = app
        .gql_as(
            &token,
            UPDATE,
            json!({ "id": a["id"], "input": { "isPublic": false, "tags": ["a,b"] } }),
        )
        .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    assert_eq!(field(&body), "input.tags");
    let (_, body) = app
        .gql_as(
            &other,
            UPDATE,
            json!({ "id": a["id"], "input": { "isPublic": false } }),
        )
        .await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(
        app.scalar(&format!("SELECT count(*) AS n FROM images WHERE id = '{}' AND is_public AND tags = '{{cat,sky}}'", a["id"].as_str().unwrap())).await,
        1,
        "nothing changed"
    );

    // The image sits in an album (taking a free gallery image), is a character's primary
    // image and the album's cover.
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createAlbum(input: { name: \"Spring\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let album = body["data"]["createAlbum"]["id"].clone();
    let free = async || {
        app.scalar(&format!("SELECT free_gallery_remaining::bigint AS n FROM vendor_profiles WHERE user_id = '{vendor_id}'")).await
    };
    let before = free().await;
    let (_, body) = app
        .gql_as(
            &token,
            ADD,
            json!({ "a": album, "ids": [a["id"], b["id"]] }),
        )
        .await;
    assert_eq!(body["data"]["addImagesToAlbum"]["imageCount"], 2, "{body}");
    assert_eq!(free().await, before - 2);
    let (_, body) = app
        .gql_as(&token, "mutation($a: ID!, $c: ID!) { updateAlbum(id: $a, input: { coverImageId: $c }) { id } }", json!({ "a": album, "c": a["id"] }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let c = character(&app, &token, json!({ "name": "Kit", "prompt": "a fox", "styleType": "ANIME", "isPublic": true, "imageIds": [a["id"], b["id"]] })).await;
    assert_eq!(c["primaryImage"]["id"], a["id"]);

    // Another user: NOT_FOUND, nothing changed.
    let (_, body) = app.gql_as(&other, DELETE, json!({ "id": a["id"] })).await;
    assert_eq!(code(&body), "NOT_FOUND", "{body}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 2);
    assert!(a_file.exists());

    let (_, body) = app.gql_as(&token, DELETE, json!({ "id": a["id"] })).await;
    assert_eq!(body["data"]["deleteImage"], true, "{body}");
    assert!(
        !a_file.exists() && !a_thumb.exists(),
        "both objects are gone"
    );
    assert!(
        media_file(&app, &b["url"]).exists(),
        "the other image stays"
    );
    assert_eq!(
        free().await,
        before - 1,
        "its free gallery image is given back"
    );
    let (_, body) = app
        .gql("query($a: ID!, $c: ID!) { album(id: $a) { imageCount coverImage { id } images(first: 10) { edges { node { id } } } } character(id: $c) { primaryImage { id } images { id } } }", json!({ "a": album, "c": c["id"] }))
        .await;
    assert_eq!(body["data"]["album"]["imageCount"], 1, "{body}");
    assert!(body["data"]["album"]["coverImage"].is_null(), "{body}");
    assert_eq!(
        body["data"]["album"]["images"]["edges"],
        json!([{ "node": { "id": b["id"] } }])
    );
    assert!(
        body["data"]["character"]["primaryImage"].is_null(),
        "{body}"
    );
    assert_eq!(
        body["data"]["character"]["images"],
        json!([{ "id": b["id"] }])
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM album_images WHERE album_id = '{}' AND position = 0",
            album.as_str().unwrap()
        ))
        .await,
        1,
        "positions closed up"
    );
    let (_, body) = app.gql_as(&token, DELETE, json!({ "id": a["id"] })).await;
    assert_eq!(code(&body), "NOT_FOUND", "deleted once: {body}");
}

const DELETE_ACCOUNT: &str =
    "mutation($c: String!, $p: String) { deleteAccount(input: { confirm: $c, password: $p }) }";
const GENERATE: &str = "mutation($i: GenerateInput!) { generate(input: $i) { id } }";

/// How many files a folder holds, at any depth.
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.flatten()
            .map(|e| {
                if e.path().is_dir() {
                    files_under(&e.path())
                } else {
                    1
                }
            })
            .sum()
    })
}

/// Waits until `sql` (selecting `n`) answers `want`.
async fn until(app: &TestApp, sql: &str, want: i64) {
    for _ in 0..200 {
        if app.scalar(sql).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never reached {want}: {sql}");
}

#[tokio::test]
async fn deleting_an_account_leaves_a_tombstone_and_keeps_the_ledger() {
    let app = TestApp::spawn_with(|c| {
        c.workers = 1;
        c.procedural_delay = std::time::Duration::from_millis(1500);
    })
    .await;
    let phone = "+14155550001";
    let auth = app.sign_up_by_phone(phone).await;
    let token = auth["accessToken"].as_str().unwrap().to_string();
    let me = auth["user"]["id"].as_str().unwrap().to_string();
    let (bob, bob_id) = user(&app, 2).await;

    // Content of every kind, and a gift whose note names the user.
    let (_, body) = app
        .gql_as(&token, "mutation { updateProfile(input: { username: \"alice\", displayName: \"Alice\", bio: \"hi\" }) { id } }", json!({}))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let img = upload(&app, &token, true).await;
    let file = media_file(&app, &img["url"]);
    let mine = character(&app, &token, json!({ "name": "Kit", "prompt": "a fox", "styleType": "ANIME", "isPublic": true, "imageIds": [img["id"]] })).await;
    let theirs = character(
        &app,
        &bob,
        json!({ "name": "Rex", "prompt": "a dog", "styleType": "ANIME", "isPublic": true }),
    )
    .await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($id: ID!) { likeCharacter(id: $id) { likeCount } }",
            json!({ "id": theirs["id"] }),
        )
        .await;
    assert_eq!(body["data"]["likeCharacter"]["likeCount"], 1, "{body}");
    let (_, body) = app
        .gql_as(&token, "mutation($id: ID!) { rateCharacter(id: $id, rating: 5, review: \"from Alice\") { ratingCount } }", json!({ "id": theirs["id"] }))
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createChatThread(input: { title: \"Alice's chat\" }) { id } }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = app
        .gql_as(&token, "mutation($to: ID!) { giftCredits(input: { toUserId: $to, amount: 1, note: \"love, Alice\" }) { id } }", json!({ "to": bob_id }))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let (_, body) = app
        .gql_as(&token, "mutation($id: ID!) { reportContent(input: { targetType: CHARACTER, targetId: $id, reason: SPAM, details: \"Alice says spam\" }) { id } }", json!({ "id": theirs["id"] }))
        .await;
    assert!(body["errors"].is_null(), "{body}");

    // One job running, one queued.
    for prompt in ["first", "second"] {
        let (_, body) = app
            .gql_as(&token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": prompt, "params": { "width": 64, "height": 64 } } }))
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    until(&app, &format!("SELECT count(*) AS n FROM generation_jobs WHERE user_id = '{me}' AND status = 'processing'"), 1).await;

    let counts = async || {
        app.scalar(&format!(
            "SELECT (SELECT count(*) FROM images WHERE owner_id = '{me}') * 1000000 \
                  + (SELECT count(*) FROM characters WHERE owner_id = '{me}') * 10000 \
                  + (SELECT count(*) FROM sessions WHERE user_id = '{me}' AND revoked_at IS NULL) * 100 \
                  + (SELECT count(*) FROM chat_threads WHERE user_id = '{me}') AS n"
        ))
        .await
    };
    let before = counts().await;
    for (confirm, password, field_name) in [
        ("delete", None::<&str>, "input.confirm"),
        ("", None, "input.confirm"),
    ] {
        let (_, body) = app
            .gql_as(
                &token,
                DELETE_ACCOUNT,
                json!({ "c": confirm, "p": password }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(field(&body), field_name);
    }
    assert_eq!(
        counts().await,
        before,
        "a wrong confirmation changes nothing"
    );
    let (_, body) = app.gql_as(&token, "{ me { id } }", json!({})).await;
    assert_eq!(body["data"]["me"]["id"], me.as_str());

    let ledger_rows = app
        .scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE user_id = '{me}'"
        ))
        .await;
    let (_, body) = app
        .gql_as(&token, DELETE_ACCOUNT, json!({ "c": "DELETE" }))
        .await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");

    // Signed out everywhere at once: the access token and the refresh token are refused.
    let (_, body) = app.gql_as(&token, "{ me { id } }", json!({})).await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
    let (_, body) = app
        .gql(
            "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }",
            json!({ "t": auth["refreshToken"] }),
        )
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");

    // The running job's worker ends without attaching anything.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM images WHERE owner_id = '{me}'"
        ))
        .await,
        0,
        "no outputs attached to the deleted account"
    );
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM generation_jobs WHERE user_id = '{me}'"
        ))
        .await,
        0
    );
    assert!(!file.exists(), "media deleted");
    let leftover = files_under(&app.state.config.media_dir().join("results"));
    assert_eq!(
        leftover, 0,
        "the cancelled job's stored outputs were deleted"
    );
    for table in [
        "content_reports WHERE reporter_id",
        "characters WHERE owner_id",
        "character_likes WHERE user_id",
        "character_ratings WHERE user_id",
        "chat_threads WHERE user_id",
        "sessions WHERE revoked_at IS NULL AND user_id",
    ] {
        assert_eq!(
            app.scalar(&format!("SELECT count(*) AS n FROM {table} = '{me}'"))
                .await,
            0,
            "{table}"
        );
    }
    let (_, body) = app
        .gql("query($a: ID!, $b: ID!) { a: character(id: $a) { id } b: character(id: $b) { likeCount } }", json!({ "a": mine["id"], "b": theirs["id"] }))
        .await;
    assert!(body["data"]["a"].is_null(), "{body}");
    assert_eq!(body["data"]["b"]["likeCount"], 0, "{body}");

    // The ledger stays (plus the two refunds), without the note naming the user.
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM credit_transactions WHERE user_id = '{me}'"
        ))
        .await,
        ledger_rows + 2
    );
    assert_eq!(
        app.scalar(
            "SELECT count(*) AS n FROM credit_transactions WHERE description LIKE '%Alice%'"
        )
        .await,
        0
    );
    app.assert_ledger_ok().await;

    // A tombstone: nothing personal, found by no one.
    assert_eq!(
        app.scalar(&format!(
            "SELECT count(*) AS n FROM users WHERE id = '{me}' AND account_status = 'deleted' AND deleted_at IS NOT NULL \
             AND phone IS NULL AND email IS NULL AND username IS NULL AND display_name IS NULL AND bio IS NULL AND password_hash IS NULL"
        ))
        .await,
        1
    );
    let (_, body) = app
        .gql_as(&bob, "query($id: ID!) { byName: user(username: \"alice\") { id } byId: user(id: $id) { id } }", json!({ "id": me }))
        .await;
    assert!(
        body["data"]["byName"].is_null() && body["data"]["byId"].is_null(),
        "{body}"
    );
    let (_, body) = app
        .gql(
            "{ galleryFeed(first: 10) { edges { node { owner { id } } } } }",
            json!({}),
        )
        .await;
    let owners: Vec<&Value> = body["data"]["galleryFeed"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"]["owner"]["id"])
        .collect();
    assert!(!owners.contains(&&json!(me)), "{body}");

    // The same phone signs up as a new account.
    let fresh = app.sign_up_by_phone(phone).await;
    assert_eq!(fresh["isNewUser"], true, "{fresh}");
    assert_ne!(fresh["user"]["id"], me.as_str());
    let (_, body) = app
        .gql_as(&token, DELETE_ACCOUNT, json!({ "c": "DELETE" }))
        .await;
    assert_eq!(code(&body), "UNAUTHENTICATED", "{body}");
}

/// Generates one 64×64 image and waits for it; returns (job id, the output's URL).
async fn finished_job(app: &TestApp, token: &str) -> (String, Value) {
    let (_, body) = app
        .gql_as(token, GENERATE, json!({ "i": { "kind": "CHARACTER_GENERATION", "prompt": "a fox", "params": { "width": 64, "height": 64 } } }))
        .await;
    let id = body["data"]["generate"]["id"].as_str().unwrap().to_string();
    until(
        app,
        &format!(
            "SELECT count(*) AS n FROM generation_jobs WHERE id = '{id}' AND status = 'succeeded'"
        ),
        1,
    )
    .await;
    let (_, body) = app
        .gql_as(
            token,
            "query($id: ID!) { generationJob(id: $id) { outputs { id url } } }",
            json!({ "id": id }),
        )
        .await;
    (id, body["data"]["generationJob"]["outputs"][0].clone())
}

#[tokio::test]
async fn the_retention_sweeper_purges_old_rows_and_keeps_what_is_shown() {
    let app = TestApp::spawn_with(|c| {
        c.workers = 1;
        c.procedural_delay = std::time::Duration::ZERO;
    })
    .await;
    let (token, me) = user(&app, 1).await;
    let (shown, shown_image) = finished_job(&app, &token).await;
    let (hidden, hidden_image) = finished_job(&app, &token).await;
    let (recent, recent_image) = finished_job(&app, &token).await;
    character(&app, &token, json!({ "name": "Kit", "prompt": "a fox", "styleType": "ANIME", "imageIds": [shown_image["id"]] })).await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { signOut(allSessions: false) }",
            json!({}),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");

    // Backdate all but `recent`, an extra expired session, the delivered SMS and the codes.
    app.exec(&format!("UPDATE generation_jobs SET completed_at = now() - interval '100 days' WHERE id IN ('{shown}', '{hidden}')")).await;
    app.exec(&format!("UPDATE job_events SET created_at = now() - interval '100 days' WHERE job_id IN ('{shown}', '{hidden}')")).await;
    app.exec(
        "UPDATE sessions SET revoked_at = now() - interval '40 days' WHERE revoked_at IS NOT NULL",
    )
    .await;
    app.exec("UPDATE outbox_messages SET updated_at = now() - interval '40 days'")
        .await;
    app.exec("UPDATE otp_codes SET expires_at = now() - interval '2 days'")
        .await;
    let n = async |sql: &str| {
        app.scalar(&format!("SELECT count(*) AS n FROM {sql}"))
            .await
    };
    let shown_events = n(&format!("job_events WHERE job_id = '{shown}'")).await;
    let outbox = n("outbox_messages WHERE status IN ('sent', 'failed')").await;
    let otps = n("otp_codes").await;
    let sessions = n("sessions WHERE revoked_at IS NOT NULL").await;
    assert!(shown_events > 0 && outbox > 0 && otps > 0 && sessions == 1);
    let ledger = "SELECT (count(*) * 1000000 + sum(amount))::bigint AS n FROM credit_transactions";
    let ledger_before = app.scalar(ledger).await;

    let purged = easel::rights::service::sweep(&app.state).await.unwrap();
    let expect =
        |kind: &str, want: i64| assert_eq!(purged[kind] as i64, want, "{kind}: {purged:?}");
    expect("generation_jobs", 1);
    expect("images", 1);
    expect("job_events", shown_events);
    expect("outbox_messages", outbox);
    expect("otp_codes", otps);
    expect("sessions", 1);

    assert_eq!(
        n(&format!("generation_jobs WHERE id = '{hidden}'")).await,
        0
    );
    assert_eq!(
        n(&format!(
            "generation_jobs WHERE id IN ('{shown}', '{recent}')"
        ))
        .await,
        2,
        "a shown output keeps its job"
    );
    assert!(
        !media_file(&app, &hidden_image["url"]).exists(),
        "the unshown output's file went"
    );
    assert!(media_file(&app, &shown_image["url"]).exists());
    assert!(media_file(&app, &recent_image["url"]).exists());
    assert!(n(&format!("job_events WHERE job_id = '{recent}'")).await > 0);
    assert_eq!(n(&format!("sessions WHERE user_id = '{me}'")).await, 0);
    assert_eq!(
        app.scalar(ledger).await,
        ledger_before,
        "the ledger is untouched"
    );
    app.assert_ledger_ok().await;

    let again = easel::rights::service::sweep(&app.state).await.unwrap();
    assert!(again.values().all(|n| *n == 0), "{again:?}");
}

/// A password account must give its password; the wrong one changes nothing. The same email
/// signs up again afterwards.
#[tokio::test]
async fn a_password_account_is_deleted_with_its_password_only() {
    let app = TestApp::spawn().await;
    const SIGN_UP: &str = "mutation($e: String!, $p: String!) { signUp(input: { email: $e, password: $p }) { accessToken user { id } } }";
    let vars = json!({ "e": "Ann@Example.com", "p": "correct horse battery" });
    let (_, body) = app.gql(SIGN_UP, vars.clone()).await;
    let token = body["data"]["signUp"]["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let id = body["data"]["signUp"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for password in [None, Some("wrong password here")] {
        let (_, body) = app
            .gql_as(
                &token,
                DELETE_ACCOUNT,
                json!({ "c": "DELETE", "p": password }),
            )
            .await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
        assert_eq!(field(&body), "input.password");
    }
    let live = format!(
        "SELECT count(*) AS n FROM users WHERE id = '{id}' AND deleted_at IS NULL AND email IS NOT NULL"
    );
    assert_eq!(app.scalar(&live).await, 1, "nothing changed");
    let (_, body) = app
        .gql_as(
            &token,
            DELETE_ACCOUNT,
            json!({ "c": "DELETE", "p": "correct horse battery" }),
        )
        .await;
    assert_eq!(body["data"]["deleteAccount"], true, "{body}");
    assert_eq!(app.scalar(&live).await, 0);
    let (_, body) = app
        .gql("mutation($e: String!, $p: String!) { signIn(input: { email: $e, password: $p }) { accessToken } }", vars.clone())
        .await;
    assert_eq!(
        code(&body),
        "UNAUTHENTICATED",
        "the tombstone signs in nowhere: {body}"
    );
    let (_, body) = app.gql(SIGN_UP, vars).await;
    assert_ne!(body["data"]["signUp"]["user"]["id"], id.as_str(), "{body}");
    assert!(body["data"]["signUp"]["user"]["id"].is_string(), "{body}");
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM audit_logs WHERE action = 'account.deleted'")
            .await,
        1
    );
}
