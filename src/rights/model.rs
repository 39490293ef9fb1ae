//! The statements of data rights: the rows of a deleted account that are not the gallery's
//! or the accounts' own, and the retention sweeper's batched purges.

use diesel::{
    QueryResult,
    sql_types::{Array, BigInt, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Deletes or anonymises the rows of a user being deleted that neither the gallery nor the
/// accounts capability removes (call inside the deleting transaction, after their jobs were
/// cancelled): chat threads (with their messages and events), generation jobs (with their
/// events; ledger rows naming a job keep their amounts, the link becomes null), feedback;
/// invite links they made are revoked and lose their note; gift texts on both sides of
/// their gifts become `Gift` (a note may name them); a live subscription is marked cancelled
/// (the gateway is not called: see the README); their audit entries lose the address; open reports they filed are deleted and
/// resolved ones lose their details.
pub async fn forget_user_rows(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<()> {
    for sql in [
        "DELETE FROM chat_threads WHERE user_id = $1",
        "DELETE FROM generation_jobs WHERE user_id = $1",
        "DELETE FROM feedback WHERE user_id = $1",
        "UPDATE invite_tokens SET note = NULL, revoked_at = coalesce(revoked_at, now()) \
         WHERE referrer_id = $1",
        "UPDATE credit_transactions SET description = 'Gift' \
         WHERE (user_id = $1 OR counterparty_id = $1) \
           AND kind IN ('gift_sent', 'gift_received') AND description <> 'Gift'",
        "UPDATE subscriptions SET status = 'cancelled', cancelled_at = now(), \
                cancel_at_period_end = false, pending_plan_id = NULL \
         WHERE user_id = $1 AND status IN ('trial', 'active', 'past_due')",
        "UPDATE audit_logs SET ip = NULL WHERE actor_id = $1 AND ip IS NOT NULL",
        // Reports they filed: open ones go, resolved ones (moderation records) lose the text.
        "DELETE FROM content_reports WHERE reporter_id = $1 AND status = 'open'",
        "UPDATE content_reports SET details = NULL WHERE reporter_id = $1 AND details IS NOT NULL",
    ] {
        diesel::sql_query(sql)
            .bind::<SqlUuid, _>(user)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes the outbox messages (codes, notices) addressed to these phones or emails.
pub async fn forget_messages_to(
    conn: &mut AsyncPgConnection,
    destinations: &[String],
) -> QueryResult<usize> {
    diesel::sql_query("DELETE FROM outbox_messages WHERE destination = ANY($1)")
        .bind::<Array<Text>, _>(destinations)
        .execute(conn)
        .await
}

// ---- retention ---------------------------------------------------------------------------

/// A bounded purge: at most `$2` rows older than `$1` days, picked by a subquery so each pass
/// deletes one batch.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    /// What the metrics and logs call it.
    pub kind: &'static str,
    /// `DELETE ...` with `$1` = days (bigint) and `$2` = batch size (bigint).
    sql: &'static str,
}

/// The finished jobs past the retention age (`$1` days) none of whose images is still shown
/// somewhere — public, in a character, album or chat message, or a cover or primary image —
/// at most `$2` of them, oldest ids first.
macro_rules! purgeable_jobs {
    () => {
        "SELECT j.id FROM generation_jobs j \
         WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
           AND coalesce(j.completed_at, j.updated_at) < now() - make_interval(days => $1::int) \
           AND NOT EXISTS (SELECT 1 FROM images i WHERE i.job_id = j.id AND ( \
                 i.is_public \
                 OR EXISTS (SELECT 1 FROM character_images ci WHERE ci.image_id = i.id) \
                 OR EXISTS (SELECT 1 FROM album_images ai WHERE ai.image_id = i.id) \
                 OR EXISTS (SELECT 1 FROM characters c WHERE c.primary_image_id = i.id) \
                 OR EXISTS (SELECT 1 FROM collections c WHERE c.cover_image_id = i.id) \
                 OR EXISTS (SELECT 1 FROM albums a WHERE a.cover_image_id = i.id) \
                 OR EXISTS (SELECT 1 FROM chat_messages m WHERE i.id = ANY(m.image_ids)))) \
         ORDER BY j.id LIMIT $2"
    };
}

/// Finished generation jobs past the retention age, with their events (cascade), unless an
/// image of theirs is still shown somewhere (their other outputs are deleted first: see
/// [`purgeable_outputs`]). Ledger rows naming a purged job keep their amounts and text; their
/// `job_id` becomes null (the foreign key's `SET NULL`, chosen for this purge).
pub const FINISHED_JOBS: Purge = Purge {
    kind: "generation_jobs",
    sql: concat!(
        "DELETE FROM generation_jobs WHERE id IN (",
        purgeable_jobs!(),
        ")"
    ),
};

/// Events of finished jobs kept because an output is still shown: their progress history
/// is not needed after the retention age.
pub const OLD_JOB_EVENTS: Purge = Purge {
    kind: "job_events",
    sql: "DELETE FROM job_events WHERE id IN ( \
            SELECT e.id FROM job_events e JOIN generation_jobs j ON j.id = e.job_id \
            WHERE j.status IN ('succeeded', 'failed', 'cancelled', 'timed_out') \
              AND e.created_at < now() - make_interval(days => $1::int) \
            ORDER BY e.id LIMIT $2)",
};

/// Outbox messages delivered (or given up on) longer ago than the retention age.
pub const DELIVERED_OUTBOX: Purge = Purge {
    kind: "outbox_messages",
    sql: "DELETE FROM outbox_messages WHERE id IN ( \
            SELECT id FROM outbox_messages WHERE status IN ('sent', 'failed') \
              AND updated_at < now() - make_interval(days => $1::int) \
            ORDER BY id LIMIT $2)",
};

/// One-time codes expired or consumed longer ago than the retention age.
pub const OLD_OTPS: Purge = Purge {
    kind: "otp_codes",
    sql: "DELETE FROM otp_codes WHERE id IN ( \
            SELECT id FROM otp_codes \
            WHERE least(expires_at, coalesce(consumed_at, expires_at)) \
                  < now() - make_interval(days => $1::int) \
            ORDER BY id LIMIT $2)",
};

/// Sessions expired or revoked longer ago than the retention age (a revoked session is
/// kept at least that long: processes reload recent revocations from it).
pub const OLD_SESSIONS: Purge = Purge {
    kind: "sessions",
    sql: "DELETE FROM sessions WHERE id IN ( \
            SELECT id FROM sessions \
            WHERE least(expires_at, coalesce(revoked_at, expires_at)) \
                  < now() - make_interval(days => $1::int) \
            ORDER BY id LIMIT $2)",
};

impl Purge {
    /// Deletes one batch; returns how many rows went.
    pub async fn run(
        &self,
        conn: &mut AsyncPgConnection,
        days: i64,
        batch: i64,
    ) -> QueryResult<usize> {
        diesel::sql_query(self.sql)
            .bind::<BigInt, _>(days)
            .bind::<BigInt, _>(batch)
            .execute(conn)
            .await
    }
}

#[derive(diesel::QueryableByName)]
struct Output {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The outputs of the jobs [`FINISHED_JOBS`] purges next (the same rule and batch).
const JOB_OUTPUTS: &str = concat!(
    "SELECT i.id FROM images i WHERE i.job_id IN (",
    purgeable_jobs!(),
    ")"
);

/// The ids of the images [`JOB_OUTPUTS`] selects.
pub async fn purgeable_outputs(
    conn: &mut AsyncPgConnection,
    days: i64,
    batch: i64,
) -> QueryResult<Vec<Uuid>> {
    let rows: Vec<Output> = diesel::sql_query(JOB_OUTPUTS)
        .bind::<BigInt, _>(days)
        .bind::<BigInt, _>(batch)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}
