//! Dataloaders of the payments capability.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use uuid::Uuid;

use super::model::{self, PaymentRow};
use crate::{
    db::{self, DbPool},
    error::AppError,
};

/// Batches payment lookups of one request (a page of ledger entries names many payments).
pub struct PaymentsLoader(pub DbPool);

/// Loader key: a payment by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentId(pub Uuid);

impl Loader<PaymentId> for PaymentsLoader {
    type Value = PaymentRow;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PaymentId],
    ) -> Result<HashMap<PaymentId, PaymentRow>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let mut conn = db::conn(&self.0).await?;
        let rows = model::by_ids(&mut conn, &ids)
            .await
            .map_err(AppError::from)?;
        Ok(rows.into_iter().map(|p| (PaymentId(p.id), p)).collect())
    }
}
