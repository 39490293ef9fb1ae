//! Look-ahead plans (issue #11): the hot list pages fetch what the selection asks for in one
//! statement. Two servers share one database, one planning and one with
//! `EASEL_QUERY_PLANNER=false` (dataloaders only); every query below must get the same answer
//! from both, for every kind of viewer, and the privacy rules must hold on both paths. The
//! planned pages' statement counts are counted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::gallery::{basic, character, upload};
use crate::support::{TestApp, user, vendor};

/// The fields of a character every page query below selects (fragments and aliases on
/// purpose: the planner must follow them).
const CHARACTER: &str = "fragment C on Character { id name isPublic owner { id username displayName } primaryImage { id isPublic width } images(first: 2) { id isPublic } viewerHasLiked averageRating ratingCount }";

fn with_fragment(query: &str) -> String {
    format!("{query} {CHARACTER}")
}

const FEED: &str = "query { galleryFeed(first: 50) { edges { cursor node { ...C } } nodes { id ... on Character { likeCount } } pageInfo { hasNextPage endCursor } } }";
const GALLERY: &str =
    "query($o: ID!) { gallery(owner: $o) { characters(first: 10) { nodes { ...C } } } }";
const COLLECTION: &str = "query($c: ID!) { collection(id: $c) { characters { edges { node { ...C alias: owner { id } } } } } }";
/// Two different `first`s on `images`: the planner leaves them to the loader.
const MIXED: &str = "query($o: ID!) { gallery(owner: $o) { characters { nodes { id one: images(first: 1) { id } three: images(first: 3) { id } owner { id } } } } }";
const ALBUM: &str = "query($a: ID!) { album(id: $a) { images { edges { node { id isPublic owner { id username } } } } } }";
const HISTORY: &str = "query { creditHistory(first: 50) { edges { node { kind amount balanceAfter payment { id status amountMinor } counterparty { id username } } } } }";
const JOBS: &str = "query { generationJobs(first: 10) { edges { node { id status outputs { id width isPublic } character { id name } } } } }";

/// Both servers on one database: `planned` (the default) and `loaders` (planner off).
struct Pair {
    planned: TestApp,
    loaders: TestApp,
}

impl Pair {
    async fn spawn() -> Self {
        let planned = TestApp::spawn_with(|c| {
            c.workers = 1;
            c.procedural_delay = Duration::ZERO;
        })
        .await;
        let secret = planned.state.config.jwt_secret.clone();
        let loaders = TestApp::spawn_on(planned.db_url.clone(), |c| {
            c.query_planner = false;
            c.jwt_secret = secret;
        })
        .await;
        Pair { planned, loaders }
    }

    /// The answer of both servers to `query` for `token`, asserted equal and error-free.
    async fn same(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (_, planned) = self.planned.gql_with(token, query, variables.clone()).await;
        let (_, loaders) = self.loaders.gql_with(token, query, variables).await;
        assert!(planned["errors"].is_null(), "{planned}");
        assert_eq!(
            planned, loaders,
            "planned and loader answers differ for {query}"
        );
        planned
    }
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|n| n["name"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn planned_pages_answer_what_the_loaders_answer_and_keep_privacy() {
    let pair = Pair::spawn().await;
    let app = &pair.planned;
    let (alice, alice_id) = user(app, 11).await;
    let (bob, _) = user(app, 12).await;
    let (carol, carol_id) = user(app, 13).await;
    let (dave, _) = user(app, 14).await;
    let admin = app.admin_token("+14155550199").await;

    // Alice: a public character whose primary image is private and whose images are one
    // private and two public, and a private character.
    let private_img = upload(app, &alice, false).await;
    let public_a = upload(app, &alice, true).await;
    let public_b = upload(app, &alice, true).await;
    let mut shown = basic("Shown", true);
    shown["imageIds"] = json!([private_img["id"], public_a["id"], public_b["id"]]);
    shown["primaryImageId"] = private_img["id"].clone();
    let shown = character(app, &alice, shown).await;
    let secret = character(app, &alice, basic("Secret", false)).await;
    // Publishing made Alice's character images public; make the first one private again.
    app.exec(&format!(
        "UPDATE images SET is_public = false WHERE id = '{}'",
        private_img["id"].as_str().unwrap()
    ))
    .await;
    // Carol's account is suspended; Dave keeps his characters out of the showcase.
    character(app, &carol, basic("Suspended", true)).await;
    app.exec(&format!(
        "UPDATE users SET account_status = 'suspended' WHERE id = '{carol_id}'"
    ))
    .await;
    character(app, &dave, basic("OptedOut", true)).await;
    app.exec("UPDATE users SET allow_gallery_showcase = false WHERE phone = '+14155550014'")
        .await;
    // Bob likes and rates Shown; the admin rates it too.
    for (token, stars) in [(&bob, 4), (&admin, 5)] {
        let (_, body) = app
            .gql_as(
                token,
                "mutation($id: ID!, $r: Int!) { likeCharacter(id: $id) { id } rateCharacter(id: $id, rating: $r) { id } }",
                json!({ "id": shown["id"], "r": stars }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
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
            "mutation($c: ID!, $ids: [ID!]!) { addToCollection(collectionId: $c, characterIds: $ids) { id } }",
            json!({ "c": collection, "ids": [secret["id"], shown["id"]] }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");

    let viewers = [
        None,
        Some(alice.as_str()),
        Some(bob.as_str()),
        Some(admin.as_str()),
    ];
    let feed = with_fragment(FEED);
    let gallery = with_fragment(GALLERY);
    let in_collection = with_fragment(COLLECTION);
    for viewer in viewers {
        let body = pair.same(viewer, &feed, json!({})).await;
        let nodes: Vec<Value> = body["data"]["galleryFeed"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        // Only Alice's public character: not Carol's (suspended), not Dave's (opted out).
        assert_eq!(names(&Value::from(nodes.clone())), ["Shown"], "{body}");
        let node = &nodes[0];
        assert_eq!(node["owner"]["id"], alice_id.as_str());
        assert_eq!(node["ratingCount"], 2);
        assert_eq!(node["averageRating"], 4.5);
        assert_eq!(
            node["viewerHasLiked"],
            viewer == Some(bob.as_str()) || viewer == Some(admin.as_str())
        );
        // The private primary image and the private first image: only Alice and admins.
        let sees_private = viewer == Some(alice.as_str()) || viewer == Some(admin.as_str());
        assert_eq!(node["primaryImage"].is_null(), !sees_private, "{node}");
        let images: Vec<&Value> = node["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| &i["id"])
            .collect();
        if sees_private {
            assert_eq!(images, [&private_img["id"], &public_a["id"]]);
        } else {
            assert_eq!(images, [&public_a["id"], &public_b["id"]]);
        }

        let body = pair.same(viewer, &gallery, json!({ "o": alice_id })).await;
        let expected: &[&str] = if sees_private {
            &["Secret", "Shown"]
        } else {
            &["Shown"]
        };
        assert_eq!(
            names(&body["data"]["gallery"]["characters"]["nodes"]),
            expected
        );

        let body = pair
            .same(viewer, &in_collection, json!({ "c": collection }))
            .await;
        let members: Vec<Value> = body["data"]["collection"]["characters"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"].clone())
            .collect();
        assert_eq!(names(&Value::from(members)), expected);

        let body = pair.same(viewer, MIXED, json!({ "o": alice_id })).await;
        assert!(body["data"]["gallery"]["characters"]["nodes"].is_array());

        // A suspended owner's gallery stays hidden from others on both paths.
        let body = pair.same(viewer, &gallery, json!({ "o": carol_id })).await;
        if viewer == Some(admin.as_str()) {
            assert_eq!(
                names(&body["data"]["gallery"]["characters"]["nodes"]),
                ["Suspended"]
            );
        } else {
            assert!(body["data"]["gallery"].is_null(), "{body}");
        }
    }
}

#[tokio::test]
async fn planned_albums_ledgers_and_jobs_answer_what_the_loaders_answer() {
    let pair = Pair::spawn().await;
    let app = &pair.planned;
    let (seller, seller_id) = vendor(app, 21, "Prints").await;
    let (buyer, buyer_id) = user(app, 22).await;
    let admin = app.admin_token("+14155550299").await;

    // An album with a private and a public image.
    let hidden = upload(app, &seller, false).await;
    let shown = upload(app, &seller, true).await;
    let (_, body) = app
        .gql_as(
            &seller,
            "mutation { createAlbum(input: { name: \"Spring\", isPublic: true }) { id } }",
            json!({}),
        )
        .await;
    let album = body["data"]["createAlbum"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &seller,
            "mutation($a: ID!, $ids: [ID!]!) { addImagesToAlbum(albumId: $a, imageIds: $ids) { imageCount } }",
            json!({ "a": album, "ids": [hidden["id"], shown["id"]] }),
        )
        .await;
    assert_eq!(body["data"]["addImagesToAlbum"]["imageCount"], 2, "{body}");
    for (viewer, expected) in [
        (None, vec![&shown["id"]]),
        (Some(buyer.as_str()), vec![&shown["id"]]),
        (Some(seller.as_str()), vec![&hidden["id"], &shown["id"]]),
        (Some(admin.as_str()), vec![&hidden["id"], &shown["id"]]),
    ] {
        let body = pair.same(viewer, ALBUM, json!({ "a": album })).await;
        let edges = body["data"]["album"]["images"]["edges"].as_array().unwrap();
        let ids: Vec<&Value> = edges.iter().map(|e| &e["node"]["id"]).collect();
        assert_eq!(ids, expected, "{body}");
        for e in edges {
            assert_eq!(e["node"]["owner"]["id"], seller_id.as_str());
        }
    }

    // The buyer's ledger: a gift from the seller (a counterparty) and a completed purchase
    // (a payment), besides the sign-up bonus.
    let (_, body) = app
        .gql_as(
            &seller,
            "mutation($to: ID!) { giftCredits(input: { toUserId: $to, amount: 3, note: \"hi\", idempotencyKey: \"g1\" }) { id } }",
            json!({ "to": buyer_id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    app.exec(&format!(
        "WITH p AS (INSERT INTO payments (id, user_id, package_id, gateway, amount_minor, currency, status, credits_granted) \
         SELECT gen_random_uuid(), '{buyer_id}', id, 'sandbox', 499, 'USD', 'completed', 7 \
         FROM credit_packages ORDER BY sort_order LIMIT 1 RETURNING id), \
         a AS (UPDATE credit_accounts SET balance = balance + 7, total_purchased = total_purchased + 7 \
               WHERE user_id = '{buyer_id}' RETURNING balance) \
         INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, description, payment_id) \
         SELECT gen_random_uuid(), '{buyer_id}', 'purchase', 7, a.balance, 'Purchase', p.id FROM p, a"
    ))
    .await;
    for token in [&buyer, &seller] {
        let body = pair.same(Some(token), HISTORY, json!({})).await;
        let kinds: Vec<&str> = body["data"]["creditHistory"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"SIGNUP_BONUS"), "{body}");
        let edges = body["data"]["creditHistory"]["edges"].as_array().unwrap();
        let gift = edges
            .iter()
            .find(|e| e["node"]["kind"].as_str().unwrap().starts_with("GIFT"))
            .unwrap_or_else(|| panic!("{body}"));
        assert!(gift["node"]["counterparty"]["id"].is_string(), "{gift}");
        assert!(gift["node"]["payment"].is_null());
    }
    let body = pair.same(Some(&buyer), HISTORY, json!({})).await;
    let purchase = body["data"]["creditHistory"]["edges"][0]["node"].clone();
    assert_eq!(purchase["kind"], "PURCHASE", "{body}");
    assert_eq!(purchase["payment"]["status"], "COMPLETED");
    assert_eq!(purchase["payment"]["amountMinor"], 499);

    // Jobs: one for a character, rendered by the planned server's worker, and one without.
    let made = character(app, &buyer, basic("Rendered", false)).await;
    for input in [
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "a fox", "characterId": made["id"], "outputCount": 2, "params": { "width": 64, "height": 64 } }),
        json!({ "kind": "CHARACTER_GENERATION", "prompt": "an owl", "outputCount": 1, "params": { "width": 64, "height": 64 } }),
    ] {
        let (_, body) = app
            .gql_as(
                &buyer,
                "mutation($i: GenerateInput!) { generate(input: $i) { id } }",
                json!({ "i": input }),
            )
            .await;
        assert!(body["errors"].is_null(), "{body}");
    }
    // Compared once the jobs are done: while the worker writes, two reads a moment apart
    // may rightly differ.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = pair.planned.gql_as(&buyer, JOBS, json!({})).await;
        let edges = body["data"]["generationJobs"]["edges"]
            .as_array()
            .unwrap()
            .clone();
        if edges.iter().all(|e| e["node"]["status"] == "SUCCEEDED") {
            let body = pair.same(Some(&buyer), JOBS, json!({})).await;
            let edges = body["data"]["generationJobs"]["edges"].as_array().unwrap();
            let owl = &edges[0]["node"];
            let fox = &edges[1]["node"];
            assert!(owl["character"].is_null(), "{owl}");
            assert_eq!(owl["outputs"].as_array().unwrap().len(), 1);
            assert_eq!(fox["character"]["name"], "Rendered");
            assert_eq!(fox["outputs"].as_array().unwrap().len(), 2);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "jobs did not finish: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.assert_ledger_ok().await;
}

/// How many SQL statements the planned server runs for each page query, with 5 and with 50
/// items: one for a planned page, plus one for the root object that holds it.
#[tokio::test]
async fn a_planned_page_is_one_statement_whatever_its_size() {
    let pair = Pair::spawn().await;
    let app = &pair.planned;
    let (token, id) = user(app, 31).await;
    crate::gallery::seed_feed(app, &id, 60).await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createCollection(input: { name: \"All\" }) { id } }",
            json!({}),
        )
        .await;
    let collection = body["data"]["createCollection"]["id"].clone();
    app.exec(&format!(
        "INSERT INTO collection_characters (collection_id, character_id, position) \
         SELECT '{}', id, row_number() OVER (ORDER BY id) FROM characters",
        collection.as_str().unwrap()
    ))
    .await;
    app.exec(&format!(
        "INSERT INTO credit_transactions (id, user_id, kind, amount, balance_after, description, counterparty_id) \
         SELECT gen_random_uuid(), '{id}', 'admin_adjustment', 0, b.balance, 'note', '{id}' \
         FROM generate_series(1, 60), (SELECT balance FROM credit_accounts WHERE user_id = '{id}') b"
    ))
    .await;
    app.stop_background();
    pair.loaders.stop_background();
    let node = "id name owner { id username } primaryImage { id } images(first: 4) { id } viewerHasLiked averageRating ratingCount";
    let pages = [
        (format!("query($n: Int) {{ galleryFeed(first: $n) {{ edges {{ node {{ {node} }} }} }} }}"), 1),
        (format!("query($n: Int) {{ gallery(owner: \"{id}\") {{ characters(first: $n) {{ nodes {{ {node} }} }} }} }}"), 2),
        (format!("query($n: Int) {{ collection(id: {collection}) {{ characters(first: $n) {{ edges {{ node {{ {node} }} }} }} }} }}"), 2),
        ("query($n: Int) { creditHistory(first: $n) { edges { node { kind payment { id } counterparty { id } } } } }".to_string(), 1),
    ];
    for (query, planned_statements) in &pages {
        for n in [5, 50] {
            for (server, planned) in [(&pair.planned, true), (&pair.loaders, false)] {
                let before = server.state.statements.get();
                let (_, body) = server.gql_as(&token, query, json!({ "n": n })).await;
                let count = server.state.statements.get() - before;
                assert!(body["errors"].is_null(), "{body}");
                let text = body.to_string();
                assert!(text.matches("\"id\"").count() >= n as usize, "{text}");
                if planned {
                    assert_eq!(count, *planned_statements, "{n} items of {query}");
                } else {
                    // The loader path: a handful per request (a batch may split on a busy
                    // machine), never one per item.
                    assert!(count <= 9, "{count} statements for {n} items of {query}");
                }
            }
        }
    }
}
