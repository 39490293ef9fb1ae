//! The public showcase feed: filters, orders and its keyset.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types::Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    CharacterRow, Seer,
    plan::{self, CharacterWants, PlannedCharacter},
};
use crate::{
    db::{
        Fragment, literal_limit,
        schema::{characters, users},
    },
    gallery::StyleType,
};

/// Filters of the showcase feed.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub style_type: Option<StyleType>,
    pub tags: Vec<String>,
    pub featured: Option<bool>,
    pub search: Option<String>,
}

/// Orders of the showcase feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedOrder {
    Newest,
    MostLiked,
    MostViewed,
}

/// The sort key of a feed row (its cursor): `featured` only when featured come first, `at`
/// for NEWEST, `count` for MOST_LIKED and MOST_VIEWED.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedKey {
    #[serde(rename = "f", skip_serializing_if = "Option::is_none", default)]
    pub featured: Option<bool>,
    #[serde(rename = "t", skip_serializing_if = "Option::is_none", default)]
    pub at: Option<DateTime<Utc>>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none", default)]
    pub count: Option<i64>,
    pub id: Uuid,
}

impl FeedKey {
    /// The key of `row` in a feed of this order.
    pub fn of(row: &CharacterRow, order: FeedOrder, featured_first: bool) -> Self {
        FeedKey {
            featured: featured_first.then_some(row.is_featured),
            at: (order == FeedOrder::Newest).then_some(row.created_at),
            count: match order {
                FeedOrder::Newest => None,
                FeedOrder::MostLiked => Some(row.like_count),
                FeedOrder::MostViewed => Some(row.view_count),
            },
            id: row.id,
        }
    }

    /// Whether this key was made by a feed of this order.
    pub fn fits(&self, order: FeedOrder, featured_first: bool) -> bool {
        self.featured.is_some() == featured_first
            && self.at.is_some() == (order == FeedOrder::Newest)
            && self.count.is_some() == (order != FeedOrder::Newest)
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// `([characters.is_featured, ]<sort column>, characters.id) < (...)`: the feed's keyset.
fn feed_after(sort_column: &str, featured: Option<bool>, key: &FeedKey) -> Fragment<Bool> {
    let mut f = Fragment::new("(");
    if let Some(featured) = featured {
        f = f.sql("characters.is_featured, ");
        f = f
            .sql(sort_column)
            .sql(", characters.id) < (")
            .bool(featured)
            .sql(", ");
    } else {
        f = f.sql(sort_column).sql(", characters.id) < (");
    }
    f = match key.at {
        Some(at) => f.time(at),
        None => f.bigint(key.count.unwrap_or(0)),
    };
    f.sql(", ").uuid(key.id).sql(")")
}

/// The public showcase: public characters of active owners who allow showcasing, with what
/// `wants` asks for (as `seer` may see it). One statement, keyset-paginated on the order's
/// sort key.
#[expect(
    clippy::too_many_arguments,
    reason = "the feed's request, page and plan"
)]
pub async fn feed(
    conn: &mut AsyncPgConnection,
    filter: &FeedFilter,
    order: FeedOrder,
    featured_first: bool,
    after: Option<&FeedKey>,
    limit: i64,
    wants: &CharacterWants,
    seer: Seer,
) -> QueryResult<Vec<PlannedCharacter>> {
    let mut q = characters::table
        .inner_join(users::table)
        // Constants, not binds: the statement is prepared once per connection, and a plan
        // made for any parameter values (PostgreSQL's generic plan) can use the partial
        // indexes `WHERE is_public` only when the statement itself says `is_public`.
        .filter(characters::is_public)
        .filter(users::allow_gallery_showcase)
        .filter(Fragment::<Bool>::new("users.account_status = 'active'"))
        .select((
            CharacterRow::as_select(),
            plan::character_extras(wants, seer),
        ))
        .into_boxed();
    if let Some(style) = filter.style_type {
        q = q.filter(characters::style_type.eq(style));
    }
    if !filter.tags.is_empty() {
        q = q.filter(characters::tags.contains(filter.tags.clone()));
    }
    if let Some(featured) = filter.featured {
        q = q.filter(characters::is_featured.eq(featured));
    }
    if let Some(search) = &filter.search {
        let pattern = like_pattern(search);
        q = q.filter(
            characters::name
                .ilike(pattern.clone())
                .or(characters::description.ilike(pattern).assume_not_null()),
        );
    }
    let sort_column = match order {
        FeedOrder::Newest => "characters.created_at",
        FeedOrder::MostLiked => "characters.like_count",
        FeedOrder::MostViewed => "characters.view_count",
    };
    if let Some(key) = after {
        q = q.filter(feed_after(
            sort_column,
            featured_first.then(|| key.featured.unwrap_or(false)),
            key,
        ));
    }
    if featured_first {
        q = q.order(characters::is_featured.desc());
        q = match order {
            FeedOrder::Newest => q.then_order_by(characters::created_at.desc()),
            FeedOrder::MostLiked => q.then_order_by(characters::like_count.desc()),
            FeedOrder::MostViewed => q.then_order_by(characters::view_count.desc()),
        };
    } else {
        q = match order {
            FeedOrder::Newest => q.order(characters::created_at.desc()),
            FeedOrder::MostLiked => q.order(characters::like_count.desc()),
            FeedOrder::MostViewed => q.order(characters::view_count.desc()),
        };
    }
    let rows: Vec<(CharacterRow, Option<String>)> =
        literal_limit(q.then_order_by(characters::id.desc()), limit)
            .load(conn)
            .await?;
    rows.into_iter()
        .map(|(row, json)| Ok((row, plan::decode_character(json, wants)?)))
        .collect()
}
