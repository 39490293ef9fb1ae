//! Image providers behind one trait: `procedural` (local, deterministic PNGs) and `openai`
//! (an OpenAI-compatible images HTTP API).

use std::{io::Cursor, time::Duration};

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
}

/// One rendered image, PNG-encoded.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub png: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

/// Why rendering failed.
#[derive(Debug, Clone)]
pub enum ProviderError {
    /// Worth another attempt (time-outs, 429, 5xx).
    Retryable(String),
    /// Will fail again (bad input, refused prompt, unsupported kind).
    Permanent(String),
}

/// Renders images for jobs.
pub trait ImageProvider: Send + Sync + 'static {
    /// Stored on the job (`provider`).
    fn name(&self) -> &'static str;
    /// Stored on the job (`model`).
    fn model(&self) -> Option<String>;
    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>>;
}

/// The provider `EASEL_PROVIDER` names.
pub fn from_config(config: &crate::config::Config) -> std::sync::Arc<dyn ImageProvider> {
    match &config.provider {
        crate::config::ProviderConfig::Procedural => std::sync::Arc::new(Procedural {
            delay: config.procedural_delay,
        }),
        crate::config::ProviderConfig::OpenAi {
            base_url,
            api_key,
            model,
            timeout,
        } => std::sync::Arc::new(OpenAi::new(
            base_url.clone(),
            api_key.clone(),
            model.clone(),
            *timeout,
        )),
    }
}

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

// ---- openai -----------------------------------------------------------------------------

/// An OpenAI-compatible images API: `POST {base}/v1/images/generations` with
/// `{model, prompt, n, size}` and `Authorization: Bearer`; answers
/// `{"data": [{"b64_json": ...} | {"url": ...}]}`. 429 and 5xx are retried with backoff.
/// Kinds that transform an input image are not offered by this provider (they fail cleanly
/// and are refunded).
pub struct OpenAi {
    client: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    model: String,
    pub retry_delay: Duration,
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
            model,
            retry_delay: Duration::from_millis(500),
        }
    }

    async fn call(&self, body: &Value) -> Result<Value, ProviderError> {
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * 2u32.pow(attempt - 1)).await;
            }
            let resp = self
                .client
                .post(format!("{}/v1/images/generations", self.base_url))
                .bearer_auth(self.api_key.expose_secret())
                .json(body)
                .send()
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    last = format!("images API unreachable: {e}");
                    continue;
                }
            };
            let status = resp.status();
            let json: Value = resp.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(json);
            }
            let message = json["error"]["message"]
                .as_str()
                .unwrap_or("no message")
                .to_string();
            last = format!("images API answered {status}: {message}");
            if !(status.as_u16() == 429 || status.is_server_error()) {
                return Err(ProviderError::Permanent(last));
            }
        }
        Err(ProviderError::Retryable(last))
    }
}

impl ImageProvider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    fn render<'a>(
        &'a self,
        req: &'a RenderRequest,
    ) -> BoxFuture<'a, Result<Vec<Rendered>, ProviderError>> {
        Box::pin(async move {
            if req.kind.needs_input() {
                return Err(ProviderError::Permanent(format!(
                    "the openai provider does not offer {}",
                    req.kind.as_str()
                )));
            }
            let mut prompt = req.prompt.clone();
            if req.kind == GenerationKind::Logo {
                prompt = format!("A clean vector logo: {prompt}");
            }
            if !req.negative_prompt.is_empty() {
                prompt.push_str(&format!(". Avoid: {}", req.negative_prompt));
            }
            let body = json!({ "model": self.model, "prompt": prompt, "n": req.count, "size": format!("{}x{}", req.width, req.height) });
            let answer = self.call(&body).await?;
            let data = answer["data"]
                .as_array()
                .ok_or_else(|| ProviderError::Retryable("images API answer has no data".into()))?;
            let mut out = Vec::new();
            for item in data {
                let bytes = if let Some(b64) = item["b64_json"].as_str() {
                    STANDARD
                        .decode(b64)
                        .map_err(|e| ProviderError::Retryable(format!("bad base64 image: {e}")))?
                } else if let Some(url) = item["url"].as_str() {
                    let resp =
                        self.client.get(url).send().await.map_err(|e| {
                            ProviderError::Retryable(format!("fetching image: {e}"))
                        })?;
                    if !resp.status().is_success() {
                        return Err(ProviderError::Retryable(format!(
                            "fetching image answered {}",
                            resp.status()
                        )));
                    }
                    resp.bytes()
                        .await
                        .map_err(|e| ProviderError::Retryable(e.to_string()))?
                        .to_vec()
                } else {
                    return Err(ProviderError::Retryable(
                        "image without b64_json or url".into(),
                    ));
                };
                // Re-encode as PNG after checking it decodes: the gallery stores real PNGs.
                let img = image::load_from_memory(&bytes)
                    .map_err(|e| ProviderError::Retryable(format!("undecodable image: {e}")))?;
                let mut png = Vec::new();
                img.write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
                    .map_err(|e| ProviderError::Permanent(e.to_string()))?;
                out.push(Rendered {
                    png,
                    width: img.width(),
                    height: img.height(),
                });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn req(prompt: &str, seed: u64) -> RenderRequest {
        RenderRequest {
            kind: GenerationKind::CharacterGeneration,
            prompt: prompt.into(),
            negative_prompt: String::new(),
            width: 64,
            height: 48,
            seed,
            count: 2,
            inputs: vec![],
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
}
