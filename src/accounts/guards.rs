//! Reusable field guards: `#[graphql(guard = "Authenticated")]`, `guard = "HasRole(Role::Admin)"`.

use async_graphql::{Context, Guard};

use super::{Role, viewer::ViewerUser};
use crate::{error::AppError, graphql::ContextExt};

/// The viewer must be signed in.
pub struct Authenticated;

impl Guard for Authenticated {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        require_user(ctx).map(|_| ()).map_err(Into::into)
    }
}

/// The viewer must hold this role; admins pass every role check.
pub struct HasRole(pub Role);

impl Guard for HasRole {
    async fn check(&self, ctx: &Context<'_>) -> async_graphql::Result<()> {
        let user = require_user(ctx)?;
        if user.role == self.0 || user.role == Role::Admin {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!("only a {} may do this", self.0.as_str())).into())
        }
    }
}

/// The signed-in viewer, or `UNAUTHENTICATED`.
pub fn require_user<'a>(ctx: &'a Context<'_>) -> Result<&'a ViewerUser, AppError> {
    ctx.viewer()
        .user()
        .ok_or(AppError::Unauthenticated("sign in first"))
}

/// The viewer must be `owner` or an admin, else `FORBIDDEN`.
pub fn require_owner_or_admin(ctx: &Context<'_>, owner: uuid::Uuid) -> Result<(), AppError> {
    let user = require_user(ctx)?;
    if user.id == owner || user.role == Role::Admin {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "only the owner or an admin may do this".into(),
        ))
    }
}
