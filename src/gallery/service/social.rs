//! The characters a user liked, and the ratings and reviews of a character.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::seer_of;
pub use crate::gallery::model::RatingRow;
use crate::{
    AppState,
    accounts::viewer::ViewerUser,
    db,
    error::AppResult,
    gallery::model::{self, CharacterRow, TimeKey},
};

/// `myLikedCharacters`: the characters `user` liked and may still see, newest like first
/// (`(liked at, character)`; the key of a row is `(liked at, character id)`).
pub async fn liked_characters(
    state: &AppState,
    user: &ViewerUser,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<(DateTime<Utc>, CharacterRow)>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::liked_characters(&mut conn, user.id, seer_of(user), after, limit).await?)
}

/// A page of a character's ratings by active accounts, newest first (the caller checked
/// that the viewer sees the character).
pub async fn ratings_of(
    state: &AppState,
    character: Uuid,
    after: Option<TimeKey>,
    limit: i64,
) -> AppResult<Vec<RatingRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::ratings_of(&mut conn, character, after, limit).await?)
}
