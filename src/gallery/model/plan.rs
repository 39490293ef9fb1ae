//! Look-ahead plans: what a page of characters or images brings along in its own statement.
//!
//! A page resolver reads the client's selection (`ctx.look_ahead()`) and says what each node
//! needs ([`CharacterWants`], [`ImageWants`]); the page's query then selects, next to each
//! row, one JSON column built by correlated subqueries (owner, primary image, the first N
//! images the viewer may see, the viewer's like, the rating aggregate), decoded here into
//! [`CharacterExtras`] / [`ImageExtras`]. One statement per page, no dataloader round and no
//! batching window. Whatever a plan does not carry, the node's resolvers still load through
//! the dataloaders, so every selection works.

use std::sync::LazyLock;

use diesel::{
    prelude::*,
    sql_types::{Nullable, Text},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{ImageRow, Seer};
use crate::{
    accounts::service::{UserRow, user_json},
    db::{
        Fragment, decode_json, json_object, present,
        schema::{characters, images},
        select_list,
    },
};

/// What each character of a page needs besides its own row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CharacterWants {
    /// The owner's user row.
    pub owner: bool,
    /// The primary image's row.
    pub primary_image: bool,
    /// The first N images (by position) the seer may see.
    pub images: Option<i32>,
    /// Whether this user liked the character.
    pub liked_by: Option<Uuid>,
    /// The average and number of ratings.
    pub rating: bool,
}

/// What a planned character brought along. A `None` field was not planned: its resolver
/// loads it as usual.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CharacterExtras {
    /// The owner.
    #[serde(default)]
    pub owner: Option<UserRow>,
    /// The primary image: `Some(None)` when the character has none.
    #[serde(default, deserialize_with = "present")]
    pub primary_image: Option<Option<ImageRow>>,
    /// The first `images_first` images the seer may see, in order.
    #[serde(default)]
    pub images: Option<Vec<ImageRow>>,
    /// How many images `images` was asked for.
    #[serde(skip)]
    pub images_first: i32,
    /// Whether the planned viewer liked the character.
    #[serde(default)]
    pub liked: Option<bool>,
    /// Average (null before the first rating) and number of ratings.
    #[serde(default)]
    pub rating: Option<(Option<f64>, i64)>,
}

/// What each image of a page needs besides its own row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImageWants {
    /// The owner's user row.
    pub owner: bool,
}

/// What a planned image brought along.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageExtras {
    /// The owner.
    #[serde(default)]
    pub owner: Option<UserRow>,
}

/// A character of a page with what its plan brought along.
pub type PlannedCharacter = (super::CharacterRow, Option<Box<CharacterExtras>>);

/// An image of a page with what its plan brought along.
pub type PlannedImage = (ImageRow, Option<Box<ImageExtras>>);

/// The columns of [`ImageRow`], as diesel names them.
fn image_columns() -> &'static str {
    static COLUMNS: LazyLock<String> =
        LazyLock::new(|| select_list(images::table.select(ImageRow::as_select())));
    &COLUMNS
}

/// The JSON column of a character page (the page's query names the table `characters`).
pub(super) fn character_extras(wants: &CharacterWants, seer: Seer) -> Fragment<Nullable<Text>> {
    let mut entries = Vec::new();
    if wants.owner {
        entries.push(Fragment::new("'owner', ").sql(&user_json("characters.owner_id")));
    }
    if wants.primary_image {
        entries.push(Fragment::new(format!(
            "'primary_image', (SELECT row_to_json(p) FROM (SELECT {} FROM images \
             WHERE images.id = characters.primary_image_id) p)",
            image_columns()
        )));
    }
    if let Some(first) = wants.images {
        entries.push(
            Fragment::new(format!(
                "'images', (SELECT coalesce(json_agg(x ORDER BY x.plan_position, x.id), '[]'::json) \
                 FROM (SELECT {}, character_images.position AS plan_position \
                       FROM character_images JOIN images ON images.id = character_images.image_id \
                       WHERE character_images.character_id = characters.id \
                         AND (images.is_public OR images.owner_id = ",
                image_columns()
            ))
            .maybe_uuid(seer.user)
            .sql(" OR ")
            .bool(seer.admin)
            .sql(
                ") ORDER BY character_images.position, character_images.image_id \
                 LIMIT ",
            )
            .bigint(i64::from(first))
            .sql(") x)"),
        );
    }
    if let Some(user) = wants.liked_by {
        entries.push(
            Fragment::new(
                "'liked', EXISTS (SELECT 1 FROM character_likes \
                 WHERE character_likes.character_id = characters.id \
                   AND character_likes.user_id = ",
            )
            .uuid(user)
            .sql(")"),
        );
    }
    if wants.rating {
        entries.push(Fragment::new(
            "'rating', (SELECT json_build_array(avg(character_ratings.rating)::float8, count(*)) \
             FROM character_ratings WHERE character_ratings.character_id = characters.id)",
        ));
    }
    json_object(entries)
}

/// SQL for the JSON array of the result images of the job whose id is `job_sql` (a column of
/// the enclosing query), in the order they were made: for generation's look-ahead plans.
pub fn job_outputs_json(job_sql: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(x ORDER BY x.created_at, x.id), '[]'::json) \
         FROM (SELECT {} FROM images WHERE images.job_id = {job_sql}) x)",
        image_columns()
    )
}

/// SQL for the JSON of the character whose id is `id_sql` (a column of the enclosing query).
pub fn character_json(id_sql: &str) -> String {
    static COLUMNS: LazyLock<String> =
        LazyLock::new(|| select_list(characters::table.select(super::CharacterRow::as_select())));
    format!(
        "(SELECT row_to_json(c) FROM (SELECT {} FROM characters WHERE characters.id = {id_sql}) c)",
        *COLUMNS
    )
}

/// The JSON column of an image page (the page's query names the table `images`).
pub(super) fn image_extras(wants: &ImageWants) -> Fragment<Nullable<Text>> {
    let mut entries = Vec::new();
    if wants.owner {
        entries.push(Fragment::new("'owner', ").sql(&user_json("images.owner_id")));
    }
    json_object(entries)
}

/// Decodes a character page's JSON column, remembering how many images were planned.
pub(super) fn decode_character(
    json: Option<String>,
    wants: &CharacterWants,
) -> QueryResult<Option<Box<CharacterExtras>>> {
    Ok(decode_json::<CharacterExtras>(json)?.map(|mut e| {
        e.images_first = wants.images.unwrap_or_default();
        Box::new(e)
    }))
}
