//! `updateImage` and `deleteImage`: an owner's changes to their own images.

use async_graphql::{Context, ID, InputObject, Object};

use super::{Image, Res};
use crate::{
    accounts::guards::{Authenticated, require_user},
    gallery::service,
    graphql::{ContextExt, parse_id},
};

/// Input of `updateImage`: fields left out stay as they are.
#[derive(InputObject, Default)]
pub struct UpdateImageInput {
    /// Whether everyone may see the image.
    pub is_public: Option<bool>,
    /// The new tags (up to 20, each 1 to 40 characters; replaces the old ones).
    pub tags: Option<Vec<String>>,
}

/// The image changes of the gallery (merged into the root mutation).
#[derive(Default)]
pub struct ImageMutation;

#[Object]
impl ImageMutation {
    /// Changes one of your images: whether it is public, and its tags (`BAD_USER_INPUT` on
    /// `input.tags` for a bad tag, and nothing changes). Another user's image is `NOT_FOUND`.
    #[graphql(guard = "Authenticated")]
    async fn update_image(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's images.")] id: ID,
        #[graphql(desc = "The fields to change (see the input type).")] input: UpdateImageInput,
    ) -> Res<Image> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        let row = service::update_image(
            ctx.state()?,
            user,
            id,
            input.is_public,
            input.tags.as_deref(),
        )
        .await?;
        Ok(Image::new(row))
    }

    /// Deletes one of your images and its files. It leaves every character (a character's
    /// primary image is cleared) and album holding it (the album's count follows, its cover is
    /// cleared if it was this image, and a free gallery image it took is given back); a
    /// generation job that made it no longer lists it among its outputs. Another user's image
    /// is `NOT_FOUND`.
    #[graphql(guard = "Authenticated")]
    async fn delete_image(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's images.")] id: ID,
    ) -> Res<bool> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::delete_image(ctx.state()?, user, id).await?)
    }
}
