//! Reading a list page's selection ahead of resolving it, for look-ahead plans: a page
//! resolver asks what the client selected on the page's nodes (through `edges { node }` or
//! `nodes` of a Relay connection, or on the items of a plain list), and fetches it with the
//! page in one statement. Fragments and inline fragments are followed; aliases do not matter;
//! `@skip`/`@include` are ignored (a plan may fetch a field the client then skips, never
//! miss one). Arguments are read with the request's variables.

use async_graphql::{Context, Lookahead, Value};

use diesel::sql_types::{Nullable, Text};

use super::ContextExt;
use crate::db::{Fragment, json_object};

/// The selection on the nodes of the connection this field returns.
pub struct Nodes<'a> {
    sets: Vec<Lookahead<'a>>,
    on: bool,
}

impl<'a> Nodes<'a> {
    /// The nodes of a Relay connection (`edges { node }` and `nodes`) returned by the
    /// resolving field. Plans nothing when `EASEL_QUERY_PLANNER` is off.
    pub fn of_connection(ctx: &'a Context<'a>) -> Self {
        let look = ctx.look_ahead();
        Nodes {
            sets: vec![look.field("edges").field("node"), look.field("nodes")],
            on: planner_on(ctx),
        }
    }

    /// Whether any node selection asks for `field`.
    pub fn has(&self, field: &str) -> bool {
        self.on && self.sets.iter().any(|s| s.field(field).exists())
    }

    /// The one value the integer argument `arg` of `field` takes wherever the selection asks
    /// for `field` (`default` where it is not given), if that value lies in `range`. `None`
    /// when the field is not selected, or selected with different or invalid values (its
    /// resolver then validates and loads as usual).
    pub fn int_arg(
        &self,
        field: &str,
        arg: &str,
        default: i32,
        range: std::ops::RangeInclusive<i32>,
    ) -> Option<i32> {
        if !self.on {
            return None;
        }
        let mut values = self
            .sets
            .iter()
            .flat_map(|s| s.field(field).selection_fields())
            .map(|f| {
                let args = f.arguments().ok()?;
                match args.iter().find(|(name, _)| name.as_str() == arg) {
                    None => Some(default),
                    Some((_, Value::Number(n))) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
                    Some(_) => None,
                }
            });
        let first = values.next()??;
        (range.contains(&first) && values.all(|v| v == Some(first))).then_some(first)
    }

    /// The JSON column a page adds to its rows (see `db::json_object`): `'<field>', <sql>`
    /// for each `(field, sql)` whose field the nodes select; `sql` is called only then.
    pub fn json_column(&self, entries: &[(&str, &dyn Fn() -> String)]) -> Fragment<Nullable<Text>> {
        json_object(
            entries
                .iter()
                .filter(|(field, _)| self.has(field))
                .map(|(field, sql)| Fragment::new(format!("'{field}', ")).sql(&sql()))
                .collect(),
        )
    }
}

/// Whether look-ahead plans are on (`EASEL_QUERY_PLANNER`, default on).
fn planner_on(ctx: &Context<'_>) -> bool {
    ctx.state().is_ok_and(|s| s.config.query_planner)
}
