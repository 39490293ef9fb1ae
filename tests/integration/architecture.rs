//! Issue #17: one idempotency rule for credits, payments and generation (a canonical request
//! fingerprint, replays, conflicts told apart by type, races settled on the key).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// One source file: its module path from the crate root (`["credits", "graphql"]`) and text.
type SourceFile = (Vec<String>, String);

/// Every `.rs` file under `dir`, with its module path (`mod.rs` names its folder; `lib.rs`
/// and `main.rs` are the crate root, `[]`).
fn source_files(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<SourceFile>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            source_files(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut segments: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if segments.last().is_some_and(|s| s == "mod") {
                segments.pop();
            }
            if segments == ["lib"] || segments == ["main"] {
                segments.clear();
            }
            out.push((segments, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The paths a `crate::`/`super::` path expression at the start of `text` names, with `use`
/// groups (`a::{b, c::{d}}`) expanded. Returns the paths relative to the keyword.
fn path_tree(text: &str) -> Vec<Vec<String>> {
    fn parse(chars: &[char], i: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        let mut path = prefix;
        loop {
            let start = *i;
            while *i < chars.len() && (chars[*i].is_alphanumeric() || chars[*i] == '_') {
                *i += 1;
            }
            if *i > start {
                let ident: String = chars[start..*i].iter().collect();
                if ident != "self" {
                    path.push(ident);
                }
            }
            if chars.get(*i) == Some(&':') && chars.get(*i + 1) == Some(&':') {
                *i += 2;
                if chars.get(*i) == Some(&'{') {
                    *i += 1;
                    loop {
                        while chars
                            .get(*i)
                            .is_some_and(|c| c.is_whitespace() || *c == ',')
                        {
                            *i += 1;
                        }
                        match chars.get(*i) {
                            None => return,
                            Some('}') => {
                                *i += 1;
                                return;
                            }
                            Some(_) => {
                                let before = *i;
                                parse(chars, i, path.clone(), out);
                                // Skip `as name`, `*` and anything else up to the next item.
                                while chars.get(*i).is_some_and(|c| *c != ',' && *c != '}') {
                                    *i += 1;
                                }
                                if *i == before {
                                    *i += 1;
                                }
                            }
                        }
                    }
                }
                continue;
            }
            out.push(path);
            return;
        }
    }
    // A root segment in front, so that `{a, b}` right after the keyword parses as a group.
    let chars: Vec<char> = "_::".chars().chain(text.chars().take(4000)).collect();
    let mut out = Vec::new();
    parse(&chars, &mut 0, Vec::new(), &mut out);
    out.into_iter()
        .map(|path| path.into_iter().skip(1).collect())
        .collect()
}

/// What follows each `prefix` that starts a path (not preceded by an identifier or `::`).
fn path_starts<'a>(code: &'a str, prefix: &str) -> Vec<&'a str> {
    code.match_indices(prefix)
        .filter(|(at, _)| {
            !code[..*at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        })
        .map(|(at, _)| &code[at + prefix.len()..])
        .collect()
}

/// The import graph between modules at (top module, first submodule) granularity, read from
/// `crate::` and `super::` paths outside comments and `#[cfg(test)]` tails. Paths into the
/// crate root itself (`crate::AppState`, macros) are left out.
fn module_edges(files: &[SourceFile]) -> BTreeMap<String, BTreeSet<String>> {
    let mut children: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (segments, _) in files {
        if let Some(top) = segments.first() {
            let entry = children.entry(top.as_str()).or_default();
            if let Some(child) = segments.get(1) {
                entry.insert(child.as_str());
            }
        }
    }
    let node = |path: &[String]| -> Option<String> {
        let top = path.first()?;
        let subs = children.get(top.as_str())?;
        Some(match path.get(1) {
            Some(child) if subs.contains(child.as_str()) => format!("{top}::{child}"),
            _ => top.clone(),
        })
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (segments, text) in files {
        let Some(me) = node(segments) else { continue };
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let code: String = code
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let mut paths: Vec<Vec<String>> = Vec::new();
        for (keyword, base) in [
            ("crate::", &[][..]),
            ("super::", &segments[..segments.len() - 1]),
        ] {
            for tail in path_starts(&code, keyword) {
                paths.extend(
                    path_tree(tail)
                        .into_iter()
                        .map(|p| base.iter().cloned().chain(p).collect()),
                );
            }
        }
        // `use crate::{credits, ...}` then `credits::service::charge_in(..)`.
        let imported: BTreeSet<String> = paths
            .iter()
            .filter(|p| p.len() == 1 && children.contains_key(p[0].as_str()))
            .map(|p| p[0].clone())
            .collect();
        for top in imported {
            for tail in path_starts(&code, &format!("{top}::")) {
                paths.extend(
                    path_tree(tail)
                        .into_iter()
                        .map(|p| std::iter::once(top.clone()).chain(p).collect::<Vec<_>>()),
                );
            }
        }
        for path in paths {
            if let Some(target) = node(&path).filter(|t| *t != me) {
                edges.entry(me.clone()).or_default().insert(target);
            }
        }
    }
    edges
}

/// A cycle of the graph, if it has one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut HashMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(true) => {
                let start = stack.iter().position(|n| *n == node).unwrap();
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            Some(false) => return None,
            None => {}
        }
        state.insert(node, true);
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node, false);
        None
    }
    let mut state = HashMap::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut state, &mut Vec::new()))
}

/// Issue #17: no import cycles between modules. Each capability's layers (`model`,
/// `service`, `graphql`, `loaders`, ...) and each toolkit module is a node; `use` and path
/// references are edges; the graph must be acyclic. (The crate root, which holds `AppState`
/// as the composition root, is not a node.)
#[test]
fn no_import_cycles_between_modules() {
    let file = |path: &[&str], text: &str| -> SourceFile {
        (path.iter().map(|s| s.to_string()).collect(), text.into())
    };
    let probe = [
        file(&["a", "graphql"], "use crate::{b::graphql::B, error};"),
        file(
            &["b", "graphql"],
            "use super::model;\nfn f() { crate::a::graphql::x() }",
        ),
        file(
            &["b", "model"],
            "// crate::a::graphql in a comment is no edge",
        ),
    ];
    let probe_edges = module_edges(&probe);
    assert_eq!(
        find_cycle(&probe_edges),
        Some(vec![
            "a::graphql".into(),
            "b::graphql".into(),
            "a::graphql".into()
        ]),
        "the check finds a planted cycle: {probe_edges:?}"
    );
    assert!(!probe_edges.contains_key("b::model"), "{probe_edges:?}");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    source_files(&root, &root, &mut files);
    let edges = module_edges(&files);
    assert!(
        edges["credits::graphql"].contains("accounts::graphql")
            && edges["payments::service"].contains("credits::service")
            && edges["generation::worker"].contains("gallery::service"),
        "the graph is read: {edges:#?}"
    );
    if let Some(cycle) = find_cycle(&edges) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}
