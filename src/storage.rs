//! Object storage for media files (uploads, thumbnails, generation outputs).
//!
//! Files go through the `object_store` crate: a local directory (`$EASEL_DATA_DIR/media`) by
//! default, or any S3-compatible bucket (`EASEL_MEDIA_STORE=s3`). `GET /media/<key>` serves
//! the store either way; URLs are `<EASEL_MEDIA_BASE_URL>/<key>`, so a CDN in front of the
//! bucket or of `/media` only changes the base URL.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, PutOptions, PutPayload,
    aws::AmazonS3Builder,
    client::{
        ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest,
        HttpResponse, HttpResponseBody, HttpService,
    },
    local::LocalFileSystem,
    path::Path,
    prefix::PrefixStore,
};
use secrecy::ExposeSecret;

use crate::config::{Config, MediaStoreConfig, S3Config};

/// Stored keys never change content (new content gets a new key), so caches may keep them.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Where media files live and how their URLs are built.
#[derive(Debug, Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    base_url: String,
    /// Remote stores get `Content-Type` and `Cache-Control` with each object, so the bucket
    /// (or a CDN in front of it) can serve files directly.
    remote: bool,
}

impl MediaStore {
    /// A store over any `object_store` backend; `base_url` has no trailing slash.
    pub fn new(store: Arc<dyn ObjectStore>, base_url: &str, remote: bool) -> Self {
        MediaStore {
            store,
            base_url: base_url.trim_end_matches('/').to_string(),
            remote,
        }
    }

    /// The store the configuration names (`EASEL_MEDIA_STORE`).
    pub fn from_config(config: &Config, base_url: &str) -> anyhow::Result<Self> {
        match &config.media_store {
            MediaStoreConfig::Local => Self::local(&config.media_dir(), base_url),
            MediaStoreConfig::S3(s3) => Self::s3(s3, base_url),
        }
    }

    /// A local directory (created when missing).
    pub fn local(dir: &std::path::Path, base_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self::new(Arc::new(fs), base_url, false))
    }

    /// An S3-compatible bucket (AWS, MinIO, R2, ...), signed with the configured keys.
    pub fn s3(s3: &S3Config, base_url: &str) -> anyhow::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&s3.bucket)
            .with_region(&s3.region)
            .with_access_key_id(&s3.access_key_id)
            .with_secret_access_key(s3.secret_access_key.expose_secret())
            .with_http_connector(ReqwestConnector);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let bucket: Arc<dyn ObjectStore> = Arc::new(builder.build()?);
        let store: Arc<dyn ObjectStore> = if s3.prefix.is_empty() {
            bucket
        } else {
            Arc::new(PrefixStore::new(bucket, s3.prefix.trim_end_matches('/')))
        };
        Ok(Self::new(store, base_url, true))
    }

    /// The public URL of a stored key.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.base_url)
    }

    /// Stores bytes under `key` (overwriting).
    pub async fn put(&self, key: &str, bytes: Bytes) -> object_store::Result<()> {
        let mut options = PutOptions::default();
        if self.remote {
            let mut attributes = Attributes::new();
            if let Some(mime) = Self::content_type(key) {
                attributes.insert(Attribute::ContentType, mime.into());
            }
            attributes.insert(Attribute::CacheControl, CACHE_CONTROL.into());
            options.attributes = attributes;
        }
        self.store
            .put_opts(&Path::from(key), PutPayload::from(bytes), options)
            .await?;
        Ok(())
    }

    /// Reads a stored object; `None` when there is no such key.
    pub async fn get(&self, key: &str) -> object_store::Result<Option<Bytes>> {
        match self
            .store
            .get_opts(&Path::from(key), GetOptions::default())
            .await
        {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes stored objects (missing ones are fine).
    pub async fn delete(&self, keys: &[&str]) -> object_store::Result<()> {
        let paths: Vec<object_store::Result<Path>> =
            keys.iter().map(|k| Ok(Path::from(*k))).collect();
        let mut results = self
            .store
            .delete_stream(futures_util::stream::iter(paths).boxed());
        while let Some(r) = results.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The content type of a key, from the extension Easel gives stored files.
    pub fn content_type(key: &str) -> Option<&'static str> {
        match key.rsplit_once('.')?.1 {
            "png" => Some("image/png"),
            "jpg" | "jpeg" => Some("image/jpeg"),
            "webp" => Some("image/webp"),
            _ => None,
        }
    }

    /// Whether `key` is a well-formed media key (no traversal, no odd characters).
    pub fn valid_key(key: &str) -> bool {
        !key.is_empty()
            && key.len() <= 200
            && key
                .split('/')
                .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.'))
    }
}

/// `object_store`'s HTTP transport over the crate's one `reqwest` client (rustls with ring),
/// instead of `object_store`'s own `reqwest` feature, which would add a second `reqwest` major
/// version and the `aws-lc-rs` C build to every compile.
#[derive(Debug)]
struct ReqwestConnector;

impl HttpConnector for ReqwestConnector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| object_store::Error::Generic {
                store: "S3",
                source: Box::new(e),
            })?;
        Ok(HttpClient::new(ReqwestService(client)))
    }
}

#[derive(Debug)]
struct ReqwestService(reqwest::Client);

#[async_trait::async_trait]
impl HttpService for ReqwestService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::new(HttpErrorKind::Request, e))?;
        let mut request = reqwest::Request::new(parts.method, url);
        *request.headers_mut() = parts.headers;
        *request.body_mut() = Some(reqwest::Body::wrap(body));
        let response = self.0.execute(request).await.map_err(http_error)?;
        let (parts, body) = ::http::Response::<reqwest::Body>::from(response).into_parts();
        let body = HttpResponseBody::new(body.map_err(http_error));
        Ok(HttpResponse::from_parts(parts, body))
    }
}

/// The error kinds decide what `object_store` retries: connect errors always, timeouts and
/// interrupted connections for idempotent requests, nothing else (as its own transport does).
fn http_error(e: reqwest::Error) -> HttpError {
    let mut kind = if e.is_timeout() {
        HttpErrorKind::Timeout
    } else if e.is_connect() {
        HttpErrorKind::Connect
    } else if e.is_decode() {
        HttpErrorKind::Decode
    } else {
        HttpErrorKind::Unknown
    };
    let mut source = std::error::Error::source(&e);
    while let (HttpErrorKind::Unknown, Some(s)) = (kind, source) {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                TimedOut => kind = HttpErrorKind::Timeout,
                ConnectionAborted | ConnectionReset | BrokenPipe | UnexpectedEof => {
                    kind = HttpErrorKind::Interrupted
                }
                _ => {}
            }
        }
        source = s.source();
    }
    HttpError::new(kind, e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(MediaStore::valid_key("images/0190-abc.png"));
        for bad in [
            "",
            "../etc/passwd",
            "a//b",
            "images/./x.png",
            "x y.png",
            "a/%2e%2e",
        ] {
            assert!(!MediaStore::valid_key(bad), "{bad}");
        }
        assert_eq!(MediaStore::content_type("a/b.webp"), Some("image/webp"));
        assert_eq!(MediaStore::content_type("a/b"), None);
    }

    #[tokio::test]
    async fn local_round_trip() {
        let dir = std::env::temp_dir().join(format!("easel-media-{}", uuid::Uuid::now_v7()));
        let store = MediaStore::local(&dir, "https://cdn.example/media/").unwrap();
        store
            .put("images/a.png", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        assert_eq!(
            store.get("images/a.png").await.unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            store.url("images/a.png"),
            "https://cdn.example/media/images/a.png"
        );
        store
            .delete(&["images/a.png", "images/none.png"])
            .await
            .unwrap();
        assert!(store.get("images/a.png").await.unwrap().is_none());
        let _ = std::fs::remove_dir_all(dir);
    }
}
