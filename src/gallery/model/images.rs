//! Images: uploads, generation results and vendors' pictures.

use chrono::{DateTime, Utc};
use diesel::{
    pg::Pg,
    prelude::*,
    sql_types::{Array, BigInt, Bool, Nullable},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{Seer, SqlUuid, TimeKey, before_time, visible};
use crate::{db::schema::images, gallery::ImageKind};

/// A stored image (the file itself lives in object storage under `storage_key`).
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, serde::Deserialize)]
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

/// Makes these images of `owner` public (publishing a character shows its pictures), but
/// those a moderator hid.
pub async fn publish_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    ids: &[Uuid],
) -> QueryResult<usize> {
    diesel::update(images::table)
        .filter(images::id.eq_any(ids))
        .filter(images::owner_id.eq(owner))
        .filter(images::is_public.eq(false))
        // An image a moderator hid stays private (see `images_hidden_check`).
        .filter(images::hidden_at.is_null())
        .set(images::is_public.eq(true))
        .execute(conn)
        .await
}

/// An owner's images, newest first, as `seer` may see them.
pub async fn owner_images(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
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
pub const CHARACTER_IMAGES_SQL: &str = "SELECT i.id, i.owner_id, i.job_id, i.kind, i.storage_key, i.mime_type, i.byte_size, \
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
