//! Security probe #18, gallery items: decompression bombs and upload floods (5), private
//! profiles leaking through `owner` and other `User` paths (9), and view counts inflated by
//! aliases and reloads (12). Real HTTP, real PostgreSQL, real image bytes.

use std::{io::Cursor, sync::Arc, time::Duration};

use easel::generation::{
    providers::{ImageProvider, Procedural},
    worker::{self, Ran},
};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, RgbImage, Rgba};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{TestApp, code, field, user, vendor};

// ---- helpers ----------------------------------------------------------------------------

/// An 8-bit RGB image: 3 bytes per pixel once decoded.
fn rgb8(w: u32, h: u32) -> Vec<u8> {
    let img = RgbImage::from_fn(w, h, |x, y| {
        Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 200])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// The probe's hostile PNG: 16-bit RGBA of a single colour, a small file that decodes to
/// 8 bytes per pixel.
fn rgba16(w: u32, h: u32) -> Vec<u8> {
    let img = ImageBuffer::from_pixel(w, h, Rgba([51_000u16, 7, 300, 65_535]));
    let mut out = Vec::new();
    DynamicImage::ImageRgba16(img)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
        .unwrap();
    out
}

/// CRC-32 of PNG chunks (ISO 3309), bit by bit.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A real 16-bit RGBA PNG whose header says `w`×`h`: exactly what a decoder sees first (its
/// pixel data would not fill those sides; the server must refuse before reading it).
fn rgba16_header(w: u32, h: u32) -> Vec<u8> {
    let mut png = rgba16(1, 1);
    // Signature (8), IHDR length (4), "IHDR" (4), then width and height.
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

const UPLOAD: &str = "mutation($file: Upload!, $input: UploadImageInput) { uploadImage(file: $file, input: $input) { id width height } }";

/// A GraphQL multipart upload, as apollo-upload-client sends it.
async fn upload(app: &TestApp, token: &str, bytes: Vec<u8>, input: Value) -> Value {
    let operations = json!({ "query": UPLOAD, "variables": { "file": null, "input": input } });
    let form = reqwest::multipart::Form::new()
        .text("operations", operations.to_string())
        .text("map", json!({ "0": ["variables.file"] }).to_string())
        .part(
            "0",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("picture.png")
                .mime_str("image/png")
                .unwrap(),
        );
    let resp = app
        .client
        .post(app.url("/graphql"))
        .bearer_auth(token)
        .header("x-easel-csrf", "1")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

/// Every file in the app's local media store.
fn media_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.state.config.media_dir(), &mut out);
    out
}

fn message(body: &Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or("<none>")
}

// ---- 5: upload memory amplification -----------------------------------------------------

#[tokio::test]
async fn an_image_that_decodes_too_big_is_refused_before_decoding_and_stores_nothing() {
    // The probe's 8192×8192 16-bit RGBA (512 MiB decoded) against the default 128 MiB, at a
    // smaller scale: 1024×1024×8 bytes = 8 MiB against a limit of 4 MiB.
    let app = TestApp::spawn_with(|c| c.upload_max_decoded_bytes = 4 << 20).await;
    let (token, _) = user(&app, 1).await;
    let bomb = rgba16(1024, 1024);
    assert!(
        bomb.len() < 100_000,
        "a small file ({} bytes) within the byte and side limits",
        bomb.len()
    );
    let body = upload(&app, &token, bomb, json!({ "isPublic": true })).await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "file"),
        "{body}"
    );
    assert!(
        message(&body).contains("4194304") && message(&body).contains("8388608"),
        "the message names the limit and the need: {body}"
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 0);
    assert!(media_files(&app).is_empty(), "{:?}", media_files(&app));

    // The same sides at 3 bytes per pixel (3 MiB) fit: the rule is bytes, not sides.
    let body = upload(&app, &token, rgb8(1024, 1024), json!({})).await;
    assert!(body["errors"].is_null(), "{body}");
    assert_eq!(body["data"]["uploadImage"]["width"], 1024);
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 1);
    assert_eq!(media_files(&app).len(), 2, "the original and its thumbnail");
}

#[tokio::test]
async fn the_probes_8192_square_16_bit_header_is_refused_by_the_default_limit() {
    let app = TestApp::spawn().await;
    assert_eq!(app.state.config.upload_max_decoded_bytes, 128 << 20);
    assert_eq!(app.state.config.upload_max_side, 8192);
    let (token, _) = user(&app, 1).await;
    let body = upload(&app, &token, rgba16_header(8192, 8192), json!({})).await;
    assert_eq!(
        (code(&body), field(&body)),
        ("BAD_USER_INPUT", "file"),
        "{body}"
    );
    assert!(
        message(&body).contains("134217728") && message(&body).contains("536870912"),
        "{body}"
    );
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 0);
    assert!(media_files(&app).is_empty());
}

#[tokio::test]
async fn uploads_are_rate_limited_per_user() {
    let app = TestApp::spawn_with(|c| c.upload_max_per_hour = 2).await;
    let (alice, _) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    for _ in 0..2 {
        let body = upload(&app, &alice, rgb8(32, 32), json!({})).await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let body = upload(&app, &alice, rgb8(32, 32), json!({})).await;
    assert_eq!(code(&body), "RATE_LIMITED", "{body}");
    let retry = body["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_u64()
        .unwrap_or(0);
    assert!((1..=3600).contains(&retry), "{body}");
    assert_eq!(app.scalar("SELECT count(*) AS n FROM images").await, 2);
    assert_eq!(media_files(&app).len(), 4);
    let body = upload(&app, &bob, rgb8(32, 32), json!({})).await;
    assert!(
        body["errors"].is_null(),
        "another user has their own budget: {body}"
    );
}

#[tokio::test]
async fn a_generation_input_over_the_decode_limit_fails_its_job_refunded() {
    let app = TestApp::spawn_with(|c| c.upload_max_decoded_bytes = 4 << 20).await;
    let (token, owner) = user(&app, 1).await;
    // An image stored before the limit existed (uploads refuse it now).
    let image = Uuid::now_v7();
    let key = format!("images/{image}.png");
    app.state
        .media
        .put(&key, rgba16(1024, 1024).into())
        .await
        .unwrap();
    app.exec(&format!(
        "INSERT INTO images (id, owner_id, kind, storage_key, mime_type, byte_size, width, height) \
         VALUES ('{image}', '{owner}', 'upload', '{key}', 'image/png', 1, 1024, 1024)"
    ))
    .await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($i: GenerateInput!) { generate(input: $i) { id } }",
            json!({ "i": { "kind": "UPSCALE", "inputImageIds": [image] } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let job = body["data"]["generate"]["id"].clone();
    let provider: Arc<dyn ImageProvider> = Arc::new(Procedural {
        delay: Duration::ZERO,
    });
    assert_eq!(
        worker::run_next(&app.state, provider, "w-limits")
            .await
            .unwrap(),
        Some(Ran::Failed)
    );
    let (_, body) = app
        .gql_as(
            &token,
            "query($id: ID!) { generationJob(id: $id) { status error { code message } } }",
            json!({ "id": job }),
        )
        .await;
    let j = &body["data"]["generationJob"];
    assert_eq!(j["status"], "FAILED", "{body}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("4194304"),
        "{body}"
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'refund'")
            .await,
        1
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM images WHERE kind = 'result'")
            .await,
        0
    );
    app.assert_ledger_ok().await;
}

// ---- 9: private profiles ----------------------------------------------------------------

const PROFILE: &str =
    "fragment P on User { id username displayName bio avatarUrl vendorProfile { businessName } }";

/// Every `User` object under an `owner` or `counterparty` key, anywhere in `v`.
fn users_in(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if (k == "owner" || k == "counterparty") && child.is_object() {
                    out.push(child.clone());
                }
                users_in(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| users_in(i, out)),
        _ => {}
    }
}

fn shows_nothing_but_the_id(u: &Value, id: &str) -> bool {
    u["id"] == id
        && [
            "username",
            "displayName",
            "bio",
            "avatarUrl",
            "vendorProfile",
        ]
        .iter()
        .all(|f| u[*f].is_null())
}

#[tokio::test]
async fn a_private_profile_shows_others_only_its_id_wherever_a_user_appears() {
    private_profiles(true).await;
}

/// The same with `EASEL_QUERY_PLANNER=false`: owners read through the dataloader.
#[tokio::test]
async fn a_private_profile_shows_others_only_its_id_on_the_loader_path() {
    private_profiles(false).await;
}

async fn private_profiles(planner: bool) {
    let app = TestApp::spawn_with(|c| c.query_planner = planner).await;
    let (alice, alice_id) = vendor(&app, 1, "Alice Studio").await;
    let (bob, _) = user(&app, 2).await;
    let (carol, carol_id) = user(&app, 3).await;
    let admin = app.admin_token("+14155550004").await;
    const UPDATE: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { id } }";
    for (token, name) in [(&alice, "alice"), (&bob, "bob"), (&carol, "carol")] {
        let (_, body) = app
            .gql_as(
                token,
                UPDATE,
                json!({ "i": { "username": name, "displayName": name.to_uppercase(), "bio": "hi",
                    "avatarUrl": format!("https://cdn.example/{name}.png"), "allowGalleryShowcase": true } }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    let (_, body) = app
        .gql_as(
            &alice,
            UPDATE,
            json!({ "i": { "profileVisibility": "PRIVATE" } }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");

    // Alice's public things: an image, a character, a collection, an album.
    let img = upload(&app, &alice, rgb8(64, 48), json!({ "isPublic": true })).await;
    let img = img["data"]["uploadImage"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation($i: CreateCharacterInput!) { createCharacter(input: $i) { id } }",
            json!({ "i": { "name": "Fox", "prompt": "a fox", "styleType": "ANIME", "isPublic": true, "imageIds": [img] } }),
        )
        .await;
    let character = body["data"]["createCharacter"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation { createCollection(input: { name: \"Mine\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let collection = body["data"]["createCollection"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation($col: ID!, $c: ID!) { addToCollection(collectionId: $col, characterIds: [$c]) { id } }",
            json!({ "col": collection, "c": character }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation { createAlbum(input: { name: \"Shop\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let album = body["data"]["createAlbum"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &alice,
            "mutation($a: ID!, $i: ID!) { addImagesToAlbum(albumId: $a, imageIds: [$i]) { id } }",
            json!({ "a": album, "i": img }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    // Bob gifts Alice a credit: the gift's counterparty is Alice.
    let (_, body) = app
        .gql_as(
            &bob,
            &format!("mutation($to: ID!) {{ giftCredits(input: {{ toUserId: $to, amount: 1, idempotencyKey: \"g1\" }}) {{ counterparty {{ ...P }} }} }} {PROFILE}"),
            json!({ "to": alice_id }),
        )
        .await;
    let gift = body["data"]["giftCredits"]["counterparty"].clone();
    assert!(shows_nothing_but_the_id(&gift, &alice_id), "{body}");

    let every_path = format!(
        "query($c: ID!, $col: ID!, $img: ID!, $alb: ID!, $owner: ID!) {{ \
           character(id: $c) {{ owner {{ ...P }} primaryImage {{ owner {{ ...P }} }} images {{ owner {{ ...P }} }} }} \
           collection(id: $col) {{ owner {{ ...P }} characters {{ edges {{ node {{ owner {{ ...P }} }} }} }} }} \
           image(id: $img) {{ owner {{ ...P }} }} \
           album(id: $alb) {{ owner {{ ...P }} images {{ edges {{ node {{ owner {{ ...P }} }} }} }} }} \
           galleryFeed {{ edges {{ node {{ owner {{ ...P }} }} }} }} \
           user(id: $owner) {{ id }} \
           gallery(owner: $owner) {{ owner {{ id }} }} }} {PROFILE}"
    );
    let vars =
        json!({ "c": character, "col": collection, "img": img, "alb": album, "owner": alice_id });
    let anonymous = app.gql(&every_path, vars.clone()).await.1;
    let as_bob = app.gql_as(&bob, &every_path, vars.clone()).await.1;
    for body in [&anonymous, &as_bob] {
        assert!(body["errors"].is_null(), "{body}");
        let mut users = Vec::new();
        users_in(&body["data"], &mut users);
        assert_eq!(users.len(), 9, "every path answered: {body}");
        for u in &users {
            assert!(shows_nothing_but_the_id(u, &alice_id), "{u} in {body}");
        }
        assert!(body["data"]["user"].is_null(), "{body}");
        assert!(body["data"]["gallery"].is_null(), "{body}");
    }
    for token in [&alice, &admin] {
        let (_, body) = app.gql_as(token, &every_path, vars.clone()).await;
        let mut users = Vec::new();
        users_in(&body["data"], &mut users);
        assert_eq!(users.len(), 10, "the gallery too: {body}");
        for u in users.iter().filter(|u| u.get("username").is_some()) {
            assert_eq!(u["username"], "alice", "{body}");
            assert_eq!(u["displayName"], "ALICE");
            assert_eq!(u["bio"], "hi");
            assert_eq!(u["avatarUrl"], "https://cdn.example/alice.png");
            assert_eq!(u["vendorProfile"]["businessName"], "Alice Studio");
        }
        assert_eq!(body["data"]["user"]["id"], alice_id.as_str(), "{body}");
    }
    // Alice's ledger shows Bob, whose profile is public, in full.
    let (_, body) = app
        .gql_as(
            &alice,
            "{ creditHistory(filter: { kinds: [GIFT_RECEIVED] }) { edges { node { counterparty { username } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["creditHistory"]["edges"][0]["node"]["counterparty"]["username"], "bob",
        "{body}"
    );

    // A public profile is unchanged; an account that is no longer active shows only its id.
    let (_, body) = app
        .gql_as(
            &carol,
            "mutation { createCharacter(input: { name: \"Owl\", prompt: \"an owl\", styleType: COMIC, isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let owl = body["data"]["createCharacter"]["id"].clone();
    let q = format!("query($c: ID!) {{ character(id: $c) {{ owner {{ ...P }} }} }} {PROFILE}");
    let (_, body) = app.gql(&q, json!({ "c": owl })).await;
    let owner = &body["data"]["character"]["owner"];
    assert_eq!(
        (&owner["username"], &owner["displayName"], &owner["bio"]),
        (&json!("carol"), &json!("CAROL"), &json!("hi")),
        "{body}"
    );
    let (_, body) = app
        .gql_as(
            &admin,
            "mutation($u: ID!) { setAccountStatus(userId: $u, status: SUSPENDED) { id } }",
            json!({ "u": carol_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let (_, body) = app.gql(&q, json!({ "c": owl })).await;
    assert!(
        shows_nothing_but_the_id(&body["data"]["character"]["owner"], &carol_id),
        "{body}"
    );
    let (_, body) = app.gql_as(&admin, &q, json!({ "c": owl })).await;
    assert_eq!(
        body["data"]["character"]["owner"]["username"], "carol",
        "{body}"
    );
}

// ---- 12: view counts --------------------------------------------------------------------

/// `character(id) { viewCount }` from a client address (the app trusts `X-Forwarded-For`).
async fn view(app: &TestApp, ip: &str, token: Option<&str>, query: &str, id: &Value) -> Value {
    let mut req = app
        .client
        .post(app.url("/graphql"))
        .header("x-forwarded-for", ip)
        .json(&json!({ "query": query, "variables": { "id": id } }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let body: Value = req.send().await.unwrap().json().await.unwrap();
    assert!(body["errors"].is_null(), "{body}");
    body
}

const VIEW: &str = "query($id: ID!) { character(id: $id) { viewCount } }";

#[tokio::test]
async fn a_viewer_counts_one_view_per_character_per_window() {
    // Day-long windows, so the test never straddles a window boundary.
    let app = TestApp::spawn_with(|c| {
        c.trust_proxy = true;
        c.view_window = Duration::from_secs(86_400);
    })
    .await;
    let (owner, _) = user(&app, 1).await;
    let (bob, _) = user(&app, 2).await;
    let (_, body) = app
        .gql_as(
            &owner,
            "mutation { createCharacter(input: { name: \"Fox\", prompt: \"a fox\", styleType: ANIME, isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let id = body["data"]["createCharacter"]["id"].clone();
    let views = || async {
        app.scalar(&format!(
            "SELECT view_count AS n FROM characters WHERE id = '{}'",
            id.as_str().unwrap()
        ))
        .await
    };

    // 150 aliases in one request: one view.
    let aliases: String = (0..150)
        .map(|i| format!("a{i}: character(id: $id) {{ viewCount }} "))
        .collect();
    let many = format!("query($id: ID!) {{ {aliases}}}");
    let body = view(&app, "198.51.100.1", None, &many, &id).await;
    let seen: Vec<i64> = (0..150)
        .map(|i| body["data"][format!("a{i}")]["viewCount"].as_i64().unwrap())
        .collect();
    assert_eq!(seen.iter().max(), Some(&1), "{body}");
    assert_eq!(views().await, 1);

    // The same viewer again within the window: nothing more.
    let body = view(&app, "198.51.100.1", None, VIEW, &id).await;
    assert_eq!(body["data"]["character"]["viewCount"], 1);
    assert_eq!(views().await, 1);

    // Another address: one more; two addresses of one IPv6 /64 are one viewer.
    view(&app, "198.51.100.2", None, VIEW, &id).await;
    assert_eq!(views().await, 2);
    view(&app, "2001:db8:5:6::1", None, &many, &id).await;
    view(&app, "2001:db8:5:6:ffff::2", None, VIEW, &id).await;
    assert_eq!(views().await, 3);

    // A signed-in viewer counts as themself (once), wherever they are.
    let body = view(&app, "198.51.100.1", Some(&bob), VIEW, &id).await;
    assert_eq!(body["data"]["character"]["viewCount"], 4, "{body}");
    view(&app, "198.51.100.9", Some(&bob), &many, &id).await;
    assert_eq!(views().await, 4);

    // The owner never counts.
    view(&app, "198.51.100.3", Some(&owner), VIEW, &id).await;
    assert_eq!(views().await, 4);

    // Once the window has passed, the same viewer counts again.
    app.exec("UPDATE character_view_marks SET window_start = window_start - interval '1 day'")
        .await;
    view(&app, "198.51.100.1", None, VIEW, &id).await;
    assert_eq!(views().await, 5);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM character_view_marks")
            .await,
        5,
        "one mark per viewer and window"
    );

    // Old marks are pruned; current ones stay.
    app.exec(
        "UPDATE character_view_marks SET window_start = window_start - interval '3 days' \
         WHERE viewer LIKE 'ip:%'",
    )
    .await;
    let mut conn = app.db().await;
    let pruned = easel::gallery::model::prune_view_marks(&mut conn)
        .await
        .unwrap();
    assert_eq!(pruned, 4);
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM character_view_marks")
            .await,
        1
    );
}
