//! Issue #12: responses in the shape the GraphQL spec gives them, whatever async-graphql's
//! executor does: every selected key present, in selection order, a failed field `null`, and
//! a `null` in a non-null position nulling its parent (up to `data`). Key order is read from
//! the raw body, since `serde_json::Value` sorts keys.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Value, json};

use crate::support::{TestApp, code, user};

/// A JSON value that keeps object keys in document order.
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Other(Value),
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<Ordered>()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
                Ok(Ordered::Other(json!(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
                Ok(Ordered::Other(json!(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
                Ok(Ordered::Other(json!(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
                Ok(Ordered::Other(json!(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
                Ok(Ordered::Other(json!(v)))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Other(Value::Null))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Ordered {
    /// The value at `path` (object keys; array indexes as numbers).
    fn at(&self, path: &[&str]) -> &Ordered {
        path.iter().fold(self, |v, step| match v {
            Ordered::Object(fields) => {
                &fields
                    .iter()
                    .find(|(k, _)| k == step)
                    .unwrap_or_else(|| panic!("no key {step} in {v:?}"))
                    .1
            }
            Ordered::Array(items) => &items[step.parse::<usize>().unwrap()],
            Ordered::Other(_) => panic!("{step}: not an object in {v:?}"),
        })
    }

    /// The keys of the object at `path`, in order.
    fn keys(&self, path: &[&str]) -> Vec<&str> {
        match self.at(path) {
            Ordered::Object(fields) => fields.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("not an object: {other:?}"),
        }
    }

    fn is_null(&self, path: &[&str]) -> bool {
        matches!(self.at(path), Ordered::Other(Value::Null))
    }
}

/// POSTs `query` (with `token` when given); returns the status, the body in key order and as
/// a `Value`.
async fn post(app: &TestApp, token: Option<&str>, query: &str) -> (u16, Ordered, Value) {
    let mut request = reqwest::Client::new()
        .post(app.url("/graphql"))
        .json(&json!({ "query": query }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap(),
        serde_json::from_str(&text).unwrap(),
    )
}

#[tokio::test]
async fn failed_nullable_fields_are_null_in_selection_order() {
    let app = TestApp::spawn().await;
    let (status, ordered, body) = post(
        &app,
        None,
        "{ me { id } character(id: \"x\") { id } plans: paymentPlans { id } a: creditPackages { id } }",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ordered.keys(&["data"]),
        ["me", "character", "plans", "a"],
        "{body}"
    );
    assert!(ordered.is_null(&["data", "character"]));
    assert_eq!(code(&body), "BAD_USER_INPUT");
    assert_eq!(body["errors"][0]["path"], json!(["character"]));
    // `data` comes before `errors`, as the spec recommends.
    let Ordered::Object(top) = &ordered else {
        panic!()
    };
    assert_eq!(top[0].0, "data");
}

#[tokio::test]
async fn a_failed_non_null_field_nulls_its_parent() {
    let app = TestApp::spawn().await;
    // `galleryFeed` is non-null, so its error nulls `data`.
    let (status, ordered, body) = post(
        &app,
        None,
        "{ galleryFeed(first: 1000) { edges { node { id } } } paymentPlans { id } }",
    )
    .await;
    assert_eq!(status, 200, "a field error is not a request error");
    assert!(ordered.is_null(&["data"]), "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["galleryFeed"]));

    // Nested: `Gallery.characters` is non-null, so its error nulls the nullable `gallery`,
    // and the sibling root fields keep their values and places.
    let (token, id) = user(&app, 9101).await;
    let query = format!(
        "{{ before: me {{ id }} gallery(owner: \"{id}\") {{ owner {{ id }} characters(first: 1000) {{ edges {{ node {{ id }} }} }} }} after: me {{ id }} }}"
    );
    let (_, ordered, body) = post(&app, Some(&token), &query).await;
    assert_eq!(
        ordered.keys(&["data"]),
        ["before", "gallery", "after"],
        "{body}"
    );
    assert!(ordered.is_null(&["data", "gallery"]), "{body}");
    assert_eq!(body["data"]["after"]["id"], id);
    assert_eq!(body["errors"][0]["path"], json!(["gallery", "characters"]));

    // A mutation whose non-null payload fails answers `data: null` too.
    let (_, ordered, body) = post(
        &app,
        None,
        "mutation { requestOtp(input: { phone: \"not a phone\" }) { expiresAt } }",
    )
    .await;
    assert!(ordered.is_null(&["data"]), "{body}");
    assert_eq!(code(&body), "BAD_USER_INPUT");
}

#[tokio::test]
async fn nested_keys_follow_the_selection_with_fragments_and_directives() {
    let app = TestApp::spawn().await;
    let (token, id) = user(&app, 9102).await;
    // `credits` comes from a batched loader and finishes last; `__typename` and `username`
    // at once; the answer still follows the document.
    let query = "query($skip: Boolean! = true) {
        me { credits { balance dailyRemaining } ...Names __typename id skipped: id @skip(if: $skip) }
    }
    fragment Names on User { username displayName }";
    let (_, ordered, body) = post(&app, Some(&token), query).await;
    assert_eq!(
        ordered.keys(&["data", "me"]),
        ["credits", "username", "displayName", "__typename", "id"],
        "{body}"
    );
    assert_eq!(
        ordered.keys(&["data", "me", "credits"]),
        ["balance", "dailyRemaining"]
    );
    assert_eq!(body["data"]["me"]["id"], id);
}

#[tokio::test]
async fn subscription_events_are_shaped_too() {
    let app = TestApp::spawn_with(|c| c.workers = 1).await;
    let (token, _) = user(&app, 9103).await;
    let (_, body) = app
        .gql_as(
            &token,
            "mutation { createCharacter(input: { name: \"Kit\", prompt: \"a fox\", styleType: ANIME }) { id } }",
            json!({}),
        )
        .await;
    let character = body["data"]["createCharacter"]["id"].clone();
    let (_, body) = app
        .gql_as(
            &token,
            "mutation($c: ID!) { generate(input: { kind: CHARACTER_GENERATION, prompt: \"a fox\", characterId: $c, params: { width: 64, height: 64 } }) { id } }",
            json!({ "c": character }),
        )
        .await;
    let job = body["data"]["generate"]["id"].clone();
    assert!(job.is_string(), "{body}");
    let mut ws = app.ws_as(&token).await;
    ws.subscribe(
        "subscription($id: ID!) { generationJobUpdated(id: $id) { character { id } status id } }",
        json!({ "id": job }),
    )
    .await;
    // Every event, read as text to see its key order.
    let first = ws.recv_text().await;
    let ordered: Ordered = serde_json::from_str(&first).unwrap();
    assert_eq!(
        ordered.keys(&["payload", "data", "generationJobUpdated"]),
        ["character", "status", "id"],
        "{first}"
    );
}

/// One rule for ids everywhere: a malformed id is `BAD_USER_INPUT` naming the argument; a
/// well-formed id of nothing the viewer may see is `null` from a query field and `NOT_FOUND`
/// from a mutation or subscription.
#[tokio::test]
async fn malformed_and_unknown_ids_follow_one_rule() {
    let app = TestApp::spawn().await;
    let (token, _) = crate::support::vendor(&app, 9104, "Ids Inc").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let queries = [
        ("user", "user(id: $id) { id }"),
        ("payment", "payment(id: $id) { id }"),
        ("generationJob", "generationJob(id: $id) { id }"),
        ("gallery", "gallery(owner: $id) { owner { id } }"),
        ("character", "character(id: $id) { id }"),
        ("collection", "collection(id: $id) { id }"),
        ("album", "album(id: $id) { id }"),
        ("image", "image(id: $id) { id }"),
    ];
    for (field, selection) in queries {
        let query = format!("query($id: ID!) {{ {selection} }}");
        let (_, body) = app.gql_as(&token, &query, json!({ "id": "x" })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{field}: {body}");
        assert_eq!(body["data"][field], Value::Null, "{field}: {body}");
        let (_, body) = app.gql_as(&token, &query, json!({ "id": unknown })).await;
        assert!(body["errors"].is_null(), "{field}: {body}");
        assert_eq!(body["data"][field], Value::Null, "{field}: {body}");
    }
    let mutations = [
        ("cancelGenerationJob", "cancelGenerationJob(id: $id) { id }"),
        ("retryGenerationJob", "retryGenerationJob(id: $id) { id }"),
        (
            "updateCharacter",
            "updateCharacter(id: $id, input: { name: \"n\" }) { id }",
        ),
        ("deleteCharacter", "deleteCharacter(id: $id)"),
        ("publishCharacter", "publishCharacter(id: $id) { id }"),
        ("likeCharacter", "likeCharacter(id: $id) { id }"),
        ("unlikeCharacter", "unlikeCharacter(id: $id) { id }"),
        ("rateCharacter", "rateCharacter(id: $id, rating: 5) { id }"),
        (
            "updateCollection",
            "updateCollection(id: $id, input: { name: \"n\" }) { id }",
        ),
        ("deleteCollection", "deleteCollection(id: $id)"),
        (
            "addToCollection",
            "addToCollection(collectionId: $id, characterIds: []) { id }",
        ),
        (
            "removeFromCollection",
            "removeFromCollection(collectionId: $id, characterIds: []) { id }",
        ),
        (
            "reorderCollection",
            "reorderCollection(collectionId: $id, characterIds: []) { id }",
        ),
        (
            "updateAlbum",
            "updateAlbum(id: $id, input: { name: \"n\" }) { id }",
        ),
        ("deleteAlbum", "deleteAlbum(id: $id)"),
        (
            "addImagesToAlbum",
            "addImagesToAlbum(albumId: $id, imageIds: []) { id }",
        ),
        (
            "removeImagesFromAlbum",
            "removeImagesFromAlbum(albumId: $id, imageIds: []) { id }",
        ),
        (
            "reorderAlbum",
            "reorderAlbum(albumId: $id, imageIds: []) { id }",
        ),
        (
            "giftCredits",
            "giftCredits(input: { toUserId: $id, amount: 1 }) { id }",
        ),
    ];
    for (field, selection) in mutations {
        let query = format!("mutation($id: ID!) {{ {selection} }}");
        let (_, body) = app.gql_as(&token, &query, json!({ "id": "x" })).await;
        assert_eq!(code(&body), "BAD_USER_INPUT", "{field}: {body}");
        let (_, body) = app.gql_as(&token, &query, json!({ "id": unknown })).await;
        assert_eq!(code(&body), "NOT_FOUND", "{field}: {body}");
    }
    let mut ws = app.ws_as(&token).await;
    for (id, expected) in [("x", "BAD_USER_INPUT"), (unknown.as_str(), "NOT_FOUND")] {
        ws.subscribe(
            "subscription($id: ID!) { generationJobUpdated(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
        let refused = ws.recv().await.unwrap().unwrap();
        let errors = if refused["type"] == "error" {
            refused["payload"].clone()
        } else {
            // A `next` carrying the error, then the operation's `complete`.
            let complete = ws.recv().await.unwrap().unwrap();
            assert_eq!(complete["type"], "complete", "{complete}");
            refused["payload"]["errors"].clone()
        };
        assert_eq!(errors[0]["extensions"]["code"], expected, "{refused}");
    }
}

/// Apollo's normalised cache keys objects by `__typename` and `id`: the account in
/// `me { credits }` and in `creditBalanceChanged` is one object, and so are galleries,
/// vendor profiles and prices.
#[tokio::test]
async fn entity_types_have_stable_ids() {
    let app = TestApp::spawn().await;
    let (token, id) = user(&app, 9105).await;
    let (giver, _) = user(&app, 9106).await;
    let (_, body) = app
        .gql_as(
            &token,
            "query($id: ID!) { me { credits { id } } gallery(owner: $id) { id } operationPrices { id operation } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(body["data"]["me"]["credits"]["id"], id, "{body}");
    assert_eq!(body["data"]["gallery"]["id"], id);
    for price in body["data"]["operationPrices"].as_array().unwrap() {
        assert_eq!(price["id"], price["operation"]);
    }
    let mut ws = app.ws_as(&token).await;
    ws.subscribe(
        "subscription { creditBalanceChanged { id balance } }",
        json!({}),
    )
    .await;
    // The subscription is live once the server has answered a ping round trip; give the
    // listener a moment, then change the balance.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (_, body) = app
        .gql_as(
            &giver,
            "mutation($to: ID!) { giftCredits(input: { toUserId: $to, amount: 1 }) { id } }",
            json!({ "to": id }),
        )
        .await;
    assert!(body["errors"].is_null(), "{body}");
    let event = ws.recv().await.unwrap().unwrap();
    assert_eq!(
        event["payload"]["data"]["creditBalanceChanged"]["id"], id,
        "{event}"
    );

    let (vendor_token, vendor_id) = crate::support::vendor(&app, 9107, "Keyed Ltd").await;
    let (_, body) = app
        .gql_as(&vendor_token, "{ me { vendorProfile { id } } }", json!({}))
        .await;
    assert_eq!(
        body["data"]["me"]["vendorProfile"]["id"], vendor_id,
        "{body}"
    );
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Automatic persisted queries as Apollo's `createPersistedQueryLink` sends them: POST, and
/// GET with `useGETForHashedQueries`.
#[tokio::test]
async fn automatic_persisted_queries_over_post_and_get() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::new();
    let query = "query Plans { paymentPlans { id name } }";
    let hash = sha256_hex(query);
    let ext = json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } });

    // Hash only, unknown: 200 with PERSISTED_QUERY_NOT_FOUND (so Apollo retries with the text).
    let resp = client
        .post(app.url("/graphql"))
        .json(&json!({ "operationName": "Plans", "extensions": ext }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");

    // The text with a hash that is not its own: refused, not remembered.
    let other =
        json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex("{ me { id } }") } });
    let resp = client
        .post(app.url("/graphql"))
        .json(&json!({ "query": query, "extensions": other }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");

    // The text with its hash: runs and registers.
    let (_, registered) = {
        let resp = client
            .post(app.url("/graphql"))
            .json(&json!({ "query": query, "operationName": "Plans", "extensions": ext }))
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap())
    };
    assert!(
        registered["data"]["paymentPlans"].is_array(),
        "{registered}"
    );

    // Hash only now works, over POST and GET; anonymous GETs may be cached by anyone.
    let resp = client
        .post(app.url("/graphql"))
        .json(&json!({ "operationName": "Plans", "extensions": ext }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), registered);
    let get = |token: Option<String>| {
        let mut request = client.get(app.url("/graphql")).query(&[
            ("operationName", "Plans"),
            ("variables", "{}"),
            ("extensions", &ext.to_string()),
        ]);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let resp = get(None).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "public, max-age=30");
    assert_eq!(resp.headers()["vary"], "Authorization");
    assert_eq!(resp.json::<Value>().await.unwrap(), registered);
    let (token, _) = user(&app, 9108).await;
    let resp = get(Some(token)).await.unwrap();
    assert_eq!(resp.headers()["cache-control"], "private, no-store");

    // An unknown hash over GET: the same 200 and code, and not cacheable.
    let unknown =
        json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex("{ __typename }") } });
    let resp = client
        .get(app.url("/graphql"))
        .query(&[("extensions", unknown.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()
            .get("cache-control")
            .is_none_or(|v| v != "public, max-age=30")
    );
    assert_eq!(
        code(&resp.json::<Value>().await.unwrap()),
        "PERSISTED_QUERY_NOT_FOUND"
    );

    // A persisted mutation still may not run over GET.
    let mutation = "mutation Out { signOut }";
    let mext = json!({ "persistedQuery": { "version": 1, "sha256Hash": sha256_hex(mutation) } });
    client
        .post(app.url("/graphql"))
        .json(&json!({ "query": mutation, "extensions": mext }))
        .send()
        .await
        .unwrap();
    let resp = client
        .get(app.url("/graphql"))
        .query(&[("extensions", mext.to_string())])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 405, "{}", resp.text().await.unwrap());
    // So may a named mutation sent as text without `operationName` (it used to run: a
    // document's only operation is the one that runs, named or not).
    let resp = client
        .get(app.url("/graphql"))
        .query(&[("query", mutation)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}
