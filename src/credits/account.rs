//! The `CreditAccount` GraphQL type, apart from the rest of the credits API because
//! `User.credits` returns it: `accounts::graphql` depends on this module, and this module on
//! nothing of `accounts`, so the two API modules import no cycle (`credits::graphql` uses
//! `User` for a gift's counterparty).

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    loaders::{AccountOf, CreditsLoader},
    model::AccountView,
};
use crate::graphql::ContextExt;

/// A user's credits.
pub struct CreditAccount(pub AccountView);

/// A user's credits: the balance, and today's free allowance (it resets at midnight in the
/// user's time zone and is spent before the balance).
#[Object]
impl CreditAccount {
    /// The owner's user id (each user has one account): a stable key for client caches, so
    /// `me { credits }` and `creditBalanceChanged` update the same cached object.
    async fn id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }

    /// Credits that can be spent, beyond today's allowance.
    async fn balance(&self) -> i64 {
        self.0.balance
    }

    /// Free credits per day for the user's tier.
    async fn daily_allowance(&self) -> i64 {
        self.0.daily_allowance
    }

    /// Free credits used today.
    async fn daily_used(&self) -> i64 {
        self.0.daily_used
    }

    /// Free credits left today.
    async fn daily_remaining(&self) -> i64 {
        (self.0.daily_allowance - self.0.daily_used).max(0)
    }

    /// All credits ever bought.
    async fn total_purchased(&self) -> i64 {
        self.0.total_purchased
    }

    /// All credits ever spent from the balance.
    async fn total_spent(&self) -> i64 {
        self.0.total_spent
    }

    /// All credits ever received for free (bonuses, gifts, refunds, adjustments).
    async fn total_earned(&self) -> i64 {
        self.0.total_earned
    }

    /// When the balance last changed.
    async fn last_transaction_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_transaction_at
    }
}

/// Loads a user's credit account through the request's loader.
pub async fn account_of(
    ctx: &Context<'_>,
    user: Uuid,
) -> async_graphql::Result<Option<CreditAccount>> {
    Ok(ctx
        .loader::<CreditsLoader>()?
        .load_one(AccountOf(user))
        .await?
        .map(CreditAccount))
}
