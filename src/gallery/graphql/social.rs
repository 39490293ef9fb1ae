//! `Review` (a rating with its optional review), `Character.reviews` and
//! `Character.viewerRating`, and `myLikedCharacters`.

use std::collections::HashMap;

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Character, Conn, Res, keyed, owner, page};
use crate::{
    accounts::{graphql::User, guards::Authenticated, guards::require_user},
    gallery::{
        loaders::{CharacterReviews, GalleryLoader, ViewerRating},
        service::{self, RatingRow, TimeKey},
    },
    graphql::ContextExt,
};

/// A user's rating of a character, with their optional review.
pub struct Review(pub RatingRow);

/// A rating of a character (1 to 5 stars) with its optional review text.
#[Object]
impl Review {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// 1 to 5 stars.
    async fn rating(&self) -> i32 {
        self.0.rating
    }

    /// The review text, if the rater wrote one.
    async fn review(&self) -> Option<&str> {
        self.0.review_text.as_deref()
    }

    /// Who rated (their profile fields follow the usual profile rules).
    async fn user(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.0.user_id).await
    }

    /// When the character was first rated by this user.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the rating or review last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// `Character.reviews`: a page of the ratings of a character the viewer sees. The first page
/// of every character in a list loads in one statement (through the loader).
pub(super) async fn reviews(
    ctx: &Context<'_>,
    character: Uuid,
    first: Option<i32>,
    after: Option<String>,
) -> Res<Conn<Review>> {
    let (page, after) = page::<TimeKey>(first, after)?;
    let rows = match after {
        None => ctx
            .loader::<GalleryLoader>()?
            .load_one(CharacterReviews {
                character,
                first: page.limit(),
            })
            .await?
            .unwrap_or_default(),
        Some(key) => service::ratings_of(ctx.state()?, character, Some(key), page.limit()).await?,
    };
    Ok(keyed(&page, rows, Review, |r| (r.0.created_at, r.0.id)))
}

/// `Character.viewerRating`: the viewer's own rating of the character (null when none, or
/// when anonymous).
pub(super) async fn viewer_rating(ctx: &Context<'_>, character: Uuid) -> Res<Option<Review>> {
    let Some(user) = ctx.viewer().user_id() else {
        return Ok(None);
    };
    Ok(ctx
        .loader::<GalleryLoader>()?
        .load_one(ViewerRating { character, user })
        .await?
        .map(Review))
}

/// Queries about what the viewer liked.
#[derive(Default)]
pub struct LikesQuery;

#[Object]
impl LikesQuery {
    /// The characters the viewer liked, newest like first, leaving out those the viewer may
    /// no longer see (made private or hidden by a moderator).
    #[graphql(guard = "Authenticated")]
    async fn my_liked_characters(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let user = require_user(ctx)?;
        let (page, after) = page::<TimeKey>(first, after)?;
        let rows = service::liked_characters(ctx.state()?, user, after, page.limit()).await?;
        let liked_at: HashMap<Uuid, DateTime<Utc>> =
            rows.iter().map(|(at, row)| (row.id, *at)).collect();
        Ok(keyed(
            &page,
            rows,
            |(_, row)| Character::new(row),
            |c| (liked_at.get(&c.0.id).copied().unwrap_or_default(), c.0.id),
        ))
    }
}
