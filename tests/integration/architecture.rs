//! Issue #17: one idempotency rule for credits, payments and generation (a canonical request
//! fingerprint, replays, conflicts told apart by type, races settled on the key).

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, code, user};

/// Sends one mutation `n` times at once; returns the `id` each answer gives for `field`.
async fn all_at_once(app: &TestApp, token: &str, query: &str, field: &str, n: usize) -> Vec<Value> {
    let answers = join_all((0..n).map(|_| app.gql_as(token, query, json!({})))).await;
    answers
        .into_iter()
        .map(|(_, body)| {
            assert!(body["errors"].is_null(), "{body}");
            body["data"][field]["id"].clone()
        })
        .collect()
}

#[tokio::test]
async fn parallel_first_uses_of_a_key_answer_one_result() {
    let app = TestApp::spawn_with(|c| c.db_pool_size = 20).await;
    let (token, _) = user(&app, 7001).await;
    let (_, bob) = user(&app, 7002).await;
    let gift = format!(
        "mutation {{ giftCredits(input: {{ toUserId: \"{bob}\", amount: 1, idempotencyKey: \"race\" }}) {{ id }} }}"
    );
    let purchase = "mutation { purchaseCredits(input: { packageId: \"0191f000-0000-7000-8000-000000000002\", gateway: SANDBOX, idempotencyKey: \"race\" }) { id } }";
    let generate = "mutation { generate(input: { kind: LOGO, prompt: \"acme\", params: { width: 512, cfgScale: 7.5 }, idempotencyKey: \"race\" }) { id } }";
    for (query, field, table) in [
        (gift.as_str(), "giftCredits", "credit_transactions"),
        (purchase, "purchaseCredits", "payments"),
        (generate, "generate", "generation_jobs"),
    ] {
        let ids = all_at_once(&app, &token, query, field, 8).await;
        assert!(ids[0].is_string(), "{ids:?}");
        assert!(ids.iter().all(|id| *id == ids[0]), "{field}: {ids:?}");
        assert_eq!(
            app.scalar(&format!(
                "SELECT count(*) AS n FROM {table} WHERE idempotency_key = 'race'"
            ))
            .await,
            1,
            "{field}"
        );
    }
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM credit_transactions WHERE kind = 'usage'")
            .await,
        1,
        "the job was charged once"
    );
    app.assert_ledger_ok().await;
}

/// Bug 5: generation fingerprinted `format!("{:?}", params)`. The fingerprint is canonical
/// JSON now: the same parameters in another order replay the job, other parameters are a
/// `CONFLICT` with the message it always had.
#[tokio::test]
async fn generation_replays_by_canonical_fingerprint() {
    let app = TestApp::spawn().await;
    let (token, _) = user(&app, 7003).await;
    let send = async |body: &str| -> Value {
        app.client
            .post(app.url("/graphql"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    let query = "mutation($i: GenerateInput!) { generate(input: $i) { id } }";
    let first = send(&format!(
        r#"{{"query": "{query}", "variables": {{"i": {{"kind": "LOGO", "prompt": "acme", "idempotencyKey": "k1", "params": {{"width": 512, "cfgScale": 7.5, "seed": 7}}}}}}}}"#
    ))
    .await;
    let job = &first["data"]["generate"]["id"];
    assert!(job.is_string(), "{first}");
    let reordered = send(&format!(
        r#"{{"variables": {{"i": {{"params": {{"seed": 7, "cfgScale": 7.5, "width": 512}}, "idempotencyKey": "k1", "prompt": "acme", "kind": "LOGO"}}}}, "query": "{query}"}}"#
    ))
    .await;
    assert_eq!(&reordered["data"]["generate"]["id"], job, "{reordered}");
    let other = send(&format!(
        r#"{{"query": "{query}", "variables": {{"i": {{"kind": "LOGO", "prompt": "acme", "idempotencyKey": "k1", "params": {{"width": 512, "cfgScale": 7.25, "seed": 7}}}}}}}}"#
    ))
    .await;
    assert_eq!(code(&other), "CONFLICT", "{other}");
    assert_eq!(
        other["errors"][0]["message"],
        easel::error::IDEMPOTENCY_CONFLICT
    );
    assert_eq!(
        app.scalar("SELECT count(*) AS n FROM generation_jobs")
            .await,
        1
    );
}

/// Every type, field, argument, input field and enum value of the SDL carries a description,
/// so GraphiQL's docs pane and generated client types explain the whole contract.
#[test]
fn every_sdl_item_is_documented() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    let sdl = easel::schema::sdl();
    let document = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let mut missing = Vec::new();
    let mut note = |described: bool, path: String| {
        if !described {
            missing.push(path);
        }
    };
    for definition in &document.definitions {
        let TypeSystemDefinition::Type(ty) = definition else {
            continue;
        };
        let ty = &ty.node;
        let name = ty.name.node.as_str();
        // async-graphql's Relay `XConnection` types come without a type description (their
        // fields have one); every other type is Easel's own.
        note(
            ty.description.is_some() || name.ends_with("Connection"),
            name.to_owned(),
        );
        let fields = match &ty.kind {
            TypeKind::Object(object) => &object.fields,
            TypeKind::Interface(interface) => &interface.fields,
            TypeKind::Enum(enumeration) => {
                for value in &enumeration.values {
                    let value = &value.node;
                    note(
                        value.description.is_some(),
                        format!("{name}.{}", value.value.node),
                    );
                }
                continue;
            }
            TypeKind::InputObject(input) => {
                for field in &input.fields {
                    let field = &field.node;
                    note(
                        field.description.is_some(),
                        format!("{name}.{}", field.name.node),
                    );
                }
                continue;
            }
            TypeKind::Scalar | TypeKind::Union(_) => continue,
        };
        for field in fields {
            let field = &field.node;
            let path = format!("{name}.{}", field.name.node);
            note(field.description.is_some(), path.clone());
            for argument in &field.arguments {
                let argument = &argument.node;
                note(
                    argument.description.is_some(),
                    format!("{path}({})", argument.name.node),
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} undocumented SDL items:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
