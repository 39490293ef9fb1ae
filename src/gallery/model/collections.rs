//! Collections of characters.

use chrono::{DateTime, Utc};
use diesel::{pg::Pg, prelude::*};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{
    CharacterRow, CharacterWants, OrderKey, PlannedCharacter, Seer, TimeKey, after_position,
    before_time, plan, visible,
};
use crate::db::literal_limit;
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

/// The characters of a collection in collection order, as `seer` may see them.
pub async fn collection_characters_page(
    conn: &mut AsyncPgConnection,
    collection: Uuid,
    seer: Seer,
    after: Option<OrderKey>,
    limit: i64,
    wants: &CharacterWants,
) -> QueryResult<Vec<(i32, PlannedCharacter)>> {
    let mut q = collection_characters::table
        .inner_join(characters::table)
        .filter(collection_characters::collection_id.eq(collection))
        .filter(visible("characters", seer))
        .select((
            collection_characters::position,
            CharacterRow::as_select(),
            plan::character_extras(wants, seer),
        ))
        .into_boxed();
    if let Some(key) = after {
        q = q.filter(after_position(
            "collection_characters.position",
            "collection_characters.character_id",
            key,
        ));
    }
    let rows: Vec<(i32, CharacterRow, Option<String>)> = literal_limit(
        q.order((
            collection_characters::position.asc(),
            collection_characters::character_id.asc(),
        )),
        limit,
    )
    .load(conn)
    .await?;
    rows.into_iter()
        .map(|(position, row, json)| Ok((position, (row, plan::decode_character(json, wants)?))))
        .collect()
}

/// The collections holding a character, newest first, as `seer` may see them.
pub async fn collections_of_character(
    conn: &mut AsyncPgConnection,
    character: Uuid,
    seer: Seer,
    after: Option<TimeKey>,
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
    after: Option<TimeKey>,
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
