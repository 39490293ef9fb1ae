//! Collections of characters.

use chrono::{DateTime, Utc};
use diesel::{pg::Pg, prelude::*};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{CharacterRow, Seer, after_position, before_time, visible};
use crate::db::schema::{characters, collection_characters, collections};

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
