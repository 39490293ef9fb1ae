//! Changing and removing images: their public flag and tags, and deleting them with every
//! place that shows them (characters, albums, covers), the free gallery images they took
//! given back.

use diesel::{
    prelude::*,
    sql_types::{Array, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{ALBUM_IMAGES, CHARACTER_IMAGES, ImageRow};
use crate::db::schema::{album_images, images};

/// Changes an image's public flag and tags (`None` leaves them).
pub async fn update_image(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    is_public: Option<bool>,
    tags: Option<&[String]>,
) -> QueryResult<ImageRow> {
    #[derive(AsChangeset)]
    #[diesel(table_name = images)]
    struct Changes<'a> {
        is_public: Option<bool>,
        tags: Option<&'a [String]>,
    }
    if is_public.is_none() && tags.is_none() {
        return images::table
            .find(id)
            .select(ImageRow::as_select())
            .get_result(conn)
            .await;
    }
    diesel::update(images::table.find(id))
        .set(&Changes { is_public, tags })
        .returning(ImageRow::as_returning())
        .get_result(conn)
        .await
}

/// Marks album members as having taken one image of their vendor's free gallery quota.
pub async fn mark_free_slots(
    conn: &mut AsyncPgConnection,
    album: Uuid,
    ids: &[Uuid],
) -> QueryResult<usize> {
    diesel::update(
        album_images::table
            .filter(album_images::album_id.eq(album))
            .filter(album_images::image_id.eq_any(ids)),
    )
    .set(album_images::free_slot.eq(true))
    .execute(conn)
    .await
}

#[derive(QueryableByName)]
struct Parent {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The stored objects of a deleted image.
#[derive(Debug, Clone, QueryableByName)]
pub struct DeletedObjects {
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub storage_key: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub thumbnail_key: Option<String>,
}

impl DeletedObjects {
    /// The keys of the image and its thumbnail.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.storage_key.as_str()).chain(self.thumbnail_key.as_deref())
    }
}

/// Deletes images (call inside a transaction): each album and character holding one loses
/// it (positions closed up, album counts recounted, under the parent's row lock), a vendor
/// gets back the free gallery images they took, and covers and primary images pointing at
/// them are cleared (their foreign keys `SET NULL`). The output list of a generation job
/// that made one simply no longer names it. Returns the objects to delete once committed.
pub async fn delete_images(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<DeletedObjects>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    // Parents are locked in id order (as every list change locks its one parent).
    let albums: Vec<Parent> = diesel::sql_query(
        "SELECT DISTINCT album_id AS id FROM album_images WHERE image_id = ANY($1) ORDER BY id",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    for album in &albums {
        if let Some(list) = ALBUM_IMAGES.lock(conn, album.id).await? {
            diesel::sql_query(
                "UPDATE vendor_profiles v SET free_gallery_remaining = free_gallery_remaining + x.n \
                 FROM (SELECT a.owner_id, count(*)::int AS n FROM album_images ai \
                       JOIN albums a ON a.id = ai.album_id \
                       WHERE ai.album_id = $1 AND ai.image_id = ANY($2) AND ai.free_slot \
                       GROUP BY a.owner_id) x \
                 WHERE v.user_id = x.owner_id",
            )
            .bind::<SqlUuid, _>(album.id)
            .bind::<Array<SqlUuid>, _>(ids)
            .execute(conn)
            .await?;
            list.remove(conn, ids).await?;
        }
    }
    let characters: Vec<Parent> = diesel::sql_query(
        "SELECT DISTINCT character_id AS id FROM character_images WHERE image_id = ANY($1) ORDER BY id",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?;
    for character in &characters {
        if let Some(list) = CHARACTER_IMAGES.lock(conn, character.id).await? {
            list.remove(conn, ids).await?;
        }
    }
    diesel::sql_query("DELETE FROM images WHERE id = ANY($1) RETURNING storage_key, thumbnail_key")
        .bind::<Array<SqlUuid>, _>(ids)
        .load(conn)
        .await
}

/// The ids of every image of an owner.
pub async fn image_ids_of_owner(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
) -> QueryResult<Vec<Uuid>> {
    images::table
        .filter(images::owner_id.eq(owner))
        .select(images::id)
        .load(conn)
        .await
}

/// Locks one of `owner`'s images until the transaction ends; false when they have no such
/// image.
pub async fn lock_owned_image(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
    id: Uuid,
) -> QueryResult<bool> {
    let found: Option<Uuid> = images::table
        .find(id)
        .filter(images::owner_id.eq(owner))
        .select(images::id)
        .for_update()
        .get_result(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}

/// Deletes everything an owner has in the gallery (call inside a transaction): their images
/// (as [`delete_images`]), their characters (each collection holding one, anyone's, loses it
/// with its count kept), collections and albums, and their likes (the liked characters'
/// counts follow) and ratings. Returns the objects to delete once committed.
pub async fn delete_owner_content(
    conn: &mut AsyncPgConnection,
    owner: Uuid,
) -> QueryResult<Vec<DeletedObjects>> {
    let image_ids = image_ids_of_owner(conn, owner).await?;
    let objects = delete_images(conn, &image_ids).await?;
    let collections: Vec<Parent> = diesel::sql_query(
        "SELECT DISTINCT cc.collection_id AS id FROM collection_characters cc \
         JOIN characters c ON c.id = cc.character_id \
         JOIN collections l ON l.id = cc.collection_id \
         WHERE c.owner_id = $1 AND l.owner_id <> $1 ORDER BY id",
    )
    .bind::<SqlUuid, _>(owner)
    .load(conn)
    .await?;
    let characters: Vec<Uuid> = crate::db::schema::characters::table
        .filter(crate::db::schema::characters::owner_id.eq(owner))
        .select(crate::db::schema::characters::id)
        .load(conn)
        .await?;
    for collection in &collections {
        if let Some(list) = super::COLLECTION_CHARACTERS
            .lock(conn, collection.id)
            .await?
        {
            list.remove(conn, &characters).await?;
        }
    }
    for sql in [
        "UPDATE characters c SET like_count = c.like_count - 1 FROM character_likes l \
         WHERE l.character_id = c.id AND l.user_id = $1 AND c.owner_id <> $1",
        "DELETE FROM character_likes WHERE user_id = $1",
        "DELETE FROM character_ratings WHERE user_id = $1",
        "DELETE FROM characters WHERE owner_id = $1",
        "DELETE FROM collections WHERE owner_id = $1",
        "DELETE FROM albums WHERE owner_id = $1",
    ] {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(owner)
            .execute(conn)
            .await?;
    }
    Ok(objects)
}
