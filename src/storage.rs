//! Object storage for media files (uploads, thumbnails, generation outputs).
//!
//! Files go through the `object_store` crate: a local directory (`$EASEL_DATA_DIR/media`) by
//! default, served by `GET /media/<key>`; any other `ObjectStore` (S3-compatible, ...) can be
//! plugged in with [`MediaStore::new`]. URLs are `<EASEL_MEDIA_BASE_URL>/<key>`, so a CDN in
//! front of the bucket or of `/media` only changes the base URL.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::{
    GetOptions, ObjectStore, PutOptions, PutPayload, local::LocalFileSystem, path::Path,
};

/// Where media files live and how their URLs are built.
#[derive(Debug, Clone)]
pub struct MediaStore {
    store: Arc<dyn ObjectStore>,
    base_url: String,
}

impl MediaStore {
    /// A store over any `object_store` backend; `base_url` has no trailing slash.
    pub fn new(store: Arc<dyn ObjectStore>, base_url: &str) -> Self {
        MediaStore {
            store,
            base_url: base_url.trim_end_matches('/').to_string(),
        }
    }

    /// A local directory (created when missing).
    pub fn local(dir: &std::path::Path, base_url: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(Self::new(Arc::new(fs), base_url))
    }

    /// The public URL of a stored key.
    pub fn url(&self, key: &str) -> String {
        format!("{}/{key}", self.base_url)
    }

    /// Stores bytes under `key` (overwriting).
    pub async fn put(&self, key: &str, bytes: Bytes) -> object_store::Result<()> {
        self.store
            .put_opts(
                &Path::from(key),
                PutPayload::from(bytes),
                PutOptions::default(),
            )
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
