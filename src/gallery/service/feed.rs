//! The public showcase feed.

use crate::{
    AppState,
    error::{AppError, AppResult},
    gallery::{
        StyleType,
        model::{self, CharacterWants, FeedFilter, FeedKey, FeedOrder, PlannedCharacter, Seer},
    },
};

use super::{tags, text};

/// What `galleryFeed` asks for, as the client gave it.
#[derive(Debug, Clone)]
pub struct FeedRequest {
    pub style_type: Option<StyleType>,
    pub tags: Vec<String>,
    pub featured: Option<bool>,
    pub search: Option<String>,
    pub order: FeedOrder,
    /// Featured characters first, then the rest (each part in `order`).
    pub featured_first: bool,
}

/// The showcase: public characters of active owners who allow showcasing, in the request's
/// order, after `after` (a key of a feed in the same order, else `BAD_USER_INPUT` on
/// `after`), with what `wants` asks for as `seer` may see it.
pub async fn feed(
    state: &AppState,
    request: &FeedRequest,
    after: Option<&FeedKey>,
    limit: i64,
    wants: &CharacterWants,
    seer: Seer,
) -> AppResult<Vec<PlannedCharacter>> {
    let (order, featured_first) = (request.order, request.featured_first);
    if after.is_some_and(|k| !k.fits(order, featured_first)) {
        return Err(AppError::bad_input(
            "after",
            "after is a cursor of another order",
        ));
    }
    let search = request
        .search
        .as_deref()
        .map(|s| text(s, "filter.search", 0, 100))
        .transpose()?
        .filter(|s| !s.is_empty());
    let filter = FeedFilter {
        style_type: request.style_type,
        tags: tags(&request.tags, "filter.tags")?,
        featured: request.featured,
        search,
    };
    // A replica may answer (a lag of a moment is fine on the showcase).
    let mut conn = state.read_conn(seer.user).await?;
    Ok(model::feed(
        &mut conn,
        &filter,
        order,
        featured_first,
        after,
        limit,
        wants,
        seer,
    )
    .await?)
}
