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
