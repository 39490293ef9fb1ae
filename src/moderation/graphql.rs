//! GraphQL types and root fields of moderation: `reportContent` for signed-in users,
//! `contentReports` and `resolveReport` for admins.

use async_graphql::{
    Context, ID, InputObject, Object,
    connection::{Connection, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    ReportAction, ReportReason, ReportStatus, ReportTargetType, model::ReportRow, service,
};
use crate::{
    accounts::{
        Role,
        graphql::User,
        guards::{Authenticated, HasRole, require_user},
        loaders::{AccountsLoader, UserId},
        service::RequestMeta,
    },
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        parse_id,
    },
};

type Res<T> = async_graphql::Result<T>;
type ReportConnection = Connection<OpaqueCursor<(DateTime<Utc>, Uuid)>, ContentReport>;

fn meta(ctx: &Context<'_>) -> RequestMeta {
    ctx.data_opt::<RequestMeta>().cloned().unwrap_or_default()
}

async fn user(ctx: &Context<'_>, id: Uuid) -> Res<Option<User>> {
    Ok(ctx
        .loader::<AccountsLoader>()?
        .load_one(UserId(id))
        .await?
        .map(User::new))
}

fn is_admin(ctx: &Context<'_>) -> bool {
    ctx.viewer().user().is_some_and(|u| u.role == Role::Admin)
}

/// A report as the API shows it.
pub struct ContentReport(pub ReportRow);

/// A user's report of content (or of another user), and how an admin resolved it. The
/// reporter sees their own report; admins see every report and the resolution details.
#[Object]
impl ContentReport {
    /// Stable identifier (what `resolveReport` takes).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What kind of thing is reported.
    async fn target_type(&self) -> ReportTargetType {
        self.0.target_type
    }

    /// The id of the reported character, image, album, collection or user.
    async fn target_id(&self) -> ID {
        ID(self.0.target_id.to_string())
    }

    /// Who owned the target when it was reported (the reported user for USER reports):
    /// whom WARN_USER warns and SUSPEND_USER suspends. Admins only (null for others).
    async fn target_owner(&self, ctx: &Context<'_>) -> Res<Option<User>> {
        if !is_admin(ctx) {
            return Ok(None);
        }
        user(ctx, self.0.target_owner_id).await
    }

    /// Who reported.
    async fn reporter(&self, ctx: &Context<'_>) -> Res<Option<User>> {
        user(ctx, self.0.reporter_id).await
    }

    /// Why.
    async fn reason(&self) -> ReportReason {
        self.0.reason
    }

    /// The reporter's own words, if any.
    async fn details(&self) -> Option<&str> {
        self.0.details.as_deref()
    }

    /// Open or resolved.
    async fn status(&self) -> ReportStatus {
        self.0.status
    }

    /// What the admin did (null while open).
    async fn resolution(&self) -> Option<ReportAction> {
        self.0.resolution
    }

    /// The admin's note on the resolution (admins only).
    async fn resolution_note(&self, ctx: &Context<'_>) -> Option<&str> {
        self.0.resolution_note.as_deref().filter(|_| is_admin(ctx))
    }

    /// The admin who resolved it (admins only).
    async fn resolved_by(&self, ctx: &Context<'_>) -> Res<Option<User>> {
        match self.0.resolved_by {
            Some(id) if is_admin(ctx) => user(ctx, id).await,
            _ => Ok(None),
        }
    }

    /// When it was resolved (null while open).
    async fn resolved_at(&self) -> Option<DateTime<Utc>> {
        self.0.resolved_at
    }

    /// When it was filed.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// Input of `reportContent`.
#[derive(InputObject)]
pub struct ReportContentInput {
    /// What kind of thing is reported.
    target_type: ReportTargetType,
    /// Its id; it must be something the viewer can see, and not their own.
    target_id: ID,
    /// Why.
    reason: ReportReason,
    /// More about it, up to 2000 characters.
    details: Option<String>,
}

/// Filter of `contentReports`.
#[derive(InputObject, Default)]
pub struct ContentReportFilter {
    /// Only reports with this status.
    status: Option<ReportStatus>,
    /// Only reports of this kind of target.
    target_type: Option<ReportTargetType>,
}

/// Input of `resolveReport`.
#[derive(InputObject)]
pub struct ResolveReportInput {
    /// What to do.
    action: ReportAction,
    /// A note for the audit log and other admins, up to 2000 characters.
    note: Option<String>,
}

/// Moderation queries.
#[derive(Default)]
pub struct ModerationQuery;

#[Object]
impl ModerationQuery {
    /// Admin: content reports, newest first.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn content_reports(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only reports matching this filter.")] filter: Option<ContentReportFilter>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> Res<ReportConnection> {
        let filter = filter.unwrap_or_default();
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let rows = service::reports(
            ctx.state()?,
            filter.status,
            filter.target_type,
            page.after,
            page.limit(),
        )
        .await?;
        Ok(connection(
            &page,
            rows.into_iter().map(ContentReport).collect(),
            |r| (r.0.created_at, r.0.id),
        ))
    }
}

/// Moderation mutations.
#[derive(Default)]
pub struct ModerationMutation;

#[Object]
impl ModerationMutation {
    /// Reports content (or a user) to the admins. The target must be something the viewer
    /// can see (else `NOT_FOUND`), not their own. Reporting the same target again while the
    /// first report is open answers that report. At most 20 reports an hour
    /// (`RATE_LIMITED`).
    #[graphql(guard = "Authenticated")]
    async fn report_content(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: ReportContentInput,
    ) -> Res<ContentReport> {
        let reporter = require_user(ctx)?;
        let target = parse_id(&input.target_id, "input.targetId")?;
        let row = service::report_content(
            ctx.state()?,
            &meta(ctx),
            reporter,
            input.target_type,
            target,
            input.reason,
            input.details.as_deref(),
        )
        .await?;
        Ok(ContentReport(row))
    }

    /// Admin: resolves an open report (a resolved one is `CONFLICT`). HIDE_CONTENT hides the
    /// content from everyone but its owner and admins for good; WARN_USER sends the owner a
    /// notice (by SMS to accounts with a phone) and counts a warning; SUSPEND_USER suspends
    /// the owner's account and ends its sessions. Audit-logged.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn resolve_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The report.")] id: ID,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: ResolveReportInput,
    ) -> Res<ContentReport> {
        let admin = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        let row = service::resolve_report(
            ctx.state()?,
            &meta(ctx),
            admin,
            id,
            input.action,
            input.note.as_deref(),
        )
        .await?;
        Ok(ContentReport(row))
    }
}
