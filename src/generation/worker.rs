//! Workers and the reaper. A worker claims a job with a lease, keeps the lease alive with
//! heartbeats while the provider renders, and writes the result only while the lease is still
//! its own; every step may run twice after a crash without harm. The reaper re-queues jobs
//! whose worker vanished, and times out jobs past their deadline.
//!
//! Shutdown ([`Workers::shutdown`]): workers stop claiming, running jobs may finish within
//! the grace period, and the ones still running then are released back to the queue at once
//! (their attempt not spent), rather than waiting for their lease to run out.

use std::{sync::Arc, time::Duration, time::Instant};

use bytes::Bytes;
use diesel_async::AsyncConnection;
use serde_json::json;
use tokio::{sync::watch, task::JoinHandle};
use uuid::Uuid;

use super::{
    JobStatus,
    model::{self, JobRow},
    providers::{ImageProvider, Produced, ProviderError, RenderRequest, Rendered},
    service::settle_refund,
};
use crate::{
    AppState, chat, db,
    error::AppError,
    events::Event,
    gallery::{self, service::JobImage},
};

/// How a job run ended, for logs and tests.
#[derive(Debug, PartialEq, Eq)]
pub enum Ran {
    Succeeded,
    Failed,
    Requeued,
    Cancelled,
    /// The lease was lost (the job was re-queued while this worker was slow); result dropped.
    LostLease,
    /// The worker shut down: the job went back to the queue, its attempt not spent.
    Released,
}

impl Ran {
    /// The `outcome` label of `easel_worker_jobs_total`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ran::Succeeded => "succeeded",
            Ran::Failed => "failed",
            Ran::Requeued => "requeued",
            Ran::Cancelled => "cancelled",
            Ran::LostLease => "lost_lease",
            Ran::Released => "released",
        }
    }
}

/// What workers are told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Run,
    /// Claim nothing more; finish the running job.
    Drain,
    /// Give the running job back to the queue now.
    Release,
}

/// Running workers.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    phase: watch::Sender<Phase>,
    /// Each worker holds a receiver until it ends.
    done: watch::Sender<()>,
}

impl Workers {
    /// Stops the workers at once (their jobs are re-queued when their leases run out).
    pub fn abort(&self) {
        for h in &self.handles {
            h.abort();
        }
    }

    /// Stops the workers gracefully: no new job is claimed, running jobs may finish within
    /// `grace`, and those still running after it go back to the queue without spending an
    /// attempt. Resolves once every worker has ended.
    pub async fn shutdown(self, grace: Duration) {
        self.phase.send_replace(Phase::Drain);
        if tokio::time::timeout(grace, self.done.closed())
            .await
            .is_ok()
        {
            return;
        }
        tracing::warn!("jobs still running after {grace:?}; releasing them to the queue");
        self.phase.send_replace(Phase::Release);
        // Releasing is one short transaction; a worker stuck on the database is left to the
        // reaper.
        if tokio::time::timeout(Duration::from_secs(10), self.done.closed())
            .await
            .is_err()
        {
            tracing::warn!("workers did not stop; aborting them");
            self.abort();
        }
    }
}

/// Starts `n` workers named `<prefix>-<i>`; they run until aborted or shut down.
pub fn spawn_workers(
    state: &AppState,
    provider: Arc<dyn ImageProvider>,
    n: usize,
    prefix: &str,
) -> Workers {
    let (phase, phase_rx) = watch::channel(Phase::Run);
    let (done, done_rx) = watch::channel(());
    let handles = (0..n)
        .map(|i| {
            let state = state.clone();
            let provider = provider.clone();
            let name = format!("{prefix}-{i}-{}", Uuid::now_v7().simple());
            let phase = phase_rx.clone();
            let done = done_rx.clone();
            tokio::spawn(async move {
                work(state, provider, name, phase).await;
                drop(done);
            })
        })
        .collect();
    Workers {
        handles,
        phase,
        done,
    }
}

async fn work(
    state: AppState,
    provider: Arc<dyn ImageProvider>,
    name: String,
    mut phase: watch::Receiver<Phase>,
) {
    let mut events = state.events.subscribe();
    loop {
        if *phase.borrow() != Phase::Run {
            return;
        }
        match run_next_in(&state, provider.clone(), &name, &mut phase).await {
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(worker = %name, error = %e.log_line(), "worker round failed");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        // Sleep until a job is queued anywhere (or a second passes: a safety net).
        let wait = async {
            loop {
                match events.recv().await {
                    Ok(Event::Job { status, .. }) if status == "queued" => return,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        let stopping = reached(&mut phase, |p| p != Phase::Run);
        tokio::select! {
            _ = tokio::time::timeout(std::time::Duration::from_secs(1), wait) => {}
            _ = stopping => return,
        }
    }
}

/// Resolves once `phase` satisfies `f`; never when the [`Workers`] were dropped (workers whose
/// handle is gone run on, as detached tasks do).
async fn reached(phase: &mut watch::Receiver<Phase>, f: impl Fn(Phase) -> bool) {
    if phase.wait_for(|p| f(*p)).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Claims and runs one job; `None` when the queue is empty.
pub async fn run_next(
    state: &AppState,
    provider: Arc<dyn ImageProvider>,
    worker: &str,
) -> Result<Option<Ran>, AppError> {
    let (_running, mut phase) = watch::channel(Phase::Run);
    run_next_in(state, provider, worker, &mut phase).await
}

/// [`run_next`], releasing the job when `phase` says so.
async fn run_next_in(
    state: &AppState,
    provider: Arc<dyn ImageProvider>,
    worker: &str,
    phase: &mut watch::Receiver<Phase>,
) -> Result<Option<Ran>, AppError> {
    let lease = state.config.job_lease.as_secs_f64();
    let job = {
        let mut conn = db::conn(&state.pool).await?;
        conn.transaction(async |conn| model::claim(conn, worker, lease).await)
            .await?
    };
    let Some(job) = job else { return Ok(None) };
    tracing::info!(worker, job = %job.id, attempt = job.attempts, "processing job");
    let started = Instant::now();
    // Render in a task of its own: a panic in a provider becomes a retryable failure.
    let render = {
        let state = state.clone();
        let job = job.clone();
        tokio::spawn(async move { render(&state, provider.as_ref(), &job).await })
    };
    let outcome = watch(state, &job, worker, render, phase).await;
    let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let ran = match outcome {
        Watched::Done(Ok(produced)) => {
            // Which provider and model made the images (a fallback may have moved on).
            let mut conn = db::conn(&state.pool).await?;
            model::record_producer(
                &mut conn,
                job.id,
                worker,
                &produced.provider,
                produced.model.as_deref(),
            )
            .await?;
            drop(conn);
            finish_success(state, &job, worker, produced.images, ms).await?
        }
        Watched::Done(Err(ProviderError::Permanent(e))) => {
            finish_failure(state, &job, worker, &e, false, ms).await?
        }
        Watched::Done(Err(ProviderError::Retryable(e))) => {
            finish_failure(state, &job, worker, &e, true, ms).await?
        }
        Watched::Cancelled => finish_cancelled(state, &job, worker, ms).await?,
        Watched::LostLease => Ran::LostLease,
        Watched::Released => release(state, &job, worker).await?,
    };
    tracing::info!(worker, job = %job.id, outcome = ?ran, ms, "job ended");
    state
        .metrics
        .count("easel_worker_jobs_total", &[("outcome", ran.as_str())], 1);
    if matches!(ran, Ran::Failed | Ran::Cancelled) {
        state.metrics.credits_refunded(refunded(&job));
    }
    Ok(Some(ran))
}

enum Watched {
    Done(Result<Produced, ProviderError>),
    Cancelled,
    LostLease,
    Released,
}

/// Heartbeats while the render runs; stops it on cancel, a lost lease or a release.
async fn watch(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    mut render: JoinHandle<Result<Produced, ProviderError>>,
    phase: &mut watch::Receiver<Phase>,
) -> Watched {
    let lease = state.config.job_lease;
    let beat = (lease / 3).max(std::time::Duration::from_millis(50));
    loop {
        let release = reached(phase, |p| p == Phase::Release);
        tokio::select! {
            _ = release => {
                render.abort();
                return Watched::Released;
            }
            done = &mut render => {
                return Watched::Done(done.unwrap_or_else(|e| Err(ProviderError::Retryable(format!("render crashed: {e}")))));
            }
            _ = tokio::time::sleep(beat) => {
                let Ok(mut conn) = db::conn(&state.pool).await else { continue };
                match model::heartbeat(&mut conn, job.id, worker, lease.as_secs_f64()).await {
                    Ok(Some(false)) => {}
                    Ok(Some(true)) => { render.abort(); return Watched::Cancelled; }
                    Ok(None) => { render.abort(); return Watched::LostLease; }
                    Err(e) => tracing::warn!(job = %job.id, error = %e, "heartbeat failed"),
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    provider: &dyn ImageProvider,
    job: &JobRow,
) -> Result<Produced, ProviderError> {
    let mut inputs = Vec::new();
    let limits = gallery::upload::DecodeLimits::from_config(&state.config);
    if !job.input_image_ids.is_empty() {
        let mut conn = db::conn(&state.pool)
            .await
            .map_err(|_| ProviderError::Retryable("database busy".into()))?;
        let owned: Vec<(Uuid, String)> =
            gallery::service::images_of_owner(&mut conn, job.user_id, &job.input_image_ids)
                .await
                .map_err(|e| ProviderError::Retryable(e.message()))?
                .into_iter()
                .map(|i| (i.id, i.storage_key))
                .collect();
        for id in &job.input_image_ids {
            let key = owned
                .iter()
                .find(|(i, _)| i == id)
                .map(|(_, k)| k.clone())
                .ok_or_else(|| ProviderError::Permanent("an input image was deleted".into()))?;
            let bytes = state
                .media
                .get(&key)
                .await
                .map_err(|e| ProviderError::Retryable(e.to_string()))?;
            let bytes = bytes
                .ok_or_else(|| ProviderError::Permanent("an input image file is missing".into()))?
                .to_vec();
            // Providers decode inputs: what the upload limits refuse never reaches one
            // (checked from the header, before any pixel is decoded).
            gallery::upload::probe(&bytes, &limits).map_err(|r| {
                ProviderError::Permanent(format!("an input image: {}", r.message()))
            })?;
            inputs.push(bytes);
        }
    }
    let p = &job.params;
    let text = |key: &str| p[key].as_str().map(String::from);
    let req = RenderRequest {
        kind: job.kind,
        prompt: job.prompt.clone().unwrap_or_default(),
        negative_prompt: job.negative_prompt.clone().unwrap_or_default(),
        width: p["width"].as_u64().unwrap_or(512) as u32,
        height: p["height"].as_u64().unwrap_or(512) as u32,
        seed: p["seed"].as_u64().unwrap_or(0),
        count: job.output_count.max(1) as u32,
        inputs,
        mask: None,
        // A provider and model the request chose; otherwise the kind's fallback order.
        provider: text("provider"),
        model: text("model"),
        style_type: text("styleType"),
        quality: text("quality"),
        steps: p["steps"].as_u64().map(|s| s as u32),
        cfg_scale: p["cfgScale"].as_f64(),
        sampler: text("sampler"),
    };
    provider.produce(&req).await
}

/// Stores the outputs (original + thumbnail), then records them and the success, if the lease
/// is still ours. Objects stored for a result that is not recorded (the lease was lost, or
/// storing or recording failed) are deleted again, so no file outlives its job's failure.
async fn finish_success(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    images: Vec<Rendered>,
    ms: i32,
) -> Result<Ran, AppError> {
    let mut keys = Vec::new();
    match store_and_record(state, job, worker, images, ms, &mut keys).await {
        Ok(true) => Ok(Ran::Succeeded),
        Ok(false) => {
            forget(state, job, &keys, "the lease was lost").await;
            Ok(Ran::LostLease)
        }
        Err(e) => {
            forget(state, job, &keys, "recording the outputs failed").await;
            Err(e)
        }
    }
}

/// Deletes objects stored for a result that was not recorded (best effort, logged).
async fn forget(state: &AppState, job: &JobRow, keys: &[String], why: &str) {
    if keys.is_empty() {
        return;
    }
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    match state.media.delete(&keys).await {
        Ok(()) => {
            tracing::info!(job = %job.id, objects = keys.len(), why, "deleted the stored outputs")
        }
        Err(e) => {
            tracing::error!(job = %job.id, keys = ?keys, error = %e, why, "deleting the stored outputs")
        }
    }
}

/// Stores the outputs, naming every key it writes in `keys`; then records them. Whether the
/// lease was still ours.
async fn store_and_record(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    images: Vec<Rendered>,
    ms: i32,
    keys: &mut Vec<String>,
) -> Result<bool, AppError> {
    let mut stored = Vec::new();
    for img in images {
        let id = Uuid::now_v7();
        let key = format!("results/{}/{id}.png", job.id);
        // Decoding, resizing and encoding are CPU work: off the async threads, with the same
        // thumbnail maker (and decode limits) as uploads.
        let limits = gallery::upload::DecodeLimits {
            max_bytes: usize::MAX,
            ..gallery::upload::DecodeLimits::from_config(&state.config)
        };
        let side = state.config.thumbnail_side;
        let (img, made) = tokio::task::spawn_blocking(move || {
            let made = gallery::upload::thumbnail_of(&img.png, &limits, side);
            (img, made)
        })
        .await
        .map_err(AppError::internal)?;
        let (thumb, ext) = made.map_err(|r| {
            AppError::internal(anyhow::anyhow!("thumbnail of an output: {}", r.message()))
        })?;
        let thumb_key = format!("results/{}/{id}_thumb.{ext}", job.id);
        let size = img.png.len() as i64;
        keys.push(key.clone());
        state
            .media
            .put(&key, Bytes::from(img.png))
            .await
            .map_err(AppError::internal)?;
        keys.push(thumb_key.clone());
        state
            .media
            .put(&thumb_key, Bytes::from(thumb))
            .await
            .map_err(AppError::internal)?;
        stored.push((
            id,
            key,
            thumb_key,
            size,
            img.width as i32,
            img.height as i32,
        ));
    }
    let mut conn = db::conn(&state.pool).await?;
    let done = conn
        .transaction(async |conn| {
            let Some(done) = model::transition(
                conn,
                job.id,
                &[JobStatus::Processing],
                Some(worker),
                JobStatus::Succeeded,
                None,
                Some(ms),
                json!({ "outputs": stored.len() }),
            )
            .await?
            else {
                return Ok::<_, AppError>(None);
            };
            for (id, key, thumb, size, w, h) in &stored {
                gallery::service::record_job_image(
                    conn,
                    &JobImage {
                        id: *id,
                        job_id: job.id,
                        owner_id: job.user_id,
                        storage_key: key,
                        thumbnail_key: thumb,
                        mime_type: "image/png",
                        byte_size: *size,
                        width: *w,
                        height: *h,
                    },
                )
                .await?;
            }
            if let Some(c) = job.character_id {
                let ids: Vec<Uuid> = stored.iter().map(|s| s.0).collect();
                gallery::service::attach_to_character(conn, c, &ids).await?;
            }
            if let Some(thread) = done.thread_id {
                let ids: Vec<Uuid> = stored.iter().map(|s| s.0).collect();
                chat::hooks::job_succeeded(conn, thread, job.id, &ids).await?;
            }
            Ok(Some(done))
        })
        .await?;
    Ok(done.is_some())
}

/// Gives the job back to the queue, its attempt not spent (the worker is shutting down).
async fn release(state: &AppState, job: &JobRow, worker: &str) -> Result<Ran, AppError> {
    let mut conn = db::conn(&state.pool).await?;
    let released = conn
        .transaction(async |conn| model::release(conn, job.id, worker).await)
        .await?;
    if released.is_some() {
        tracing::info!(worker, job = %job.id, "shutting down: job released to the queue");
        Ok(Ran::Released)
    } else {
        Ok(Ran::LostLease)
    }
}

async fn finish_failure(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    error: &str,
    retryable: bool,
    ms: i32,
) -> Result<Ran, AppError> {
    let again = retryable && job.attempts < job.max_attempts;
    let err = json!({ "code": if retryable { "PROVIDER_UNAVAILABLE" } else { "PROVIDER_ERROR" }, "message": error });
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        if again {
            let moved = model::transition(
                conn,
                job.id,
                &[JobStatus::Processing],
                Some(worker),
                JobStatus::Queued,
                Some(err.clone()),
                None,
                json!({ "retry_after_error": error }),
            )
            .await?;
            return Ok(if moved.is_some() {
                Ran::Requeued
            } else {
                Ran::LostLease
            });
        }
        match model::transition(
            conn,
            job.id,
            &[JobStatus::Processing],
            Some(worker),
            JobStatus::Failed,
            Some(err.clone()),
            Some(ms),
            json!({}),
        )
        .await?
        {
            Some(failed) => {
                settle_refund(conn, &failed, "Refund: generation failed").await?;
                Ok::<_, AppError>(Ran::Failed)
            }
            None => Ok(Ran::LostLease),
        }
    })
    .await
}

async fn finish_cancelled(
    state: &AppState,
    job: &JobRow,
    worker: &str,
    ms: i32,
) -> Result<Ran, AppError> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        match model::transition(
            conn,
            job.id,
            &[JobStatus::Processing],
            Some(worker),
            JobStatus::Cancelled,
            None,
            Some(ms),
            json!({ "by": "owner" }),
        )
        .await?
        {
            Some(cancelled) => {
                settle_refund(conn, &cancelled, "Refund: job cancelled").await?;
                Ok::<_, AppError>(Ran::Cancelled)
            }
            None => Ok(Ran::LostLease),
        }
    })
    .await
}

/// One reaper pass: re-queues jobs whose lease ran out (until `max_attempts`, then fails and
/// refunds them) and times out jobs past their deadline (refunded). Returns how many moved.
pub async fn reap(state: &AppState) -> Result<usize, AppError> {
    let mut conn = db::conn(&state.pool).await?;
    // (outcome, credits refunded) of each job moved, counted once the pass commits.
    let mut moved_jobs: Vec<(&'static str, i64)> = Vec::new();
    let moved = conn.transaction(async |conn| {
        moved_jobs.clear();
        let stale = model::stale(conn, 100).await?;
        let now = chrono::Utc::now();
        let mut moved = 0;
        for job in stale {
            let from = [JobStatus::Queued, JobStatus::Processing];
            if job.deadline_at.is_some_and(|d| d < now) {
                let err = json!({ "code": "TIMED_OUT", "message": "the job did not finish before its deadline" });
                if let Some(j) = model::transition(conn, job.id, &from, None, JobStatus::TimedOut, Some(err), None, json!({})).await? {
                    settle_refund(conn, &j, "Refund: generation timed out").await?;
                    moved_jobs.push(("timed_out", refunded(&j)));
                    moved += 1;
                }
            } else if job.attempts >= job.max_attempts {
                let err = json!({ "code": "WORKER_LOST", "message": format!("the worker stopped answering {} times", job.attempts) });
                if let Some(j) = model::transition(conn, job.id, &[JobStatus::Processing], None, JobStatus::Failed, Some(err), None, json!({})).await? {
                    settle_refund(conn, &j, "Refund: generation failed").await?;
                    moved_jobs.push(("failed", refunded(&j)));
                    moved += 1;
                }
            } else if model::transition(conn, job.id, &[JobStatus::Processing], None, JobStatus::Queued, None, None, json!({ "reaped_from": job.lease_owner })).await?.is_some() {
                tracing::warn!(job = %job.id, worker = ?job.lease_owner, "lease expired; job re-queued");
                moved_jobs.push(("requeued", 0));
                moved += 1;
            }
        }
        Ok::<_, AppError>(moved)
    })
    .await?;
    for (outcome, credits) in moved_jobs {
        state
            .metrics
            .count("easel_reaper_jobs_total", &[("outcome", outcome)], 1);
        state.metrics.credits_refunded(credits);
    }
    Ok(moved)
}

/// The credits a refund of `job`'s charge gives back (its cost, allowance included).
fn refunded(job: &JobRow) -> i64 {
    if job.charge_transaction_id.is_some() {
        job.cost_credits
    } else {
        0
    }
}

/// Runs the reaper until aborted.
pub fn spawn_reaper(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let every = (state.config.job_lease / 2).clamp(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(5),
        );
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = reap(&state).await {
                tracing::warn!(error = %e.log_line(), "reaper pass failed");
            }
        }
    })
}
