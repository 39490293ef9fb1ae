//! Dataloaders of the gallery: each key type is one `= ANY(...)` statement per batch.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{self, CharacterRow, ImageRow, Seer};
use crate::{
    db::{self, DbPool},
    error::AppError,
};

/// Batches gallery lookups of one request.
pub struct GalleryLoader(pub DbPool);

/// Loader key: an image by id (any visibility; resolvers apply privacy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageId(pub Uuid);

/// Loader key: a character by id (any visibility; resolvers apply privacy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharacterId(pub Uuid);

/// Loader key: the first `first` images of a character that `seer` may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharacterImages {
    pub character: Uuid,
    pub first: i32,
    pub seer: Seer,
}

/// Loader key: whether `user` liked `character`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerLiked {
    pub character: Uuid,
    pub user: Uuid,
}

/// Loader key: the output images of a generation job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobOutputs(pub Uuid);

impl Loader<JobOutputs> for GalleryLoader {
    type Value = Vec<ImageRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[JobOutputs]) -> LoadResult<JobOutputs, Vec<ImageRow>> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::images_of_jobs(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        let mut out: HashMap<JobOutputs, Vec<ImageRow>> = HashMap::new();
        for row in rows {
            if let Some(job) = row.job_id {
                out.entry(JobOutputs(job)).or_default().push(row);
            }
        }
        Ok(out)
    }
}

/// Loader key: the rating summary of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatingOf(pub Uuid);

/// Average and number of ratings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatingSummary {
    pub average: f64,
    pub count: i64,
}

type LoadResult<K, V> = Result<HashMap<K, V>, async_graphql::Error>;

impl Loader<ImageId> for GalleryLoader {
    type Value = ImageRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ImageId]) -> LoadResult<ImageId, ImageRow> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::images_by_ids(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(|r| (ImageId(r.id), r)).collect())
    }
}

impl Loader<CharacterId> for GalleryLoader {
    type Value = CharacterRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CharacterId]) -> LoadResult<CharacterId, CharacterRow> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::characters_by_ids(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(|r| (CharacterId(r.id), r)).collect())
    }
}

impl Loader<CharacterImages> for GalleryLoader {
    type Value = Vec<ImageRow>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[CharacterImages]) -> LoadResult<CharacterImages, Vec<ImageRow>> {
        // One statement per (seer, first) group: in practice one per request.
        let mut groups: HashMap<(Seer, i32), Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups
                .entry((k.seer, k.first))
                .or_default()
                .push(k.character);
        }
        let mut out: HashMap<CharacterImages, Vec<ImageRow>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        let mut conn = db::conn(&self.0).await?;
        for ((seer, first), characters) in groups {
            let rows = model::images_of_characters(&mut conn, &characters, first, seer)
                .await
                .map_err(AppError::from)?;
            for (character, image) in rows {
                if let Some(list) = out.get_mut(&CharacterImages {
                    character,
                    first,
                    seer,
                }) {
                    list.push(image);
                }
            }
        }
        Ok(out)
    }
}

impl Loader<ViewerLiked> for GalleryLoader {
    type Value = bool;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ViewerLiked]) -> LoadResult<ViewerLiked, bool> {
        let mut by_user: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for k in keys {
            by_user.entry(k.user).or_default().push(k.character);
        }
        let mut out: HashMap<ViewerLiked, bool> = keys.iter().map(|k| (*k, false)).collect();
        let mut conn = db::conn(&self.0).await?;
        for (user, characters) in by_user {
            for character in model::liked_by(&mut conn, user, &characters)
                .await
                .map_err(AppError::from)?
            {
                out.insert(ViewerLiked { character, user }, true);
            }
        }
        Ok(out)
    }
}

impl Loader<RatingOf> for GalleryLoader {
    type Value = RatingSummary;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[RatingOf]) -> LoadResult<RatingOf, RatingSummary> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::rating_stats(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|(id, average, count)| (RatingOf(id), RatingSummary { average, count }))
            .collect())
    }
}

/// Loader key: the first `first` ratings (by active accounts, newest first) of a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CharacterReviews {
    pub character: Uuid,
    pub first: i64,
}

impl Loader<CharacterReviews> for GalleryLoader {
    type Value = Vec<model::RatingRow>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[CharacterReviews],
    ) -> LoadResult<CharacterReviews, Vec<model::RatingRow>> {
        // One statement per page size: in practice one per request.
        let mut groups: HashMap<i64, Vec<Uuid>> = HashMap::new();
        for k in keys {
            groups.entry(k.first).or_default().push(k.character);
        }
        let mut out: HashMap<CharacterReviews, Vec<model::RatingRow>> =
            keys.iter().map(|k| (*k, Vec::new())).collect();
        let mut conn = db::conn(&self.0).await?;
        for (first, characters) in groups {
            for row in model::first_ratings_of(&mut conn, &characters, first)
                .await
                .map_err(AppError::from)?
            {
                if let Some(list) = out.get_mut(&CharacterReviews {
                    character: row.character_id,
                    first,
                }) {
                    list.push(row);
                }
            }
        }
        Ok(out)
    }
}

/// Loader key: `user`'s rating of `character`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ViewerRating {
    pub character: Uuid,
    pub user: Uuid,
}

impl Loader<ViewerRating> for GalleryLoader {
    type Value = model::RatingRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ViewerRating]) -> LoadResult<ViewerRating, model::RatingRow> {
        let mut by_user: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for k in keys {
            by_user.entry(k.user).or_default().push(k.character);
        }
        let mut out = HashMap::new();
        let mut conn = db::conn(&self.0).await?;
        for (user, characters) in by_user {
            for row in model::ratings_by(&mut conn, user, &characters)
                .await
                .map_err(AppError::from)?
            {
                out.insert(
                    ViewerRating {
                        character: row.character_id,
                        user,
                    },
                    row,
                );
            }
        }
        Ok(out)
    }
}
