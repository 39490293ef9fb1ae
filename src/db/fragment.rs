//! [`Fragment`]: a piece of SQL written by Easel's code, with bound values, that diesel may
//! prepare once per connection and reuse.
//!
//! diesel's own `sql()` and `sql_query()` mark every statement they appear in as unsafe to
//! cache, so each run prepares the statement again: one more round trip to PostgreSQL for
//! every page that uses a keyset or privacy condition, or a look-ahead plan. A fragment's text
//! is built only from string constants and the code's own choices (never from client input;
//! every value a client sends is a bind), so the finished statement text repeats and the
//! per-connection statement cache can keep it.

use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use diesel::{
    expression::{
        AppearsOnTable, Expression, SelectableExpression, TypedExpressionType, ValidGrouping,
        is_aggregate,
    },
    pg::Pg,
    query_builder::{AstPass, Query, QueryFragment, QueryId},
    result::QueryResult,
    sql_types::{BigInt, Bool, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use serde::{Deserialize, Deserializer, de::DeserializeOwned};
use uuid::Uuid;

/// A value bound into a [`Fragment`].
#[derive(Debug, Clone)]
enum Part {
    Sql(String),
    Uuid(Uuid),
    MaybeUuid(Option<Uuid>),
    Bool(bool),
    Int(i32),
    BigInt(i64),
    Time(DateTime<Utc>),
}

/// SQL text and binds, in order, typed as an expression of SQL type `ST`.
#[derive(Debug, Clone)]
pub struct Fragment<ST> {
    parts: Vec<Part>,
    _type: PhantomData<ST>,
}

impl<ST> Fragment<ST> {
    /// A fragment starting with `text` (Easel's own SQL, never client input).
    pub fn new(text: impl Into<String>) -> Self {
        Fragment {
            parts: vec![Part::Sql(text.into())],
            _type: PhantomData,
        }
    }

    /// Appends SQL text (Easel's own, never client input).
    pub fn sql(mut self, text: &str) -> Self {
        match self.parts.last_mut() {
            Some(Part::Sql(s)) => s.push_str(text),
            _ => self.parts.push(Part::Sql(text.to_owned())),
        }
        self
    }

    /// Appends a bound uuid.
    pub fn uuid(self, v: Uuid) -> Self {
        self.bind(Part::Uuid(v))
    }

    /// Appends a bound nullable uuid.
    pub fn maybe_uuid(self, v: Option<Uuid>) -> Self {
        self.bind(Part::MaybeUuid(v))
    }

    /// Appends a bound boolean.
    pub fn bool(self, v: bool) -> Self {
        self.bind(Part::Bool(v))
    }

    /// Appends a bound `integer`.
    pub fn int(self, v: i32) -> Self {
        self.bind(Part::Int(v))
    }

    /// Appends a bound `bigint`.
    pub fn bigint(self, v: i64) -> Self {
        self.bind(Part::BigInt(v))
    }

    /// Appends a bound timestamp.
    pub fn time(self, v: DateTime<Utc>) -> Self {
        self.bind(Part::Time(v))
    }

    /// Appends another fragment (its text and binds), whatever its type.
    pub fn append<T>(mut self, other: Fragment<T>) -> Self {
        for part in other.parts {
            self = match part {
                Part::Sql(s) => self.sql(&s),
                bound => self.bind(bound),
            };
        }
        self
    }

    fn bind(mut self, part: Part) -> Self {
        self.parts.push(part);
        self
    }
}

impl<ST: TypedExpressionType> Expression for Fragment<ST> {
    type SqlType = ST;
}

impl<ST, QS> AppearsOnTable<QS> for Fragment<ST> where Self: Expression {}

impl<ST, QS> SelectableExpression<QS> for Fragment<ST> where Self: AppearsOnTable<QS> {}

impl<ST, GB> ValidGrouping<GB> for Fragment<ST> {
    type IsAggregate = is_aggregate::Never;
}

impl<ST> QueryId for Fragment<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST> QueryFragment<Pg> for Fragment<ST> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for part in &self.parts {
            match part {
                Part::Sql(s) => out.push_sql(s),
                Part::Uuid(v) => out.push_bind_param::<SqlUuid, _>(v)?,
                Part::MaybeUuid(v) => out.push_bind_param::<Nullable<SqlUuid>, _>(v)?,
                Part::Bool(v) => out.push_bind_param::<Bool, _>(v)?,
                Part::Int(v) => out.push_bind_param::<Integer, _>(v)?,
                Part::BigInt(v) => out.push_bind_param::<BigInt, _>(v)?,
                Part::Time(v) => out.push_bind_param::<Timestamptz, _>(v)?,
            }
        }
        Ok(())
    }
}

/// `json_build_object(<entries>)::text`, or SQL `NULL` when there are no entries: the one
/// JSON column a look-ahead plan adds to a page's rows. Each entry is `'<key>', <value>`.
pub fn json_object(entries: Vec<Fragment<Text>>) -> Fragment<Nullable<Text>> {
    if entries.is_empty() {
        return Fragment::new("NULL::text");
    }
    let mut out = Fragment::new("json_build_object(");
    for (i, entry) in entries.into_iter().enumerate() {
        if i > 0 {
            out = out.sql(", ");
        }
        out = out.append(entry);
    }
    out.sql(")::text")
}

/// Decodes a plan's JSON column (absent when the plan asked for nothing).
pub fn decode_json<T: DeserializeOwned>(json: Option<String>) -> QueryResult<Option<T>> {
    json.map(|j| {
        serde_json::from_str(&j)
            .map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    })
    .transpose()
}

/// For `#[serde(default, deserialize_with = "present")]` on an `Option<Option<T>>`: a key
/// present in the JSON, even as `null`, is `Some(value)`; an absent key stays `None` (not
/// planned).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `<query> LIMIT <n>` with `n` written into the SQL rather than bound.
///
/// A page's statement is prepared once per connection; with `LIMIT $1` PostgreSQL cannot
/// tell a page of 21 from a scan of the table, so the plan it keeps for any parameter values
/// (the generic plan) looks expensive, and it plans the statement again at every run (about a
/// third of the database's work for a feed page, measured with pgbench). Page sizes are
/// validated small integers (1 to 101), so writing them into the text costs at most a
/// hundred cached statements per connection and lets PostgreSQL reuse one plan.
pub fn literal_limit<Q>(query: Q, n: i64) -> LiteralLimit<Q> {
    LiteralLimit { query, n }
}

/// See [`literal_limit`].
#[derive(Debug, Clone)]
pub struct LiteralLimit<Q> {
    query: Q,
    n: i64,
}

impl<Q: Query> Query for LiteralLimit<Q> {
    type SqlType = Q::SqlType;
}

impl<Q> QueryId for LiteralLimit<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for LiteralLimit<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.query.walk_ast(out.reborrow())?;
        out.push_sql(&format!(" LIMIT {}", self.n));
        Ok(())
    }
}

/// The select list diesel writes for a `SELECT` query (`"t"."a", "t"."b", ...`), for SQL that
/// must name the same columns as a `Selectable` row type (e.g. to build JSON of it).
pub fn select_list(query: impl QueryFragment<Pg>) -> String {
    let text = diesel::debug_query::<Pg, _>(&query).to_string();
    let list = text
        .strip_prefix("SELECT ")
        .and_then(|rest| rest.split(" FROM ").next())
        .unwrap_or_default();
    list.to_owned()
}

#[cfg(test)]
mod tests {
    use diesel::{dsl::sql, prelude::*, query_builder::QueryFragment};

    use super::*;
    use crate::db::schema::users;

    fn cacheable(query: &impl QueryFragment<Pg>) -> bool {
        query.is_safe_to_cache_prepared(&Pg).unwrap()
    }

    #[test]
    fn a_statement_with_fragments_stays_cacheable_unlike_one_with_diesel_sql() {
        let id = Uuid::nil();
        let with_fragment = users::table
            .filter(
                Fragment::<Bool>::new("(users.id = ")
                    .uuid(id)
                    .sql(" OR ")
                    .bool(false)
                    .sql(")"),
            )
            .select((users::id, Fragment::<Nullable<Text>>::new("NULL::text")));
        assert!(cacheable(&with_fragment));
        let text = diesel::debug_query::<Pg, _>(&with_fragment).to_string();
        assert!(text.contains("(users.id = $1 OR $2)"), "{text}");
        let with_sql = users::table.filter(sql::<Bool>("users.id IS NOT NULL"));
        assert!(!cacheable(&with_sql));
    }

    #[test]
    fn a_literal_limit_is_written_into_a_cacheable_statement() {
        let q = literal_limit(users::table.select(users::id).order(users::id.desc()), 21);
        assert!(cacheable(&q));
        let text = diesel::debug_query::<Pg, _>(&q).to_string();
        assert!(
            text.starts_with(
                r#"SELECT "users"."id" FROM "users" ORDER BY "users"."id" DESC LIMIT 21"#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_select_list_names_the_columns_of_a_row_type() {
        let list = select_list(users::table.select((users::id, users::username)));
        assert_eq!(list, r#""users"."id", "users"."username""#);
    }

    #[test]
    fn appended_fragments_keep_their_binds_in_order() {
        let inner = Fragment::<Text>::new("'a', ").bigint(7);
        let outer = json_object(vec![inner, Fragment::new("'b', ").bool(true)]);
        let text = diesel::debug_query::<Pg, _>(&users::table.select(outer)).to_string();
        assert!(
            text.contains("json_build_object('a', $1, 'b', $2)::text"),
            "{text}"
        );
        assert!(text.ends_with("-- binds: [7, true]"), "{text}");
    }
}
