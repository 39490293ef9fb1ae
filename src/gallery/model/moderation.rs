//! What admins and moderators do to gallery rows: featuring a character, reading the state
//! of a reported item and hiding it (`hidden_at`, which also makes it private; the
//! `<table>_hidden_check` constraints keep a hidden row private).

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Bool, Nullable, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{CharacterRow, SqlUuid};
use crate::db::schema::characters;

/// A gallery table whose rows can be reported and hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentTable {
    Characters,
    Images,
    Albums,
    Collections,
}

impl ContentTable {
    fn name(self) -> &'static str {
        match self {
            ContentTable::Characters => "characters",
            ContentTable::Images => "images",
            ContentTable::Albums => "albums",
            ContentTable::Collections => "collections",
        }
    }
}

/// Who owns a gallery row, whether it is public, and whether a moderator hid it.
#[derive(Debug, Clone, QueryableByName)]
pub struct ContentState {
    #[diesel(sql_type = SqlUuid)]
    pub owner_id: Uuid,
    #[diesel(sql_type = Bool)]
    pub is_public: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub hidden_at: Option<DateTime<Utc>>,
}

/// The state of the row `id` of `table` (locked until the transaction ends when `lock`).
pub async fn content_state(
    conn: &mut AsyncPgConnection,
    table: ContentTable,
    id: Uuid,
    lock: bool,
) -> QueryResult<Option<ContentState>> {
    diesel::sql_query(format!(
        "SELECT owner_id, is_public, hidden_at FROM {} WHERE id = $1{}",
        table.name(),
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind::<SqlUuid, _>(id)
    .get_result(conn)
    .await
    .optional()
}

/// Hides the row: private from now on, and marked hidden (kept from an earlier hiding).
pub async fn hide_content(
    conn: &mut AsyncPgConnection,
    table: ContentTable,
    id: Uuid,
) -> QueryResult<bool> {
    diesel::sql_query(format!(
        "UPDATE {} SET is_public = false, hidden_at = coalesce(hidden_at, now()) WHERE id = $1",
        table.name()
    ))
    .bind::<SqlUuid, _>(id)
    .execute(conn)
    .await
    .map(|n| n == 1)
}

/// Sets whether a character is featured; the character before and after the change.
pub async fn set_featured(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    featured: bool,
) -> QueryResult<Option<(bool, CharacterRow)>> {
    let Some(before) = characters::table
        .find(id)
        .select(characters::is_featured)
        .for_update()
        .first::<bool>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let row = diesel::update(characters::table.find(id))
        .set(characters::is_featured.eq(featured))
        .returning(CharacterRow::as_returning())
        .get_result(conn)
        .await?;
    Ok(Some((before, row)))
}
