//! Image providers behind one trait: `procedural` (local, deterministic PNGs), `openai` (an
//! OpenAI-compatible images HTTP API: generations and edits), `gemini` (Google's
//! `generateContent` with image parts) and `replicate` (a Replicate-style predictions API:
//! create, poll, cancel). [`Providers`] holds the enabled
//! ones (`EASEL_PROVIDERS`): it checks a request's provider and model, plans a job's
//! providers in its kind's fallback order, and moves to the next one on a retryable failure.

use std::{io::Cursor, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures_util::future::BoxFuture;
use image::{ImageFormat, Rgba, RgbaImage, imageops::FilterType};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::GenerationKind;

/// What to render.
#[derive(Debug, Clone)]
pub struct RenderRequest {
    pub kind: GenerationKind,
    pub prompt: String,
    pub negative_prompt: String,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    pub count: u32,
    /// Decoded bytes of the input images (for kinds that transform images).
    pub inputs: Vec<Vec<u8>>,
    /// A PNG whose transparent pixels mark where the first input may change (OpenAI edits).
    pub mask: Option<Vec<u8>>,
    /// The provider the request chose (`generate(input: { provider })`): no fallback then.
    pub provider: Option<String>,
    /// The model to render with (`None`: the provider's default for the kind).
    pub model: Option<String>,
    /// A style hint such as `ANIME` (`params.styleType`).
    pub style_type: Option<String>,
    /// `low`, `medium`, `high` or `auto` (`params.quality`).
    pub quality: Option<String>,
    /// Denoising steps (`params.steps`).
    pub steps: Option<u32>,
    /// Guidance scale (`params.cfgScale`).
    pub cfg_scale: Option<f64>,
    /// Sampler / scheduler name (`params.sampler`).
    pub sampler: Option<String>,
}

impl RenderRequest {
    /// A request of `kind` for one `width`×`height` image from `prompt`, everything else
    /// left to the provider.
    pub fn new(kind: GenerationKind, prompt: &str, width: u32, height: u32) -> Self {
        RenderRequest {
            kind,
            prompt: prompt.into(),
            negative_prompt: String::new(),
            width,
            height,
            seed: 0,
            count: 1,
            inputs: Vec::new(),
            mask: None,
            provider: None,
            model: None,
            style_type: None,
            quality: None,
            steps: None,
            cfg_scale: None,
            sampler: None,
        }
    }

    /// The prompt with the style hint and negative prompt written out, for providers that
    /// take only a prompt.
    fn prompt_with_hints(&self) -> String {
        let mut prompt = self.prompt.trim().to_string();
        if let Some(style) = &self.style_type {
            prompt.push_str(&format!(
                ". Style: {}",
                style.to_lowercase().replace('_', " ")
            ));
        }
        if !self.negative_prompt.is_empty() {
            prompt.push_str(&format!(". Avoid: {}", self.negative_prompt));
        }
        prompt
    }
}

/// One rendered image, PNG-encoded.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Images, and which provider and model made them (stored on the job).
#[derive(Debug, Clone)]
pub struct Produced {
    pub images: Vec<Rendered>,
    pub provider: String,
    pub model: Option<String>,
}

/// Why rendering failed.
#[derive(Debug, Clone)]
pub enum ProviderError {
    /// Worth another attempt, here or at the next provider (time-outs, 429, 5xx).
    Retryable(String),
    /// Will fail again (bad input, refused prompt, unsupported kind): the job fails.
    Permanent(String),
}

/// Renders images for jobs.
pub trait ImageProvider: Send + Sync + 'static {
    /// Stored on the job (`provider`).
    fn name(&self) -> &'static str;
    /// The default model (stored on the job as `model`).
    fn model(&self) -> Option<String>;
    /// The models a request may choose (the allow-list), the default first.
    fn models(&self) -> Vec<String> {
        self.model().into_iter().collect()
    }
    /// The model that renders `kind` when the request names none; `None` when this provider
    /// does not render `kind` at all.
    fn model_for(&self, _kind: GenerationKind) -> Option<String> {
        self.model().or_else(|| Some(String::new()))
    }
    /// Whether `model` (one of [`ImageProvider::models`]) renders `kind`.
    fn offers(&self, _kind: GenerationKind, _model: &str) -> bool {
        true
    }
    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>>;
    /// Renders, and says with which provider and model ([`Providers`] walks its fallback
    /// order here).
    fn produce<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Produced, ProviderError>> {
        Box::pin(async move {
            let images = self.render(req).await?;
            Ok(Produced {
                images,
                provider: self.name().to_string(),
                model: req
                    .model
                    .clone()
                    .or_else(|| self.model_for(req.kind))
                    .filter(|m| !m.is_empty()),
            })
        })
    }
}

// ---- the enabled providers ----------------------------------------------------------------

/// One step of a job's plan: a provider and the model it renders with.
#[derive(Clone)]
pub struct Step {
    pub provider: Arc<dyn ImageProvider>,
    pub model: String,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.provider.name(), self.model)
    }
}

/// Why a request's provider or model cannot be used: the input field and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub field: &'static str,
    pub message: String,
}

/// The enabled providers (the allow-list), the default one and each kind's fallback order.
pub struct Providers {
    enabled: Vec<Arc<dyn ImageProvider>>,
    default: &'static str,
    orders: Vec<(GenerationKind, Vec<&'static str>)>,
}

impl Providers {
    /// `enabled` in allow-list order; `default` and the orders name enabled providers (others
    /// are ignored).
    pub fn new(
        enabled: Vec<Arc<dyn ImageProvider>>,
        default: &str,
        orders: Vec<(GenerationKind, Vec<String>)>,
    ) -> Self {
        let find = |name: &str| enabled.iter().find(|p| p.name() == name).map(|p| p.name());
        let default = find(default).unwrap_or_else(|| enabled.first().map_or("none", |p| p.name()));
        let orders = orders
            .into_iter()
            .map(|(kind, names)| (kind, names.iter().filter_map(|n| find(n)).collect()))
            .collect();
        Providers {
            enabled,
            default,
            orders,
        }
    }

    /// The providers `EASEL_PROVIDERS` enables, with `EASEL_PROVIDER` and the orders.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let c = &config.providers;
        let mut enabled: Vec<Arc<dyn ImageProvider>> = Vec::new();
        for name in &c.enabled {
            match name.as_str() {
                "procedural" => enabled.push(Arc::new(Procedural {
                    delay: config.procedural_delay,
                })),
                "openai" => {
                    if let Some(o) = &c.openai {
                        enabled.push(Arc::new(
                            OpenAi::new(
                                o.base_url.clone(),
                                o.api_key.clone(),
                                o.model.clone(),
                                o.timeout,
                            )
                            .with_models(o.models.clone()),
                        ));
                    }
                }
                "gemini" => {
                    if let Some(g) = &c.gemini {
                        enabled.push(Arc::new(
                            Gemini::new(
                                g.base_url.clone(),
                                g.api_key.clone(),
                                g.model.clone(),
                                g.timeout,
                            )
                            .with_models(g.models.clone()),
                        ));
                    }
                }
                "replicate" => {
                    if let Some(r) = &c.replicate {
                        let models = r
                            .models
                            .iter()
                            .filter_map(|(k, m)| Some((GenerationKind::from_db(k)?, m.clone())))
                            .collect();
                        let mut p = Replicate::new(
                            r.base_url.clone(),
                            r.api_token.clone(),
                            models,
                            r.timeout,
                        );
                        p.poll_interval = r.poll_interval;
                        enabled.push(Arc::new(p));
                    }
                }
                _ => {}
            }
        }
        let orders = c
            .orders
            .iter()
            .filter_map(|(k, names)| Some((GenerationKind::from_db(k)?, names.clone())))
            .collect();
        Providers::new(enabled, &c.default, orders)
    }

    /// One provider alone (tests, benchmarks).
    pub fn single(provider: Arc<dyn ImageProvider>) -> Self {
        let name = provider.name();
        Providers::new(vec![provider], name, Vec::new())
    }

    /// The enabled providers, in allow-list order.
    pub fn enabled(&self) -> &[Arc<dyn ImageProvider>] {
        &self.enabled
    }

    /// The provider renders of `kind` try first when none is chosen, then the others.
    pub fn order(&self, kind: GenerationKind) -> Vec<&Arc<dyn ImageProvider>> {
        let names: &[&str] = self
            .orders
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(std::slice::from_ref(&self.default), |(_, n)| n.as_slice());
        names
            .iter()
            .filter_map(|n| self.enabled.iter().find(|p| p.name() == *n))
            .collect()
    }

    /// The steps a job of `kind` tries, in order: the request's provider (and model) alone
    /// when it chose one, else the kind's fallback order (providers that do not render the
    /// kind left out). Unknown or disabled choices are refused with the field to blame.
    pub fn plan(
        &self,
        kind: GenerationKind,
        provider: Option<&str>,
        model: Option<&str>,
    ) -> Result<Vec<Step>, Refused> {
        let refuse = |field, message: String| Err(Refused { field, message });
        let names = || {
            self.enabled
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (provider, model) {
            (Some(name), model) => {
                let Some(p) = self.enabled.iter().find(|p| p.name() == name) else {
                    return refuse(
                        "input.provider",
                        format!(
                            "unknown or disabled provider `{name}` (enabled: {})",
                            names()
                        ),
                    );
                };
                let model = match model {
                    Some(m) if !p.models().iter().any(|x| x == m) => {
                        return refuse(
                            "input.model",
                            format!(
                                "unknown or disabled model `{m}` of {name} (enabled: {})",
                                p.models().join(", ")
                            ),
                        );
                    }
                    Some(m) => m.to_string(),
                    None => match p.model_for(kind) {
                        Some(m) => m,
                        None => {
                            return refuse(
                                "input.provider",
                                format!("{name} does not render {}", kind.as_str()),
                            );
                        }
                    },
                };
                if !p.offers(kind, &model) {
                    return refuse(
                        "input.model",
                        format!("{model} does not render {}", kind.as_str()),
                    );
                }
                Ok(vec![Step {
                    provider: p.clone(),
                    model,
                }])
            }
            (None, Some(m)) => {
                let first = self
                    .order(kind)
                    .into_iter()
                    .chain(self.enabled.iter())
                    .find(|p| p.models().iter().any(|x| x == m) && p.offers(kind, m));
                match first {
                    Some(p) => Ok(vec![Step {
                        provider: p.clone(),
                        model: m.to_string(),
                    }]),
                    None => refuse(
                        "input.model",
                        format!("no enabled provider renders {} with `{m}`", kind.as_str()),
                    ),
                }
            }
            (None, None) => {
                let steps: Vec<Step> = self
                    .order(kind)
                    .into_iter()
                    .filter_map(|p| {
                        let model = p.model_for(kind)?;
                        p.offers(kind, &model).then(|| Step {
                            provider: p.clone(),
                            model,
                        })
                    })
                    .collect();
                if steps.is_empty() {
                    return refuse(
                        "input.kind",
                        format!("no enabled provider renders {}", kind.as_str()),
                    );
                }
                Ok(steps)
            }
        }
    }

    /// The model a per-model price key (`<operation>.<model slug>`) is about, if any.
    pub fn model_of_price(&self, operation: &str) -> Option<String> {
        self.enabled.iter().flat_map(|p| p.models()).find(|m| {
            operation
                .strip_suffix(&price_slug(m))
                .is_some_and(|rest| rest.ends_with('.') && rest.starts_with("generate."))
        })
    }
}

/// A model's part of its price key: lowercase, every character other than a letter or a
/// digit an underscore (`gpt-image-1` → `gpt_image_1`, `owner/name:v` → `owner_name_v`).
pub fn price_slug(model: &str) -> String {
    model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The `operation_prices` key of `kind` rendered with `model`, e.g.
/// `generate.character.gpt_image_1` (the kind's own key prices models without one).
pub fn model_price_key(kind: GenerationKind, model: &str) -> String {
    format!("{}.{}", kind.operation(), price_slug(model))
}

impl ImageProvider for Providers {
    fn name(&self) -> &'static str {
        self.default
    }

    fn model(&self) -> Option<String> {
        self.enabled
            .iter()
            .find(|p| p.name() == self.default)
            .and_then(|p| p.model())
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move { Ok(self.produce(req).await?.images) })
    }

    /// Tries the job's plan in order: a retryable failure moves to the next step, a
    /// permanent one ends the job; when every step failed retryably, the job may be retried.
    fn produce<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Produced, ProviderError>> {
        Box::pin(async move {
            let steps = self
                .plan(req.kind, req.provider.as_deref(), req.model.as_deref())
                .map_err(|r| ProviderError::Permanent(r.message))?;
            let mut failures = Vec::new();
            for step in steps {
                let name = step.provider.name();
                let mut one = req.clone();
                one.model = Some(step.model.clone()).filter(|m| !m.is_empty());
                match step.provider.render(&one).await {
                    Ok(images) => {
                        return Ok(Produced {
                            images,
                            provider: name.to_string(),
                            model: one.model,
                        });
                    }
                    Err(ProviderError::Retryable(e)) => {
                        tracing::warn!(provider = name, model = %step.model, error = %e, "provider failed; trying the next one");
                        failures.push(format!("{name}: {e}"));
                    }
                    Err(ProviderError::Permanent(e)) => {
                        return Err(ProviderError::Permanent(format!("{name}: {e}")));
                    }
                }
            }
            Err(ProviderError::Retryable(failures.join("; ")))
        })
    }
}

/// Checks that `bytes` decode as an image and re-encodes them as PNG (the gallery stores real
/// PNGs). An undecodable answer is the provider's fault: worth another try.
fn to_rendered(bytes: &[u8]) -> Result<Rendered, ProviderError> {
    let img = image::load_from_memory(bytes)
        .map_err(|e| ProviderError::Retryable(format!("undecodable image: {e}")))?;
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| ProviderError::Permanent(e.to_string()))?;
    Ok(Rendered {
        png,
        width: img.width(),
        height: img.height(),
    })
}

/// The MIME type and file extension of an input image, from its first bytes.
fn image_type(bytes: &[u8]) -> (&'static str, &'static str) {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => ("image/jpeg", "jpg"),
        Ok(ImageFormat::WebP) => ("image/webp", "webp"),
        _ => ("image/png", "png"),
    }
}

/// How long a `retry-after` header asks to wait (seconds), at most 30 s.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs_f64(secs.clamp(0.0, 30.0)))
}

/// Whether an HTTP answer is worth another try: 408, 409 (Replicate's "busy"), 429, 5xx.
fn retryable_status(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 409 | 429) || status.is_server_error()
}

/// A transport failure: a time-out or an unreachable API is retryable.
fn transport(what: &str, e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Retryable(format!("{what} timed out"))
    } else {
        ProviderError::Retryable(format!("{what} unreachable: {e}"))
    }
}

/// Downloads an output (`https://...` or a `data:` URL) and checks it is an image.
async fn fetch_image(client: &reqwest::Client, url: &str) -> Result<Rendered, ProviderError> {
    if let Some(data) = url.strip_prefix("data:") {
        let b64 = data
            .split_once(";base64,")
            .map(|(_, b)| b)
            .ok_or_else(|| ProviderError::Retryable("a data URL that is not base64".into()))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|e| ProviderError::Retryable(format!("bad base64 image: {e}")))?;
        return to_rendered(&bytes);
    }
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| transport("fetching an output", e))?;
    if !resp.status().is_success() {
        return Err(ProviderError::Retryable(format!(
            "fetching an output answered {}",
            resp.status()
        )));
    }
    // Read at most MAX_OUTPUT_BYTES: a provider's URL must not make the worker buffer
    // without bound (decoding is bounded later by the upload limits).
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_OUTPUT_BYTES as u64)
    {
        return Err(ProviderError::Permanent(format!(
            "an output over {MAX_OUTPUT_BYTES} bytes"
        )));
    }
    let mut resp = resp;
    let mut bytes = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport("fetching an output", e))?
    {
        if bytes.len() + chunk.len() > MAX_OUTPUT_BYTES {
            return Err(ProviderError::Permanent(format!(
                "an output over {MAX_OUTPUT_BYTES} bytes"
            )));
        }
        bytes.extend_from_slice(&chunk);
    }
    to_rendered(&bytes)
}

/// The largest image a provider's output URL may send.
const MAX_OUTPUT_BYTES: usize = 64 * 1024 * 1024;

// ---- procedural -------------------------------------------------------------------------

/// Renders real PNGs locally from the prompt, seed and size: the same input always gives the
/// same bytes. Input-image kinds really transform their input (upscale doubles it, background
/// removal clears the background colour, ...). An artificial delay makes status changes
/// visible in apps.
pub struct Procedural {
    pub delay: Duration,
}

impl ImageProvider for Procedural {
    fn name(&self) -> &'static str {
        "procedural"
    }

    fn model(&self) -> Option<String> {
        Some("procedural-v1".into())
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            let req = req.clone();
            tokio::task::spawn_blocking(move || {
                (0..req.count).map(|i| procedural(&req, i)).collect()
            })
            .await
            .map_err(|e| ProviderError::Retryable(format!("render task: {e}")))?
        })
    }
}

fn procedural(req: &RenderRequest, index: u32) -> Result<Rendered, ProviderError> {
    let mut h = Sha256::new();
    for part in [req.kind.as_str(), &req.prompt, &req.negative_prompt] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(req.seed.to_be_bytes());
    h.update(index.to_be_bytes());
    let digest = h.finalize();
    let mut rng = SplitMix(u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")));
    let img = match (req.kind.needs_input(), req.inputs.first()) {
        (true, Some(bytes)) => {
            let input = image::load_from_memory(bytes)
                .map_err(|e| ProviderError::Permanent(format!("input image: {e}")))?
                .to_rgba8();
            transform(req.kind, input, &mut rng)
        }
        (true, None) => {
            return Err(ProviderError::Permanent(
                "this kind needs an input image".into(),
            ));
        }
        (false, _) => paint(req.width, req.height, &mut rng),
    };
    let (width, height) = img.dimensions();
    let mut png = Vec::new();
    img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| ProviderError::Permanent(format!("encoding: {e}")))?;
    Ok(Rendered { png, width, height })
}

/// A small deterministic generator (SplitMix64): stable across crate versions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }

    fn colour(&mut self) -> [u8; 3] {
        let v = self.next();
        [(v >> 16) as u8, (v >> 8) as u8, v as u8]
    }
}

/// A gradient with soft circles: an abstract picture unique to the prompt and seed.
fn paint(width: u32, height: u32, rng: &mut SplitMix) -> RgbaImage {
    let (a, b) = (rng.colour(), rng.colour());
    let mut img = RgbaImage::from_fn(width, height, |x, y| {
        let t = (x + y) as f32 / (width + height).max(1) as f32;
        let mix = |i: usize| (a[i] as f32 * (1.0 - t) + b[i] as f32 * t) as u8;
        Rgba([mix(0), mix(1), mix(2), 255])
    });
    for _ in 0..(3 + rng.below(6)) {
        let (cx, cy) = (rng.below(width) as i64, rng.below(height) as i64);
        let r = (4 + rng.below(width.min(height) / 3 + 1)) as i64;
        let c = rng.colour();
        let (x0, x1) = ((cx - r).max(0), (cx + r).min(width as i64 - 1));
        let (y0, y1) = ((cy - r).max(0), (cy + r).min(height as i64 - 1));
        for y in y0..=y1 {
            for x in x0..=x1 {
                let d2 = (x - cx).pow(2) + (y - cy).pow(2);
                if d2 <= r * r {
                    let p = img.get_pixel_mut(x as u32, y as u32);
                    for (channel, add) in p.0.iter_mut().zip(c) {
                        *channel = ((*channel as u16 + add as u16) / 2) as u8;
                    }
                }
            }
        }
    }
    img
}

fn transform(kind: GenerationKind, input: RgbaImage, rng: &mut SplitMix) -> RgbaImage {
    match kind {
        GenerationKind::Upscale => {
            let (w, h) = input.dimensions();
            let (w2, h2) = ((w * 2).min(4096), (h * 2).min(4096));
            image::imageops::resize(&input, w2, h2, FilterType::Lanczos3)
        }
        GenerationKind::BackgroundRemoval => {
            let bg = *input.get_pixel(0, 0);
            let mut out = input;
            for p in out.pixels_mut() {
                let dist: i32 = (0..3).map(|i| (p.0[i] as i32 - bg.0[i] as i32).abs()).sum();
                if dist < 60 {
                    p.0[3] = 0;
                }
            }
            out
        }
        GenerationKind::Variation | GenerationKind::StyleTransfer => {
            let tint = rng.colour();
            let levels = if kind == GenerationKind::StyleTransfer {
                4
            } else {
                16
            };
            let mut out = input;
            for p in out.pixels_mut() {
                for (channel, t) in p.0.iter_mut().zip(tint) {
                    let v = (*channel as u32 * levels / 256) * (255 / (levels - 1).max(1));
                    *channel = ((v.min(255) + t as u32) / 2) as u8;
                }
            }
            out
        }
        GenerationKind::CharacterGeneration | GenerationKind::Logo => input,
    }
}

/// Sends the request `make` builds (again for each try: a multipart body cannot be reused)
/// and returns the JSON answer. 429 (after its `retry-after`) and 5xx are tried three times,
/// with `retry_delay` doubling; a time-out or transport failure is retryable at once; other
/// answers are permanent, with the `error.message` of the answer (OpenAI's and Google's shape).
async fn send_retrying(
    make: impl Fn() -> Result<reqwest::RequestBuilder, ProviderError>,
    retry_delay: Duration,
    what: &str,
) -> Result<Value, ProviderError> {
    let mut last = String::new();
    let mut wait = None;
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(wait.unwrap_or(retry_delay * 2u32.pow(attempt - 1))).await;
        }
        let resp = make()?.send().await.map_err(|e| transport(what, e))?;
        let status = resp.status();
        wait = retry_after(resp.headers());
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(json);
        }
        let message = json["error"]["message"].as_str().unwrap_or("no message");
        last = format!("{what} answered {status}: {message}");
        if !retryable_status(status) {
            return Err(ProviderError::Permanent(last));
        }
    }
    Err(ProviderError::Retryable(last))
}

// ---- openai -----------------------------------------------------------------------------

/// An OpenAI-compatible images API with `Authorization: Bearer`:
/// - CHARACTER_GENERATION and LOGO: `POST {base}/v1/images/generations` with
///   `{model, prompt, n, size, quality}` (JSON);
/// - STYLE_TRANSFER and VARIATION: `POST {base}/v1/images/edits`, multipart with the input
///   images (`image[]` for `gpt-image-*`, one `image` for `dall-e-2`), an optional `mask`, and
///   `prompt`, `model`, `n`, `size`, `quality`.
///
/// Answers are `{"data": [{"b64_json": ...} | {"url": ...}]}`. Sizes are mapped to what the
/// model accepts ([`openai_size`]); the style hint and negative prompt are written into the
/// prompt (the API has no fields for them); steps, guidance and sampler have no equivalent.
/// 429 (after its `retry-after`) and 5xx are tried three times; a time-out is retryable at
/// once (the job moves on to its next provider); other 4xx are permanent.
pub struct OpenAi {
    client: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    model: String,
    models: Vec<String>,
    pub retry_delay: Duration,
}

/// The sizes a model accepts: `gpt-image-*` 1024×1024, 1536×1024, 1024×1536; `dall-e-3`
/// 1024×1024, 1792×1024, 1024×1792 (each the one closest to the requested aspect ratio);
/// `dall-e-2` a square of 256, 512 or 1024 (the smallest at least the requested longer
/// side); any other (OpenAI-compatible) model the requested size as it is.
pub fn openai_size(model: &str, width: u32, height: u32) -> String {
    let nearest = |sizes: &[(u32, u32)]| {
        let want = (f64::from(width.max(1)) / f64::from(height.max(1))).ln();
        let (w, h) = sizes
            .iter()
            .copied()
            .min_by(|a, b| {
                let d = |s: (u32, u32)| (want - (f64::from(s.0) / f64::from(s.1)).ln()).abs();
                d(*a).total_cmp(&d(*b))
            })
            .expect("sizes");
        format!("{w}x{h}")
    };
    if model.starts_with("gpt-image") {
        nearest(&[(1024, 1024), (1536, 1024), (1024, 1536)])
    } else if model == "dall-e-3" {
        nearest(&[(1024, 1024), (1792, 1024), (1024, 1792)])
    } else if model == "dall-e-2" {
        let side = [256, 512, 1024]
            .into_iter()
            .find(|s| *s >= width.max(height))
            .unwrap_or(1024);
        format!("{side}x{side}")
    } else {
        format!("{width}x{height}")
    }
}

/// The `quality` field for a model: `gpt-image-*` takes `low`/`medium`/`high`/`auto`,
/// `dall-e-3` `hd` (for `high`) or `standard`, `dall-e-2` none; other models get it as it is.
fn openai_quality(model: &str, quality: Option<&str>) -> Option<String> {
    let q = quality?;
    if model == "dall-e-2" {
        None
    } else if model == "dall-e-3" {
        Some(if q == "high" { "hd" } else { "standard" }.into())
    } else {
        Some(q.into())
    }
}

/// Whether a model has the edits endpoint (`dall-e-3` has not).
fn openai_edits(model: &str) -> bool {
    model != "dall-e-3"
}

impl OpenAi {
    pub fn new(base_url: String, api_key: SecretString, model: String, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        OpenAi {
            client,
            base_url,
            api_key,
            models: vec![model.clone()],
            model,
            retry_delay: Duration::from_millis(500),
        }
    }

    /// Lets requests choose among `models` too (the default model stays allowed).
    pub fn with_models(mut self, models: Vec<String>) -> Self {
        for m in models {
            if !self.models.contains(&m) {
                self.models.push(m);
            }
        }
        self
    }

    /// Sends the request `make` builds (again for each try) and returns the JSON answer.
    async fn call(
        &self,
        make: impl Fn() -> Result<reqwest::RequestBuilder, ProviderError>,
    ) -> Result<Value, ProviderError> {
        send_retrying(
            || Ok(make()?.bearer_auth(self.api_key.expose_secret())),
            self.retry_delay,
            "images API",
        )
        .await
    }

    /// The multipart form of an edit.
    fn edit_form(
        &self,
        req: &RenderRequest,
        model: &str,
        prompt: &str,
        n: u32,
    ) -> Result<reqwest::multipart::Form, ProviderError> {
        use reqwest::multipart::{Form, Part};
        let part = |bytes: &[u8], name: String| {
            let (mime, _) = image_type(bytes);
            Part::bytes(bytes.to_vec())
                .file_name(name)
                .mime_str(mime)
                .map_err(|e| ProviderError::Permanent(e.to_string()))
        };
        let mut form = Form::new()
            .text("model", model.to_string())
            .text("prompt", prompt.to_string())
            .text("n", n.to_string())
            .text("size", openai_size(model, req.width, req.height));
        if model == "dall-e-2" {
            let first = req
                .inputs
                .first()
                .ok_or_else(|| ProviderError::Permanent("this kind needs an input image".into()))?;
            form = form
                .part("image", part(first, "input.png".into())?)
                .text("response_format", "b64_json");
        } else {
            for (i, bytes) in req.inputs.iter().enumerate() {
                let (_, ext) = image_type(bytes);
                form = form.part("image[]", part(bytes, format!("input-{i}.{ext}"))?);
            }
        }
        if let Some(mask) = &req.mask {
            form = form.part("mask", part(mask, "mask.png".into())?);
        }
        if let Some(q) = openai_quality(model, req.quality.as_deref()) {
            form = form.text("quality", q);
        }
        Ok(form)
    }

    /// The generations body of a request.
    fn generation_body(&self, req: &RenderRequest, model: &str, prompt: &str, n: u32) -> Value {
        let mut body = json!({
            "model": model,
            "prompt": prompt,
            "n": n,
            "size": openai_size(model, req.width, req.height),
        });
        if let Some(q) = openai_quality(model, req.quality.as_deref()) {
            body["quality"] = json!(q);
        }
        if model.starts_with("dall-e") {
            body["response_format"] = json!("b64_json");
        } else if model.starts_with("gpt-image") {
            body["output_format"] = json!("png");
        }
        body
    }

    async fn images(&self, answer: &Value) -> Result<Vec<Rendered>, ProviderError> {
        let data = answer["data"]
            .as_array()
            .ok_or_else(|| ProviderError::Retryable("images API answer has no data".into()))?;
        let mut out = Vec::new();
        for item in data {
            if let Some(b64) = item["b64_json"].as_str() {
                let bytes = STANDARD
                    .decode(b64)
                    .map_err(|e| ProviderError::Retryable(format!("bad base64 image: {e}")))?;
                out.push(to_rendered(&bytes)?);
            } else if let Some(url) = item["url"].as_str() {
                out.push(fetch_image(&self.client, url).await?);
            } else {
                return Err(ProviderError::Retryable(
                    "image without b64_json or url".into(),
                ));
            }
        }
        Ok(out)
    }
}

impl ImageProvider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    fn models(&self) -> Vec<String> {
        self.models.clone()
    }

    fn model_for(&self, kind: GenerationKind) -> Option<String> {
        std::iter::once(&self.model)
            .chain(&self.models)
            .find(|m| self.offers(kind, m))
            .cloned()
    }

    fn offers(&self, kind: GenerationKind, model: &str) -> bool {
        match kind {
            GenerationKind::CharacterGeneration | GenerationKind::Logo => true,
            GenerationKind::StyleTransfer | GenerationKind::Variation => openai_edits(model),
            GenerationKind::Upscale | GenerationKind::BackgroundRemoval => false,
        }
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move {
            let model = req.model.clone().unwrap_or_else(|| self.model.clone());
            if !self.offers(req.kind, &model) {
                return Err(ProviderError::Permanent(format!(
                    "the openai provider does not offer {} with {model}",
                    req.kind.as_str()
                )));
            }
            let edit = req.kind.needs_input();
            let mut prompt = req.prompt_with_hints();
            match req.kind {
                GenerationKind::StyleTransfer => {
                    prompt = format!("Redraw this image in this style: {prompt}");
                }
                GenerationKind::Variation => {
                    prompt = format!(
                        "A variation of this image: same subject and composition, new details. {prompt}"
                    )
                    .trim_end()
                    .to_string();
                }
                _ => {}
            }
            // dall-e-3 makes one image per call.
            let (calls, n) = if model == "dall-e-3" {
                (req.count, 1)
            } else {
                (1, req.count)
            };
            let mut out = Vec::new();
            for _ in 0..calls {
                let answer = if edit {
                    let url = format!("{}/v1/images/edits", self.base_url);
                    self.call(|| {
                        Ok(self
                            .client
                            .post(&url)
                            .multipart(self.edit_form(req, &model, &prompt, n)?))
                    })
                    .await?
                } else {
                    let url = format!("{}/v1/images/generations", self.base_url);
                    let body = self.generation_body(req, &model, &prompt, n);
                    self.call(|| Ok(self.client.post(&url).json(&body))).await?
                };
                out.extend(self.images(&answer).await?);
            }
            if out.is_empty() {
                return Err(ProviderError::Retryable(
                    "images API returned no image".into(),
                ));
            }
            Ok(out)
        })
    }
}

// ---- gemini -----------------------------------------------------------------------------

/// Google's Gemini API image generation (seed 000): `POST
/// {base}/v1beta/models/{model}:generateContent` with `x-goog-api-key`, the prompt as a text
/// part and input images as `inlineData` parts, `generationConfig.responseModalities`
/// `["TEXT", "IMAGE"]` and `imageConfig.aspectRatio` (the supported ratio closest to the
/// requested size, [`gemini_aspect_ratio`]). One image per call (`outputCount` calls, the seed
/// counted up). The images come back as `inlineData` parts. Renders CHARACTER_GENERATION, LOGO,
/// STYLE_TRANSFER and VARIATION. A blocked prompt (`promptFeedback.blockReason`, or a
/// candidate that finished for safety) is permanent; 429 `RESOURCE_EXHAUSTED` and 5xx are
/// retried as for OpenAI.
pub struct Gemini {
    client: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    model: String,
    models: Vec<String>,
    pub retry_delay: Duration,
}

/// The aspect ratios Gemini's image models take.
const GEMINI_RATIOS: [(u32, u32); 10] = [
    (1, 1),
    (2, 3),
    (3, 2),
    (3, 4),
    (4, 3),
    (4, 5),
    (5, 4),
    (9, 16),
    (16, 9),
    (21, 9),
];

/// The supported aspect ratio closest to `width`×`height`, e.g. `16:9`.
pub fn gemini_aspect_ratio(width: u32, height: u32) -> String {
    let want = (f64::from(width.max(1)) / f64::from(height.max(1))).ln();
    let d = |(w, h): (u32, u32)| (want - (f64::from(w) / f64::from(h)).ln()).abs();
    let (w, h) = GEMINI_RATIOS
        .into_iter()
        .min_by(|a, b| d(*a).total_cmp(&d(*b)))
        .expect("ratios");
    format!("{w}:{h}")
}

impl Gemini {
    pub fn new(base_url: String, api_key: SecretString, model: String, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Gemini {
            client,
            base_url,
            api_key,
            models: vec![model.clone()],
            model,
            retry_delay: Duration::from_millis(500),
        }
    }

    /// Lets requests choose among `models` too (the default model stays allowed).
    pub fn with_models(mut self, models: Vec<String>) -> Self {
        for m in models {
            if !self.models.contains(&m) {
                self.models.push(m);
            }
        }
        self
    }
}

/// The `generateContent` body of one image of `req`.
pub fn gemini_body(req: &RenderRequest, index: u32) -> Value {
    let mut prompt = req.prompt_with_hints();
    match req.kind {
        GenerationKind::StyleTransfer => {
            prompt = format!("Redraw this image in this style: {prompt}");
        }
        GenerationKind::Variation => {
            prompt = format!("Make a variation of this image: same subject and composition, new details. {prompt}")
                .trim_end()
                .to_string();
        }
        _ => {}
    }
    let mut parts = vec![json!({ "text": prompt })];
    for bytes in &req.inputs {
        let (mime, _) = image_type(bytes);
        parts.push(json!({ "inlineData": { "mimeType": mime, "data": STANDARD.encode(bytes) } }));
    }
    json!({
        "contents": [{ "role": "user", "parts": parts }],
        "generationConfig": {
            "responseModalities": ["TEXT", "IMAGE"],
            "seed": (req.seed.wrapping_add(u64::from(index)) % (i32::MAX as u64)),
            "imageConfig": { "aspectRatio": gemini_aspect_ratio(req.width, req.height) },
        },
    })
}

impl ImageProvider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    fn models(&self) -> Vec<String> {
        self.models.clone()
    }

    fn model_for(&self, kind: GenerationKind) -> Option<String> {
        self.offers(kind, &self.model).then(|| self.model.clone())
    }

    fn offers(&self, kind: GenerationKind, _model: &str) -> bool {
        !matches!(
            kind,
            GenerationKind::Upscale | GenerationKind::BackgroundRemoval
        )
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move {
            let model = req.model.clone().unwrap_or_else(|| self.model.clone());
            if !self.offers(req.kind, &model) {
                return Err(ProviderError::Permanent(format!(
                    "the gemini provider does not offer {}",
                    req.kind.as_str()
                )));
            }
            let url = format!("{}/v1beta/models/{model}:generateContent", self.base_url);
            let mut out = Vec::new();
            for index in 0..req.count.max(1) {
                let body = gemini_body(req, index);
                let answer = send_retrying(
                    || {
                        Ok(self
                            .client
                            .post(&url)
                            .header("x-goog-api-key", self.api_key.expose_secret())
                            .json(&body))
                    },
                    self.retry_delay,
                    "Gemini API",
                )
                .await?;
                if let Some(reason) = answer["promptFeedback"]["blockReason"].as_str() {
                    return Err(ProviderError::Permanent(format!(
                        "Gemini blocked the prompt: {reason}"
                    )));
                }
                let candidate = &answer["candidates"][0];
                let image = candidate["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|p| {
                        let inline = p.get("inlineData").or(p.get("inline_data"))?;
                        inline["data"].as_str()
                    });
                match image {
                    Some(b64) => {
                        let bytes = STANDARD.decode(b64).map_err(|e| {
                            ProviderError::Retryable(format!("bad base64 image: {e}"))
                        })?;
                        out.push(to_rendered(&bytes)?);
                    }
                    None => {
                        let reason = candidate["finishReason"].as_str().unwrap_or("none");
                        let message = format!("Gemini answered no image (finish reason {reason})");
                        return Err(
                            if reason.contains("SAFETY")
                                || reason.contains("PROHIBITED")
                                || reason == "BLOCKLIST"
                            {
                                ProviderError::Permanent(message)
                            } else {
                                ProviderError::Retryable(message)
                            },
                        );
                    }
                }
            }
            Ok(out)
        })
    }
}

// ---- replicate --------------------------------------------------------------------------

/// A Replicate-style predictions API with `Authorization: Bearer`:
/// - create: `POST {base}/v1/models/{owner}/{name}/predictions` with `{"input": ...}` for a
///   model named `owner/name`, or `POST {base}/v1/predictions` with
///   `{"version": ..., "input": ...}` for `owner/name:version`;
/// - poll: `GET` the prediction's `urls.get` (else `{base}/v1/predictions/{id}`) every
///   `poll_interval` until `succeeded`, `failed` or `canceled`;
/// - cancel: `POST` its `urls.cancel` (else `{base}/v1/predictions/{id}/cancel`) when the job is
///   cancelled, released or lost while the prediction runs (the render is dropped), and when
///   it outlives `timeout`.
///
/// Input images go as `data:` URLs. Inputs per kind: UPSCALE `{image, scale: 2}`,
/// BACKGROUND_REMOVAL `{image}`, others the SDXL-style `{prompt, negative_prompt, width,
/// height, num_outputs, seed, num_inference_steps, guidance_scale, scheduler}` (with `image`
/// for STYLE_TRANSFER and VARIATION). `output` (a URL, a list of URLs, or `data:` URLs) is
/// downloaded. 429 and 5xx on create are tried three times; `failed` is permanent (the
/// model refused the input); `canceled` by someone else and the time-out are retryable.
pub struct Replicate {
    client: reqwest::Client,
    base_url: String,
    api_token: SecretString,
    /// `(kind, owner/name[:version])`, the first of a kind its default.
    models: Vec<(GenerationKind, String)>,
    timeout: Duration,
    pub poll_interval: Duration,
    pub retry_delay: Duration,
}

/// Cancels a running prediction when dropped while armed: a render stopped by the worker
/// (cancel, release, lost lease) is a dropped future, and the prediction must not run on.
struct CancelOnDrop {
    client: reqwest::Client,
    url: String,
    token: SecretString,
    armed: bool,
}

impl CancelOnDrop {
    /// The prediction ended: nothing to cancel.
    fn disarm(mut self) {
        self.armed = false;
    }

    async fn cancel_now(mut self) {
        self.armed = false;
        cancel_prediction(&self.client, &self.url, &self.token).await;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (client, url, token) = (self.client.clone(), self.url.clone(), self.token.clone());
            rt.spawn(async move { cancel_prediction(&client, &url, &token).await });
        }
    }
}

async fn cancel_prediction(client: &reqwest::Client, url: &str, token: &SecretString) {
    match client
        .post(url)
        .bearer_auth(token.expose_secret())
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => tracing::info!(url, "prediction cancelled"),
        Ok(r) => tracing::warn!(url, status = %r.status(), "cancelling a prediction failed"),
        Err(e) => tracing::warn!(url, error = %e, "cancelling a prediction failed"),
    }
}

/// The `input` of a prediction for `req`.
pub fn replicate_input(req: &RenderRequest) -> Value {
    let image = || {
        req.inputs.first().map(|bytes| {
            let (mime, _) = image_type(bytes);
            format!("data:{mime};base64,{}", STANDARD.encode(bytes))
        })
    };
    match req.kind {
        GenerationKind::Upscale => json!({ "image": image(), "scale": 2 }),
        GenerationKind::BackgroundRemoval => json!({ "image": image() }),
        _ => {
            let mut prompt = req.prompt.trim().to_string();
            if let Some(style) = &req.style_type {
                prompt.push_str(&format!(
                    ", {} style",
                    style.to_lowercase().replace('_', " ")
                ));
            }
            let mut input = json!({
                "prompt": prompt,
                "width": req.width,
                "height": req.height,
                "num_outputs": req.count,
                "seed": req.seed,
            });
            if !req.negative_prompt.is_empty() {
                input["negative_prompt"] = json!(req.negative_prompt);
            }
            if let Some(steps) = req.steps {
                input["num_inference_steps"] = json!(steps);
            }
            if let Some(cfg) = req.cfg_scale {
                input["guidance_scale"] = json!(cfg);
            }
            if let Some(sampler) = &req.sampler {
                input["scheduler"] = json!(sampler);
            }
            if let Some(image) = image() {
                input["image"] = json!(image);
            }
            input
        }
    }
}

impl Replicate {
    pub fn new(
        base_url: String,
        api_token: SecretString,
        models: Vec<(GenerationKind, String)>,
        timeout: Duration,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("HTTP client");
        Replicate {
            client,
            base_url,
            api_token,
            models,
            timeout,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_millis(500),
        }
    }

    /// Creates the prediction (429 and 5xx tried three times).
    async fn create(&self, model: &str, input: Value) -> Result<Value, ProviderError> {
        let (url, body) = match model.split_once(':') {
            Some((_, version)) => (
                format!("{}/v1/predictions", self.base_url),
                json!({ "version": version, "input": input }),
            ),
            None => (
                format!("{}/v1/models/{model}/predictions", self.base_url),
                json!({ "input": input }),
            ),
        };
        let mut last = String::new();
        let mut wait = None;
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(wait.unwrap_or(self.retry_delay * 2u32.pow(attempt - 1))).await;
            }
            let resp = self
                .client
                .post(&url)
                .bearer_auth(self.api_token.expose_secret())
                .json(&body)
                .send()
                .await
                .map_err(|e| transport("the predictions API", e))?;
            let status = resp.status();
            wait = retry_after(resp.headers());
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let detail = json["detail"]
                .as_str()
                .or(json["title"].as_str())
                .unwrap_or("no detail");
            last = format!("predictions API answered {status}: {detail}");
            if !retryable_status(status) {
                return Err(ProviderError::Permanent(last));
            }
        }
        Err(ProviderError::Retryable(last))
    }

    /// The prediction as it is now; `None` for a transient failure (polled again).
    async fn get(&self, url: &str) -> Result<Option<Value>, ProviderError> {
        let resp = match self
            .client
            .get(url)
            .bearer_auth(self.api_token.expose_secret())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(url, error = %e, "polling a prediction failed");
                return Ok(None);
            }
        };
        let status = resp.status();
        if retryable_status(status) {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ProviderError::Permanent(format!(
                "polling the prediction answered {status}"
            )));
        }
        Ok(resp.json().await.ok())
    }
}

impl ImageProvider for Replicate {
    fn name(&self) -> &'static str {
        "replicate"
    }

    fn model(&self) -> Option<String> {
        self.models.first().map(|(_, m)| m.clone())
    }

    fn models(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, m) in &self.models {
            if !out.contains(m) {
                out.push(m.clone());
            }
        }
        out
    }

    fn model_for(&self, kind: GenerationKind) -> Option<String> {
        self.models
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, m)| m.clone())
    }

    fn offers(&self, kind: GenerationKind, model: &str) -> bool {
        self.models.iter().any(|(k, m)| *k == kind && m == model)
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move {
            let model = req
                .model
                .clone()
                .or_else(|| self.model_for(req.kind))
                .ok_or_else(|| {
                    ProviderError::Permanent(format!(
                        "the replicate provider has no model for {}",
                        req.kind.as_str()
                    ))
                })?;
            if req.kind.needs_input() && req.inputs.is_empty() {
                return Err(ProviderError::Permanent(
                    "this kind needs an input image".into(),
                ));
            }
            let started = std::time::Instant::now();
            let mut prediction = self.create(&model, replicate_input(req)).await?;
            let id = prediction["id"].as_str().unwrap_or_default().to_string();
            let get_url = prediction["urls"]["get"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{}/v1/predictions/{id}", self.base_url));
            let cancel_url = prediction["urls"]["cancel"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{}/v1/predictions/{id}/cancel", self.base_url));
            let guard = CancelOnDrop {
                client: self.client.clone(),
                url: cancel_url,
                token: self.api_token.clone(),
                armed: true,
            };
            loop {
                match prediction["status"].as_str().unwrap_or("starting") {
                    "succeeded" => break,
                    "failed" => {
                        guard.disarm();
                        let error = prediction["error"].as_str().unwrap_or("no error given");
                        return Err(ProviderError::Permanent(format!(
                            "prediction {id} failed: {error}"
                        )));
                    }
                    "canceled" => {
                        guard.disarm();
                        return Err(ProviderError::Retryable(format!(
                            "prediction {id} was canceled"
                        )));
                    }
                    _ => {}
                }
                if started.elapsed() >= self.timeout {
                    guard.cancel_now().await;
                    return Err(ProviderError::Retryable(format!(
                        "prediction {id} did not finish in {:?}",
                        self.timeout
                    )));
                }
                tokio::time::sleep(self.poll_interval).await;
                if let Some(p) = self.get(&get_url).await? {
                    prediction = p;
                }
            }
            guard.disarm();
            let urls: Vec<String> = match &prediction["output"] {
                Value::String(u) => vec![u.clone()],
                Value::Array(items) => items
                    .iter()
                    .filter_map(|i| i.as_str().map(String::from))
                    .collect(),
                _ => Vec::new(),
            };
            let mut out = Vec::new();
            for url in urls.iter().take(req.count.max(1) as usize) {
                out.push(fetch_image(&self.client, url).await?);
            }
            if out.is_empty() {
                return Err(ProviderError::Retryable(format!(
                    "prediction {id} succeeded without an output"
                )));
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: &str, seed: u64) -> RenderRequest {
        RenderRequest {
            seed,
            count: 2,
            ..RenderRequest::new(GenerationKind::CharacterGeneration, prompt, 64, 48)
        }
    }

    #[tokio::test]
    async fn procedural_is_deterministic_real_png() {
        let p = Procedural {
            delay: Duration::ZERO,
        };
        let a = p.render(&req("a red fox", 7)).await.unwrap();
        let b = p.render(&req("a red fox", 7)).await.unwrap();
        let c = p.render(&req("a red fox", 8)).await.unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].png, b[0].png, "same input, same bytes");
        assert_ne!(a[0].png, c[0].png, "another seed, another picture");
        assert_ne!(a[0].png, a[1].png, "each output differs");
        let decoded = image::load_from_memory(&a[0].png).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (64, 48));
        assert!(a[0].png.starts_with(b"\x89PNG"));
    }

    #[tokio::test]
    async fn procedural_transforms_inputs() {
        let p = Procedural {
            delay: Duration::ZERO,
        };
        let src = p.render(&req("source", 1)).await.unwrap().remove(0);
        let mut up = req("", 1);
        up.kind = GenerationKind::Upscale;
        up.count = 1;
        up.inputs = vec![src.png.clone()];
        let out = p.render(&up).await.unwrap();
        assert_eq!((out[0].width, out[0].height), (128, 96));
        up.inputs.clear();
        assert!(matches!(
            p.render(&up).await,
            Err(ProviderError::Permanent(_))
        ));
    }

    #[test]
    fn sizes_are_mapped_to_what_the_model_accepts() {
        for (model, w, h, want) in [
            ("gpt-image-1", 512, 512, "1024x1024"),
            ("gpt-image-1", 1024, 640, "1536x1024"),
            ("gpt-image-1", 640, 1024, "1024x1536"),
            ("gpt-image-1", 1100, 1000, "1024x1024"),
            ("dall-e-3", 2048, 1024, "1792x1024"),
            ("dall-e-3", 512, 1024, "1024x1792"),
            ("dall-e-2", 64, 64, "256x256"),
            ("dall-e-2", 512, 300, "512x512"),
            ("dall-e-2", 2048, 2048, "1024x1024"),
            ("my-compatible-model", 640, 480, "640x480"),
        ] {
            assert_eq!(openai_size(model, w, h), want, "{model} {w}x{h}");
        }
        assert_eq!(
            openai_quality("dall-e-3", Some("high")).as_deref(),
            Some("hd")
        );
        assert_eq!(openai_quality("dall-e-2", Some("high")), None);
        assert_eq!(
            openai_quality("gpt-image-1", Some("low")).as_deref(),
            Some("low")
        );
    }

    #[test]
    fn gemini_gets_the_closest_aspect_ratio() {
        for (w, h, want) in [
            (512, 512, "1:1"),
            (1024, 576, "16:9"),
            (576, 1024, "9:16"),
            (768, 512, "3:2"),
            (2048, 880, "21:9"),
            (640, 512, "5:4"),
        ] {
            assert_eq!(gemini_aspect_ratio(w, h), want, "{w}x{h}");
        }
        let mut r = RenderRequest::new(GenerationKind::Variation, "", 512, 512);
        r.inputs = vec![vec![0xFF, 0xD8, 0xFF, 0xE0]];
        let body = gemini_body(&r, 0);
        assert_eq!(
            body["contents"][0]["parts"][1]["inlineData"]["mimeType"],
            "image/jpeg"
        );
    }

    #[test]
    fn generation_bodies_carry_model_size_quality_and_hints() {
        let p = OpenAi::new(
            "http://stub".into(),
            SecretString::from("k".to_string()),
            "gpt-image-1".into(),
            Duration::from_secs(1),
        );
        let mut r = RenderRequest::new(GenerationKind::CharacterGeneration, "a fox", 512, 512);
        r.style_type = Some("WATERCOLOR".into());
        r.negative_prompt = "text".into();
        r.quality = Some("high".into());
        let prompt = r.prompt_with_hints();
        assert_eq!(prompt, "a fox. Style: watercolor. Avoid: text");
        let body = p.generation_body(&r, "gpt-image-1", &prompt, 2);
        assert_eq!(
            body,
            json!({ "model": "gpt-image-1", "prompt": prompt, "n": 2, "size": "1024x1024",
                    "quality": "high", "output_format": "png" })
        );
        let body = p.generation_body(&r, "dall-e-3", &prompt, 1);
        assert_eq!(body["quality"], "hd");
        assert_eq!(body["response_format"], "b64_json");
    }

    #[test]
    fn replicate_inputs_per_kind() {
        let png = {
            let mut out = Vec::new();
            RgbaImage::new(2, 2)
                .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
                .unwrap();
            out
        };
        let mut r = RenderRequest::new(GenerationKind::Upscale, "", 64, 64);
        r.inputs = vec![png.clone()];
        let input = replicate_input(&r);
        assert!(
            input["image"]
                .as_str()
                .unwrap()
                .starts_with("data:image/png;base64,")
        );
        assert_eq!(input["scale"], 2);
        r.kind = GenerationKind::BackgroundRemoval;
        assert_eq!(replicate_input(&r).as_object().unwrap().len(), 1);
        let mut g = RenderRequest::new(GenerationKind::Logo, "acme", 512, 768);
        g.steps = Some(20);
        g.cfg_scale = Some(5.5);
        g.sampler = Some("K_EULER".into());
        g.negative_prompt = "blurry".into();
        let input = replicate_input(&g);
        assert_eq!(input["num_inference_steps"], 20);
        assert_eq!(input["guidance_scale"], 5.5);
        assert_eq!(input["scheduler"], "K_EULER");
        assert_eq!(input["negative_prompt"], "blurry");
        assert_eq!(
            (input["width"].as_u64(), input["height"].as_u64()),
            (Some(512), Some(768))
        );
        assert!(input.get("image").is_none());
    }

    #[test]
    fn plans_follow_the_allow_list_and_kind_orders() {
        let openai: Arc<dyn ImageProvider> = Arc::new(
            OpenAi::new(
                "http://stub".into(),
                SecretString::from("k".to_string()),
                "gpt-image-1".into(),
                Duration::from_secs(1),
            )
            .with_models(vec!["dall-e-3".into()]),
        );
        let replicate: Arc<dyn ImageProvider> = Arc::new(Replicate::new(
            "http://stub".into(),
            SecretString::from("k".to_string()),
            vec![(GenerationKind::Upscale, "nightmareai/real-esrgan".into())],
            Duration::from_secs(1),
        ));
        let procedural: Arc<dyn ImageProvider> = Arc::new(Procedural {
            delay: Duration::ZERO,
        });
        let providers = Providers::new(
            vec![procedural, openai, replicate],
            "openai",
            vec![(
                GenerationKind::Upscale,
                vec!["openai".into(), "replicate".into(), "procedural".into()],
            )],
        );
        let names = |steps: Vec<Step>| {
            steps
                .iter()
                .map(|s| format!("{}/{}", s.provider.name(), s.model))
                .collect::<Vec<_>>()
        };
        // The default provider; openai does not upscale, so the order skips it.
        assert_eq!(
            names(providers.plan(GenerationKind::Logo, None, None).unwrap()),
            ["openai/gpt-image-1"]
        );
        assert_eq!(
            names(providers.plan(GenerationKind::Upscale, None, None).unwrap()),
            [
                "replicate/nightmareai/real-esrgan",
                "procedural/procedural-v1"
            ]
        );
        assert_eq!(
            names(
                providers
                    .plan(GenerationKind::Logo, None, Some("dall-e-3"))
                    .unwrap()
            ),
            ["openai/dall-e-3"]
        );
        // dall-e-3 has no edits: a style transfer falls to the default model with edits.
        assert_eq!(
            names(
                providers
                    .plan(GenerationKind::StyleTransfer, Some("openai"), None)
                    .unwrap()
            ),
            ["openai/gpt-image-1"]
        );
        let refused = |p, m, kind| providers.plan(kind, p, m).unwrap_err().field;
        assert_eq!(
            refused(Some("gemini"), None, GenerationKind::Logo),
            "input.provider"
        );
        assert_eq!(
            refused(Some("openai"), None, GenerationKind::Upscale),
            "input.provider"
        );
        assert_eq!(
            refused(Some("openai"), Some("dall-e-2"), GenerationKind::Logo),
            "input.model"
        );
        assert_eq!(
            refused(Some("openai"), Some("dall-e-3"), GenerationKind::Variation),
            "input.model"
        );
        assert_eq!(
            refused(None, Some("nope"), GenerationKind::Logo),
            "input.model"
        );
        assert_eq!(
            providers
                .model_of_price("generate.character.dall_e_3")
                .as_deref(),
            Some("dall-e-3")
        );
        assert_eq!(providers.model_of_price("generate.character"), None);
        assert_eq!(
            model_price_key(GenerationKind::Upscale, "nightmareai/real-esrgan"),
            "generate.upscale.nightmareai_real_esrgan"
        );
    }
}
