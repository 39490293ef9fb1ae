//! Dataloaders of the accounts capability.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{self, UserRow, VendorProfileRow};
use crate::{
    db::{self, DbPool},
    error::AppError,
};

/// Batches account lookups of one request.
pub struct AccountsLoader(pub DbPool);

/// Loader key: a user by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub Uuid);

/// Loader key: the vendor profile of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorProfileOf(pub Uuid);

impl Loader<UserId> for AccountsLoader {
    type Value = UserRow;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[UserId]) -> Result<HashMap<UserId, UserRow>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::users_by_ids(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(|u| (UserId(u.id), u)).collect())
    }
}

impl Loader<VendorProfileOf> for AccountsLoader {
    type Value = VendorProfileRow;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[VendorProfileOf],
    ) -> Result<HashMap<VendorProfileOf, VendorProfileRow>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::vendor_profiles_by_users(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|p| (VendorProfileOf(p.user_id), p))
            .collect())
    }
}
