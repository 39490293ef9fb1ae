//! The rules of generation: validating and pricing `generate`, charging and queueing in one
//! transaction, cancel and retry.

use chrono::Utc;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    GenerationKind, JobStatus,
    model::{self, JobRow, NewJob},
    prompts::{self, LogoBrief},
    providers::model_price_key,
};
use crate::{
    AppState,
    accounts::{self, viewer::ViewerUser},
    chat,
    credits::{self, service::Charge},
    db::{self, Fragment},
    error::{AppError, AppResult},
    gallery, idempotency, payments, ratelimit,
};

/// Validated generation parameters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenerateParams {
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub steps: Option<i32>,
    pub cfg_scale: Option<f64>,
    pub seed: Option<i64>,
    pub sampler: Option<String>,
    pub style_type: Option<String>,
    /// `low`, `medium`, `high` or `auto`. (The fields below are left out of the request's
    /// fingerprint when unset, so fingerprints of requests without them are unchanged.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// The provider the request chose (one of `EASEL_PROVIDERS`); none = the kind's order.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The model the request chose (one of its provider's models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A LOGO brief: the prompt is rendered from a versioned template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<LogoBrief>,
}

/// What `generate` asks for.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub kind: GenerationKind,
    pub prompt: Option<String>,
    pub negative_prompt: Option<String>,
    pub character_id: Option<Uuid>,
    pub input_image_ids: Vec<Uuid>,
    pub output_count: Option<i32>,
    pub params: GenerateParams,
    pub idempotency_key: Option<String>,
}

fn bad(field: &str, message: &str) -> AppError {
    AppError::bad_input(field, message)
}

/// Checks the request per kind; returns the params to store.
pub fn validate(req: &GenerateRequest) -> AppResult<serde_json::Value> {
    let prompt = req.prompt.as_deref().map(str::trim).unwrap_or("");
    let brief = validate_logo(req)?;
    if req.kind.needs_prompt() && prompt.is_empty() && brief.is_none() {
        return Err(bad("input.prompt", "this kind needs a prompt"));
    }
    if prompt.chars().count() > 2000 {
        return Err(bad("input.prompt", "at most 2000 characters"));
    }
    if req
        .negative_prompt
        .as_deref()
        .is_some_and(|n| n.chars().count() > 1000)
    {
        return Err(bad("input.negativePrompt", "at most 1000 characters"));
    }
    let count = req.output_count.unwrap_or(1);
    if !(1..=4).contains(&count) {
        return Err(bad("input.outputCount", "1 to 4 images"));
    }
    if req.kind.needs_input() && req.input_image_ids.is_empty() {
        return Err(bad(
            "input.inputImageIds",
            "this kind works on an input image; upload one first",
        ));
    }
    if req.input_image_ids.len() > 4 {
        return Err(bad("input.inputImageIds", "at most 4 input images"));
    }
    let p = &req.params;
    let width = p.width.unwrap_or(512);
    let height = p.height.unwrap_or(512);
    for (v, f) in [
        (width, "input.params.width"),
        (height, "input.params.height"),
    ] {
        if !(64..=2048).contains(&v) || v % 8 != 0 {
            return Err(bad(f, "a multiple of 8 from 64 to 2048"));
        }
    }
    let steps = p.steps.unwrap_or(30);
    if !(1..=150).contains(&steps) {
        return Err(bad("input.params.steps", "1 to 150"));
    }
    let cfg = p.cfg_scale.unwrap_or(7.0);
    if !(1.0..=30.0).contains(&cfg) {
        return Err(bad("input.params.cfgScale", "1.0 to 30.0"));
    }
    if p.seed.is_some_and(|s| s < 0) {
        return Err(bad("input.params.seed", "must not be negative"));
    }
    if p.sampler
        .as_deref()
        .is_some_and(|s| s.is_empty() || s.len() > 32)
    {
        return Err(bad("input.params.sampler", "1 to 32 characters"));
    }
    if p.style_type
        .as_deref()
        .is_some_and(|s| s.is_empty() || s.len() > 32)
    {
        return Err(bad("input.params.styleType", "1 to 32 characters"));
    }
    if p.quality
        .as_deref()
        .is_some_and(|q| !matches!(q, "low" | "medium" | "high" | "auto"))
    {
        return Err(bad("input.params.quality", "low, medium, high or auto"));
    }
    for (v, f) in [(&p.provider, "input.provider"), (&p.model, "input.model")] {
        if v.as_deref().is_some_and(|s| s.is_empty() || s.len() > 128) {
            return Err(bad(f, "1 to 128 characters"));
        }
    }
    let seed = p
        .seed
        .unwrap_or_else(|| rand::random_range(0..i64::from(i32::MAX)));
    let mut params = json!({ "width": width, "height": height, "steps": steps, "cfgScale": cfg, "seed": seed,
               "sampler": p.sampler, "styleType": p.style_type });
    // What the worker passes on (and a pinned provider and model), only when set.
    for (key, value) in [
        ("quality", &p.quality),
        ("provider", &p.provider),
        ("model", &p.model),
    ] {
        if let Some(v) = value {
            params[key] = json!(v);
        }
    }
    if let Some(b) = brief {
        params["logo"] = json!(b);
    }
    Ok(params)
}

/// Checks a LOGO brief: only for LOGO; app name 1 to 60 characters, focus 1 to 300, 1 to 5
/// hex colours, style up to 60.
fn validate_logo(req: &GenerateRequest) -> AppResult<Option<LogoBrief>> {
    let Some(b) = &req.params.logo else {
        return Ok(None);
    };
    if req.kind != GenerationKind::Logo {
        return Err(bad("input.logo", "a logo brief is for the LOGO kind only"));
    }
    let text = |v: &str, field: &str, max: usize| {
        let v = v.trim();
        if v.is_empty() || v.chars().count() > max {
            return Err(bad(field, &format!("1 to {max} characters")));
        }
        Ok(v.to_string())
    };
    let app_name = text(&b.app_name, "input.logo.appName", 60)?;
    let app_focus = text(&b.app_focus, "input.logo.appFocus", 300)?;
    if b.colors.is_empty() || b.colors.len() > 5 {
        return Err(bad("input.logo.colors", "1 to 5 colours"));
    }
    let mut colors = Vec::new();
    for c in &b.colors {
        let c = c.trim().to_lowercase();
        if !prompts::is_hex_colour(&c) {
            return Err(bad(
                "input.logo.colors",
                "hex colours such as #ff6600 or #f60",
            ));
        }
        colors.push(c);
    }
    let style = b
        .style
        .as_deref()
        .map(|s| text(s, "input.logo.style", 60))
        .transpose()?;
    Ok(Some(LogoBrief {
        app_name,
        app_focus,
        colors,
        style,
    }))
}

/// A prompt as used: trimmed, and `None` when blank.
fn trimmed(text: &Option<String>) -> Option<&str> {
    text.as_deref().map(str::trim).filter(|p| !p.is_empty())
}

/// What a request's idempotency fingerprint covers (the request as asked; a seed left out is
/// chosen at random, not hashed). `generate` hashes `{"generate": <this>}`; a caller that
/// queues a job as part of its own request (a chat message) puts it in its own fingerprint.
pub fn request_json(req: &GenerateRequest) -> serde_json::Value {
    let (prompt, negative) = (trimmed(&req.prompt), trimmed(&req.negative_prompt));
    let mut input_images = req.input_image_ids.clone();
    input_images.sort();
    json!({
        "kind": req.kind.as_str(),
        "prompt": prompt,
        "negativePrompt": negative,
        "characterId": req.character_id,
        "inputImageIds": input_images,
        "outputCount": req.output_count.unwrap_or(1),
        // The request's own parameters (a seed left out is chosen at random, not hashed).
        "params": req.params,
    })
}

/// Prices, charges and queues a job, all in one transaction; an idempotency key replays the
/// first job.
pub async fn generate(
    state: &AppState,
    viewer: &ViewerUser,
    req: GenerateRequest,
) -> AppResult<JobRow> {
    let key = idempotency::validate_key(req.idempotency_key.as_deref())?.map(str::to_string);
    validate(&req)?;
    let hash = idempotency::fingerprint(&json!({ "generate": request_json(&req) }));
    let viewer_id = viewer.id;
    let by_key = async move |conn: &mut AsyncPgConnection, key: &str| {
        model::by_key(conn, viewer_id, key).await
    };
    let mut conn = db::conn(&state.pool).await?;
    if let Some(job) = idempotency::stored(&mut conn, key.as_deref(), &hash, &by_key).await? {
        return Ok(job);
    }
    let origin = JobOrigin {
        idempotency_key: key.as_deref(),
        request_hash: Some(&hash),
        thread_id: None,
    };
    let result = conn
        .transaction(async |conn| generate_in(conn, state, viewer, &req, origin).await)
        .await;
    if let Ok(job) = &result {
        state.metrics.credits_charged(job.cost_credits);
    }
    // When a parallel first use of the key won the race, its job is the answer.
    idempotency::settle(result, &mut conn, key.as_deref(), &hash, &by_key).await
}

/// Where a queued job comes from, beyond its request.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobOrigin<'a> {
    /// The idempotency key the job is stored under (unique per user), if any.
    pub idempotency_key: Option<&'a str>,
    /// The fingerprint of the request that the key replays.
    pub request_hash: Option<&'a str>,
    /// The chat thread whose message asked for the job: the thread hears of the job's
    /// progress, and its end appends the assistant's answer.
    pub thread_id: Option<Uuid>,
}

/// The core of `generate`, on the caller's connection INSIDE the caller's transaction:
/// validates and prices the request, checks the plan, the input images and the character,
/// applies the per-operation limits, inserts the job `queued` and charges it (daily allowance
/// first). Any error leaves the caller's transaction to roll back: no job, no charge. The
/// caller counts `credits_charged` once its transaction commits.
pub async fn generate_in(
    conn: &mut AsyncPgConnection,
    state: &AppState,
    viewer: &ViewerUser,
    req: &GenerateRequest,
    origin: JobOrigin<'_>,
) -> AppResult<JobRow> {
    let params = validate(req)?;
    let count = req.output_count.unwrap_or(1);
    let (prompt, negative) = (trimmed(&req.prompt), trimmed(&req.negative_prompt));
    let user = accounts::service::user_by_id_in(conn, viewer.id)
        .await?
        .ok_or(AppError::Unauthenticated("sign in again"))?;
    // The provider and model the job starts with (a request's own choice is checked against
    // the allow-list here, before anything is charged); a model with a price of its own
    // (`<operation>.<model>`) is charged that price.
    let plan = state
        .providers
        .plan(
            req.kind,
            req.params.provider.as_deref(),
            req.params.model.as_deref(),
        )
        .map_err(|r| bad(r.field, &r.message))?;
    let provider = plan[0].provider.name();
    let model_name = Some(plan[0].model.clone()).filter(|m| !m.is_empty());
    let model_price = match &model_name {
        Some(m) => credits::service::price_in(conn, &model_price_key(req.kind, m)).await?,
        None => None,
    };
    let price = match model_price {
        Some(p) if !p.is_enabled => {
            return Err(bad("input.model", "this model is switched off"));
        }
        Some(p) => p,
        None => credits::service::price_in(conn, req.kind.operation())
            .await?
            .filter(|p| p.is_enabled)
            .ok_or_else(|| bad("input.kind", "this operation is switched off"))?,
    };
    if !credits::service::tier_allows(user.subscription_tier, price.minimum_tier) {
        return Err(AppError::Forbidden(format!(
            "{} needs a higher plan",
            req.kind.as_str()
        )));
    }
    let cost = credits::service::price_for_tier(&price, user.subscription_tier) * i64::from(count);
    if !req.input_image_ids.is_empty()
        && !gallery::service::owns_images(conn, viewer.id, &req.input_image_ids).await?
    {
        return Err(bad(
            "input.inputImageIds",
            "input images must be your own images",
        ));
    }
    if let Some(c) = req.character_id
        && gallery::service::character_owner(conn, c)
            .await?
            .is_none_or(|owner| owner != viewer.id && viewer.role != crate::accounts::Role::Admin)
    {
        return Err(AppError::NotFound("character"));
    }
    // LOGO prompts are rendered from a versioned template (stored with its version).
    let (prompt_text, template) = if req.kind == GenerationKind::Logo {
        let brief = params
            .get("logo")
            .and_then(|b| serde_json::from_value(b.clone()).ok());
        let (text, t) = prompts::logo_prompt(brief.as_ref(), prompt);
        (Some(text), Some(t))
    } else {
        (prompt.map(str::to_string), None)
    };
    let deadline = Utc::now()
        + chrono::Duration::from_std(state.config.job_deadline).map_err(AppError::internal)?;
    let operation = req.kind.operation();
    if let Some(limit) = price.per_minute_limit {
        ratelimit::hit(
            conn,
            &format!("gen:{operation}:{}", viewer.id),
            std::time::Duration::from_secs(60),
            i64::from(limit),
        )
        .await?;
    }
    if let Some(limit) = price.daily_limit {
        ratelimit::hit(
            conn,
            &format!("gen-day:{operation}:{}", viewer.id),
            std::time::Duration::from_secs(86_400),
            i64::from(limit),
        )
        .await?;
    }
    payments::subscriptions::count_generation_in(conn, viewer.id).await?;
    let job = model::insert(
        conn,
        &NewJob {
            id: Uuid::now_v7(),
            user_id: viewer.id,
            character_id: req.character_id,
            thread_id: origin.thread_id,
            kind: req.kind,
            provider,
            model: model_name.as_deref(),
            prompt: prompt_text.as_deref(),
            negative_prompt: negative,
            params,
            input_image_ids: req.input_image_ids.clone(),
            output_count: count,
            priority: 5,
            max_attempts: state.config.job_max_attempts,
            cost_credits: cost,
            charge_transaction_id: None,
            idempotency_key: origin.idempotency_key,
            request_hash: origin.request_hash,
            deadline_at: deadline,
            prompt_template: template.map(|t| t.text),
            prompt_template_version: template.map(|t| t.version),
        },
    )
    .await?;
    let description = format!("Generation: {}", req.kind.as_str());
    let charge = credits::service::charge_in(
        conn,
        &Charge {
            user: viewer.id,
            cost,
            description: &description,
            job_id: Some(job.id),
            idempotency_key: None,
            request_hash: None,
        },
    )
    .await?;
    if let Some(c) = req.character_id {
        gallery::service::set_character_status(conn, c, gallery::CharacterStatus::Processing, None)
            .await?;
    }
    Ok(model::set_charge(conn, job.id, charge.id).await?)
}

impl idempotency::Fingerprinted for JobRow {
    fn fingerprint(&self) -> Option<&str> {
        self.request_hash.as_deref()
    }
}

/// A job the viewer may see (their own, or any for admins); `NOT_FOUND` otherwise.
pub async fn job_for(
    conn: &mut AsyncPgConnection,
    viewer: &ViewerUser,
    id: Uuid,
) -> AppResult<JobRow> {
    model::by_id(conn, id)
        .await?
        .filter(|j| j.user_id == viewer.id || viewer.role == crate::accounts::Role::Admin)
        .ok_or(AppError::NotFound("generation job"))
}

/// Cancels a queued job at once (refunded), or asks a processing one to stop (its worker
/// cancels and refunds it). A finished job is returned as it is.
pub async fn cancel(state: &AppState, viewer: &ViewerUser, id: Uuid) -> AppResult<JobRow> {
    let mut conn = db::conn(&state.pool).await?;
    let job = job_for(&mut conn, viewer, id).await?;
    if job.status.is_terminal() {
        return Ok(job);
    }
    let mut refunded = 0;
    let job = conn
        .transaction(async |conn| {
            let cancelled = model::transition(
                conn,
                id,
                &[JobStatus::Queued],
                None,
                JobStatus::Cancelled,
                None,
                None,
                json!({ "by": "owner" }),
            )
            .await?;
            if let Some(job) = cancelled {
                settle_refund(conn, &job, "Refund: job cancelled").await?;
                if job.charge_transaction_id.is_some() {
                    refunded = job.cost_credits;
                }
                return Ok(job);
            }
            model::request_cancel(conn, id).await?;
            model::by_id(conn, id)
                .await?
                .ok_or(AppError::NotFound("generation job"))
        })
        .await?;
    state.metrics.credits_refunded(refunded);
    Ok(job)
}

/// Cancels every queued or processing job of a user at once, each refunded as a cancel is
/// (for an account being deleted; call in its transaction). A processing job's worker finds
/// its lease gone: it records nothing and deletes the files it stored. Returns the credits
/// refunded.
pub async fn cancel_all_in(conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<i64> {
    let mut refunded = 0;
    for id in model::unfinished_of_user(conn, user).await? {
        let cancelled = model::transition(
            conn,
            id,
            &[JobStatus::Queued, JobStatus::Processing],
            None,
            JobStatus::Cancelled,
            Some(json!({ "message": "the account was deleted" })),
            None,
            json!({ "by": "account_deletion" }),
        )
        .await?;
        if let Some(job) = cancelled {
            settle_refund(conn, &job, "Refund: account deleted").await?;
            if job.charge_transaction_id.is_some() {
                refunded += job.cost_credits;
            }
        }
    }
    Ok(refunded)
}

/// Re-queues a failed, timed-out or cancelled job with a fresh charge.
pub async fn retry(state: &AppState, viewer: &ViewerUser, id: Uuid) -> AppResult<JobRow> {
    let mut conn = db::conn(&state.pool).await?;
    let job = job_for(&mut conn, viewer, id).await?;
    if !matches!(
        job.status,
        JobStatus::Failed | JobStatus::TimedOut | JobStatus::Cancelled
    ) {
        return Err(bad(
            "id",
            "only failed, timed-out or cancelled jobs can be retried",
        ));
    }
    let deadline = Utc::now()
        + chrono::Duration::from_std(state.config.job_deadline).map_err(AppError::internal)?;
    let job = conn
        .transaction(async |conn| {
            payments::subscriptions::count_generation_in(conn, job.user_id).await?;
            let description = format!("Generation (retry): {}", job.kind.as_str());
            let charge = credits::service::charge_in(
                conn,
                &Charge {
                    user: job.user_id,
                    cost: job.cost_credits,
                    description: &description,
                    job_id: Some(job.id),
                    idempotency_key: None,
                    request_hash: None,
                },
            )
            .await?;
            let job = model::requeue_with_charge(conn, id, charge.id, deadline)
                .await?
                .ok_or_else(|| AppError::Conflict("the job changed meanwhile; reload it".into()))?;
            if let Some(c) = job.character_id {
                gallery::service::set_character_status(
                    conn,
                    c,
                    gallery::CharacterStatus::Processing,
                    None,
                )
                .await?;
            }
            Ok::<_, AppError>(job)
        })
        .await?;
    state.metrics.credits_charged(job.cost_credits);
    Ok(job)
}

/// Refunds a job's charge (exactly once: the ledger's unique `refund_of_id` guarantees it),
/// marks its character cancelled (when the job was) or failed, and tells its chat thread (the
/// assistant answers that the generation failed); call in the transaction that ended the job.
pub async fn settle_refund(
    conn: &mut AsyncPgConnection,
    job: &JobRow,
    description: &str,
) -> AppResult<()> {
    payments::subscriptions::uncount_generation_in(conn, job.user_id, job.queued_at).await?;
    if let Some(charge) = job.charge_transaction_id {
        credits::service::refund_in(conn, charge, description).await?;
    }
    if let Some(thread) = job.thread_id {
        let refunded = job.charge_transaction_id.map_or(0, |_| job.cost_credits);
        let error = job.error.as_ref().and_then(|e| e["message"].as_str());
        chat::hooks::job_ended_without_images(
            conn,
            thread,
            job.id,
            job.status.as_str(),
            error,
            refunded,
        )
        .await?;
    }
    if let Some(c) = job.character_id {
        let message = job
            .error
            .as_ref()
            .and_then(|e| e["message"].as_str())
            .unwrap_or(job.status.as_str())
            .to_string();
        let status = if job.status == JobStatus::Cancelled {
            gallery::CharacterStatus::Cancelled
        } else {
            gallery::CharacterStatus::Failed
        };
        gallery::service::set_character_status(conn, c, status, Some(&message)).await?;
    }
    Ok(())
}

// ---- reads for the API -------------------------------------------------------------------

/// One of the viewer's jobs; `None` when there is none they may see.
pub async fn find_job(
    state: &AppState,
    viewer: &ViewerUser,
    id: Uuid,
) -> AppResult<Option<JobRow>> {
    let mut conn = db::conn(&state.pool).await?;
    match job_for(&mut conn, viewer, id).await {
        Ok(job) => Ok(Some(job)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A page of the viewer's jobs, newest first, after the keyset `(created_at, id)`, each with
/// the `extras` column of a look-ahead plan (`NULL::text` for none).
pub async fn list_jobs(
    state: &AppState,
    viewer: &ViewerUser,
    status: Option<JobStatus>,
    after: Option<(chrono::DateTime<chrono::Utc>, Uuid)>,
    limit: i64,
    extras: Fragment<Nullable<Text>>,
) -> AppResult<Vec<(JobRow, Option<String>)>> {
    let mut conn = state.read_conn(Some(viewer.id)).await?;
    Ok(model::list(&mut conn, viewer.id, status, after, limit, extras).await?)
}

/// Up to `limit` job events of `scope` after sequence number `after`, oldest first: what a
/// subscription catches up on after the event listener was down.
pub async fn events_after(
    state: &AppState,
    scope: model::EventScope,
    after: i64,
    limit: i64,
) -> AppResult<Vec<model::JobEventRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::events_after(&mut conn, scope, after, limit).await?)
}

/// The sequence number of the user's latest job event (0 when there is none): where a stream
/// of all their jobs starts catching up from.
pub async fn latest_user_seq(state: &AppState, user: Uuid) -> AppResult<i64> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::latest_user_seq(&mut conn, user).await?)
}

/// A job the viewer may see as it is now, with the sequence number of its latest event (a
/// subscription delivers it first, then only later events).
pub async fn job_with_seq(
    state: &AppState,
    viewer: &ViewerUser,
    id: Uuid,
) -> AppResult<(JobRow, i64)> {
    let mut conn = db::conn(&state.pool).await?;
    let seq = model::latest_seq(&mut conn, id).await?;
    let job = job_for(&mut conn, viewer, id).await?;
    Ok((job, seq))
}

/// Jobs per status and the oldest queued job's age (what `/metrics` shows of the queue).
pub async fn queue_stats(state: &AppState) -> AppResult<model::QueueStats> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::queue_stats(&mut conn).await?)
}
