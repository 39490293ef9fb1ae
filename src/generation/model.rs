//! Rows and queries of the job queue. Every status change goes through [`transition`], which
//! writes the `job_events` row and the notification in the caller's transaction.

use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{Nullable, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{GenerationKind, JobStatus};
use crate::{
    chat,
    db::{
        Fragment, literal_limit,
        schema::{generation_jobs, job_events},
    },
    events::{self, Event},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = generation_jobs, check_for_backend(diesel::pg::Pg))]
pub struct JobRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: Option<Uuid>,
    /// The chat thread whose message asked for the job, if any.
    pub thread_id: Option<Uuid>,
    pub kind: GenerationKind,
    pub provider: String,
    pub model: Option<String>,
    pub prompt: Option<String>,
    pub negative_prompt: Option<String>,
    pub params: serde_json::Value,
    pub input_image_ids: Vec<Uuid>,
    pub output_count: i32,
    pub status: JobStatus,
    pub priority: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub cost_credits: i64,
    pub charge_transaction_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
    pub error: Option<serde_json::Value>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub processing_ms: Option<i32>,
    pub created_at: DateTime<Utc>,
    /// The template `prompt` was rendered from (LOGO), and its version.
    pub prompt_template: Option<String>,
    pub prompt_template_version: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = generation_jobs)]
pub struct NewJob<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub character_id: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub kind: GenerationKind,
    pub provider: &'a str,
    pub model: Option<&'a str>,
    pub prompt: Option<&'a str>,
    pub negative_prompt: Option<&'a str>,
    pub params: serde_json::Value,
    pub input_image_ids: Vec<Uuid>,
    pub output_count: i32,
    pub priority: i32,
    pub max_attempts: i32,
    pub cost_credits: i64,
    pub charge_transaction_id: Option<Uuid>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
    pub deadline_at: DateTime<Utc>,
    pub prompt_template: Option<&'a str>,
    pub prompt_template_version: Option<&'a str>,
}

pub async fn insert(conn: &mut AsyncPgConnection, job: &NewJob<'_>) -> QueryResult<JobRow> {
    let row = diesel::insert_into(generation_jobs::table)
        .values(job)
        .returning(JobRow::as_returning())
        .get_result(conn)
        .await?;
    record_event(conn, &row, serde_json::json!({})).await?;
    Ok(row)
}

/// Records which provider and model rendered the job (the last step of its plan that ran),
/// while the job is still `worker`'s; whether it was.
pub async fn record_producer(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    provider: &str,
    model: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::update(
        generation_jobs::table
            .find(id)
            .filter(generation_jobs::lease_owner.eq(worker))
            .filter(generation_jobs::status.eq(JobStatus::Processing)),
    )
    .set((
        generation_jobs::provider.eq(provider),
        generation_jobs::model.eq(model),
    ))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

pub async fn by_id(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<JobRow>> {
    generation_jobs::table
        .find(id)
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn by_ids(conn: &mut AsyncPgConnection, ids: &[Uuid]) -> QueryResult<Vec<JobRow>> {
    generation_jobs::table
        .filter(generation_jobs::id.eq_any(ids))
        .select(JobRow::as_select())
        .load(conn)
        .await
}

pub async fn by_key(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    key: &str,
) -> QueryResult<Option<JobRow>> {
    generation_jobs::table
        .filter(
            generation_jobs::user_id
                .eq(user)
                .and(generation_jobs::idempotency_key.eq(key)),
        )
        .select(JobRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A user's jobs, newest first, after the keyset (created_at, id).
pub async fn list(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    status: Option<JobStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
    extras: Fragment<Nullable<Text>>,
) -> QueryResult<Vec<(JobRow, Option<String>)>> {
    let mut q = generation_jobs::table
        .filter(generation_jobs::user_id.eq(user))
        .select((JobRow::as_select(), extras))
        .order((
            generation_jobs::created_at.desc(),
            generation_jobs::id.desc(),
        ))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(generation_jobs::status.eq(s));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            generation_jobs::created_at
                .lt(at)
                .or(generation_jobs::created_at
                    .eq(at)
                    .and(generation_jobs::id.lt(id))),
        );
    }
    literal_limit(q, limit).load(conn).await
}

/// How many jobs of `kind` a user queued since `since`.
pub async fn count_since(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    kind: GenerationKind,
    since: DateTime<Utc>,
) -> QueryResult<i64> {
    generation_jobs::table
        .filter(generation_jobs::user_id.eq(user))
        .filter(generation_jobs::kind.eq(kind))
        .filter(generation_jobs::created_at.ge(since))
        .count()
        .get_result(conn)
        .await
}

/// Writes the job's current status to `job_events` and notifies every process; a job of a
/// chat thread is an event of that thread too.
pub async fn record_event(
    conn: &mut AsyncPgConnection,
    job: &JobRow,
    payload: serde_json::Value,
) -> QueryResult<()> {
    let seq: i64 = diesel::insert_into(job_events::table)
        .values((
            job_events::job_id.eq(job.id),
            job_events::user_id.eq(job.user_id),
            job_events::status.eq(job.status),
            job_events::payload.eq(payload),
        ))
        .returning(job_events::id)
        .get_result(conn)
        .await?;
    let event = Event::Job {
        job_id: job.id,
        user_id: job.user_id,
        status: job.status.as_str().to_string(),
        seq,
    };
    events::notify(conn, &event).await?;
    if let Some(thread) = job.thread_id {
        chat::hooks::job_changed(conn, thread, job.id, job.status.as_str()).await?;
    }
    Ok(())
}

/// The sequence number of a job's latest event (what a subscriber has seen once it read the
/// job's current state).
pub async fn latest_seq(conn: &mut AsyncPgConnection, job: Uuid) -> QueryResult<i64> {
    job_events::table
        .filter(job_events::job_id.eq(job))
        .select(diesel::dsl::max(job_events::id))
        .first::<Option<i64>>(conn)
        .await
        .map(|s| s.unwrap_or(0))
}

/// One row of `job_events`: a status a job reached, and its sequence number.
#[derive(Debug, Clone, Queryable)]
pub struct JobEventRow {
    pub seq: i64,
    pub job_id: Uuid,
    pub status: JobStatus,
}

/// Whose events [`events_after`] reads.
#[derive(Debug, Clone, Copy)]
pub enum EventScope {
    Job(Uuid),
    User(Uuid),
}

/// Up to `limit` events of `scope` with a sequence number above `after`, oldest first (what a
/// subscription catches up on after the event listener was down).
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    scope: EventScope,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<JobEventRow>> {
    let query = job_events::table
        .filter(job_events::id.gt(after))
        .select((job_events::id, job_events::job_id, job_events::status))
        .order(job_events::id.asc())
        .limit(limit);
    match scope {
        EventScope::Job(job) => query.filter(job_events::job_id.eq(job)).load(conn).await,
        EventScope::User(user) => query.filter(job_events::user_id.eq(user)).load(conn).await,
    }
}

/// The sequence number of the user's latest job event (0 when there is none).
pub async fn latest_user_seq(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i64> {
    job_events::table
        .filter(job_events::user_id.eq(user))
        .select(diesel::dsl::max(job_events::id))
        .first::<Option<i64>>(conn)
        .await
        .map(|s| s.unwrap_or(0))
}

/// Claims the highest-priority, oldest queued job for `worker`, leasing it until
/// `now + lease`. Skips rows other workers hold, so parallel claims never collide.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    worker: &str,
    lease_secs: f64,
) -> QueryResult<Option<JobRow>> {
    let next: Option<Uuid> = generation_jobs::table
        .filter(generation_jobs::status.eq(JobStatus::Queued))
        .order((
            generation_jobs::priority.desc(),
            generation_jobs::queued_at.asc(),
        ))
        .select(generation_jobs::id)
        .limit(1)
        .for_update()
        .skip_locked()
        .first(conn)
        .await
        .optional()?;
    let Some(id) = next else { return Ok(None) };
    let row = diesel::update(generation_jobs::table.find(id))
        .set((
            generation_jobs::status.eq(JobStatus::Processing),
            generation_jobs::attempts.eq(generation_jobs::attempts + 1),
            generation_jobs::lease_owner.eq(worker),
            generation_jobs::lease_expires_at.eq(lease_until(lease_secs)),
            generation_jobs::started_at.eq(Utc::now()),
        ))
        .returning(JobRow::as_returning())
        .get_result(conn)
        .await?;
    record_event(
        conn,
        &row,
        serde_json::json!({ "attempt": row.attempts, "worker": worker }),
    )
    .await?;
    Ok(Some(row))
}

fn lease_until(secs: f64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

/// Extends `worker`'s lease; `None` when the job is no longer the worker's (its lease ran
/// out and it was re-queued, or it was finished elsewhere). Returns whether a cancel was asked.
pub async fn heartbeat(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
    lease_secs: f64,
) -> QueryResult<Option<bool>> {
    diesel::update(
        generation_jobs::table
            .find(id)
            .filter(generation_jobs::status.eq(JobStatus::Processing))
            .filter(generation_jobs::lease_owner.eq(worker)),
    )
    .set(generation_jobs::lease_expires_at.eq(lease_until(lease_secs)))
    .returning(generation_jobs::cancel_requested_at.is_not_null())
    .get_result(conn)
    .await
    .optional()
}

/// Moves a job from one of `from` to `to` (conditionally: only one caller wins a transition),
/// with the worker check when `worker` is given; records the event. `None` if nothing moved.
#[expect(
    clippy::too_many_arguments,
    reason = "one conditional UPDATE: the from-states, the worker check, the new state and its fields"
)]
pub async fn transition(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    from: &[JobStatus],
    worker: Option<&str>,
    to: JobStatus,
    error: Option<serde_json::Value>,
    processing_ms: Option<i32>,
    payload: serde_json::Value,
) -> QueryResult<Option<JobRow>> {
    let mut q = diesel::update(generation_jobs::table)
        .filter(generation_jobs::id.eq(id))
        .filter(generation_jobs::status.eq_any(from.to_vec()))
        .into_boxed();
    if let Some(w) = worker {
        q = q.filter(generation_jobs::lease_owner.eq(w));
    }
    let terminal = to.is_terminal();
    let row: Option<JobRow> = q
        .set((
            generation_jobs::status.eq(to),
            generation_jobs::error.eq(error),
            generation_jobs::lease_owner.eq(None::<String>),
            generation_jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
            generation_jobs::completed_at.eq(terminal.then(Utc::now)),
            generation_jobs::processing_ms.eq(processing_ms),
        ))
        .returning(JobRow::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    if let Some(r) = &row {
        record_event(conn, r, payload).await?;
    }
    Ok(row)
}

/// Gives `worker`'s running job back to the queue without spending an attempt (its worker is
/// shutting down: the job never failed); `None` when the job is no longer the worker's.
pub async fn release(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    worker: &str,
) -> QueryResult<Option<JobRow>> {
    let row: Option<JobRow> = diesel::update(
        generation_jobs::table
            .find(id)
            .filter(generation_jobs::status.eq(JobStatus::Processing))
            .filter(generation_jobs::lease_owner.eq(worker)),
    )
    .set((
        generation_jobs::status.eq(JobStatus::Queued),
        generation_jobs::attempts.eq(diesel::dsl::sql::<diesel::sql_types::Integer>(
            "GREATEST(attempts - 1, 0)",
        )),
        generation_jobs::lease_owner.eq(None::<String>),
        generation_jobs::lease_expires_at.eq(None::<DateTime<Utc>>),
        generation_jobs::started_at.eq(None::<DateTime<Utc>>),
    ))
    .returning(JobRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(r) = &row {
        record_event(
            conn,
            r,
            serde_json::json!({ "released_by": worker, "reason": "shutdown" }),
        )
        .await?;
    }
    Ok(row)
}

/// The queued and processing jobs of a user, locked until the transaction ends (in id
/// order, waiting for a worker's transaction that is ending one of them).
pub async fn unfinished_of_user(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Vec<Uuid>> {
    generation_jobs::table
        .filter(generation_jobs::user_id.eq(user))
        .filter(generation_jobs::status.eq_any([JobStatus::Queued, JobStatus::Processing]))
        .order(generation_jobs::id.asc())
        .select(generation_jobs::id)
        .for_update()
        .load(conn)
        .await
}

/// Asks a processing job to stop (its worker sees it at the next heartbeat).
pub async fn request_cancel(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<bool> {
    let n = diesel::update(
        generation_jobs::table
            .find(id)
            .filter(generation_jobs::status.eq(JobStatus::Processing)),
    )
    .set(generation_jobs::cancel_requested_at.eq(Utc::now()))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// Puts a finished job back in the queue with a new charge (retry).
pub async fn requeue_with_charge(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    charge: Uuid,
    deadline: DateTime<Utc>,
) -> QueryResult<Option<JobRow>> {
    let row: Option<JobRow> = diesel::update(generation_jobs::table.find(id).filter(
        generation_jobs::status.eq_any([
            JobStatus::Failed,
            JobStatus::TimedOut,
            JobStatus::Cancelled,
        ]),
    ))
    .set((
        generation_jobs::status.eq(JobStatus::Queued),
        generation_jobs::attempts.eq(0),
        generation_jobs::error.eq(None::<serde_json::Value>),
        generation_jobs::charge_transaction_id.eq(charge),
        generation_jobs::cancel_requested_at.eq(None::<DateTime<Utc>>),
        generation_jobs::queued_at.eq(Utc::now()),
        generation_jobs::deadline_at.eq(deadline),
        generation_jobs::started_at.eq(None::<DateTime<Utc>>),
        generation_jobs::completed_at.eq(None::<DateTime<Utc>>),
        generation_jobs::processing_ms.eq(None::<i32>),
    ))
    .returning(JobRow::as_returning())
    .get_result(conn)
    .await
    .optional()?;
    if let Some(r) = &row {
        record_event(conn, r, serde_json::json!({ "retry": true })).await?;
    }
    Ok(row)
}

/// Processing jobs whose lease ran out (their worker died), and unfinished jobs past their
/// deadline; locked for the reaper, skipping rows a worker is finishing right now.
pub async fn stale(conn: &mut AsyncPgConnection, limit: i64) -> QueryResult<Vec<JobRow>> {
    let now = Utc::now();
    generation_jobs::table
        .filter(
            generation_jobs::status
                .eq(JobStatus::Processing)
                .and(generation_jobs::lease_expires_at.lt(now))
                .or(generation_jobs::status
                    .eq_any([JobStatus::Queued, JobStatus::Processing])
                    .and(generation_jobs::deadline_at.lt(now))),
        )
        .select(JobRow::as_select())
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)
        .await
}

pub async fn set_charge(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    charge: Uuid,
) -> QueryResult<JobRow> {
    diesel::update(generation_jobs::table.find(id))
        .set(generation_jobs::charge_transaction_id.eq(charge))
        .returning(JobRow::as_returning())
        .get_result(conn)
        .await
}

/// What `/metrics` shows of the queue: jobs per status, and the age of the oldest queued job.
pub struct QueueStats {
    pub counts: Vec<(JobStatus, i64)>,
    pub oldest_queued_age_seconds: f64,
}

/// [`QueueStats`], in one statement.
pub async fn queue_stats(conn: &mut AsyncPgConnection) -> QueryResult<QueueStats> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        status: Option<String>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
        #[diesel(sql_type = diesel::sql_types::Double)]
        oldest: f64,
    }
    // One row per status, plus the total row (status NULL) carrying the oldest age.
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT status, count(*) AS n, \
         coalesce(extract(epoch FROM now() - min(queued_at) FILTER (WHERE status = 'queued')), 0)::float8 AS oldest \
         FROM generation_jobs GROUP BY ROLLUP (status)",
    )
    .load(conn)
    .await?;
    let oldest = rows
        .iter()
        .find(|r| r.status.is_none())
        .map_or(0.0, |r| r.oldest.max(0.0));
    Ok(QueueStats {
        counts: rows
            .into_iter()
            .filter_map(|r| Some((JobStatus::from_db(r.status.as_deref()?)?, r.n)))
            .collect(),
        oldest_queued_age_seconds: oldest,
    })
}
