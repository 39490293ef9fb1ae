//! Rows and queries of moderation: `content_reports`.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types::Bool};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{ReportAction, ReportReason, ReportStatus, ReportTargetType};
use crate::db::{Fragment, schema::content_reports};

/// A report and how it was resolved.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = content_reports, check_for_backend(diesel::pg::Pg))]
pub struct ReportRow {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: ReportTargetType,
    pub target_id: Uuid,
    pub target_owner_id: Uuid,
    pub reason: ReportReason,
    pub details: Option<String>,
    pub status: ReportStatus,
    pub resolution: Option<ReportAction>,
    pub resolution_note: Option<String>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Insertable)]
#[diesel(table_name = content_reports)]
pub struct NewReport<'a> {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: ReportTargetType,
    pub target_id: Uuid,
    pub target_owner_id: Uuid,
    pub reason: ReportReason,
    pub details: Option<&'a str>,
}

/// Inserts a report; `None` when the reporter already has an open report of the target.
pub async fn insert_report(
    conn: &mut AsyncPgConnection,
    new: &NewReport<'_>,
) -> QueryResult<Option<ReportRow>> {
    diesel::insert_into(content_reports::table)
        .values(new)
        // The only unique index is `content_reports_reporter_id_target_key` (open reports).
        .on_conflict_do_nothing()
        .returning(ReportRow::as_returning())
        .get_result(conn)
        .await
        .optional()
}

/// The reporter's open report of a target.
pub async fn open_report(
    conn: &mut AsyncPgConnection,
    reporter: Uuid,
    target_type: ReportTargetType,
    target: Uuid,
) -> QueryResult<Option<ReportRow>> {
    content_reports::table
        .filter(content_reports::reporter_id.eq(reporter))
        .filter(content_reports::target_type.eq(target_type))
        .filter(content_reports::target_id.eq(target))
        .filter(content_reports::status.eq(ReportStatus::Open))
        .select(ReportRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A report, locked until the transaction ends.
pub async fn lock_report(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ReportRow>> {
    content_reports::table
        .find(id)
        .select(ReportRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// Marks a report resolved.
pub async fn resolve(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    action: ReportAction,
    note: Option<&str>,
    admin: Uuid,
) -> QueryResult<ReportRow> {
    diesel::update(content_reports::table.find(id))
        .set((
            content_reports::status.eq(ReportStatus::Resolved),
            content_reports::resolution.eq(action),
            content_reports::resolution_note.eq(note),
            content_reports::resolved_by.eq(admin),
            content_reports::resolved_at.eq(diesel::dsl::now),
        ))
        .returning(ReportRow::as_returning())
        .get_result(conn)
        .await
}

/// Reports, newest first, optionally of one status and target type, after `(created_at, id)`.
pub async fn reports(
    conn: &mut AsyncPgConnection,
    status: Option<ReportStatus>,
    target_type: Option<ReportTargetType>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ReportRow>> {
    let mut q = content_reports::table
        .select(ReportRow::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(content_reports::status.eq(s));
    }
    if let Some(t) = target_type {
        q = q.filter(content_reports::target_type.eq(t));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            Fragment::<Bool>::new("(content_reports.created_at, content_reports.id) < (")
                .time(at)
                .sql(", ")
                .uuid(id)
                .sql(")"),
        );
    }
    q.order((
        content_reports::created_at.desc(),
        content_reports::id.desc(),
    ))
    .limit(limit)
    .load(conn)
    .await
}

/// How many warnings (reports resolved with `warn_user` against them) a user received.
pub async fn warning_count(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i64> {
    content_reports::table
        .filter(content_reports::target_owner_id.eq(user))
        .filter(content_reports::resolution.eq(ReportAction::WarnUser))
        .count()
        .get_result(conn)
        .await
}
