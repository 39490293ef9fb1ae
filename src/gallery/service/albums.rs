//! Vendors' albums of images: their fields, their ordered images (the rules in
//! [`super::lists`], plus the free gallery quota), and the lists that show them.

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{
    check_cover, check_images, ids,
    lists::{self, Listed},
    opt_opt, text,
};
use crate::{
    AppState,
    accounts::{
        Role,
        vendors::{self, Quota},
        viewer::ViewerUser,
    },
    db,
    error::{AppError, AppResult},
    gallery::model::{
        self, ALBUM_IMAGES, AlbumChangeset, AlbumRow, ImageWants, Membership, NewAlbum, OrderKey,
        PlannedImage, Seer, TimeKey,
    },
    payments::subscriptions,
};

impl Listed for AlbumRow {
    const MEMBERS: Membership = ALBUM_IMAGES;
    const NOUN: &'static str = "album";
    const OWNER_ONLY: &'static str = "only the owner may change an album";

    fn find(
        conn: &mut AsyncPgConnection,
        id: Uuid,
    ) -> impl Future<Output = QueryResult<Option<Self>>> + Send {
        model::album_by_id(conn, id)
    }

    fn owner(&self) -> (Uuid, bool) {
        (self.owner_id, self.is_public)
    }
}

/// Fields of `createAlbum` / `updateAlbum`.
#[derive(Debug, Default)]
pub struct AlbumInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub is_public: Option<bool>,
}

pub async fn create_album(
    state: &AppState,
    user: &ViewerUser,
    input: AlbumInput,
) -> AppResult<AlbumRow> {
    let name = text(input.name.as_deref().unwrap_or(""), "input.name", 1, 200)?;
    let description = opt_opt(input.description, "input.description", 2000)?.flatten();
    let mut conn = db::conn(&state.pool).await?;
    check_cover(&mut conn, user.id, input.cover_image_id).await?;
    Ok(model::insert_album(
        &mut conn,
        &NewAlbum {
            id: Uuid::now_v7(),
            owner_id: user.id,
            name: &name,
            description: description.as_deref(),
            cover_image_id: input.cover_image_id.flatten(),
            is_public: input.is_public.unwrap_or(false),
        },
    )
    .await?)
}

pub async fn update_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    input: AlbumInput,
) -> AppResult<AlbumRow> {
    let changes = AlbumChangeset {
        name: input
            .name
            .as_deref()
            .map(|v| text(v, "input.name", 1, 200))
            .transpose()?,
        description: opt_opt(input.description, "input.description", 2000)?,
        cover_image_id: input.cover_image_id,
        is_public: input.is_public,
    };
    let mut conn = db::conn(&state.pool).await?;
    let a: AlbumRow = lists::own(&mut conn, user, id).await?;
    check_cover(&mut conn, a.owner_id, input.cover_image_id).await?;
    Ok(model::update_album(&mut conn, id, &changes).await?)
}

pub async fn delete_album(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    lists::own::<AlbumRow>(&mut conn, user, id).await?;
    Ok(model::delete_album(&mut conn, id).await?)
}

/// Adds the vendor's own images to their album (ones already in it stay where they are). A
/// vendor without a running plan spends one image of `freeGalleryRemaining` per image newly
/// added (given back only when the image itself is deleted, not when it leaves the album);
/// when too few remain nothing is added (`FORBIDDEN`).
pub async fn add_images_to_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    image_ids: &[Uuid],
) -> AppResult<AlbumRow> {
    let wanted = ids(image_ids, "imageIds")?;
    let mut conn = db::conn(&state.pool).await?;
    let album: AlbumRow = lists::own(&mut conn, user, id).await?;
    check_images(&mut conn, album.owner_id, &wanted, "imageIds").await?;
    let owner = album.owner_id;
    let admin = user.role == Role::Admin;
    conn.transaction(async move |conn| {
        let images = lists::lock::<AlbumRow>(conn, id).await?;
        let new = images.absent(conn, &wanted).await?;
        if new.is_empty() {
            return lists::reload(conn, id).await;
        }
        let mut free = false;
        if !admin && !subscriptions::has_vendor_plan(conn, owner).await? {
            let n = i32::try_from(new.len()).unwrap_or(i32::MAX);
            if let Quota::Short { remaining } = vendors::take_free_gallery(conn, owner, n).await? {
                return Err(AppError::Forbidden(format!(
                    "your free gallery allows {remaining} more image(s); choose a plan to add more"
                )));
            }
            free = true;
        }
        images.append(conn, &new).await?;
        if free {
            // Deleting the image gives its free gallery image back (`deleteImage`).
            model::mark_free_slots(conn, id, &new).await?;
        }
        lists::reload(conn, id).await
    })
    .await
}

/// Takes images out of one of the vendor's albums.
pub async fn remove_images_from_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    image_ids: &[Uuid],
) -> AppResult<AlbumRow> {
    lists::remove(state, user, id, image_ids, "imageIds").await
}

/// Vendors: puts an album's images in the given order.
pub async fn reorder_album(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    order: &[Uuid],
) -> AppResult<AlbumRow> {
    lists::reorder(state, user, id, order, "imageIds").await
}

/// `album(id)`: the album when `seer` may see it.
pub async fn album(state: &AppState, seer: Seer, id: Uuid) -> AppResult<Option<AlbumRow>> {
    lists::visible(state, seer, id).await
}

/// The images of an album in album order (with their positions), as `seer` may see them,
/// with what `wants` asks for.
pub async fn album_images(
    state: &AppState,
    album: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
    wants: &ImageWants,
) -> AppResult<Vec<(i32, PlannedImage)>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::album_images_page(&mut conn, album, seer, after, limit, wants).await?)
}

/// An owner's albums, newest first, as `seer` may see them.
pub async fn owner_albums(
    state: &AppState,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<AlbumRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::owner_albums(&mut conn, owner, seer, after, limit).await?)
}
