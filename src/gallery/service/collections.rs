//! Collections of characters: their fields, their ordered characters (the rules in
//! [`super::lists`]), and the lists that show them.

use diesel::QueryResult;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use uuid::Uuid;

use super::{
    check_cover, ids,
    lists::{self, Listed},
    opt_opt, seer_of, tags, text,
};
use crate::{
    AppState,
    accounts::viewer::ViewerUser,
    db,
    error::{AppError, AppResult},
    gallery::model::{
        self, COLLECTION_CHARACTERS, CharacterWants, CollectionChangeset, CollectionRow,
        Membership, NewCollection, OrderKey, PlannedCharacter, Seer, TimeKey,
    },
};

impl Listed for CollectionRow {
    const MEMBERS: Membership = COLLECTION_CHARACTERS;
    const NOUN: &'static str = "collection";
    const OWNER_ONLY: &'static str = "only the owner may change a collection";

    fn find(
        conn: &mut AsyncPgConnection,
        id: Uuid,
    ) -> impl Future<Output = QueryResult<Option<Self>>> + Send {
        model::collection_by_id(conn, id)
    }

    fn owner(&self) -> (Uuid, bool) {
        (self.owner_id, self.is_public)
    }
}

/// Fields of `createCollection` / `updateCollection`.
#[derive(Debug, Default)]
pub struct CollectionInput {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub cover_image_id: Option<Option<Uuid>>,
    pub tags: Option<Vec<String>>,
    pub is_public: Option<bool>,
}

pub async fn create_collection(
    state: &AppState,
    user: &ViewerUser,
    input: CollectionInput,
) -> AppResult<CollectionRow> {
    let name = text(input.name.as_deref().unwrap_or(""), "input.name", 1, 200)?;
    let description = opt_opt(input.description, "input.description", 2000)?.flatten();
    let tags = tags(&input.tags.unwrap_or_default(), "input.tags")?;
    let mut conn = db::conn(&state.pool).await?;
    check_cover(&mut conn, user.id, input.cover_image_id).await?;
    Ok(model::insert_collection(
        &mut conn,
        &NewCollection {
            id: Uuid::now_v7(),
            owner_id: user.id,
            name: &name,
            description: description.as_deref(),
            cover_image_id: input.cover_image_id.flatten(),
            tags: &tags,
            is_public: input.is_public.unwrap_or(false),
        },
    )
    .await?)
}

pub async fn update_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    input: CollectionInput,
) -> AppResult<CollectionRow> {
    let changes = CollectionChangeset {
        name: input
            .name
            .as_deref()
            .map(|v| text(v, "input.name", 1, 200))
            .transpose()?,
        description: opt_opt(input.description, "input.description", 2000)?,
        cover_image_id: input.cover_image_id,
        tags: input
            .tags
            .as_deref()
            .map(|t| tags(t, "input.tags"))
            .transpose()?,
        is_public: input.is_public,
    };
    let mut conn = db::conn(&state.pool).await?;
    let c: CollectionRow = lists::own(&mut conn, user, id).await?;
    check_cover(&mut conn, c.owner_id, input.cover_image_id).await?;
    Ok(model::update_collection(&mut conn, id, &changes).await?)
}

pub async fn delete_collection(state: &AppState, user: &ViewerUser, id: Uuid) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    lists::own::<CollectionRow>(&mut conn, user, id).await?;
    Ok(model::delete_collection(&mut conn, id).await?)
}

/// Appends characters the user may see to their collection (ones already in it stay where
/// they are); `characterCount` stays exact.
pub async fn add_to_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    character_ids: &[Uuid],
) -> AppResult<CollectionRow> {
    let wanted = ids(character_ids, "characterIds")?;
    let mut conn = db::conn(&state.pool).await?;
    lists::own::<CollectionRow>(&mut conn, user, id).await?;
    let seer = seer_of(user);
    let found = model::characters_by_ids(&mut conn, &wanted).await?;
    let visible = found
        .iter()
        .filter(|c| seer.sees(c.owner_id, c.is_public))
        .count();
    if visible != wanted.len() {
        return Err(AppError::bad_input("characterIds", "no such character"));
    }
    conn.transaction(async move |conn| {
        lists::lock::<CollectionRow>(conn, id)
            .await?
            .append(conn, &wanted)
            .await?;
        lists::reload(conn, id).await
    })
    .await
}

/// Takes characters out of one of the user's collections.
pub async fn remove_from_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    character_ids: &[Uuid],
) -> AppResult<CollectionRow> {
    lists::remove(state, user, id, character_ids, "characterIds").await
}

/// Puts a collection's characters in the given order.
pub async fn reorder_collection(
    state: &AppState,
    user: &ViewerUser,
    id: Uuid,
    order: &[Uuid],
) -> AppResult<CollectionRow> {
    lists::reorder(state, user, id, order, "characterIds").await
}

/// `collection(id)`: the collection when `seer` may see it.
pub async fn collection(
    state: &AppState,
    seer: Seer,
    id: Uuid,
) -> AppResult<Option<CollectionRow>> {
    lists::visible(state, seer, id).await
}

/// The characters of a collection in collection order (with their positions), as `seer` may
/// see them, with what `wants` asks for.
pub async fn collection_characters(
    state: &AppState,
    collection: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
    wants: &CharacterWants,
) -> AppResult<Vec<(i32, PlannedCharacter)>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::collection_characters_page(&mut conn, collection, seer, after, limit, wants).await?)
}

/// The collections holding a character, newest first, as `seer` may see them.
pub async fn collections_of_character(
    state: &AppState,
    character: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<CollectionRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::collections_of_character(&mut conn, character, seer, after, limit).await?)
}

/// An owner's collections, newest first, as `seer` may see them.
pub async fn owner_collections(
    state: &AppState,
    owner: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<CollectionRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::owner_collections(&mut conn, owner, seer, after, limit).await?)
}
