//! What users do with others' characters that others can read: the characters a user liked,
//! and ratings with their reviews.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Bool, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{CharacterRow, Seer, SqlUuid, TimeKey, visible};
use crate::db::{
    Fragment, literal_limit,
    schema::{character_likes, character_ratings, characters, users},
};

/// A user's rating of a character, with the optional review.
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = character_ratings, check_for_backend(diesel::pg::Pg))]
pub struct RatingRow {
    pub id: Uuid,
    pub character_id: Uuid,
    pub user_id: Uuid,
    pub rating: i32,
    pub review_text: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The characters `user` liked that `seer` may see, newest like first: `(liked at, row)`,
/// after the key `(liked at, character id)`.
pub async fn liked_characters(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
) -> QueryResult<Vec<(DateTime<Utc>, CharacterRow)>> {
    let mut q = character_likes::table
        .inner_join(characters::table)
        .filter(character_likes::user_id.eq(user))
        .filter(visible("characters", seer))
        .select((character_likes::created_at, CharacterRow::as_select()))
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            Fragment::<Bool>::new("(character_likes.created_at, character_likes.character_id) < (")
                .time(at)
                .sql(", ")
                .uuid(id)
                .sql(")"),
        );
    }
    literal_limit(
        q.order((
            character_likes::created_at.desc(),
            character_likes::character_id.desc(),
        )),
        limit,
    )
    .load(conn)
    .await
}

/// Ratings of a character by active accounts, newest first, after `(created_at, id)`.
pub async fn ratings_of(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> QueryResult<Vec<RatingRow>> {
    let mut q = character_ratings::table
        .inner_join(users::table)
        .filter(character_ratings::character_id.eq(character))
        .filter(users::account_status.eq("active"))
        .select(RatingRow::as_select())
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            Fragment::<Bool>::new("(character_ratings.created_at, character_ratings.id) < (")
                .time(at)
                .sql(", ")
                .uuid(id)
                .sql(")"),
        );
    }
    literal_limit(
        q.order((
            character_ratings::created_at.desc(),
            character_ratings::id.desc(),
        )),
        limit,
    )
    .load(conn)
    .await
}

/// The first `limit` ratings (by active accounts, newest first) of each of `characters`, in
/// one statement.
pub async fn first_ratings_of(
    conn: &mut AsyncPgConnection,
    characters: &[Uuid],
    limit: i64,
) -> QueryResult<Vec<RatingRow>> {
    diesel::sql_query(
        "SELECT id, character_id, user_id, rating, review_text, created_at, updated_at FROM ( \
           SELECT r.*, row_number() OVER ( \
             PARTITION BY r.character_id ORDER BY r.created_at DESC, r.id DESC) AS n \
           FROM character_ratings r JOIN users u ON u.id = r.user_id \
           WHERE r.character_id = ANY($1) AND u.account_status = $2) ranked \
         WHERE n <= $3 ORDER BY character_id, created_at DESC, id DESC",
    )
    .bind::<diesel::sql_types::Array<SqlUuid>, _>(characters)
    .bind::<Text, _>("active")
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// `user`'s ratings of any of `characters`.
pub async fn ratings_by(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    characters: &[Uuid],
) -> QueryResult<Vec<RatingRow>> {
    character_ratings::table
        .filter(character_ratings::user_id.eq(user))
        .filter(character_ratings::character_id.eq_any(characters))
        .select(RatingRow::as_select())
        .load(conn)
        .await
}
