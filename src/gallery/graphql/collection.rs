//! `Collection` and the input of `createCollection` and `updateCollection`.

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object};
use chrono::{DateTime, Utc};

use super::{
    Character, Conn, Image, Res, character::character_wants, in_order, maybe, maybe_id, owner,
    page, seer, visible_image,
};
use crate::{
    accounts::graphql::User,
    error::AppError,
    gallery::service::{self, CollectionInput, CollectionRow, OrderKey},
    graphql::ContextExt,
};

/// A user's collection of characters.
pub struct Collection(pub CollectionRow);

/// A named collection of characters (any user may make them).
#[Object]
impl Collection {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Name, 1 to 200 characters.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Free description.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// Lower-case tags.
    async fn tags(&self) -> &[String] {
        &self.0.tags
    }

    /// Whether everyone may see the collection (its private characters stay hidden).
    async fn is_public(&self) -> bool {
        self.0.is_public
    }

    /// Characters in the collection (including ones the viewer may not see).
    async fn character_count(&self) -> i64 {
        i64::from(self.0.character_count)
    }

    /// The cover picture, when the viewer may see it.
    async fn cover_image(&self, ctx: &Context<'_>) -> Res<Option<Image>> {
        visible_image(ctx, self.0.cover_image_id).await
    }

    /// Who owns the collection.
    async fn owner(&self, ctx: &Context<'_>) -> Res<User> {
        owner(ctx, self.0.owner_id).await
    }

    /// The characters the viewer may see, in collection order.
    async fn characters(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<Conn<Character>> {
        let (page, after) = page::<OrderKey>(first, after)?;
        let wants = character_wants(ctx);
        let rows = service::collection_characters(
            ctx.state()?,
            self.0.id,
            seer(ctx),
            after,
            page.limit(),
            &wants,
        )
        .await?;
        Ok(in_order(&page, rows, Character::planned, |c| c.0.id))
    }

    /// When the collection was made.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `createCollection` and `updateCollection` (omitted fields stay on update).
#[derive(InputObject)]
pub struct CollectionFields {
    /// 1 to 200 characters (required to create).
    name: Option<String>,
    /// Up to 2000 characters.
    description: MaybeUndefined<String>,
    /// One of your images.
    cover_image_id: MaybeUndefined<ID>,
    /// Up to 20 tags of 1 to 40 characters; replaces the tags.
    tags: Option<Vec<String>>,
    /// Default false.
    is_public: Option<bool>,
}

impl CollectionFields {
    pub(super) fn into_input(self) -> Result<CollectionInput, AppError> {
        Ok(CollectionInput {
            name: self.name,
            description: maybe(self.description),
            cover_image_id: maybe_id(self.cover_image_id, "input.coverImageId")?,
            tags: self.tags,
            is_public: self.is_public,
        })
    }
}
