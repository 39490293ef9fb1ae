//! Rows and queries of the gallery capability: images, characters, likes, ratings,
//! collections and albums. Every SQL statement of the gallery lives here.

use chrono::{DateTime, Utc};
use diesel::{
    data_types::PgNumeric,
    deserialize::{self, FromSql},
    dsl::{count_star, sql},
    expression::BoxableExpression,
    pg::{Pg, PgValue},
    prelude::*,
    serialize::{self, Output, ToSql},
    sql_types::{Array, BigInt, Bool, Double, Integer, Nullable, Numeric, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CharacterStatus, ImageKind, LicenseType, StyleType, VariantType};
use crate::db::schema::{
    album_images, albums, character_images, character_likes, character_ratings, characters,
    collection_characters, collections, images, subscriptions, users, vendor_profiles,
};

type SqlUuid = diesel::sql_types::Uuid;

/// Who looks: decides which private rows a query may return.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Seer {
    pub user: Option<Uuid>,
    pub admin: bool,
}

impl Seer {
    /// Whether a row owned by `owner` with this visibility may be shown.
    pub fn sees(&self, owner: Uuid, is_public: bool) -> bool {
        is_public || self.admin || self.user == Some(owner)
    }
}

/// `(<table>.is_public OR <table>.owner_id = viewer OR admin)` for any query source.
fn visible<QS>(table: &str, seer: Seer) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    Box::new(
        sql::<Bool>(&format!("({table}.is_public OR {table}.owner_id = "))
            .bind::<Nullable<SqlUuid>, _>(seer.user)
            .sql(" OR ")
            .bind::<Bool, _>(seer.admin)
            .sql(")"),
    )
}

/// `(<a>, <b>) < ($1, $2)` on a timestamp and an id: the keyset of newest-first lists.
fn before_time<QS>(
    table: &str,
    column: &str,
    key: (DateTime<Utc>, Uuid),
) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    Box::new(
        sql::<Bool>(&format!("({table}.{column}, {table}.id) < ("))
            .bind::<Timestamptz, _>(key.0)
            .sql(", ")
            .bind::<SqlUuid, _>(key.1)
            .sql(")"),
    )
}

/// `(<position>, <id column>) > ($1, $2)`: the keyset of lists in their given order.
fn after_position<QS>(
    position: &str,
    id: &str,
    key: (i32, Uuid),
) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    Box::new(
        sql::<Bool>(&format!("({position}, {id}) > ("))
            .bind::<Integer, _>(key.0)
            .sql(", ")
            .bind::<SqlUuid, _>(key.1)
            .sql(")"),
    )
}

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

// ---- images ---------------------------------------------------------------------------

/// A stored image (the file itself lives in object storage under `storage_key`).
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = images, check_for_backend(Pg))]
pub struct ImageRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub job_id: Option<Uuid>,
    pub kind: ImageKind,
    pub storage_key: String,
    pub mime_type: String,
    pub byte_size: i64,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub thumbnail_key: Option<String>,
    pub is_public: bool,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = images)]
pub struct NewImage<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    /// The generation job that made a `result` image.
    pub job_id: Option<Uuid>,
    pub kind: ImageKind,
    pub storage_key: &'a str,
    pub mime_type: &'a str,
    pub byte_size: i64,
    pub width: i32,
    pub height: i32,
    pub thumbnail_key: Option<&'a str>,
    pub is_public: bool,
    pub tags: &'a [String],
}

pub async fn insert_image(
    conn: &mut AsyncPgConnection,
    new: &NewImage<'_>,
) -> QueryResult<ImageRow> {
    diesel::insert_into(images::table)
        .values(new)
        .returning(ImageRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn images_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::id.eq_any(ids))
        .select(ImageRow::as_select())
        .load(conn)
        .await
}

/// The result images of generation jobs, in the order they were made.
pub async fn images_of_jobs(
    conn: &mut AsyncPgConnection,
    jobs: &[Uuid],
) -> QueryResult<Vec<ImageRow>> {
    images::table
        .filter(images::job_id.eq_any(jobs))
        .order((images::created_at.asc(), images::id.asc()))
        .select(ImageRow::as_select())
        .load(conn)
        .await
}

/// Which of `ids` belong to `owner`.
pub async fn owned_image_ids(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    images::table
        .filter(images::id.eq_any(ids))
        .filter(images::owner_id.eq(owner))
        .select(images::id)
        .load(conn)
        .await
}

/// Makes these images of `owner` public (publishing a character shows its pictures).
pub async fn publish_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    ids: &[Uuid],
) -> QueryResult<usize> {
    diesel::update(images::table)
        .filter(images::id.eq_any(ids))
        .filter(images::owner_id.eq(owner))
        .filter(images::is_public.eq(false))
        .set(images::is_public.eq(true))
        .execute(conn)
        .await
}

/// An owner's images, newest first, as `seer` may see them.
pub async fn owner_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ImageRow>> {
    let mut q = images::table
        .filter(images::owner_id.eq(owner))
        .filter(visible("images", seer))
        .select(ImageRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("images", "created_at", key));
    }
    q.order((images::created_at.desc(), images::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// The first images of many characters, by position (binds: ids, viewer, admin, first).
const CHARACTER_IMAGES_SQL: &str = "SELECT i.id, i.owner_id, i.job_id, i.kind, i.storage_key, i.mime_type, i.byte_size, \
                i.width, i.height, i.thumbnail_key, i.is_public, i.tags, i.created_at, \
                ci.character_id AS parent_id \
         FROM (SELECT ci.character_id, ci.image_id, ci.position, \
                      row_number() OVER (PARTITION BY ci.character_id \
                                         ORDER BY ci.position, ci.image_id) AS n \
               FROM character_images ci JOIN images i ON i.id = ci.image_id \
               WHERE ci.character_id = ANY($1) \
                 AND (i.is_public OR i.owner_id = $2 OR $3)) ci \
         JOIN images i ON i.id = ci.image_id \
         WHERE ci.n <= $4 \
         ORDER BY ci.character_id, ci.position, ci.image_id";

#[derive(QueryableByName)]
struct PositionedImage {
    #[diesel(embed)]
    image: ImageRow,
    #[diesel(sql_type = SqlUuid)]
    parent_id: Uuid,
}

/// The first `first` images of each character (by position) that `seer` may see: one
/// statement for any number of characters.
pub async fn images_of_characters(
    conn: &mut AsyncPgConnection,
    characters: &[Uuid],
    first: i32,
    seer: Seer,
) -> QueryResult<Vec<(Uuid, ImageRow)>> {
    let rows: Vec<PositionedImage> = diesel::sql_query(CHARACTER_IMAGES_SQL)
        .bind::<Array<SqlUuid>, _>(characters)
        .bind::<Nullable<SqlUuid>, _>(seer.user)
        .bind::<Bool, _>(seer.admin)
        .bind::<BigInt, _>(i64::from(first))
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| (r.parent_id, r.image)).collect())
}

/// The images of an album in album order, as `seer` may see them.
pub async fn album_images_page(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    seer: Seer,
    after: Option<(i32, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<(i32, ImageRow)>> {
    let mut q = album_images::table
        .inner_join(images::table)
        .filter(album_images::album_id.eq(album))
        .filter(visible("images", seer))
        .select((album_images::position, ImageRow::as_select()))
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(after_position(
            "album_images.position",
            "album_images.image_id",
            key,
        ));
    }
    q.order((album_images::position.asc(), album_images::image_id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

// ---- characters -----------------------------------------------------------------------

/// A character (seed 003).
#[derive(Debug, Clone, Queryable, Selectable)]
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

/// Replaces the ordered images of a character.
pub async fn set_character_images(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    image_ids: &[Uuid],
) -> QueryResult<()> {
    diesel::delete(character_images::table.filter(character_images::character_id.eq(character)))
        .execute(conn)
        .await?;
    if image_ids.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = image_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                character_images::character_id.eq(character),
                character_images::image_id.eq(*id),
                character_images::position.eq(i as i32),
            )
        })
        .collect();
    diesel::insert_into(character_images::table)
        .values(rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// The image ids of a character (any visibility), in order.
pub async fn character_image_ids(
    conn: &mut AsyncPgConnection,
    character: Uuid,
) -> QueryResult<Vec<Uuid>> {
    character_images::table
        .filter(character_images::character_id.eq(character))
        .order(character_images::position.asc())
        .select(character_images::image_id)
        .load(conn)
        .await
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

/// An owner's characters, newest first, as `seer` may see them.
pub async fn owner_characters(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<CharacterRow>> {
    let mut q = characters::table
        .filter(characters::owner_id.eq(owner))
        .filter(visible("characters", seer))
        .select(CharacterRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("characters", "created_at", key));
    }
    q.order((characters::created_at.desc(), characters::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// The variants of a character in version order, as `seer` may see them.
pub async fn variants(
    conn: &mut AsyncPgConnection,
    parent: Uuid,
    seer: Seer,
    after: Option<(i32, Uuid)>,
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
fn feed_after<QS>(
    sort_column: &str,
    featured: Option<bool>,
    key: &FeedKey,
) -> Box<dyn BoxableExpression<QS, Pg, SqlType = Bool>> {
    let prefix = match featured {
        Some(_) => format!("(characters.is_featured, {sort_column}, characters.id) < ("),
        None => format!("({sort_column}, characters.id) < ("),
    };
    match (featured, key.at) {
        (Some(f), Some(at)) => Box::new(
            sql::<Bool>(&prefix)
                .bind::<Bool, _>(f)
                .sql(", ")
                .bind::<Timestamptz, _>(at)
                .sql(", ")
                .bind::<SqlUuid, _>(key.id)
                .sql(")"),
        ),
        (Some(f), None) => Box::new(
            sql::<Bool>(&prefix)
                .bind::<Bool, _>(f)
                .sql(", ")
                .bind::<BigInt, _>(key.count.unwrap_or(0))
                .sql(", ")
                .bind::<SqlUuid, _>(key.id)
                .sql(")"),
        ),
        (None, Some(at)) => Box::new(
            sql::<Bool>(&prefix)
                .bind::<Timestamptz, _>(at)
                .sql(", ")
                .bind::<SqlUuid, _>(key.id)
                .sql(")"),
        ),
        (None, None) => Box::new(
            sql::<Bool>(&prefix)
                .bind::<BigInt, _>(key.count.unwrap_or(0))
                .sql(", ")
                .bind::<SqlUuid, _>(key.id)
                .sql(")"),
        ),
    }
}

/// The public showcase: public characters of active owners who allow showcasing. One
/// statement, keyset-paginated on the order's sort key.
pub async fn feed(
    conn: &mut AsyncPgConnection,
    filter: &FeedFilter,
    order: FeedOrder,
    featured_first: bool,
    after: Option<&FeedKey>,
    limit: i64,
) -> QueryResult<Vec<CharacterRow>> {
    let mut q = characters::table
        .inner_join(users::table)
        .filter(characters::is_public.eq(true))
        .filter(users::allow_gallery_showcase.eq(true))
        .filter(users::account_status.eq("active"))
        .select(CharacterRow::as_select())
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
    q.then_order_by(characters::id.desc())
        .limit(limit)
        .load(conn)
        .await
}

// ---- collections ----------------------------------------------------------------------

/// A collection of characters (seed 003).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = collections, check_for_backend(Pg))]
pub struct CollectionRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub cover_image_id: Option<Uuid>,
    pub tags: Vec<String>,
    pub is_public: bool,
    pub character_count: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = collections)]
pub struct NewCollection<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub cover_image_id: Option<Uuid>,
    pub tags: &'a [String],
    pub is_public: bool,
}

/// Changes to a collection or album; `None` leaves a column as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = collections)]
pub struct CollectionChangeset {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
}

pub async fn insert_collection(
    conn: &mut AsyncPgConnection,
    new: &NewCollection<'_>,
) -> QueryResult<CollectionRow> {
    diesel::insert_into(collections::table)
        .values(new)
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn collection_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<CollectionRow>> {
    collections::table
        .find(id)
        .select(CollectionRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update_collection(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &CollectionChangeset,
) -> QueryResult<CollectionRow> {
    diesel::update(collections::table.find(id))
        .set(changes)
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn delete_collection(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(collections::table.find(id))
        .execute(conn)
        .await?
        == 1)
}

/// Appends characters to a collection (skipping those already in it) and moves
/// `character_count` by the number added; returns the collection.
pub async fn add_to_collection(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    characters: &[Uuid],
) -> QueryResult<CollectionRow> {
    // Serialises additions to one collection, so positions and the count stay exact.
    collections::table
        .find(collection)
        .select(collections::id)
        .for_update()
        .first::<Uuid>(conn)
        .await?;
    let last: Option<i32> = collection_characters::table
        .filter(collection_characters::collection_id.eq(collection))
        .select(diesel::dsl::max(collection_characters::position))
        .first(conn)
        .await?;
    let start = last.map_or(0, |p| p + 1);
    let rows: Vec<_> = characters
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                collection_characters::collection_id.eq(collection),
                collection_characters::character_id.eq(*id),
                collection_characters::position.eq(start + i as i32),
            )
        })
        .collect();
    let added = diesel::insert_into(collection_characters::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    diesel::update(collections::table.find(collection))
        .set(collections::character_count.eq(collections::character_count + added as i32))
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

/// Takes characters out of a collection and moves `character_count` by the number removed.
pub async fn remove_from_collection(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    characters: &[Uuid],
) -> QueryResult<CollectionRow> {
    let removed = diesel::delete(
        collection_characters::table
            .filter(collection_characters::collection_id.eq(collection))
            .filter(collection_characters::character_id.eq_any(characters)),
    )
    .execute(conn)
    .await?;
    diesel::update(collections::table.find(collection))
        .set(collections::character_count.eq(collections::character_count - removed as i32))
        .returning(CollectionRow::as_returning())
        .get_result(conn)
        .await
}

/// The characters of a collection in collection order, as `seer` may see them.
pub async fn collection_characters_page(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    seer: Seer,
    after: Option<(i32, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<(i32, CharacterRow)>> {
    let mut q = collection_characters::table
        .inner_join(characters::table)
        .filter(collection_characters::collection_id.eq(collection))
        .filter(visible("characters", seer))
        .select((collection_characters::position, CharacterRow::as_select()))
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(after_position(
            "collection_characters.position",
            "collection_characters.character_id",
            key,
        ));
    }
    q.order((
        collection_characters::position.asc(),
        collection_characters::character_id.asc(),
    ))
    .limit(limit)
    .load(conn)
    .await
}

/// The collections holding a character, newest first, as `seer` may see them.
pub async fn collections_of_character(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    seer: Seer,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<CollectionRow>> {
    let mut q = collection_characters::table
        .inner_join(collections::table)
        .filter(collection_characters::character_id.eq(character))
        .filter(visible("collections", seer))
        .select(CollectionRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("collections", "created_at", key));
    }
    q.order((collections::created_at.desc(), collections::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// An owner's collections, newest first, as `seer` may see them.
pub async fn owner_collections(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<CollectionRow>> {
    let mut q = collections::table
        .filter(collections::owner_id.eq(owner))
        .filter(visible("collections", seer))
        .select(CollectionRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("collections", "created_at", key));
    }
    q.order((collections::created_at.desc(), collections::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

// ---- albums ---------------------------------------------------------------------------

/// A vendor's album of images (seed 001).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = albums, check_for_backend(Pg))]
pub struct AlbumRow {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub cover_image_id: Option<Uuid>,
    pub is_public: bool,
    pub image_count: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = albums)]
pub struct NewAlbum<'a> {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub name: &'a str,
    pub description: Option<&'a str>,
    pub cover_image_id: Option<Uuid>,
    pub is_public: bool,
}

/// Changes to an album; `None` leaves a column as it is.
#[derive(AsChangeset, Default)]
#[diesel(table_name = albums)]
pub struct AlbumChangeset {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub is_public: Option<bool>,
}

pub async fn insert_album(
    conn: &mut AsyncPgConnection,
    new: &NewAlbum<'_>,
) -> QueryResult<AlbumRow> {
    diesel::insert_into(albums::table)
        .values(new)
        .returning(AlbumRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn album_by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<AlbumRow>> {
    albums::table
        .find(id)
        .select(AlbumRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn update_album(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    changes: &AlbumChangeset,
) -> QueryResult<AlbumRow> {
    diesel::update(albums::table.find(id))
        .set(changes)
        .returning(AlbumRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn delete_album(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    Ok(diesel::delete(albums::table.find(id)).execute(conn).await? == 1)
}

/// Locks the album row until the transaction ends.
pub async fn lock_album(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<AlbumRow>> {
    albums::table
        .find(id)
        .select(AlbumRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Which of `ids` are already in the album.
pub async fn album_image_ids(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    ids: &[Uuid],
) -> QueryResult<Vec<Uuid>> {
    album_images::table
        .filter(album_images::album_id.eq(album))
        .filter(album_images::image_id.eq_any(ids))
        .select(album_images::image_id)
        .load(conn)
        .await
}

/// Appends images to a (locked) album and moves `image_count`; returns the album.
pub async fn add_album_images(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    ids: &[Uuid],
) -> QueryResult<AlbumRow> {
    let last: Option<i32> = album_images::table
        .filter(album_images::album_id.eq(album))
        .select(diesel::dsl::max(album_images::position))
        .first(conn)
        .await?;
    let start = last.map_or(0, |p| p + 1);
    let rows: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            (
                album_images::album_id.eq(album),
                album_images::image_id.eq(*id),
                album_images::position.eq(start + i as i32),
            )
        })
        .collect();
    let added = diesel::insert_into(album_images::table)
        .values(rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    diesel::update(albums::table.find(album))
        .set(albums::image_count.eq(albums::image_count + added as i32))
        .returning(AlbumRow::as_returning())
        .get_result(conn)
        .await
}

/// Takes images out of an album and moves `image_count` by the number removed.
pub async fn remove_album_images(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    ids: &[Uuid],
) -> QueryResult<AlbumRow> {
    let removed = diesel::delete(
        album_images::table
            .filter(album_images::album_id.eq(album))
            .filter(album_images::image_id.eq_any(ids)),
    )
    .execute(conn)
    .await?;
    diesel::update(albums::table.find(album))
        .set(albums::image_count.eq(albums::image_count - removed as i32))
        .returning(AlbumRow::as_returning())
        .get_result(conn)
        .await
}

/// An owner's albums, newest first, as `seer` may see them.
pub async fn owner_albums(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<AlbumRow>> {
    let mut q = albums::table
        .filter(albums::owner_id.eq(owner))
        .filter(visible("albums", seer))
        .select(AlbumRow::as_select())
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(before_time("albums", "created_at", key));
    }
    q.order((albums::created_at.desc(), albums::id.desc()))
        .limit(limit)
        .load(conn)
        .await
}

/// Whether the user holds a running paid plan (trial or active, not past its period).
pub async fn has_active_plan(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        subscriptions::table
            .filter(subscriptions::user_id.eq(user))
            .filter(subscriptions::status.eq_any(["trial", "active"]))
            .filter(subscriptions::current_period_end.gt(diesel::dsl::now)),
    ))
    .get_result(conn)
    .await
}

/// Takes `n` images of a vendor's free gallery quota; false when fewer remain.
pub async fn take_free_gallery(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    n: i32,
) -> QueryResult<bool> {
    let updated = diesel::update(
        vendor_profiles::table
            .filter(vendor_profiles::user_id.eq(user))
            .filter(vendor_profiles::free_gallery_remaining.ge(n)),
    )
    .set(vendor_profiles::free_gallery_remaining.eq(vendor_profiles::free_gallery_remaining - n))
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// What is left of a vendor's free gallery quota (none without a vendor profile).
pub async fn free_gallery_remaining(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i32> {
    Ok(vendor_profiles::table
        .find(user)
        .select(vendor_profiles::free_gallery_remaining)
        .first(conn)
        .await
        .optional()?
        .unwrap_or(0))
}

// ---- benchmark data ---------------------------------------------------------------------

/// How many benchmark characters exist (named `Character <n>`).
pub async fn bench_characters(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    characters::table
        .filter(characters::name.like("Character %"))
        .filter(characters::prompt.eq("bench"))
        .count()
        .get_result(conn)
        .await
}

/// Seeds the benchmark data set in bulk: `users` users, `characters` characters (90 %
/// public, spread over the users and the ten styles), three images each (the first is the
/// primary image) and one rating each.
pub async fn bench_seed(
    conn: &mut AsyncPgConnection,
    users: i64,
    characters: i64,
) -> QueryResult<()> {
    let statements = [
        format!(
            "INSERT INTO users (id, phone, username, referral_code, created_at) \
             SELECT gen_random_uuid(), '+1999' || lpad(g::text, 8, '0'), 'bench_' || g, \
                    'BENCH' || g, now() - g * interval '1 minute' \
             FROM generate_series(1, {users}) g ON CONFLICT DO NOTHING"
        ),
        format!(
            "WITH u AS (SELECT array_agg(id ORDER BY id) AS a FROM users \
                        WHERE referral_code LIKE 'BENCH%') \
             INSERT INTO characters (id, owner_id, name, description, prompt, style_type, tags, \
                                     is_public, published_at, like_count, view_count, created_at) \
             SELECT gen_random_uuid(), u.a[1 + g % array_length(u.a, 1)], 'Character ' || g, \
                    'benchmark character number ' || g, 'bench', \
                    (ARRAY['anime','realistic','cartoon','fantasy','cyberpunk','steampunk', \
                           'minimalist','comic','portrait','artistic'])[1 + g % 10], \
                    ARRAY['tag' || (g % 50), 'set' || (g % 7)], g % 10 <> 0, now(), \
                    g % 997, g % 7919, now() - g * interval '7 seconds' \
             FROM generate_series(1, {characters}) g, u"
        ),
        "INSERT INTO images (id, owner_id, kind, storage_key, mime_type, byte_size, width, \
                             height, thumbnail_key, is_public) \
         SELECT gen_random_uuid(), c.owner_id, 'upload', 'bench/' || c.id || '/' || k || '.png', \
                'image/png', 250000, 1024, 1024, \
                'bench/' || c.id || '/' || k || '_thumb.jpg', true \
         FROM characters c, generate_series(0, 2) k WHERE c.prompt = 'bench'"
            .to_string(),
        "INSERT INTO character_images (character_id, image_id, position) \
         SELECT split_part(storage_key, '/', 2)::uuid, id, \
                split_part(split_part(storage_key, '/', 3), '.', 1)::int \
         FROM images WHERE storage_key LIKE 'bench/%'"
            .to_string(),
        "UPDATE characters c SET primary_image_id = ci.image_id FROM character_images ci \
         WHERE ci.character_id = c.id AND ci.position = 0 AND c.prompt = 'bench'"
            .to_string(),
        "WITH u AS (SELECT array_agg(id ORDER BY id) AS a FROM users \
                    WHERE referral_code LIKE 'BENCH%') \
         INSERT INTO character_ratings (id, character_id, user_id, rating) \
         SELECT gen_random_uuid(), c.id, u.a[1 + (hashtext(c.id::text) & 1023)], \
                1 + (hashtext(c.name) & 3) \
         FROM characters c, u WHERE c.prompt = 'bench' ON CONFLICT DO NOTHING"
            .to_string(),
        "ANALYZE".to_string(),
    ];
    for sql in statements {
        diesel::sql_query(sql).execute(conn).await?;
    }
    Ok(())
}

fn uuid_array(ids: impl IntoIterator<Item = Uuid>) -> String {
    let list: Vec<String> = ids.into_iter().map(|i| i.to_string()).collect();
    format!("'{{{}}}'::uuid[]", list.join(","))
}

/// The SQL a `galleryFeed(first: N)` page with owner, primary image, first 4 images and
/// average rating runs (anonymous viewer), for pgbench: the feed statement, then the four
/// loader statements with the page's ids inlined.
pub fn bench_pgbench_script(page: &[CharacterRow], first: i64) -> String {
    let characters = uuid_array(page.iter().map(|c| c.id));
    let owners = uuid_array(page.iter().map(|c| c.owner_id));
    let primaries = uuid_array(page.iter().filter_map(|c| c.primary_image_id));
    let images = CHARACTER_IMAGES_SQL
        .replace("$1", &characters)
        .replace("$2", "NULL::uuid")
        .replace("$3", "false")
        .replace("$4", "4");
    format!(
        "SELECT characters.* FROM characters INNER JOIN users ON users.id = characters.owner_id \
         WHERE characters.is_public = true AND users.allow_gallery_showcase = true \
         AND users.account_status = 'active' \
         ORDER BY characters.created_at DESC, characters.id DESC LIMIT {limit};\n\
         SELECT id, phone, email, username, display_name, avatar_url, bio, role, subscription_tier, \
         account_status, phone_verified_at, email_verified_at, preferred_language, timezone, \
         profile_visibility, allow_gallery_showcase, referral_code, last_login_at, created_at \
         FROM users WHERE id = ANY({owners});\n\
         SELECT id, owner_id, job_id, kind, storage_key, mime_type, byte_size, width, height, \
         thumbnail_key, is_public, tags, created_at FROM images WHERE id = ANY({primaries});\n\
         {images};\n\
         SELECT character_id, avg(rating)::float8, count(*) FROM character_ratings \
         WHERE character_id = ANY({characters}) GROUP BY character_id;\n",
        limit = first + 1,
    )
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

/// Sets a character's generation status (`processing`, `completed`, `failed`).
pub async fn set_character_status(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: &str,
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

/// Attaches a succeeded job's images to its character (the first becomes the primary image
/// when it has none) and marks it completed.
pub async fn attach_to_character(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    image_ids: &[Uuid],
) -> QueryResult<()> {
    let start: Option<i32> = character_images::table
        .filter(character_images::character_id.eq(id))
        .select(diesel::dsl::max(character_images::position))
        .first(conn)
        .await?;
    let start = start.map_or(0, |p| p + 1);
    for (i, image) in image_ids.iter().enumerate() {
        diesel::insert_into(character_images::table)
            .values((
                character_images::character_id.eq(id),
                character_images::image_id.eq(image),
                character_images::position.eq(start + i as i32),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    diesel::update(characters::table.find(id))
        .set((
            characters::status.eq("completed"),
            characters::error_message.eq(None::<String>),
            characters::primary_image_id.eq(diesel::dsl::sql::<
                diesel::sql_types::Nullable<diesel::sql_types::Uuid>,
            >("coalesce(primary_image_id, ")
            .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(
                image_ids.first().copied(),
            )
            .sql(")")),
        ))
        .execute(conn)
        .await
        .map(|_| ())
}

// ---- ordering -------------------------------------------------------------------------

/// Every character of a (locked) collection.
pub async fn collection_member_ids(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
) -> QueryResult<Vec<Uuid>> {
    collections::table
        .find(collection)
        .select(collections::id)
        .for_update()
        .first::<Uuid>(conn)
        .await?;
    collection_characters::table
        .filter(collection_characters::collection_id.eq(collection))
        .select(collection_characters::character_id)
        .load(conn)
        .await
}

/// Sets a collection's order: `order[i]` gets position `i`.
pub async fn set_collection_order(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    order: &[Uuid],
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE collection_characters cc SET position = x.pos - 1 \
         FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, pos) \
         WHERE cc.collection_id = $1 AND cc.character_id = x.id",
    )
    .bind::<diesel::sql_types::Uuid, _>(collection)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(order)
    .execute(conn)
    .await
    .map(|_| ())
}

/// Every image of a (locked) album.
pub async fn album_member_ids(conn: &mut AsyncPgConnection, album: Uuid) -> QueryResult<Vec<Uuid>> {
    album_images::table
        .filter(album_images::album_id.eq(album))
        .select(album_images::image_id)
        .load(conn)
        .await
}

/// Sets an album's order: `order[i]` gets position `i`.
pub async fn set_album_order(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    order: &[Uuid],
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE album_images ai SET position = x.pos - 1 \
         FROM unnest($2::uuid[]) WITH ORDINALITY AS x(id, pos) \
         WHERE ai.album_id = $1 AND ai.image_id = x.id",
    )
    .bind::<diesel::sql_types::Uuid, _>(album)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(order)
    .execute(conn)
    .await
    .map(|_| ())
}
