//! GraphQL types and root fields of generation.

use async_graphql::{
    Context, ID, InputObject, Json, Object, SimpleObject, Subscription, connection::Connection,
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{
    GenerationKind, JobStatus,
    model::{EventScope, JobEventRow, JobRow},
    prompts::LogoBrief,
    service::{self, GenerateParams, GenerateRequest},
};
use crate::graphql::parse_id;
use crate::{
    AppState,
    accounts::guards::{Authenticated, require_user},
    db::{Fragment, decode_json},
    error::AppError,
    events::Event,
    gallery::{
        graphql::{Character, Image},
        loaders::{CharacterId, JobOutputs},
        service::{CharacterRow, ImageRow, character_json, job_outputs_json},
    },
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        plan::Nodes,
    },
};
use diesel::sql_types::{Nullable, Text};

/// A generation job, with what the page's look-ahead plan brought along (see [`JobExtras`]).
pub struct GenerationJob(pub JobRow, pub Option<Box<JobExtras>>);

impl GenerationJob {
    /// A job whose outputs and character load through the dataloaders.
    pub fn new(row: JobRow) -> Self {
        GenerationJob(row, None)
    }
}

/// What a planned job brought along: its output images and its character (`Some(None)`
/// when it has none); `None` when not planned.
#[derive(Debug, Default, serde::Deserialize)]
pub struct JobExtras {
    #[serde(default)]
    outputs: Option<Vec<ImageRow>>,
    #[serde(default, deserialize_with = "crate::db::present")]
    character: Option<Option<CharacterRow>>,
}

/// The JSON column of a `generationJobs` page: outputs and character when selected.
fn job_extras(ctx: &Context<'_>) -> Fragment<Nullable<Text>> {
    Nodes::of_connection(ctx).json_column(&[
        ("outputs", &|| job_outputs_json("generation_jobs.id")),
        ("character", &|| {
            character_json("generation_jobs.character_id")
        }),
    ])
}

/// Why a job failed.
#[derive(SimpleObject)]
pub struct JobError {
    /// `PROVIDER_ERROR`, `PROVIDER_UNAVAILABLE`, `WORKER_LOST` or `TIMED_OUT`.
    code: String,
    /// What went wrong, for people (never internals).
    message: String,
}

/// A request to render images, and where it stands. Watch it with the
/// `generationJobUpdated` subscription.
#[Object]
impl GenerationJob {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// What kind of rendering was asked for.
    async fn kind(&self) -> GenerationKind {
        self.0.kind
    }

    /// Where the job stands: `QUEUED`, `PROCESSING`, then one terminal status.
    async fn status(&self) -> JobStatus {
        self.0.status
    }

    /// What to render: as the user wrote it, or for LOGO the prompt rendered from
    /// `promptTemplate` (what the provider received).
    async fn prompt(&self) -> Option<&str> {
        self.0.prompt.as_deref()
    }

    /// The template `prompt` was rendered from (LOGO jobs), with `{placeholders}`.
    async fn prompt_template(&self) -> Option<&str> {
        self.0.prompt_template.as_deref()
    }

    /// The version of `promptTemplate`, e.g. `logo-brief.v1`.
    async fn prompt_template_version(&self) -> Option<&str> {
        self.0.prompt_template_version.as_deref()
    }

    /// What the image should not show.
    async fn negative_prompt(&self) -> Option<&str> {
        self.0.negative_prompt.as_deref()
    }

    /// The rendering parameters used (`width`, `height`, `steps`, `cfgScale`, `seed`, ...).
    async fn params(&self) -> Json<&serde_json::Value> {
        Json(&self.0.params)
    }

    /// The image provider (`procedural`, `openai`, `gemini`, `replicate`): the one planned first until
    /// the job succeeds, then the one that made the outputs (a fallback may have moved on).
    async fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The provider's model (e.g. `gpt-image-1`, `nightmareai/real-esrgan`), as `provider`.
    async fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }

    /// Images requested.
    async fn output_count(&self) -> i32 {
        self.0.output_count
    }

    /// Credits charged (refunded if the job fails, times out or is cancelled).
    async fn cost_credits(&self) -> i64 {
        self.0.cost_credits
    }

    /// Tries so far (a crashed worker's try counts).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// Why the job failed, if it did.
    async fn error(&self) -> Option<JobError> {
        let e = self.0.error.as_ref()?;
        Some(JobError {
            code: e["code"].as_str().unwrap_or("ERROR").to_string(),
            message: e["message"].as_str().unwrap_or("").to_string(),
        })
    }

    /// Whether the owner asked a processing job to stop.
    async fn cancel_requested(&self) -> bool {
        self.0.cancel_requested_at.is_some()
    }

    /// The input images' ids.
    async fn input_image_ids(&self) -> Vec<ID> {
        self.0
            .input_image_ids
            .iter()
            .map(|i| ID(i.to_string()))
            .collect()
    }

    /// The images made (empty until the job succeeds).
    async fn outputs(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Image>> {
        if let Some(outputs) = self.1.as_ref().and_then(|p| p.outputs.as_ref()) {
            return Ok(outputs.iter().cloned().map(Image::new).collect());
        }
        let rows = ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(JobOutputs(self.0.id))
            .await?
            .unwrap_or_default();
        Ok(rows.into_iter().map(Image::new).collect())
    }

    /// The character this job renders, if any (its images are added when the job succeeds).
    async fn character(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Character>> {
        let Some(id) = self.0.character_id else {
            return Ok(None);
        };
        if let Some(planned) = self.1.as_ref().and_then(|p| p.character.as_ref()) {
            return Ok(planned.clone().map(Character::new));
        }
        Ok(ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_one(CharacterId(id))
            .await?
            .map(Character::new))
    }

    /// When the job was queued (charged).
    async fn queued_at(&self) -> DateTime<Utc> {
        self.0.queued_at
    }

    /// When a worker last started it.
    async fn started_at(&self) -> Option<DateTime<Utc>> {
        self.0.started_at
    }

    /// When it reached a terminal status.
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }

    /// Rendering time of the last try, in milliseconds.
    async fn processing_ms(&self) -> Option<i32> {
        self.0.processing_ms
    }
}

/// Rendering parameters of `generate`.
#[derive(InputObject, Default)]
pub struct GenerateParamsInput {
    /// 64 to 2048, a multiple of 8 (default 512).
    width: Option<i32>,
    /// 64 to 2048, a multiple of 8 (default 512).
    height: Option<i32>,
    /// 1 to 150 (default 30).
    steps: Option<i32>,
    /// 1.0 to 30.0 (default 7.0).
    cfg_scale: Option<f64>,
    /// Same seed and input, same image (random when omitted).
    seed: Option<i64>,
    /// The sampler name the provider should use, 1 to 32 characters (providers that have no
    /// samplers ignore it).
    sampler: Option<String>,
    /// A style hint such as `ANIME` or `REALISTIC` (see `StyleType`), 1 to 32 characters.
    style_type: Option<String>,
    /// Rendering quality for providers that have one (OpenAI); default: the provider's.
    quality: Option<ImageQuality>,
}

/// Rendering quality (OpenAI's `quality`; `dall-e-3` gets `hd` for HIGH, else `standard`).
#[derive(async_graphql::Enum, Clone, Copy, PartialEq, Eq)]
pub enum ImageQuality {
    /// Fastest and cheapest.
    Low,
    /// Balanced.
    Medium,
    /// Most detailed.
    High,
    /// The provider chooses.
    Auto,
}

impl ImageQuality {
    fn as_str(self) -> &'static str {
        match self {
            ImageQuality::Low => "low",
            ImageQuality::Medium => "medium",
            ImageQuality::High => "high",
            ImageQuality::Auto => "auto",
        }
    }
}

/// A logo brief (kind LOGO): the prompt is rendered from a versioned template, stored on the
/// job with its version (`promptTemplate`, `promptTemplateVersion`).
#[derive(InputObject)]
pub struct LogoBriefInput {
    /// The app's name, 1 to 60 characters.
    app_name: String,
    /// What the app is about, 1 to 300 characters.
    app_focus: String,
    /// 1 to 5 hex colours (`#ff6600` or `#f60`), most important first.
    colors: Vec<String>,
    /// A style such as `playful`, `geometric` or `luxury`, up to 60 characters (default
    /// `modern, minimal`).
    style: Option<String>,
}

/// Input of `generate`.
#[derive(InputObject)]
pub struct GenerateInput {
    /// What to render; sets which other fields are required and the price.
    kind: GenerationKind,
    /// Required for CHARACTER_GENERATION, LOGO and STYLE_TRANSFER; up to 2000 characters.
    prompt: Option<String>,
    /// What the image should not show; up to 1000 characters.
    negative_prompt: Option<String>,
    /// A character of the viewer's that the outputs are added to.
    character_id: Option<ID>,
    /// The viewer's own images; required for STYLE_TRANSFER, UPSCALE, VARIATION, BACKGROUND_REMOVAL.
    input_image_ids: Option<Vec<ID>>,
    /// 1 to 4 images (default 1); the price is per image.
    output_count: Option<i32>,
    /// Size, steps, guidance, seed and hints (defaults apply to what is left out).
    params: Option<GenerateParamsInput>,
    /// Retrying with the same key returns the same job instead of charging twice.
    idempotency_key: Option<String>,
    /// One of the enabled providers (`imageProviders`); the job then uses it alone, without
    /// fallback. Default: the kind's provider order. Unknown or disabled: `BAD_USER_INPUT`.
    provider: Option<String>,
    /// One of the provider's models (`imageProviders`); a model with a price of its own is
    /// charged that (`operationPrices`). Unknown or disabled: `BAD_USER_INPUT`.
    model: Option<String>,
    /// LOGO only: a brief the prompt is built from (`prompt` is then optional, added as
    /// notes).
    logo: Option<LogoBriefInput>,
}

/// An enabled image provider.
#[derive(SimpleObject)]
pub struct ImageProviderInfo {
    /// What `generate` takes as `provider` (e.g. `openai`).
    name: String,
    /// The models a request may choose.
    models: Vec<ProviderModel>,
    /// The kinds this provider renders when a request names no provider (it is in their
    /// fallback order).
    kinds: Vec<GenerationKind>,
}

/// A model of an image provider.
#[derive(SimpleObject)]
pub struct ProviderModel {
    /// What `generate` takes as `model` (e.g. `gpt-image-1`).
    name: String,
    /// The kinds it renders.
    kinds: Vec<GenerationKind>,
}

impl GenerateInput {
    /// The service's request; ids that do not parse are `BAD_USER_INPUT` on `<path>.<field>`
    /// (`path` is where the input sits: `input` for `generate`).
    pub fn into_request(self, path: &str) -> Result<GenerateRequest, AppError> {
        let character_id = self
            .character_id
            .as_ref()
            .map(|id| parse_id(id, &format!("{path}.characterId")))
            .transpose()?;
        let input_image_ids = self
            .input_image_ids
            .unwrap_or_default()
            .iter()
            .map(|id| parse_id(id, &format!("{path}.inputImageIds")))
            .collect::<Result<Vec<_>, _>>()?;
        let p = self.params.unwrap_or_default();
        Ok(GenerateRequest {
            kind: self.kind,
            prompt: self.prompt,
            negative_prompt: self.negative_prompt,
            character_id,
            input_image_ids,
            output_count: self.output_count,
            params: GenerateParams {
                width: p.width,
                height: p.height,
                steps: p.steps,
                cfg_scale: p.cfg_scale,
                seed: p.seed,
                sampler: p.sampler,
                style_type: p.style_type,
                quality: p.quality.map(|q| q.as_str().to_string()),
                provider: self.provider,
                model: self.model,
                logo: self.logo.map(|l| LogoBrief {
                    app_name: l.app_name,
                    app_focus: l.app_focus,
                    colors: l.colors,
                    style: l.style,
                }),
            },
            idempotency_key: self.idempotency_key,
        })
    }
}

/// Filters of `generationJobs`.
#[derive(InputObject, Default)]
pub struct GenerationJobFilter {
    /// Only jobs in this status.
    status: Option<JobStatus>,
}

/// Generation queries.
#[derive(Default)]
pub struct GenerationQuery;

#[Object]
impl GenerationQuery {
    /// One of the viewer's jobs (null when it is not theirs).
    #[graphql(guard = "Authenticated")]
    async fn generation_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's generation jobs.")] id: ID,
    ) -> async_graphql::Result<Option<GenerationJob>> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(service::find_job(ctx.state()?, viewer, id)
            .await?
            .map(GenerationJob::new))
    }

    /// The enabled image providers (`EASEL_PROVIDERS`) with their models and what each
    /// model renders: the values `generate` accepts as `provider` and `model`.
    async fn image_providers(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ImageProviderInfo>> {
        let providers = &ctx.state()?.providers;
        Ok(providers
            .enabled()
            .iter()
            .map(|p| ImageProviderInfo {
                name: p.name().to_string(),
                models: p
                    .models()
                    .into_iter()
                    .map(|m| ProviderModel {
                        kinds: GenerationKind::ALL
                            .iter()
                            .copied()
                            .filter(|k| p.model_for(*k).is_some() && p.offers(*k, &m))
                            .collect(),
                        name: m,
                    })
                    .collect(),
                kinds: GenerationKind::ALL
                    .iter()
                    .copied()
                    .filter(|k| {
                        providers
                            .order(*k)
                            .iter()
                            .any(|o| o.name() == p.name() && o.model_for(*k).is_some())
                    })
                    .collect(),
            })
            .collect())
    }

    /// The viewer's jobs, newest first.
    #[graphql(guard = "Authenticated")]
    async fn generation_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only jobs matching this filter.")] filter: Option<GenerationJobFilter>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<
        Connection<async_graphql::connection::OpaqueCursor<(DateTime<Utc>, Uuid)>, GenerationJob>,
    > {
        let viewer = require_user(ctx)?;
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let status = filter.and_then(|f| f.status);
        let rows = service::list_jobs(
            ctx.state()?,
            viewer,
            status,
            page.after,
            page.limit(),
            job_extras(ctx),
        )
        .await?;
        let nodes = rows
            .into_iter()
            .map(|(row, json)| Ok(GenerationJob(row, decode_json(json)?.map(Box::new))))
            .collect::<Result<Vec<_>, diesel::result::Error>>()
            .map_err(AppError::from)?;
        Ok(connection(&page, nodes, |j| (j.0.created_at, j.0.id)))
    }
}

/// Generation mutations.
#[derive(Default)]
pub struct GenerationMutation;

#[Object]
impl GenerationMutation {
    /// Prices the operation for the viewer's tier, takes the credits (daily allowance first)
    /// and queues the job, in one transaction. `INSUFFICIENT_CREDITS` queues nothing;
    /// per-operation limits answer `RATE_LIMITED`.
    #[graphql(guard = "Authenticated")]
    async fn generate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")] input: GenerateInput,
    ) -> async_graphql::Result<GenerationJob> {
        let viewer = require_user(ctx)?;
        let req = input.into_request("input")?;
        Ok(GenerationJob::new(
            service::generate(ctx.state()?, viewer, req).await?,
        ))
    }

    /// Cancels a queued job at once, or a processing one as soon as its worker notices (a
    /// heartbeat); either way the credits come back.
    #[graphql(guard = "Authenticated")]
    async fn cancel_generation_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's generation jobs.")] id: ID,
    ) -> async_graphql::Result<GenerationJob> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(GenerationJob::new(
            service::cancel(ctx.state()?, viewer, id).await?,
        ))
    }

    /// Queues a failed, timed-out or cancelled job again, with a fresh charge.
    #[graphql(guard = "Authenticated")]
    async fn retry_generation_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's failed, timed-out or cancelled jobs.")] id: ID,
    ) -> async_graphql::Result<GenerationJob> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(GenerationJob::new(
            service::retry(ctx.state()?, viewer, id).await?,
        ))
    }
}

/// How many missed events one catch-up read returns (the rest are read as these are sent).
const CATCH_UP_PAGE: i64 = 100;

struct Follow {
    rx: tokio::sync::broadcast::Receiver<Event>,
    state: AppState,
    scope: EventScope,
    first: Option<JobRow>,
    /// The newest event sequence delivered, per job.
    seen: std::collections::HashMap<Uuid, i64>,
    /// Catching up reads events after this sequence number (for a job, after the newest
    /// delivered one if that is later).
    floor: i64,
    /// Events read while catching up after the listener was down, delivered before anything
    /// else.
    missed: std::collections::VecDeque<JobEventRow>,
    /// Catching up continues after this sequence number (the last read was a full page).
    more_after: Option<i64>,
    until_terminal: bool,
    ended: bool,
}

impl Follow {
    fn wants(&self, job: Uuid, user: Uuid) -> bool {
        match self.scope {
            EventScope::Job(id) => job == id,
            EventScope::User(id) => user == id,
        }
    }

    /// The job as of event `seq` with that event's status, unless the event was delivered
    /// already (or the job is gone). Marks it delivered.
    async fn deliver(
        &mut self,
        job_id: Uuid,
        seq: i64,
        status: JobStatus,
        retry: bool,
    ) -> Option<async_graphql::Result<GenerationJob>> {
        if self.seen.get(&job_id).is_some_and(|last| *last >= seq) {
            return None;
        }
        let (snapshots, pool) = (&self.state.job_snapshots, &self.state.pool);
        let row = if retry {
            crate::events::catch_up(|| snapshots.get(pool, job_id, seq)).await
        } else {
            snapshots.get(pool, job_id, seq).await
        };
        match row {
            Ok(Some(mut job)) => {
                self.seen.insert(job_id, seq);
                job.status = status;
                self.ended = self.until_terminal && status.is_terminal();
                Some(Ok(GenerationJob::new(job)))
            }
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        }
    }

    /// Reads the events committed after `after` (one page) into `missed`.
    async fn read_missed(&mut self, after: i64) -> Result<(), AppError> {
        let (state, scope) = (&self.state, self.scope);
        let rows =
            crate::events::catch_up(|| service::events_after(state, scope, after, CATCH_UP_PAGE))
                .await?;
        self.more_after = match rows.last() {
            Some(last) if rows.len() as i64 == CATCH_UP_PAGE => Some(last.seq),
            _ => None,
        };
        self.missed.extend(rows);
        Ok(())
    }
}

/// Follows the job events of `scope`, in commit order. Each status change is delivered once,
/// in order (the status is the event's; other fields show the job as it is when the event is
/// delivered). `first` (with the sequence number it reflects) is delivered before any event;
/// older events are skipped. After the event listener was down, the events committed
/// meanwhile are read from `job_events` (those after the newest delivered one, and after
/// `floor`) and delivered before any newer one. With `until_terminal` the stream ends after a
/// terminal status.
fn follow(
    rx: tokio::sync::broadcast::Receiver<Event>,
    state: AppState,
    first: Option<(JobRow, i64)>,
    scope: EventScope,
    floor: i64,
    until_terminal: bool,
) -> impl Stream<Item = async_graphql::Result<GenerationJob>> {
    let mut seen = std::collections::HashMap::new();
    let first = first.map(|(job, seq)| {
        seen.insert(job.id, seq);
        job
    });
    let start = Follow {
        rx,
        state,
        scope,
        first,
        seen,
        floor,
        missed: Default::default(),
        more_after: None,
        until_terminal,
        ended: false,
    };
    futures_util::stream::unfold(start, move |mut s| async move {
        if s.ended {
            return None;
        }
        if let Some(job) = s.first.take() {
            s.ended = until_terminal && job.status.is_terminal();
            return Some((Ok(GenerationJob::new(job)), s));
        }
        loop {
            if let Some(missed) = s.missed.pop_front() {
                match s
                    .deliver(missed.job_id, missed.seq, missed.status, true)
                    .await
                {
                    // The job could not be read even after retries: the change would be lost.
                    Some(Err(_)) => {
                        s.ended = true;
                        return Some((Err(AppError::SubscriptionLagged.into()), s));
                    }
                    Some(item) => return Some((item, s)),
                    None => continue,
                }
            }
            let after = match s.more_after.take() {
                Some(after) => Some(after),
                None => match s.rx.recv().await {
                    Ok(Event::Job {
                        job_id,
                        user_id,
                        status,
                        seq,
                    }) if s.wants(job_id, user_id) => {
                        let Some(status) = JobStatus::from_db(&status) else {
                            continue;
                        };
                        match s.deliver(job_id, seq, status, false).await {
                            Some(item) => return Some((item, s)),
                            None => continue,
                        }
                    }
                    // The listener is back: read what was committed while it was down.
                    Ok(Event::Resync) => Some(match s.scope {
                        EventScope::Job(job) => s.seen.get(&job).copied().unwrap_or(s.floor),
                        EventScope::User(_) => s.floor,
                    }),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        s.ended = true;
                        return Some((Err(AppError::SubscriptionLagged.into()), s));
                    }
                    Err(RecvError::Closed) => return None,
                },
            };
            if let Some(after) = after
                && s.read_missed(after).await.is_err()
            {
                // Events may be missing: say so, as for a subscriber that fell behind.
                s.ended = true;
                return Some((Err(AppError::SubscriptionLagged.into()), s));
            }
        }
    })
}

/// Generation subscriptions.
#[derive(Default)]
pub struct GenerationSubscription;

#[Subscription]
impl GenerationSubscription {
    /// The job's current state at once, then every change; completes after a terminal status.
    /// Only the owner (or an admin) may subscribe; others get `NOT_FOUND`. A client that
    /// reconnects loses nothing that matters: its first event is the current state. Changes
    /// made while the server was cut off from the database's events arrive, in order and
    /// once each, when it is back.
    #[graphql(guard = "Authenticated")]
    async fn generation_job_updated(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's generation jobs.")] id: ID,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<GenerationJob>>> {
        let viewer = require_user(ctx)?.clone();
        let state = ctx.state()?.clone();
        let id = parse_id(&id, "id")?;
        // Subscribe before reading the current state, so no change falls between the two.
        let rx = state.events.subscribe();
        let (job, seq) = service::job_with_seq(&state, &viewer, id).await?;
        Ok(follow(
            rx,
            state,
            Some((job, seq)),
            EventScope::Job(id),
            seq,
            true,
        ))
    }

    /// Every change of any of the viewer's jobs from now on, in order; changes made while
    /// the server was cut off from the database's events arrive when it is back.
    #[graphql(guard = "Authenticated")]
    async fn my_generation_jobs(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<GenerationJob>>> {
        let viewer = require_user(ctx)?.id;
        let state = ctx.state()?.clone();
        let rx = state.events.subscribe();
        // Changes from now on; after an outage of the event listener, those committed
        // meanwhile are read from here on.
        let floor = service::latest_user_seq(&state, viewer).await?;
        Ok(follow(
            rx,
            state,
            None,
            EventScope::User(viewer),
            floor,
            false,
        ))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    /// A subscriber that falls behind the event hub ends with an error of its own code (it
    /// used to reach clients as `BAD_USER_INPUT`), and the stream ends there.
    #[tokio::test]
    async fn a_subscriber_that_falls_behind_ends_with_its_own_code() {
        let mut config = crate::config::Config::from_lookup(|_| None).unwrap();
        config.jwt_secret = Some("k".repeat(40).into());
        config.data_dir =
            std::env::temp_dir().join(format!("easel-lag-{}", Uuid::now_v7().simple()));
        // Nothing here touches the database: the pool never connects.
        let state = crate::server::app_state(config, "host=/nonexistent dbname=none").unwrap();
        let (tx, rx) = tokio::sync::broadcast::channel(2);
        let user = Uuid::now_v7();
        for seq in 0..5 {
            tx.send(Event::Job {
                job_id: Uuid::now_v7(),
                user_id: user,
                status: "queued".into(),
                seq,
            })
            .unwrap();
        }
        let dir = state.config.data_dir.clone();
        let stream = follow(rx, state, None, EventScope::User(user), 0, false);
        futures_util::pin_mut!(stream);
        let Some(Err(err)) = stream.next().await else {
            panic!("the first item is the error");
        };
        let code = err.extensions.as_ref().and_then(|e| e.get("code")).cloned();
        assert_eq!(
            code,
            Some(async_graphql::Value::from("SUBSCRIPTION_LAGGED"))
        );
        assert!(
            stream.next().await.is_none(),
            "the stream ends after the error"
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}
