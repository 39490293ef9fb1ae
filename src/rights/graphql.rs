//! `deleteAccount`.

use async_graphql::{Context, InputObject, Object};

use super::service;
use crate::{
    accounts::guards::{Authenticated, require_user},
    graphql::ContextExt,
};

/// Input of `deleteAccount`.
#[derive(InputObject)]
pub struct DeleteAccountInput {
    /// Exactly `DELETE`, typed by the user.
    pub confirm: String,
    /// The account's password (required when the account has one).
    pub password: Option<String>,
}

/// Data-rights mutations.
#[derive(Default)]
pub struct RightsMutation;

#[Object]
impl RightsMutation {
    /// Deletes your account for good. Every session is signed out at once; queued and running
    /// generation jobs are cancelled; your characters, collections, albums, images (and their
    /// files), likes, ratings, chat threads, jobs, feedback and social logins are deleted; your
    /// phone, email, username, name, picture and password are erased, so the same phone or
    /// email can sign up again as a new account. Credit ledger, payment and subscription
    /// records are kept without personal data (a live subscription is cancelled). A wrong
    /// `confirm` or password is `BAD_USER_INPUT` (on `input.confirm` / `input.password`) and
    /// changes nothing.
    #[graphql(guard = "Authenticated")]
    async fn delete_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The confirmation (see the input type).")] input: DeleteAccountInput,
    ) -> async_graphql::Result<bool> {
        let user = require_user(ctx)?;
        Ok(service::delete_account(
            ctx.state()?,
            user,
            &input.confirm,
            input.password.as_deref(),
        )
        .await?)
    }
}
