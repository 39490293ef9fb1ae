//! Characters, their images, likes, ratings and views, and what generation sets on them.

use chrono::{DateTime, Utc};
use diesel::{
    data_types::PgNumeric,
    deserialize::{self, FromSql},
    dsl::{count_star, sql},
    pg::{Pg, PgValue},
    prelude::*,
    serialize::{self, Output, ToSql},
    sql_types::{BigInt, Double, Nullable, Numeric, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    CharacterWants, OrderKey, PlannedCharacter, Seer, SqlUuid, TimeKey, after_position,
    before_time, plan, visible,
};
use crate::db::literal_limit;
use crate::{
    db::schema::{
        character_likes, character_ratings, characters, collection_characters, collections,
    },
    gallery::{CharacterStatus, LicenseType, StyleType, VariantType},
};

/// A `numeric(3,1)` kept in Rust as tenths (`7.5` is `Tenths(75)`): exact, no floats in the
/// database round trip and no bigdecimal dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = Numeric)]
pub struct Tenths(pub i32);

impl FromSql<Numeric, Pg> for Tenths {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let (negative, weight, digits) = match PgNumeric::from_sql(value)? {
            PgNumeric::Positive { weight, digits, .. } => (false, weight, digits),
            PgNumeric::Negative { weight, digits, .. } => (true, weight, digits),
            PgNumeric::NaN => return Err("NaN is not a number of tenths".into()),
        };
        let mut value = 0f64;
        for (i, d) in digits.iter().enumerate() {
            value += f64::from(*d) * 10_000f64.powi(i32::from(weight) - i as i32);
        }
        let tenths = (value * 10.0).round() as i32;
        Ok(Tenths(if negative { -tenths } else { tenths }))
    }
}

/// Reads a JSON number (as PostgreSQL writes a `numeric(3,1)` into JSON).
impl<'de> serde::Deserialize<'de> for Tenths {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = <f64 as serde::Deserialize>::deserialize(d)?;
        Ok(Tenths((value * 10.0).round() as i32))
    }
}

impl ToSql<Numeric, Pg> for Tenths {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        let abs = self.0.unsigned_abs();
        let (whole, tenth) = ((abs / 10) as i16, (abs % 10) as i16 * 1000);
        let (weight, digits) = match (whole, tenth) {
            (0, 0) => (0, vec![]),
            (0, t) => (-1, vec![t]),
            (w, 0) => (0, vec![w]),
            (w, t) => (0, vec![w, t]),
        };
        let n = if self.0 < 0 {
            PgNumeric::Negative {
                weight,
                scale: 1,
                digits,
            }
        } else {
            PgNumeric::Positive {
                weight,
                scale: 1,
                digits,
            }
        };
        <PgNumeric as ToSql<Numeric, Pg>>::to_sql(&n, &mut out.reborrow())
    }
}

/// A character (seed 003).
#[derive(Debug, Clone, Queryable, Selectable, serde::Deserialize)]
#[diesel(table_name = characters, check_for_backend(Pg))]
pub struct CharacterRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub style_type: StyleType,
    pub art_style: Option<String>,
    pub mood: Option<String>,
    pub color_palette: Vec<String>,
    pub model_version: String,
    pub seed: Option<i64>,
    pub cfg_scale: Tenths,
    pub steps: i32,
    pub sampler: String,
    pub primary_image_id: Option<Uuid>,
    pub status: CharacterStatus,
    pub tags: Vec<String>,
    pub is_public: bool,
    pub is_featured: bool,
    pub allow_commercial_use: bool,
    pub license_type: LicenseType,
    pub view_count: i64,
    pub like_count: i64,
    pub download_count: i64,
    pub share_count: i64,
    pub parent_character_id: Option<Uuid>,
    pub version_number: i32,
    pub variant_type: Option<VariantType>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = characters)]
pub struct NewCharacter<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub prompt: &'a str,
    pub negative_prompt: Option<&'a str>,
    pub style_type: StyleType,
    pub art_style: Option<&'a str>,
    pub mood: Option<&'a str>,
    pub color_palette: &'a [String],
    pub model_version: &'a str,
    pub seed: Option<i64>,
    pub cfg_scale: Tenths,
    pub steps: i32,
    pub sampler: &'a str,
    pub primary_image_id: Option<Uuid>,
    pub status: CharacterStatus,
    pub tags: &'a [String],
    pub is_public: bool,
    pub published_at: Option<DateTime<Utc>>,
    pub allow_commercial_use: bool,
    pub license_type: LicenseType,
    pub parent_character_id: Option<Uuid>,
    pub version_number: i32,
    pub variant_type: Option<VariantType>,
}

/// Changes to a character; `None` leaves a column as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = characters)]
pub struct CharacterChangeset {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub prompt: Option<String>,
    pub negative_prompt: Option<Option<String>>,
    pub style_type: Option<StyleType>,
    pub art_style: Option<Option<String>>,
    pub mood: Option<Option<String>>,
    pub color_palette: Option<Vec<String>>,
    pub model_version: Option<String>,
    pub seed: Option<Option<i64>>,
    pub cfg_scale: Option<Tenths>,
    pub steps: Option<i32>,
    pub sampler: Option<String>,
    pub primary_image_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
    pub allow_commercial_use: Option<bool>,
    pub license_type: Option<LicenseType>,
    pub variant_type: Option<Option<VariantType>>,
}

pub async fn insert_character(
    conn: &mut AsyncPgConnection,
    new: &NewCharacter<'_>,
) -> QueryResult<CharacterRow> {
    diesel::insert_into(characters::table)
        .values(new)
        .returning(CharacterRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn character_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<CharacterRow>> {
    characters::table
        .find(id)
        .select(CharacterRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The character, locked until the transaction ends.
pub async fn lock_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<CharacterRow>> {
    characters::table
        .find(id)
        .select(CharacterRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

pub async fn characters_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<CharacterRow>> {
    characters::table
        .filter(characters::id.eq_any(ids))
        .select(CharacterRow::as_select())
        .load(conn)
        .await
}

pub async fn update_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &CharacterChangeset,
) -> QueryResult<CharacterRow> {
    diesel::update(characters::table.find(id))
        .set(changes)
        .returning(CharacterRow::as_returning())
        .get_result(conn)
        .await
}

/// The next version number among a parent and its variants (the parent row must be locked).
pub async fn next_version_number(conn: &mut AsyncPgConnection, parent: Uuid) -> QueryResult<i32> {
    let max: Option<i32> = characters::table
        .filter(
            characters::id
                .eq(parent)
                .or(characters::parent_character_id.eq(parent)),
        )
        .select(diesel::dsl::max(characters::version_number))
        .first(conn)
        .await?;
    Ok(max.unwrap_or(1) + 1)
}

pub async fn publish_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<CharacterRow> {
    diesel::update(characters::table.find(id))
        .set((
            characters::is_public.eq(true),
            characters::published_at.eq(sql::<Nullable<Timestamptz>>(
                "coalesce(characters.published_at, now())",
            )),
        ))
        .returning(CharacterRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes a character, first taking it out of the counts of every collection holding it.
pub async fn delete_character(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let holding = collection_characters::table
        .filter(collection_characters::character_id.eq(id))
        .select(collection_characters::collection_id);
    diesel::update(collections::table.filter(collections::id.eq_any(holding)))
        .set(collections::character_count.eq(collections::character_count - 1))
        .execute(conn)
        .await?;
    let n = diesel::delete(characters::table.find(id))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

#[derive(QueryableByName)]
struct ViewCount {
    #[diesel(sql_type = BigInt)]
    view_count: i64,
}

/// Counts a view of character `id` by `viewer` once per window of `window_secs` (windows are
/// aligned to the database clock, so every server process agrees): the view counts only when
/// this viewer's mark for the current window is new. Mark and counter move in one statement,
/// so concurrent views by one viewer (aliases, parallel requests) count once. Returns the new
/// `view_count` when the view counted.
pub async fn add_view_once(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    viewer: &str,
    window_secs: i64,
) -> QueryResult<Option<i64>> {
    let counted: Option<ViewCount> = diesel::sql_query(
        "WITH mark AS ( \
             INSERT INTO character_view_marks (character_id, viewer, window_start) \
             VALUES ($1, $2, to_timestamp(floor(extract(epoch FROM now()) / $3) * $3)) \
             ON CONFLICT DO NOTHING \
             RETURNING character_id) \
         UPDATE characters SET view_count = view_count + 1 \
         WHERE id IN (SELECT character_id FROM mark) \
         RETURNING view_count",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<diesel::sql_types::Text, _>(viewer)
    .bind::<BigInt, _>(window_secs.max(1))
    .get_result(conn)
    .await
    .optional()?;
    Ok(counted.map(|c| c.view_count))
}

/// Drops view marks of windows that ended long ago (windows last at most a day); called
/// hourly by the server next to the rate-limit clean-up.
pub async fn prune_view_marks(conn: &mut AsyncPgConnection) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM character_view_marks WHERE window_start < now() - interval '2 days'",
    )
    .execute(conn)
    .await
}

/// Records a like; false when the user already liked the character.
pub async fn insert_like(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    user: Uuid,
) -> QueryResult<bool> {
    let n = diesel::insert_into(character_likes::table)
        .values((
            character_likes::character_id.eq(character),
            character_likes::user_id.eq(user),
        ))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Removes a like; false when there was none.
pub async fn delete_like(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    user: Uuid,
) -> QueryResult<bool> {
    let n = diesel::delete(
        character_likes::table
            .filter(character_likes::character_id.eq(character))
            .filter(character_likes::user_id.eq(user)),
    )
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Moves `like_count` by `delta` (in the transaction that added or removed the like).
pub async fn bump_like_count(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    delta: i64,
) -> QueryResult<CharacterRow> {
    diesel::update(characters::table.find(id))
        .set(characters::like_count.eq(characters::like_count + delta))
        .returning(CharacterRow::as_returning())
        .get_result(conn)
        .await
}

/// Which of `characters` `user` liked.
pub async fn liked_by(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    characters: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    character_likes::table
        .filter(character_likes::user_id.eq(user))
        .filter(character_likes::character_id.eq_any(characters))
        .select(character_likes::character_id)
        .load(conn)
        .await
}

/// Adds or replaces the viewer's rating of a character.
pub async fn upsert_rating(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    user: Uuid,
    rating: i32,
    review: Option<&str>,
) -> QueryResult<()> {
    diesel::insert_into(character_ratings::table)
        .values((
            character_ratings::id.eq(Uuid::now_v7()),
            character_ratings::character_id.eq(character),
            character_ratings::user_id.eq(user),
            character_ratings::rating.eq(rating),
            character_ratings::review_text.eq(review),
        ))
        .on_conflict((character_ratings::character_id, character_ratings::user_id))
        .do_update()
        .set((
            character_ratings::rating.eq(rating),
            character_ratings::review_text.eq(review),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Average rating and number of ratings of each rated character.
pub async fn rating_stats(
    conn: &mut AsyncPgConnection,
    characters: &[Uuid],
) -> QueryResult<Vec<(Uuid, f64, i64)>> {
    character_ratings::table
        .filter(character_ratings::character_id.eq_any(characters))
        .group_by(character_ratings::character_id)
        .select((
            character_ratings::character_id,
            sql::<Double>("avg(character_ratings.rating)::float8"),
            count_star(),
        ))
        .load(conn)
        .await
}

/// An owner's characters, newest first, as `seer` may see them, with what `wants` asks for.
pub async fn owner_characters(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
    wants: &CharacterWants,
) -> QueryResult<Vec<PlannedCharacter>> {
    let mut q = characters::table
        .filter(characters::owner_id.eq(owner))
        .filter(visible("characters", seer))
        .select((
            CharacterRow::as_select(),
            plan::character_extras(wants, seer),
        ))
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("characters", "created_at", key));
    }
    let rows: Vec<(CharacterRow, Option<String>)> = literal_limit(
        q.order((characters::created_at.desc(), characters::id.desc())),
        limit,
    )
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|(row, json)| Ok((row, plan::decode_character(json, wants)?)))
        .collect()
}

/// The variants of a character in version order, as `seer` may see them.
pub async fn variants(
    conn: &mut AsyncPgConnection,
    parent: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
) -> QueryResult<Vec<CharacterRow>> {
    let mut q = characters::table
        .filter(characters::parent_character_id.eq(parent))
        .filter(visible("characters", seer))
        .select(CharacterRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(after_position(
            "characters.version_number",
            "characters.id",
            key,
        ));
    }
    q.order((characters::version_number.asc(), characters::id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

// ---- generation hooks ----------------------------------------------------------------

/// The owner of a character (None when there is no such character).
pub async fn character_owner(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<Uuid>> {
    characters::table
        .find(id)
        .select(characters::owner_id)
        .first(conn)
        .await
        .optional()
}

/// Sets a character's generation status, with the error that ended it (if any).
pub async fn set_character_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: CharacterStatus,
    error: Option<&str>,
) -> QueryResult<()> {
    diesel::update(characters::table.find(id))
        .set((
            characters::status.eq(status),
            characters::error_message.eq(error),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Marks a character completed; `image` becomes its primary image when it has none.
pub async fn complete_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    image: Option<Uuid>,
) -> QueryResult<()> {
    diesel::update(characters::table.find(id))
        .set((
            characters::status.eq(CharacterStatus::Completed),
            characters::error_message.eq(None::<String>),
            characters::primary_image_id.eq(sql::<Nullable<SqlUuid>>(
                "coalesce(primary_image_id, ",
            )
            .bind::<Nullable<SqlUuid>, _>(image)
            .sql(")")),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}
