//! Vendors' albums of images.

use chrono::{DateTime, Utc};
use diesel::{pg::Pg, prelude::*};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{ImageRow, Seer, after_position, before_time, visible};
use crate::db::schema::{album_images, albums, images, subscriptions, vendor_profiles};

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
