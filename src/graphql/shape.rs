//! Gives every response the shape the GraphQL spec prescribes, which async-graphql 7 does not:
//! it resolves the fields of an object concurrently and writes each result as it completes,
//! so keys come back in completion order, and a field whose resolver failed is left out
//! instead of being `null` (and an error in a non-null field does not null its parent).
//! Apollo Client then logs "Missing field" and caches an incomplete result.
//!
//! [`Shapes::shape`] rewrites the finished `data` against the operation's selection sets
//! (fragments expanded, `@skip`/`@include` applied, fields of the same response key merged)
//! and the schema's field types (read once from the SDL): every selected key is present, in
//! selection order; a failed field is `null`; a `null` in a non-null position makes its parent
//! `null`, up to the nearest nullable field or `data` itself (spec §6.4.4 "Handling Field
//! Errors"). An object all of whose fields failed, which async-graphql answers as a bare
//! `null`, becomes the object with those fields `null` when it may hold them. Errors are left
//! as they are.

use std::collections::{HashMap, HashSet};

use async_graphql::{
    Name, PathSegment, Response, Value, Variables,
    indexmap::IndexMap,
    parser::types::{
        BaseType, DocumentOperations, ExecutableDocument, OperationDefinition, OperationType,
        Selection, SelectionSet, Type, TypeKind, TypeSystemDefinition,
    },
};

/// The field types of every object type of a schema, and its root type names.
#[derive(Debug, Default)]
pub struct Shapes {
    objects: HashMap<Name, HashMap<Name, Type>>,
    query: Option<Name>,
    mutation: Option<Name>,
    subscription: Option<Name>,
}

/// One step of a response path, hashable (async-graphql's `PathSegment` is not).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Step {
    Key(String),
    Index(usize),
}

/// A `null` that must move up to the parent (it stood where the schema allows none).
struct Nulled;

/// A selected response key: the field it names and the selection sets merged under it.
struct Selected<'d> {
    key: &'d Name,
    field: &'d Name,
    sets: Vec<&'d SelectionSet>,
}

impl Shapes {
    /// Reads the object types and root names from a schema's SDL.
    pub fn from_sdl(sdl: &str) -> anyhow::Result<Self> {
        let document = async_graphql::parser::parse_schema(sdl)?;
        let mut shapes = Shapes::default();
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let fields = match ty.kind {
                        TypeKind::Object(object) => object.fields,
                        TypeKind::Interface(interface) => interface.fields,
                        _ => continue,
                    };
                    let fields = fields
                        .into_iter()
                        .map(|f| (f.node.name.node, f.node.ty.node))
                        .collect();
                    shapes.objects.insert(ty.name.node, fields);
                }
                TypeSystemDefinition::Schema(schema) => {
                    let schema = schema.node;
                    shapes.query = schema.query.map(|n| n.node);
                    shapes.mutation = schema.mutation.map(|n| n.node);
                    shapes.subscription = schema.subscription.map(|n| n.node);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        let default = |name: &str| Some(Name::new(name));
        shapes.query = shapes.query.or_else(|| default("Query"));
        shapes.mutation = shapes.mutation.or_else(|| default("Mutation"));
        shapes.subscription = shapes.subscription.or_else(|| default("Subscription"));
        Ok(shapes)
    }

    /// Puts `response.data` in spec shape for the operation `operation_name` of `document`.
    /// A request error (no data, errors without paths) is left as it is.
    pub fn shape(
        &self,
        document: &ExecutableDocument,
        operation_name: Option<&str>,
        variables: &Variables,
        response: &mut Response,
    ) {
        if response.data == Value::Null && response.errors.iter().all(|e| e.path.is_empty()) {
            return;
        }
        let Some(operation) = operation(document, operation_name) else {
            return;
        };
        let root = match operation.ty {
            OperationType::Query => &self.query,
            OperationType::Mutation => &self.mutation,
            OperationType::Subscription => &self.subscription,
        };
        let Some(root) = root else { return };
        let mut failed_below = HashSet::new();
        for error in &response.errors {
            let mut path = Vec::with_capacity(error.path.len());
            for segment in &error.path {
                failed_below.insert(path.clone());
                path.push(match segment {
                    PathSegment::Field(key) => Step::Key(key.clone()),
                    PathSegment::Index(i) => Step::Index(*i),
                });
            }
        }
        let shaper = Shaper {
            shapes: self,
            document,
            operation,
            variables,
            track: !failed_below.is_empty(),
            failed_below,
        };
        let sets = [&operation.selection_set.node];
        let data = std::mem::take(&mut response.data);
        let mut fields = match data {
            Value::Object(fields) => fields,
            // Every root field failed: async-graphql answers a bare null.
            _ => IndexMap::new(),
        };
        response.data = match shaper.object(root, &sets, &mut fields, &mut Vec::new()) {
            Ok(()) => Value::Object(fields),
            Err(Nulled) => Value::Null,
        };
    }
}

/// The operation a request runs: the named one, or the only one.
pub fn operation<'d>(
    document: &'d ExecutableDocument,
    operation_name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&document.operations, operation_name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// Adds the default value of every variable of the operation that the request leaves out.
/// async-graphql evaluates `@skip(if: $v)`/`@include(if: $v)` without defaults (a missing
/// variable counts as false), so `query($all: Boolean! = true) { x @include(if: $all) }`
/// would drop `x`; with the defaults in place it runs as the spec says.
pub fn add_variable_defaults(operation: &OperationDefinition, variables: &mut Variables) {
    for definition in &operation.variable_definitions {
        let definition = &definition.node;
        if let Some(default) = &definition.default_value
            && !variables.contains_key(&definition.name.node)
        {
            variables.insert(definition.name.node.clone(), default.node.clone());
        }
    }
}

/// One response being shaped, in place: keys are moved into selection order and missing
/// ones inserted, so a response that is already right costs a walk and no allocation beyond
/// each object's selection list.
struct Shaper<'a> {
    shapes: &'a Shapes,
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
    /// Every proper prefix of an error's path: a `null` there may hide fields that failed.
    failed_below: HashSet<Vec<Step>>,
    /// Whether paths are tracked at all (only a response with errors needs them).
    track: bool,
}

impl<'a> Shaper<'a> {
    /// Puts an object's fields in selection order, with `null` for the missing ones;
    /// `Err` when a non-null field is null (the object itself must then be null).
    fn object(
        &self,
        ty: &Name,
        sets: &[&'a SelectionSet],
        fields: &mut IndexMap<Name, Value>,
        path: &mut Vec<Step>,
    ) -> Result<(), Nulled> {
        let mut selected: Vec<Selected<'a>> = Vec::new();
        let mut visited = HashSet::new();
        for set in sets {
            self.collect(ty, set, &mut selected, &mut visited);
        }
        let types = self.shapes.objects.get(ty);
        for (i, s) in selected.iter().enumerate() {
            match fields.get_index_of(s.key) {
                Some(j) if j == i => {}
                Some(j) => fields.move_index(j, i),
                None => {
                    fields.shift_insert(i, s.key.clone(), Value::Null);
                }
            }
            // `__typename`, introspection, or a type the SDL does not show: as it is.
            let Some(field_type) = types.and_then(|t| t.get(s.field)) else {
                continue;
            };
            let Some((_, value)) = fields.get_index_mut(i) else {
                continue;
            };
            if self.track {
                path.push(Step::Key(s.key.to_string()));
            }
            let done = self.value(field_type, value, &s.sets, path);
            if self.track {
                path.pop();
            }
            done?;
        }
        // Anything the executor wrote that the selection does not name stays, at the end.
        Ok(())
    }

    /// Completes a field's value for its type in place; `Err` when it is null in a non-null
    /// position.
    fn value(
        &self,
        ty: &Type,
        value: &mut Value,
        sets: &[&'a SelectionSet],
        path: &mut Vec<Step>,
    ) -> Result<(), Nulled> {
        let nulled = |value: &mut Value| {
            *value = Value::Null;
            if ty.nullable { Ok(()) } else { Err(Nulled) }
        };
        match (&ty.base, &mut *value) {
            (BaseType::Named(name), Value::Null) => {
                // An object whose every field failed comes back as a bare null.
                if self.track
                    && self.shapes.objects.contains_key(name)
                    && !sets.is_empty()
                    && self.failed_below.contains(path)
                {
                    let mut fields = IndexMap::new();
                    match self.object(name, sets, &mut fields, path) {
                        Ok(()) => {
                            *value = Value::Object(fields);
                            Ok(())
                        }
                        Err(Nulled) => nulled(value),
                    }
                } else {
                    nulled(value)
                }
            }
            (_, Value::Null) => nulled(value),
            (BaseType::List(item), Value::List(items)) => {
                for (i, entry) in items.iter_mut().enumerate() {
                    if self.track {
                        path.push(Step::Index(i));
                    }
                    let done = self.value(item, entry, sets, path);
                    if self.track {
                        path.pop();
                    }
                    if done.is_err() {
                        return nulled(value);
                    }
                }
                Ok(())
            }
            (BaseType::Named(name), Value::Object(fields))
                if self.shapes.objects.contains_key(name) =>
            {
                match self.object(name, sets, fields, path) {
                    Ok(()) => Ok(()),
                    Err(Nulled) => nulled(value),
                }
            }
            _ => Ok(()),
        }
    }

    /// Appends the fields `set` selects on `ty` (fragments expanded, `@skip`/`@include`
    /// applied) to `out`, merging fields of a response key already there.
    fn collect(
        &self,
        ty: &Name,
        set: &'a SelectionSet,
        out: &mut Vec<Selected<'a>>,
        visited: &mut HashSet<&'a Name>,
    ) {
        for selection in &set.items {
            if !self.included(selection.node.directives()) {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = &field.response_key().node;
                    let sub = &field.selection_set.node;
                    match out.iter_mut().find(|s| s.key == key) {
                        Some(existing) => existing.sets.push(sub),
                        None => out.push(Selected {
                            key,
                            field: &field.name.node,
                            sets: vec![sub],
                        }),
                    }
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if !visited.insert(name) {
                        continue;
                    }
                    if let Some(fragment) = self.document.fragments.get(name)
                        && fragment.node.type_condition.node.on.node == *ty
                    {
                        self.collect(ty, &fragment.node.selection_set.node, out, visited);
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = inline
                        .node
                        .type_condition
                        .as_ref()
                        .is_none_or(|c| c.node.on.node == *ty);
                    if applies {
                        self.collect(ty, &inline.node.selection_set.node, out, visited);
                    }
                }
            }
        }
    }

    /// Whether `@skip` and `@include` keep a selection.
    fn included(
        &self,
        directives: &[async_graphql::Positioned<async_graphql::parser::types::Directive>],
    ) -> bool {
        directives.iter().all(|d| {
            let d = &d.node;
            let wanted = match d.name.node.as_str() {
                "skip" => false,
                "include" => true,
                _ => return true,
            };
            match d.get_argument("if") {
                Some(value) => self.boolean(&value.node) == Some(wanted),
                None => true,
            }
        })
    }

    /// A directive's `if:` argument: a literal, or a variable (with its default).
    fn boolean(&self, value: &async_graphql_value::Value) -> Option<bool> {
        use async_graphql_value::{ConstValue, Value as Literal};
        match value {
            Literal::Boolean(b) => Some(*b),
            Literal::Variable(name) => match self.variables.get(name) {
                Some(ConstValue::Boolean(b)) => Some(*b),
                Some(_) => None,
                None => self
                    .operation
                    .variable_definitions
                    .iter()
                    .find(|v| v.node.name.node == *name)
                    .and_then(|v| v.node.default_value.as_ref())
                    .and_then(|d| match &d.node {
                        ConstValue::Boolean(b) => Some(*b),
                        _ => None,
                    }),
            },
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Request, Schema, SimpleObject};
    use serde_json::json;

    use super::*;

    #[derive(SimpleObject)]
    struct Leaf {
        n: i32,
    }

    struct Thing;

    #[Object]
    impl Thing {
        async fn ok(&self) -> i32 {
            1
        }
        async fn bad(&self) -> async_graphql::Result<Option<i32>> {
            Err("nullable failed".into())
        }
        async fn bad_required(&self) -> async_graphql::Result<i32> {
            Err("non-null failed".into())
        }
        async fn leaves(&self) -> Vec<Leaf> {
            vec![Leaf { n: 1 }, Leaf { n: 2 }]
        }
    }

    struct Query;

    #[Object]
    impl Query {
        async fn slow(&self) -> i32 {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            1
        }
        async fn fast(&self) -> i32 {
            2
        }
        async fn failing(&self) -> async_graphql::Result<Option<i32>> {
            Err("boom".into())
        }
        async fn required(&self) -> async_graphql::Result<i32> {
            Err("required boom".into())
        }
        async fn thing(&self) -> Option<Thing> {
            Some(Thing)
        }
        async fn things(&self) -> Vec<Thing> {
            vec![Thing, Thing]
        }
    }

    /// Runs `query` as `ParsedDocuments` does (variable defaults added, then shaped);
    /// returns `data` as JSON text (key order kept) and the number of errors.
    async fn run(query: &str, variables: serde_json::Value) -> (String, usize) {
        let schema = Schema::new(Query, EmptyMutation, EmptySubscription);
        let shapes = Shapes::from_sdl(&schema.sdl()).unwrap();
        let document = async_graphql::parser::parse_query(query).unwrap();
        let mut variables = Variables::from_json(variables);
        add_variable_defaults(operation(&document, None).unwrap(), &mut variables);
        let mut response = schema
            .execute(Request::new(query).variables(variables.clone()))
            .await;
        shapes.shape(&document, None, &variables, &mut response);
        (
            serde_json::to_string(&response.data).unwrap(),
            response.errors.len(),
        )
    }

    #[tokio::test]
    async fn keys_follow_the_selection_and_failed_nullable_fields_are_null() {
        let (data, errors) = run("{ slow fast b: failing a: fast }", json!({})).await;
        assert_eq!(data, r#"{"slow":1,"fast":2,"b":null,"a":2}"#);
        assert_eq!(errors, 1);
    }

    #[tokio::test]
    async fn a_failed_non_null_field_nulls_its_parent() {
        let (data, errors) = run("{ fast thing { ok badRequired } }", json!({})).await;
        assert_eq!(data, r#"{"fast":2,"thing":null}"#);
        assert_eq!(errors, 1);
        // At the root, a non-null failure nulls `data`.
        let (data, _) = run("{ fast required }", json!({})).await;
        assert_eq!(data, "null");
        // In a list of non-null items inside a non-null list, up to `data`.
        let (data, _) = run("{ things { ok badRequired } }", json!({})).await;
        assert_eq!(data, "null");
    }

    #[tokio::test]
    async fn nested_objects_whose_fields_all_failed_keep_their_shape() {
        let (data, errors) = run("{ thing { bad } things { bad ok } }", json!({})).await;
        assert_eq!(
            data,
            r#"{"thing":{"bad":null},"things":[{"bad":null,"ok":1},{"bad":null,"ok":1}]}"#
        );
        assert_eq!(errors, 3);
    }

    #[tokio::test]
    async fn fragments_directives_and_merged_fields() {
        let query = "query Q($no: Boolean!, $yes: Boolean! = true) {
            ...F
            thing { leaves { n } ... on Thing { bad leaves { n } } }
            skipped: fast @skip(if: true)
            hidden: fast @include(if: $no)
            shown: fast @include(if: $yes)
        }
        fragment F on Query { failing slow }";
        let (data, _) = run(query, json!({ "no": false })).await;
        assert_eq!(
            data,
            r#"{"failing":null,"slow":1,"thing":{"leaves":[{"n":1},{"n":2}],"bad":null},"shown":2}"#
        );
    }
}
