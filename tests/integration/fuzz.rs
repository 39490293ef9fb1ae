//! A property test of the whole executor: documents and variables generated from the schema
//! itself (valid ones, wrong ones, hostile ones, and byte-level damage of all of them) run as
//! anonymous callers, users and admins. Whatever comes in, nothing may panic, no error may be
//! `INTERNAL` or lack a code, every request must finish, and memory must stay bounded.
//!
//! `EASEL_FUZZ_SEED` and `EASEL_FUZZ_CASES` (default 1,500) reproduce or widen a run; a
//! failure prints the seed, the case number, the document and the variables.

use std::{
    collections::{BTreeMap, HashMap},
    time::{Duration, Instant},
};

use async_graphql::{
    Executor, Request, Variables,
    parser::types::{BaseType, Type, TypeKind, TypeSystemDefinition},
};
use easel::accounts::service::RequestMeta;
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use serde_json::{Value, json};

use crate::support::TestApp;

struct Arg {
    name: String,
    ty: Type,
}

struct Field {
    name: String,
    args: Vec<Arg>,
    ty: Type,
}

enum Kind {
    Object(Vec<Field>),
    Union(Vec<String>),
    Enum(Vec<String>),
    Input(Vec<Arg>),
    Scalar,
}

/// The schema's types, read from its own SDL.
struct Model {
    types: HashMap<String, Kind>,
}

impl Model {
    fn from_sdl(sdl: &str) -> Self {
        let doc = async_graphql::parser::parse_schema(sdl).expect("the SDL parses");
        let args = |list: &[async_graphql::Positioned<
            async_graphql::parser::types::InputValueDefinition,
        >]| {
            list.iter()
                .map(|a| Arg {
                    name: a.node.name.node.to_string(),
                    ty: a.node.ty.node.clone(),
                })
                .collect::<Vec<_>>()
        };
        let fields = |list: &[async_graphql::Positioned<
            async_graphql::parser::types::FieldDefinition,
        >]| {
            list.iter()
                .map(|f| Field {
                    name: f.node.name.node.to_string(),
                    args: args(&f.node.arguments),
                    ty: f.node.ty.node.clone(),
                })
                .collect::<Vec<_>>()
        };
        let mut types = HashMap::new();
        for def in doc.definitions {
            let TypeSystemDefinition::Type(t) = def else {
                continue;
            };
            let kind = match &t.node.kind {
                TypeKind::Object(o) => Kind::Object(fields(&o.fields)),
                TypeKind::Interface(i) => Kind::Object(fields(&i.fields)),
                TypeKind::Union(u) => {
                    Kind::Union(u.members.iter().map(|m| m.node.to_string()).collect())
                }
                TypeKind::Enum(e) => Kind::Enum(
                    e.values
                        .iter()
                        .map(|v| v.node.value.node.to_string())
                        .collect(),
                ),
                TypeKind::InputObject(i) => Kind::Input(args(&i.fields)),
                TypeKind::Scalar => Kind::Scalar,
            };
            types.insert(t.node.name.node.to_string(), kind);
        }
        Model { types }
    }
}

fn named(ty: &Type) -> &str {
    match &ty.base {
        BaseType::Named(n) => n.as_str(),
        BaseType::List(inner) => named(inner),
    }
}

/// Strings that have broken servers before.
const STRINGS: &[&str] = &[
    "",
    "a",
    "日本語のテキスト",
    "😀🎨",
    "a\u{0}b",
    "\u{202e}reversed",
    "' OR 1=1 --",
    "../../etc/passwd",
    "+14155552671",
    "+1",
    "test@example.com",
    "Europe/Berlin",
    "Not/AZone",
    "0196f0c4-8a0e-7d3b-9c1e-3f2a1b0c9d8e",
    "00000000-0000-0000-0000-000000000000",
    "http://127.0.0.1:1/x",
    "javascript:alert(1)",
    "\\",
    "\"",
    "\n\r\t",
    "%00",
    "eyJhbGciOiJub25lIn0.e30.",
];

struct Gen<'a> {
    model: &'a Model,
    rng: StdRng,
    vars: Vec<(String, String, Value)>,
    fragments: Vec<String>,
    next_fragment: usize,
}

impl<'a> Gen<'a> {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn string(&mut self) -> String {
        match self.rng.random_range(0..10) {
            0 => "x".repeat(self.rng.random_range(100..5_000)),
            1 => (0..self.rng.random_range(1..40))
                .map(|_| char::from(self.rng.random_range(0x20u8..0x7f)))
                .collect(),
            _ => STRINGS.choose(&mut self.rng).unwrap().to_string(),
        }
    }

    fn int(&mut self) -> Value {
        json!(
            *[
                0i64,
                1,
                -1,
                2,
                4,
                5,
                20,
                100,
                101,
                1_000_000_000,
                2_147_483_647,
                -2_147_483_648,
                i64::MAX,
                i64::MIN
            ]
            .choose(&mut self.rng)
            .unwrap()
        )
    }

    /// A JSON value for a variable of `ty` (sometimes of the wrong shape on purpose).
    fn json(&mut self, ty: &Type, depth: usize) -> Value {
        if depth > 6 || (ty.nullable && self.chance(0.1)) {
            return Value::Null;
        }
        if self.chance(0.02) {
            // The wrong shape: a deep list, an object, a huge number.
            return match self.rng.random_range(0..3) {
                0 => (0..100).fold(json!("deep"), |v, _| json!([v])),
                1 => json!({ "unexpected": [1, { "x": "\u{0}" }] }),
                _ => json!(1e308),
            };
        }
        match &ty.base {
            BaseType::List(inner) => {
                let n = self.rng.random_range(0..4);
                Value::Array((0..n).map(|_| self.json(inner, depth + 1)).collect())
            }
            BaseType::Named(name) => match name.as_str() {
                "Int" => self.int(),
                "Float" => json!(self.rng.random_range(-1e6..1e6)),
                "Boolean" => json!(self.chance(0.5)),
                "String" | "ID" | "DateTime" | "Upload" => json!(self.string()),
                "JSON" => json!({ "k": self.string(), "n": [1, 2, { "deep": true }] }),
                other => match self.model.types.get(other) {
                    Some(Kind::Enum(values)) => {
                        if self.chance(0.97) {
                            json!(values.choose(&mut self.rng).unwrap())
                        } else {
                            json!("NOT_A_VALUE")
                        }
                    }
                    Some(Kind::Input(fields)) => {
                        let mut obj = serde_json::Map::new();
                        for f in fields {
                            if !f.ty.nullable || self.chance(0.5) {
                                let v = self.json(&f.ty, depth + 1);
                                obj.insert(f.name.clone(), v);
                            }
                        }
                        Value::Object(obj)
                    }
                    _ => json!(self.string()),
                },
            },
        }
    }

    /// A literal (or a variable) for an argument of `ty`.
    fn literal(&mut self, ty: &Type, depth: usize) -> String {
        if depth < 3 && self.chance(0.3) {
            let name = format!("v{}", self.vars.len());
            let value = self.json(ty, depth);
            self.vars.push((name.clone(), ty.to_string(), value));
            return format!("${name}");
        }
        if depth > 6 || (ty.nullable && self.chance(0.1)) {
            return "null".into();
        }
        match &ty.base {
            BaseType::List(inner) => {
                let n = self.rng.random_range(0..4);
                let items: Vec<String> = (0..n).map(|_| self.literal(inner, depth + 1)).collect();
                format!("[{}]", items.join(", "))
            }
            BaseType::Named(name) => match name.as_str() {
                "Int" => self.int().to_string(),
                "Float" => format!("{:.3}", self.rng.random_range(-1e6..1e6)),
                "Boolean" => self.chance(0.5).to_string(),
                "String" | "ID" | "DateTime" | "Upload" => {
                    serde_json::to_string(&self.string()).unwrap()
                }
                "JSON" => "{ k: \"v\", n: [1, 2] }".into(),
                other => match self.model.types.get(other) {
                    Some(Kind::Enum(values)) => values.choose(&mut self.rng).unwrap().clone(),
                    Some(Kind::Input(fields)) => {
                        let mut parts = Vec::new();
                        for f in fields {
                            if !f.ty.nullable || self.chance(0.5) {
                                let v = self.literal(&f.ty, depth + 1);
                                parts.push(format!("{}: {v}", f.name));
                            }
                        }
                        format!("{{ {} }}", parts.join(", "))
                    }
                    _ => "\"?\"".into(),
                },
            },
        }
    }

    fn field(&mut self, f: &Field, depth: usize) -> String {
        let mut out = String::new();
        if self.chance(0.2) {
            out.push_str(&format!("a{}: ", self.rng.random_range(0..5)));
        }
        out.push_str(&f.name);
        let mut args = Vec::new();
        for a in &f.args {
            if !a.ty.nullable || self.chance(0.5) {
                let v = self.literal(&a.ty, 0);
                args.push(format!("{}: {v}", a.name));
            }
        }
        if self.chance(0.01) {
            args.push("bogus: 1".into());
        }
        if !args.is_empty() {
            out.push_str(&format!("({})", args.join(", ")));
        }
        if self.chance(0.05) {
            out.push_str(if self.chance(0.5) {
                " @include(if: true)"
            } else {
                " @skip(if: false)"
            });
        }
        let inner = named(&f.ty).to_string();
        if matches!(
            self.model.types.get(&inner),
            Some(Kind::Object(_) | Kind::Union(_))
        ) {
            out.push(' ');
            out.push_str(&self.selection(&inner, depth + 1));
        }
        out
    }

    fn selection(&mut self, ty: &str, depth: usize) -> String {
        let model = self.model;
        let fields = match model.types.get(ty) {
            Some(Kind::Object(fields)) => fields,
            Some(Kind::Union(members)) => {
                let m = members.choose(&mut self.rng).unwrap().clone();
                return format!("{{ __typename ... on {m} {} }}", self.selection(&m, depth));
            }
            _ => return String::new(),
        };
        if depth > 18 {
            return "{ __typename }".into();
        }
        let n = self.rng.random_range(1..=4);
        let mut parts = Vec::new();
        for _ in 0..n {
            match self.rng.random_range(0..100) {
                0..5 => parts.push("__typename".to_string()),
                5..6 => parts.push(format!("unknown{}", self.rng.random_range(0..3))),
                6..11 => {
                    // A named fragment, spread once or more (sometimes one defined later, which
                    // may close a cycle).
                    let name = if self.chance(0.03) {
                        format!("F{}", self.next_fragment + 1)
                    } else {
                        let name = format!("F{}", self.next_fragment);
                        self.next_fragment += 1;
                        let body = self.selection(ty, depth + 1);
                        self.fragments
                            .push(format!("fragment {name} on {ty} {body}"));
                        name
                    };
                    for _ in 0..self.rng.random_range(1..=3) {
                        parts.push(format!("...{name}"));
                    }
                }
                11..14 => {
                    let body = self.selection(ty, depth + 1);
                    parts.push(format!("... on {ty} {body}"));
                }
                _ => {
                    let f = fields.choose(&mut self.rng).unwrap();
                    parts.push(self.field(f, depth));
                }
            }
        }
        format!("{{ {} }}", parts.join(" "))
    }

    fn document(&mut self) -> (String, Value) {
        self.vars.clear();
        self.fragments.clear();
        self.next_fragment = 0;
        let (keyword, root) = if self.chance(0.7) {
            ("query", "Query")
        } else {
            ("mutation", "Mutation")
        };
        let body = self.selection(root, 0);
        let defs: Vec<String> = self
            .vars
            .iter()
            .map(|(n, t, _)| format!("${n}: {t}"))
            .collect();
        let defs = if defs.is_empty() {
            String::new()
        } else {
            format!("({})", defs.join(", "))
        };
        let mut doc = format!("{keyword} Fuzz{defs} {body}\n");
        for f in &self.fragments {
            doc.push_str(f);
            doc.push('\n');
        }
        if self.chance(0.08) {
            doc = self.damage(doc);
        }
        let vars: serde_json::Map<String, Value> = self
            .vars
            .iter()
            .map(|(n, _, v)| (n.clone(), v.clone()))
            .collect();
        (doc, Value::Object(vars))
    }

    /// Byte-level damage: cut, duplicate, or insert punctuation.
    fn damage(&mut self, doc: String) -> String {
        let mut chars: Vec<char> = doc.chars().collect();
        for _ in 0..self.rng.random_range(1..=3) {
            if chars.is_empty() {
                break;
            }
            let at = self.rng.random_range(0..chars.len());
            match self.rng.random_range(0..4) {
                0 => {
                    let end = (at + self.rng.random_range(1..20)).min(chars.len());
                    chars.drain(at..end);
                }
                1 => {
                    let end = (at + self.rng.random_range(1..40)).min(chars.len());
                    let copy: Vec<char> = chars[at..end].to_vec();
                    for _ in 0..self.rng.random_range(1..50) {
                        chars.splice(at..at, copy.iter().copied());
                    }
                }
                2 => {
                    let c = *[
                        '{', '}', '[', ']', '(', ')', '"', '$', ':', '.', '@', '#', '\n', '\\',
                    ]
                    .choose(&mut self.rng)
                    .unwrap();
                    let n = self.rng.random_range(1..200);
                    chars.splice(at..at, std::iter::repeat_n(c, n));
                }
                _ => chars.truncate(at),
            }
        }
        chars.into_iter().collect()
    }
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_documents_never_panic_or_fail_internally() {
    let seed: u64 = std::env::var("EASEL_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_ea5e1);
    let cases: usize = std::env::var("EASEL_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_500);
    let app = TestApp::spawn().await;
    let user = app.sign_up_by_phone("+14155552790").await;
    let admin = app.admin_token("+14155552791").await;
    let viewers = [
        easel::accounts::viewer::Viewer::Anonymous,
        easel::accounts::service::authenticate(
            &app.state,
            Some(&format!("Bearer {}", user["accessToken"].as_str().unwrap())),
        )
        .unwrap(),
        easel::accounts::service::authenticate(&app.state, Some(&format!("Bearer {admin}")))
            .unwrap(),
    ];
    let schema = easel::schema::build_schema(app.state.clone());
    let model = Model::from_sdl(&easel::schema::sdl());
    let mut generator = Gen {
        model: &model,
        rng: StdRng::seed_from_u64(seed),
        vars: Vec::new(),
        fragments: Vec::new(),
        next_fragment: 0,
    };
    let rss_before = rss();
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut ok, mut executed, mut slowest) = (0usize, 0usize, Duration::ZERO);
    for case in 0..cases {
        let (doc, vars) = generator.document();
        let viewer = viewers[case % viewers.len()].clone();
        let request = Request::new(doc.clone())
            .variables(Variables::from_json(vars.clone()))
            .data(viewer)
            .data(RequestMeta {
                ip: Some("127.0.0.1".parse().unwrap()),
                user_agent: Some("fuzz".into()),
            });
        let request = easel::schema::with_loaders(request, &app.state);
        let schema = schema.clone();
        let started = Instant::now();
        let run = tokio::spawn(async move { schema.execute(request).await });
        let outcome = tokio::time::timeout(Duration::from_secs(60), run).await;
        let context = format!("seed {seed}, case {case}:\n{doc}\nvariables: {vars}");
        let response = match outcome {
            Err(_) => panic!("did not finish within 60 s; {context}"),
            Ok(Err(e)) => panic!("panicked ({e}); {context}"),
            Ok(Ok(r)) => r,
        };
        slowest = slowest.max(started.elapsed());
        if response.errors.is_empty() {
            ok += 1;
        }
        if response.data != async_graphql::Value::Null {
            executed += 1;
        }
        for err in &response.errors {
            let code = err
                .extensions
                .as_ref()
                .and_then(|e| e.get("code"))
                .map(|c| c.to_string().trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("an error without a code: {err:?}; {context}"));
            assert_ne!(code, "INTERNAL", "{}; {context}", err.message);
            *codes.entry(code).or_default() += 1;
        }
    }
    let grown = rss().saturating_sub(rss_before);
    println!(
        "fuzz: seed {seed}, {cases} documents, {executed} executed, {ok} without errors, error codes {codes:?}, slowest {slowest:?}, memory grew {} MiB",
        grown / (1 << 20)
    );
    assert!(
        ok > cases / 20,
        "some generated documents must run cleanly ({ok})"
    );
    assert!(grown < 1 << 30, "memory grew by {} MiB", grown / (1 << 20));
    app.assert_ledger_ok().await;
}
