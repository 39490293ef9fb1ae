//! The rules of data rights: `deleteAccount` in one transaction, and the retention sweeper.

use std::collections::BTreeMap;

use diesel_async::AsyncConnection;
use serde_json::json;
use tokio::task::JoinHandle;

use super::model::{
    self, DELIVERED_OUTBOX, FINISHED_JOBS, OLD_JOB_EVENTS, OLD_OTPS, OLD_SESSIONS, Purge,
};
use crate::{
    AppState,
    accounts::{service as accounts, viewer::ViewerUser},
    audit::{self, AuditEntry},
    db,
    error::{AppError, AppResult},
    gallery, generation,
};

/// Deletes the viewer's account (see the module documentation of [`crate::rights`]): checks
/// the confirmation (`DELETE`, and the password of an account that has one), then in one
/// transaction cancels their jobs, removes their content, anonymises what must stay and
/// leaves a tombstone. Their tokens stop working at once on every process; their files are
/// deleted once the transaction committed. A bad confirmation changes nothing.
pub async fn delete_account(
    state: &AppState,
    viewer: &ViewerUser,
    confirm: &str,
    password: Option<&str>,
) -> AppResult<bool> {
    let user = viewer.id;
    let mut conn = db::conn(&state.pool).await?;
    let (families, (objects, exports), refunded) = conn
        .transaction(async |conn| {
            accounts::confirm_deletion_in(conn, user, confirm, password).await?;
            let refunded = generation::service::cancel_all_in(conn, user).await?;
            let objects = gallery::service::delete_owner_content_in(conn, user).await?;
            model::forget_user_rows(conn, user).await?;
            let exports = super::export::delete_user_exports_in(conn, user).await?;
            let (families, destinations) = accounts::erase_in(conn, user).await?;
            model::forget_messages_to(conn, &destinations).await?;
            audit::record(
                conn,
                AuditEntry {
                    actor_id: Some(user),
                    actor_type: "user",
                    action: "account.deleted",
                    resource: Some("user"),
                    resource_id: Some(user.to_string()),
                    ip: None,
                    metadata: json!({ "files": objects.len(), "refunded_credits": refunded }),
                },
            )
            .await?;
            Ok::<_, AppError>((families, (objects, exports), refunded))
        })
        .await?;
    state.revocations.revoke(&families);
    state.metrics.credits_refunded(refunded);
    state.metrics.count("easel_accounts_deleted_total", &[], 1);
    gallery::service::delete_objects(state, &objects).await;
    let exports: Vec<&str> = exports.iter().map(String::as_str).collect();
    if let Err(e) = state.media.delete(&exports).await {
        tracing::warn!(error = %e, "deleting a deleted account's data exports");
    }
    tracing::info!(user = %user, files = objects.len(), "account deleted");
    Ok(true)
}

/// Most batches one kind of row gets in one pass (the rest waits for the next pass).
const MAX_BATCHES: usize = 100;

/// One pass of the retention sweeper: each kind of finished row older than its configured
/// age, in batches of `EASEL_RETENTION_BATCH`. Returns how many rows of each kind went
/// (also counted in `easel_retention_purged_total{kind}` and logged). Ledger, payment and
/// subscription rows are never deleted.
pub async fn sweep(state: &AppState) -> AppResult<BTreeMap<&'static str, usize>> {
    let r = &state.config.retention;
    let mut purged = BTreeMap::new();
    purged.insert("generation_jobs", 0);
    purged.insert("images", 0);
    for _ in 0..MAX_BATCHES {
        let (jobs, images) = purge_jobs(state, r.job_days, r.batch).await?;
        *purged.entry("generation_jobs").or_default() += jobs;
        *purged.entry("images").or_default() += images;
        if (jobs as i64) < r.batch {
            break;
        }
    }
    for (purge, days) in [
        (OLD_JOB_EVENTS, r.job_days),
        (DELIVERED_OUTBOX, r.outbox_days),
        (OLD_OTPS, r.otp_days),
        (OLD_SESSIONS, r.session_days),
    ] {
        purged.insert(purge.kind, run(state, purge, days, r.batch).await?);
    }
    let mut exports = 0;
    for _ in 0..MAX_BATCHES {
        let n = super::export::purge_expired(state, r.batch).await?;
        exports += n;
        if (n as i64) < r.batch {
            break;
        }
    }
    purged.insert("data_exports", exports);
    for (kind, n) in &purged {
        if *n > 0 {
            state
                .metrics
                .count("easel_retention_purged_total", &[("kind", kind)], *n as u64);
        }
    }
    if purged.values().any(|n| *n > 0) {
        tracing::info!(?purged, "retention sweep");
    }
    Ok(purged)
}

/// Runs one purge in batches until one comes back short.
async fn run(state: &AppState, purge: Purge, days: i64, batch: i64) -> AppResult<usize> {
    let mut conn = db::conn(&state.pool).await?;
    let mut total = 0;
    for _ in 0..MAX_BATCHES {
        let n = purge.run(&mut conn, days, batch).await?;
        total += n;
        if (n as i64) < batch {
            break;
        }
    }
    Ok(total)
}

/// One batch of finished jobs: their outputs shown nowhere are deleted (files after the
/// commit), then the jobs with their events. Returns (jobs, images) deleted.
async fn purge_jobs(state: &AppState, days: i64, batch: i64) -> AppResult<(usize, usize)> {
    let mut conn = db::conn(&state.pool).await?;
    let (jobs, objects) = conn
        .transaction(async |conn| {
            let outputs = model::purgeable_outputs(conn, days, batch).await?;
            let objects = gallery::service::delete_images_in(conn, &outputs).await?;
            let jobs = FINISHED_JOBS.run(conn, days, batch).await?;
            Ok::<_, AppError>((jobs, objects))
        })
        .await?;
    gallery::service::delete_objects(state, &objects).await;
    Ok((jobs, objects.len()))
}

/// The sweeper of a serving process: a pass every `EASEL_RETENTION_INTERVAL_SECS`, the
/// first one interval after start. Several processes may sweep at once: each statement
/// deletes what is still there.
pub fn spawn_sweeper(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let period = state.config.retention.interval;
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if let Err(e) = sweep(&state).await {
                tracing::warn!(error = %e.log_line(), "retention sweep");
            }
        }
    })
}
