//! The rules of moderation: who may report what, one open report per reporter and target,
//! the reporting rate limit, and resolving a report (each resolution in one transaction with
//! its audit entry).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    ReportAction, ReportReason, ReportStatus, ReportTargetType,
    model::{self, NewReport, ReportRow},
};
use crate::{
    AppState,
    accounts::{
        AccountStatus,
        graphql::User,
        service::{self as accounts, RequestMeta},
        viewer::{Viewer, ViewerUser},
    },
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
    gallery::service::{
        self as gallery,
        moderation::{self as gallery_moderation, ContentTable},
    },
    ratelimit,
};

/// Reports one user may file per hour (repeats of an open report count too).
pub const REPORTS_PER_HOUR: i64 = 20;

/// Longest `details` of a report and `note` of a resolution, in characters.
pub const MAX_TEXT: usize = 2000;

fn table_of(target: ReportTargetType) -> Option<ContentTable> {
    match target {
        ReportTargetType::Character => Some(ContentTable::Characters),
        ReportTargetType::Image => Some(ContentTable::Images),
        ReportTargetType::Album => Some(ContentTable::Albums),
        ReportTargetType::Collection => Some(ContentTable::Collections),
        ReportTargetType::User => None,
    }
}

fn optional_text(value: Option<&str>, field: &str) -> AppResult<Option<String>> {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if v.chars().count() > MAX_TEXT {
        return Err(AppError::bad_input(
            field,
            format!("at most {MAX_TEXT} characters"),
        ));
    }
    if v.chars().any(|c| c.is_control() && c != '\n') {
        return Err(AppError::bad_input(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(Some(v.to_string()))
}

/// The owner of a target `reporter` may see; `NOT_FOUND` when there is none they may see.
async fn visible_target_owner(
    conn: &mut AsyncPgConnection,
    reporter: &ViewerUser,
    target_type: ReportTargetType,
    target: Uuid,
) -> AppResult<Uuid> {
    let not_found = AppError::NotFound("content");
    match table_of(target_type) {
        None => {
            let viewer = Viewer::User(reporter.clone());
            accounts::user_by_id_in(conn, target)
                .await?
                .filter(|u| User::profile_visible_to(u, &viewer))
                .map(|u| u.id)
                .ok_or(not_found)
        }
        Some(table) => {
            let seer = gallery::seer_of(reporter);
            gallery_moderation::content_state_in(conn, table, target, false)
                .await?
                .filter(|s| seer.sees(s.owner_id, s.is_public))
                .map(|s| s.owner_id)
                .ok_or(not_found)
        }
    }
}

/// `reportContent`: files a report of a target the reporter can see (else `NOT_FOUND`;
/// their own content is `BAD_USER_INPUT`). Reporting a target again while the first report
/// is open answers that report.
pub async fn report_content(
    state: &AppState,
    meta: &RequestMeta,
    reporter: &ViewerUser,
    target_type: ReportTargetType,
    target: Uuid,
    reason: ReportReason,
    details: Option<&str>,
) -> AppResult<ReportRow> {
    let details = optional_text(details, "input.details")?;
    let mut conn = db::conn(&state.pool).await?;
    ratelimit::hit(
        &mut conn,
        &format!("report:{}", reporter.id),
        Duration::from_secs(3600),
        REPORTS_PER_HOUR,
    )
    .await?;
    conn.transaction(async |conn| {
        let owner = visible_target_owner(conn, reporter, target_type, target).await?;
        if owner == reporter.id {
            return Err(AppError::bad_input(
                "input.targetId",
                "you cannot report your own content",
            ));
        }
        let new = NewReport {
            id: Uuid::now_v7(),
            reporter_id: reporter.id,
            target_type,
            target_id: target,
            target_owner_id: owner,
            reason,
            details: details.as_deref(),
        };
        if let Some(report) = model::insert_report(conn, &new).await? {
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(reporter.id),
                    actor_type: accounts::actor_type(reporter.role),
                    action: "report.created",
                    resource: Some(target_type.as_str()),
                    resource_id: Some(target.to_string()),
                    ip: meta.ip.map(Into::into),
                    metadata: json!({ "report": report.id, "reason": reason.as_str() }),
                },
            )
            .await?;
            return Ok(report);
        }
        model::open_report(conn, reporter.id, target_type, target)
            .await?
            .ok_or_else(|| AppError::Conflict("the report changed meanwhile; try again".into()))
    })
    .await
}

/// `contentReports`: reports, newest first (admins; the resolver checks).
pub async fn reports(
    state: &AppState,
    status: Option<ReportStatus>,
    target_type: Option<ReportTargetType>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<ReportRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::reports(&mut conn, status, target_type, after, limit).await?)
}

/// How many warnings a user received.
pub async fn warning_count(state: &AppState, user: Uuid) -> AppResult<i64> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::warning_count(&mut conn, user).await?)
}

/// `resolveReport`: resolves an open report once (a resolved one is `CONFLICT`), with its
/// action, in one transaction with the audit entry.
pub async fn resolve_report(
    state: &AppState,
    meta: &RequestMeta,
    admin: &ViewerUser,
    id: Uuid,
    action: ReportAction,
    note: Option<&str>,
) -> AppResult<ReportRow> {
    let note = optional_text(note, "input.note")?;
    let mut conn = db::conn(&state.pool).await?;
    let (report, families, notified) = conn
        .transaction(async |conn| {
            let report = model::lock_report(conn, id)
                .await?
                .ok_or(AppError::NotFound("report"))?;
            if report.status != ReportStatus::Open {
                return Err(AppError::Conflict(
                    "this report was already resolved".into(),
                ));
            }
            let mut families = Vec::new();
            let mut notified = false;
            let (before, after) = match action {
                ReportAction::Dismiss => (json!({}), json!({})),
                ReportAction::HideContent => {
                    let table = table_of(report.target_type).ok_or_else(|| {
                        AppError::bad_input(
                            "input.action",
                            "a user cannot be hidden: warn or suspend them",
                        )
                    })?;
                    let state =
                        gallery_moderation::content_state_in(conn, table, report.target_id, true)
                            .await?
                            .ok_or(AppError::NotFound("content"))?;
                    gallery_moderation::hide_content_in(conn, table, report.target_id).await?;
                    (
                        json!({ "is_public": state.is_public, "hidden": state.hidden_at.is_some() }),
                        json!({ "is_public": false, "hidden": true }),
                    )
                }
                ReportAction::WarnUser => {
                    let owner = accounts::user_by_id_in(conn, report.target_owner_id)
                        .await?
                        .ok_or(AppError::NotFound("user"))?;
                    let warnings = model::warning_count(conn, owner.id).await?;
                    let body = format!(
                        "Easel: a moderator reviewed a report ({}) about your {} and warns you. \
                         Repeated violations may get your account suspended.",
                        report.reason.as_str(),
                        report.target_type.as_str()
                    );
                    let subject = "A notice from Easel's moderators";
                    let channel =
                        accounts::notify_in(conn, &owner, "moderation_warning", subject, &body)
                            .await?;
                    notified = channel.is_some();
                    (
                        json!({ "warnings": warnings }),
                        json!({ "warnings": warnings + 1, "notice": channel }),
                    )
                }
                ReportAction::SuspendUser => {
                    if report.target_owner_id == admin.id {
                        return Err(AppError::bad_input(
                            "input.action",
                            "admins cannot suspend themselves",
                        ));
                    }
                    let (user, revoked) = accounts::set_account_status_in(
                        conn,
                        meta,
                        admin.id,
                        report.target_owner_id,
                        AccountStatus::Suspended,
                        json!({ "report": report.id }),
                    )
                    .await?;
                    families = revoked;
                    (
                        json!({}),
                        json!({ "status": user.account_status.as_str() }),
                    )
                }
            };
            let resolved =
                model::resolve(conn, report.id, action, note.as_deref(), admin.id).await?;
            audit::admin(
                conn,
                admin.id,
                "report.resolved",
                "content_report",
                report.id.to_string(),
                json!({
                    "action": action.as_str(),
                    "target": {
                        "type": report.target_type.as_str(),
                        "id": report.target_id,
                        "owner": report.target_owner_id,
                    },
                    "before": before,
                    "after": after,
                    "note": note,
                }),
            )
            .await?;
            Ok((resolved, families, notified))
        })
        .await?;
    state.revocations.revoke(&families);
    if notified {
        state.outbox_wakeup.notify_one();
    }
    Ok(report)
}
