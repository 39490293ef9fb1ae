//! Vendors' albums of images.

use chrono::{DateTime, Utc};
use diesel::{pg::Pg, prelude::*};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    ImageRow, ImageWants, OrderKey, PlannedImage, Seer, TimeKey, after_position, before_time, plan,
    visible,
};
use crate::db::{
    literal_limit,
    schema::{album_images, albums, images},
};

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

/// An owner's albums, newest first, as `seer` may see them.
pub async fn owner_albums(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
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

/// The images of an album in album order, as `seer` may see them.
pub async fn album_images_page(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
    wants: &ImageWants,
) -> QueryResult<Vec<(i32, PlannedImage)>> {
    let mut q = album_images::table
        .inner_join(images::table)
        .filter(album_images::album_id.eq(album))
        .filter(visible("images", seer))
        .select((
            album_images::position,
            ImageRow::as_select(),
            plan::image_extras(wants),
        ))
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(after_position(
            "album_images.position",
            "album_images.image_id",
            key,
        ));
    }
    let rows: Vec<(i32, ImageRow, Option<String>)> = literal_limit(
        q.order((album_images::position.asc(), album_images::image_id.asc())),
        limit,
    )
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|(position, row, json)| {
            Ok((position, (row, crate::db::decode_json(json)?.map(Box::new))))
        })
        .collect()
}
