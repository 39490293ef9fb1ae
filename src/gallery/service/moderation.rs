//! What moderation and admins change in the gallery, inside their callers' transactions
//! (the moderation and admin capabilities audit the change in the same transaction).

use uuid::Uuid;

pub use crate::gallery::model::{ContentState, ContentTable};
use crate::{
    error::AppResult,
    gallery::model::{self, CharacterRow},
};
use diesel_async::AsyncPgConnection;

/// Who owns the row, whether it is public and whether it is hidden (locked until the
/// transaction ends when `lock`); `None` when there is no such row.
pub async fn content_state_in(
    conn: &mut AsyncPgConnection,
    table: ContentTable,
    id: Uuid,
    lock: bool,
) -> AppResult<Option<ContentState>> {
    Ok(model::content_state(conn, table, id, lock).await?)
}

/// Hides the row from everyone but its owner and admins, for good: it becomes private and
/// can no longer be made public (`FORBIDDEN`). False when there is no such row.
pub async fn hide_content_in(
    conn: &mut AsyncPgConnection,
    table: ContentTable,
    id: Uuid,
) -> AppResult<bool> {
    Ok(model::hide_content(conn, table, id).await?)
}

/// Features a character (or stops featuring it): `(featured before, character after)`, or
/// `None` when there is no such character.
pub async fn set_featured_in(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    featured: bool,
) -> AppResult<Option<(bool, CharacterRow)>> {
    Ok(model::set_featured(conn, id, featured).await?)
}
