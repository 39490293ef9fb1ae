//! Bounds on what one request may make the server do, checked before anything recursive or
//! expensive runs.
//!
//! async-graphql bounds the depth of selection sets, but its parser recurses on every
//! bracket (a list nested 2,000 deep in an argument overflowed a worker's stack and aborted
//! the process), and its validation and execution expand fragment spreads (30 fragments
//! each spreading the previous one twice select 2^30 fields from a 1 KB document). So every
//! document goes through three checks, in this order:
//!
//! 1. [`scan`]: one linear pass over the text, without recursion, bounding the bracket
//!    nesting and the number of tokens. Only then is the text parsed.
//! 2. [`check_document`]: the number of fields the document selects once every fragment is
//!    expanded (`__typename` and introspection fields count like any other), computed with
//!    memoisation in time linear in the document; fragment cycles are refused here.
//! 3. [`check_strings`] / [`check_variables`]: no string, in the document or the
//!    variables, holds a NUL character (PostgreSQL text cannot store one).
//!
//! Errors are request errors (`data: null`, HTTP 400) with `extensions.code`
//! `QUERY_TOO_COMPLEX` for limits and `BAD_USER_INPUT` for malformed input.

use std::collections::HashMap;

use async_graphql::{
    ErrorExtensionValues, Name, Positioned, ServerError, Variables,
    parser::types::{
        DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
    },
};

use async_graphql_value::{ConstValue, Value};

use crate::error::codes;

/// The bounds, from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of `{`, `[` and `(` in a document's text.
    pub max_nesting: usize,
    /// Most tokens (names, punctuators, numbers, strings) in a document.
    pub max_tokens: usize,
    /// Most fields a document selects with its fragments expanded.
    pub max_fields: u64,
}

/// A request error with `extensions.code` (and `extensions.field` when given).
pub(super) fn error(code: &str, message: String, field: Option<&str>) -> ServerError {
    let mut err = ServerError::new(message, None);
    let mut ext = ErrorExtensionValues::default();
    ext.set("code", code);
    if let Some(field) = field {
        ext.set("field", field);
    }
    err.extensions = Some(ext);
    err
}

fn too_complex(message: String) -> ServerError {
    error(codes::QUERY_TOO_COMPLEX, message, None)
}

/// Checks the document's text in one pass, before it is parsed: bracket nesting, token
/// count, and NUL characters in the text itself.
pub fn scan(text: &str, limits: &Limits) -> Result<(), ServerError> {
    if text.contains('\0') {
        return Err(error(
            codes::BAD_USER_INPUT,
            "the query text contains a NUL character (U+0000)".into(),
            None,
        ));
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    let mut tokens = 0usize;
    let count = |tokens: &mut usize| -> Result<(), ServerError> {
        *tokens += 1;
        if *tokens > limits.max_tokens {
            return Err(too_complex(format!(
                "the query has more than {} tokens",
                limits.max_tokens
            )));
        }
        Ok(())
    };
    while i < bytes.len() {
        match bytes[i] {
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                count(&mut tokens)?;
                i = skip_string(bytes, i);
                continue;
            }
            b'{' | b'[' | b'(' => {
                count(&mut tokens)?;
                depth += 1;
                if depth > limits.max_nesting {
                    return Err(too_complex(format!(
                        "the query nests brackets deeper than {}",
                        limits.max_nesting
                    )));
                }
            }
            b'}' | b']' | b')' => {
                count(&mut tokens)?;
                depth = depth.saturating_sub(1);
            }
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {}
            b'.' => {
                // `...` is one token.
                count(&mut tokens)?;
                while i + 1 < bytes.len() && bytes[i + 1] == b'.' {
                    i += 1;
                }
            }
            b if b.is_ascii_digit() || b == b'-' => {
                // A number: `-12.5e+3` is one token.
                count(&mut tokens)?;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric()
                        || matches!(bytes[i + 1], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            b if b.is_ascii_alphabetic() || b == b'_' => {
                count(&mut tokens)?;
                while i + 1 < bytes.len()
                    && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_')
                {
                    i += 1;
                }
            }
            _ => count(&mut tokens)?,
        }
        i += 1;
    }
    Ok(())
}

/// The index just past the string starting at `start` (a `"` or `"""`), or the end.
fn skip_string(bytes: &[u8], start: usize) -> usize {
    if bytes[start..].starts_with(b"\"\"\"") {
        let mut i = start + 3;
        while i < bytes.len() {
            if bytes[i..].starts_with(b"\\\"\"\"") {
                i += 4;
            } else if bytes[i..].starts_with(b"\"\"\"") {
                return i + 3;
            } else {
                i += 1;
            }
        }
        return i;
    }
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b'\n' | b'\r' => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// Checks a parsed document: fields selected with fragments expanded, fragment cycles, and
/// NUL characters in its string values.
/// Where each variable is first used, as an argument path (`input.note`): a NUL character
/// in a variable is reported at that path, like the rest of the API's input errors.
pub type VariableUses = HashMap<String, String>;

pub fn check_document(
    doc: &ExecutableDocument,
    limits: &Limits,
) -> Result<VariableUses, ServerError> {
    let mut counter = Expansion {
        doc,
        sizes: HashMap::new(),
        limit: limits.max_fields,
    };
    let mut total = 0u64;
    match &doc.operations {
        DocumentOperations::Single(op) => {
            total = counter.selection_set(&op.node.selection_set.node)?;
        }
        DocumentOperations::Multiple(ops) => {
            for op in ops.values() {
                total = total.saturating_add(counter.selection_set(&op.node.selection_set.node)?);
            }
        }
    }
    // Fragments no operation uses are validated too: bound them as well.
    for name in doc.fragments.keys() {
        total = total.max(counter.fragment(name)?);
    }
    if total > limits.max_fields {
        return Err(counter.over(total));
    }
    check_strings(doc)
}

struct Expansion<'a> {
    doc: &'a ExecutableDocument,
    /// Expanded size of each fragment; `None` while it is being expanded (a cycle).
    sizes: HashMap<&'a Name, Option<u64>>,
    limit: u64,
}

impl<'a> Expansion<'a> {
    fn over(&self, n: u64) -> ServerError {
        too_complex(format!(
            "the query selects {} fields once its fragments are expanded; at most {} are allowed",
            if n == u64::MAX {
                "too many".to_string()
            } else {
                n.to_string()
            },
            self.limit
        ))
    }

    fn selection_set(&mut self, set: &'a SelectionSet) -> Result<u64, ServerError> {
        let mut n = 0u64;
        for item in &set.items {
            let size = match &item.node {
                Selection::Field(f) => {
                    1u64.saturating_add(self.selection_set(&f.node.selection_set.node)?)
                }
                Selection::InlineFragment(f) => self.selection_set(&f.node.selection_set.node)?,
                Selection::FragmentSpread(s) => self.fragment(&s.node.fragment_name.node)?,
            };
            n = n.saturating_add(size);
            // Stop as soon as the limit is passed: nothing later can bring it down.
            if n > self.limit {
                return Err(self.over(n));
            }
        }
        Ok(n)
    }

    fn fragment(&mut self, name: &'a Name) -> Result<u64, ServerError> {
        match self.sizes.get(name) {
            Some(Some(n)) => return Ok(*n),
            Some(None) => {
                return Err(error(
                    codes::BAD_USER_INPUT,
                    format!("fragment \"{name}\" spreads itself (a fragment cycle)"),
                    None,
                ));
            }
            None => {}
        }
        // An unknown fragment is reported by validation.
        let Some(def) = self.doc.fragments.get(name) else {
            return Ok(0);
        };
        self.sizes.insert(name, None);
        let n = self.selection_set(&def.node.selection_set.node)?;
        self.sizes.insert(name, Some(n));
        Ok(n)
    }
}

const NUL_MESSAGE: &str = "strings may not contain the NUL character (U+0000)";

/// Refuses NUL characters in any string or enum value written in the document.
fn check_strings(doc: &ExecutableDocument) -> Result<VariableUses, ServerError> {
    let mut uses = VariableUses::new();
    let mut sets: Vec<&SelectionSet> = Vec::new();
    match &doc.operations {
        DocumentOperations::Single(op) => sets.push(&op.node.selection_set.node),
        DocumentOperations::Multiple(ops) => {
            sets.extend(ops.values().map(|op| &op.node.selection_set.node))
        }
    }
    sets.extend(doc.fragments.values().map(|f| &f.node.selection_set.node));
    for op in operations(doc) {
        for var in &op.node.variable_definitions {
            if let Some(default) = &var.node.default_value {
                find_nul(&default.node, &var.node.name.node, None)?;
            }
        }
    }
    while let Some(set) = sets.pop() {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    for (name, value) in &f.node.arguments {
                        find_nul(&value.node, &name.node, Some(&mut uses))?;
                    }
                    for d in &f.node.directives {
                        for (name, value) in &d.node.arguments {
                            find_nul(&value.node, &name.node, Some(&mut uses))?;
                        }
                    }
                    sets.push(&f.node.selection_set.node);
                }
                Selection::InlineFragment(f) => sets.push(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => {}
            }
        }
    }
    Ok(uses)
}

fn operations(
    doc: &ExecutableDocument,
) -> Box<dyn Iterator<Item = &Positioned<OperationDefinition>> + '_> {
    match &doc.operations {
        DocumentOperations::Single(op) => Box::new(std::iter::once(op)),
        DocumentOperations::Multiple(ops) => Box::new(ops.values()),
    }
}

/// What [`find_nul`] needs of a value: the document's (which may hold variables) and the
/// variables' own are two types.
trait Walk: Sized {
    fn string(&self) -> Option<&str>;
    fn variable(&self) -> Option<&str> {
        None
    }
    fn children(&self) -> Vec<(String, &Self)>;
}

/// Lists and objects look alike in both value types.
macro_rules! children {
    ($ty:ident) => {
        fn children(&self) -> Vec<(String, &Self)> {
            match self {
                $ty::List(items) => items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v))
                    .collect(),
                $ty::Object(fields) => fields.iter().map(|(k, v)| (k.to_string(), v)).collect(),
                _ => Vec::new(),
            }
        }
    };
}

impl Walk for Value {
    fn string(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    fn variable(&self) -> Option<&str> {
        match self {
            Value::Variable(name) => Some(name),
            _ => None,
        }
    }
    children!(Value);
}

impl Walk for ConstValue {
    fn string(&self) -> Option<&str> {
        match self {
            ConstValue::String(s) => Some(s),
            _ => None,
        }
    }
    children!(ConstValue);
}

/// Refuses a NUL character in `value` (strings and object keys), naming where it is, e.g.
/// `input.note` or `filter.tags.2`. Iterative: variables come from JSON nested up to
/// serde_json's limit of 128, document values up to [`scan`]'s bound.
/// Variables met on the way are recorded in `uses`.
fn find_nul<T: Walk>(
    value: &T,
    root: &str,
    mut uses: Option<&mut VariableUses>,
) -> Result<(), ServerError> {
    let mut stack = vec![(root.to_string(), value)];
    while let Some((path, v)) = stack.pop() {
        if let (Some(var), Some(uses)) = (v.variable(), uses.as_deref_mut()) {
            uses.entry(var.to_string()).or_insert_with(|| path.clone());
        }
        if v.string().is_some_and(|s| s.contains('\0')) {
            return Err(error(
                codes::BAD_USER_INPUT,
                NUL_MESSAGE.into(),
                Some(&path),
            ));
        }
        for (key, child) in v.children() {
            let path = format!("{path}.{key}");
            if key.contains('\0') {
                return Err(error(
                    codes::BAD_USER_INPUT,
                    NUL_MESSAGE.into(),
                    Some(&path),
                ));
            }
            stack.push((path, child));
        }
    }
    Ok(())
}

/// Refuses NUL characters in any string of the request's variables.
pub fn check_variables(variables: &Variables, uses: &VariableUses) -> Result<(), ServerError> {
    for (name, value) in variables.iter() {
        let root = uses
            .get(name.as_str())
            .map_or(name.as_str(), String::as_str);
        find_nul(value, root, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_nesting: 64,
        max_tokens: 10_000,
        max_fields: 2_000,
    };

    fn code(err: &ServerError) -> String {
        err.extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|v| v.to_string())
            .unwrap_or_default()
    }

    fn check(text: &str) -> Result<VariableUses, ServerError> {
        scan(text, &LIMITS)?;
        let doc = async_graphql::parser::parse_query(text).expect("the test document parses");
        check_document(&doc, &LIMITS)
    }

    /// `galleryFeed(filter: {tags: [[[...]]]})` nested `n` deep.
    fn nested_list(n: usize) -> String {
        format!(
            "{{ galleryFeed(filter: {{ tags: {}\"a\"{} }}) {{ totalCount }} }}",
            "[".repeat(n),
            "]".repeat(n)
        )
    }

    /// `n` fragments, each spreading the one before twice: 2^n fields from a tiny document.
    pub(crate) fn fragment_bomb(n: usize) -> String {
        let mut q = String::from("query { ...F0 }\nfragment F0 on Query { __typename }\n");
        for i in 1..=n {
            q.push_str(&format!(
                "fragment F{i} on Query {{ ...F{p} ...F{p} }}\n",
                p = i - 1
            ));
        }
        q.replace("query { ...F0 }", &format!("query {{ ...F{n} }}"))
    }

    #[test]
    fn deep_brackets_are_refused_before_parsing() {
        assert!(check(&nested_list(10)).is_ok());
        // 2,000 deep overflowed the parser's stack; the scan refuses it without recursion.
        for n in [65, 2_000, 200_000] {
            let err = scan(&nested_list(n), &LIMITS).unwrap_err();
            assert_eq!(code(&err), "\"QUERY_TOO_COMPLEX\"", "{}", err.message);
        }
        // Brackets inside strings and comments are not nesting.
        let quoted = format!(
            "{{ a(s: \"{}\", t: \"\"\"{}\"\"\") # {}\n }}",
            "[".repeat(500),
            "{".repeat(500),
            "(".repeat(500)
        );
        assert!(scan(&quoted, &LIMITS).is_ok());
    }

    #[test]
    fn too_many_tokens_are_refused() {
        let aliases: String = (0..5_000).map(|i| format!("a{i}: __typename ")).collect();
        let err = scan(&format!("{{ {aliases} }}"), &LIMITS).unwrap_err();
        assert_eq!(code(&err), "\"QUERY_TOO_COMPLEX\"");
        assert!(err.message.contains("10000 tokens"), "{}", err.message);
    }

    #[test]
    fn fragment_expansion_is_bounded_and_counts_typename() {
        assert!(check(&fragment_bomb(10)).is_ok(), "1,024 fields are fine");
        for n in [11, 30, 64] {
            let err = check(&fragment_bomb(n)).unwrap_err();
            assert_eq!(code(&err), "\"QUERY_TOO_COMPLEX\"", "{}", err.message);
        }
        // Plain aliases of __typename count like any field.
        let aliases: String = (0..2_001).map(|i| format!("a{i}: __typename ")).collect();
        let err = check(&format!("{{ {aliases} }}")).unwrap_err();
        assert!(err.message.contains("2001 fields"), "{}", err.message);
        // Unused fragments are bounded too.
        let unused = fragment_bomb(40).replace("query { ...F40 }", "query { __typename }");
        assert!(check(&unused).is_err());
    }

    #[test]
    fn fragment_cycles_are_refused() {
        let err = check("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .unwrap_err();
        assert_eq!(code(&err), "\"BAD_USER_INPUT\"");
        assert!(err.message.contains("cycle"), "{}", err.message);
    }

    #[test]
    fn nul_characters_are_refused_in_documents_and_variables() {
        let err = check(r#"{ user(username: "a\u0000b") { id } }"#).unwrap_err();
        assert_eq!(code(&err), "\"BAD_USER_INPUT\"");
        let field = err.extensions.as_ref().unwrap().get("field").unwrap();
        assert_eq!(field.to_string(), "\"username\"");
        assert!(check(r#"query($s: String = "\u0000") { a }"#).is_err());
        assert!(scan("{ a(s: \"\0\") }", &LIMITS).is_err());
        assert!(check(r#"{ user(username: "ok") { id } }"#).is_ok());

        let vars = Variables::from_json(serde_json::json!({
            "input": { "list": [{ "deep": ["fine", "bad\u{0}"] }] }
        }));
        let none = VariableUses::new();
        let err = check_variables(&vars, &none).unwrap_err();
        assert_eq!(
            err.extensions.unwrap().get("field").unwrap().to_string(),
            "\"input.list.0.deep.1\""
        );
        let vars = Variables::from_json(serde_json::json!({ "k": { "a\u{0}": 1 } }));
        assert!(check_variables(&vars, &none).is_err());
        let fine = Variables::from_json(serde_json::json!({ "s": "ok", "n": [1, 2] }));
        assert!(check_variables(&fine, &none).is_ok());
        // A variable's NUL is reported where the variable is used.
        let uses = check("mutation($n: String) { gift(input: { note: $n, to: [$t] }) }").unwrap();
        let vars = Variables::from_json(serde_json::json!({ "n": "x\u{0}", "t": "ok" }));
        let err = check_variables(&vars, &uses).unwrap_err();
        assert_eq!(
            err.extensions.unwrap().get("field").unwrap().to_string(),
            "\"input.note\""
        );
        assert_eq!(uses.get("t").map(String::as_str), Some("input.to.0"));
    }
}
