//! Dataloaders of the credits capability.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{self, AccountView};
use crate::{
    db::{self, DbPool},
    error::AppError,
};

/// Batches credit lookups of one request.
pub struct CreditsLoader(pub DbPool);

/// Loader key: the credit account of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountOf(pub Uuid);

impl Loader<AccountOf> for CreditsLoader {
    type Value = AccountView;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[AccountOf],
    ) -> Result<HashMap<AccountOf, AccountView>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::account_views(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|a| (AccountOf(a.user_id), a))
            .collect())
    }
}
