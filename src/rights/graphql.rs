//! `deleteAccount`, `requestDataExport`, `dataExport`.

use async_graphql::{Context, Enum, ID, InputObject, Object};
use chrono::{DateTime, Utc};

use super::{export, service};
use crate::{
    accounts::guards::{Authenticated, require_user},
    graphql::{ContextExt, parse_id},
};

/// Where a data export is.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum DataExportStatus {
    /// Waiting to be built.
    Pending,
    /// Being built.
    Running,
    /// Built: `downloadUrl` serves it until `expiresAt`.
    Ready,
    /// Could not be built (tried 3 times); request a new one.
    Failed,
}

/// A zip of everything Easel holds about you: `data.json` (your profile, sessions, credit
/// account and ledger, payments, subscriptions, characters, collections, albums, images,
/// likes, ratings, generation jobs, chat threads and messages, referrals, social logins,
/// feedback and reports) and your image files under `media/`.
pub struct DataExport(export::ExportRow);

/// A zip of everything Easel holds about you: `data.json` (your profile, sessions, credit
/// account and ledger, payments, subscriptions, characters, collections, albums, images,
/// likes, ratings, generation jobs, chat threads and messages, referrals, social logins,
/// feedback and reports) and your image files under `media/`.
#[Object]
impl DataExport {
    /// The export's id.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where it is.
    async fn status(&self) -> DataExportStatus {
        match self.0.status.as_str() {
            "pending" => DataExportStatus::Pending,
            "running" => DataExportStatus::Running,
            "ready" => DataExportStatus::Ready,
            _ => DataExportStatus::Failed,
        }
    }

    /// When it was requested.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When it was built (or given up on).
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }

    /// Until when it can be downloaded (then it is deleted); null until ready.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// The zip's size in bytes; null until ready.
    async fn byte_size(&self) -> Option<i64> {
        self.0.byte_size
    }

    /// Why the last attempt failed; null when none did.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }

    /// The link that downloads the zip (no sign-in needed: keep it private); null unless
    /// ready and not expired.
    async fn download_url(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<String>> {
        Ok(self.0.download_url(&ctx.state()?.config.public_url))
    }
}

/// Data-rights queries.
#[derive(Default)]
pub struct RightsQuery;

#[Object]
impl RightsQuery {
    /// One of your data exports; null for an unknown id or someone else's.
    #[graphql(guard = "Authenticated")]
    async fn data_export(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The export's id.")] id: ID,
    ) -> async_graphql::Result<Option<DataExport>> {
        let user = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(export::find(ctx.state()?, user.id, id)
            .await?
            .map(DataExport))
    }
}

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

    /// Asks for a zip of your data (see `DataExport`). It is built in the background: poll
    /// `dataExport(id)` until it is `READY` (you also get an email, or an SMS when you have
    /// no verified email), then open `downloadUrl` before `expiresAt`. While one is pending
    /// or running, asking again returns that one. At most 3 a day (`RATE_LIMITED`).
    #[graphql(guard = "Authenticated")]
    async fn request_data_export(&self, ctx: &Context<'_>) -> async_graphql::Result<DataExport> {
        let user = require_user(ctx)?;
        Ok(DataExport(export::request(ctx.state()?, user.id).await?))
    }
}
