//! GraphQL types and root fields of the accounts capability.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};

use super::{Role, SubscriptionTier, loaders::UserId, model::UserRow};
use crate::graphql::ContextExt;

/// A user as the API shows it (wraps the row so a column never becomes API by accident).
pub struct User(pub UserRow);

/// A person using an Easel app: a user, a vendor or an admin.
#[Object]
impl User {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Unique public handle (`^[a-zA-Z0-9_]{3,30}$`), if chosen.
    async fn username(&self) -> Option<&str> {
        self.0.username.as_deref()
    }

    /// Name shown to others.
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }

    /// Profile picture URL.
    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }

    /// Short self-description.
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    /// What the user may do.
    async fn role(&self) -> Role {
        self.0.role
    }

    /// Plan tier (sets allowances and prices).
    async fn subscription_tier(&self) -> SubscriptionTier {
        self.0.subscription_tier
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Account queries.
#[derive(Default)]
pub struct AccountsQuery;

#[Object]
impl AccountsQuery {
    /// The signed-in user, or null for anonymous requests.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let Some(id) = ctx.viewer().user_id() else {
            return Ok(None);
        };
        let row = ctx.loaders()?.accounts.load_one(UserId(id)).await?;
        Ok(row.map(User))
    }
}
