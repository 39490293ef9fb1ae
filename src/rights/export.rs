//! Data exports (`requestDataExport`): a zip of every row Easel holds about a user
//! (`data.json`) and their media files (`media/<key>`), built by a background loop of each
//! serving process, stored in the media store under `exports/<id>/<random>.zip` and
//! downloadable from `GET /exports/<id>?token=<token>` until `EASEL_EXPORT_TTL_HOURS` after it
//! was ready. A claim is taken with `FOR UPDATE SKIP LOCKED`; a running export whose claim is
//! older than [`ABANDONED_AFTER_MINUTES`] (its process died) is claimed again; an export is
//! tried [`MAX_ATTEMPTS`] times before it stays `failed`.

use std::io::Write;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use diesel::{
    prelude::*,
    sql_types::{BigInt, Jsonb, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::{Map, Value};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::{
    AppState,
    accounts::service as accounts,
    db,
    db::schema::data_exports,
    error::{AppError, AppResult},
    ratelimit,
};

/// Most exports one user may request a day.
pub const MAX_PER_DAY: i64 = 3;
/// How many times an export is tried before it stays `failed`.
pub const MAX_ATTEMPTS: i32 = 3;
/// A running export claimed longer ago than this was abandoned by its process.
pub const ABANDONED_AFTER_MINUTES: i32 = 10;

/// A row of `data_exports`.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = data_exports)]
pub struct ExportRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub status: String,
    pub download_token: String,
    pub storage_key: Option<String>,
    pub byte_size: Option<i64>,
    pub error: Option<String>,
    pub attempts: i32,
    pub claimed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl ExportRow {
    /// The download URL of a ready, unexpired export.
    pub fn download_url(&self, public_url: &str) -> Option<String> {
        (self.status == "ready" && self.expires_at.is_some_and(|e| e > Utc::now())).then(|| {
            format!(
                "{}/exports/{}?token={}",
                public_url.trim_end_matches('/'),
                self.id,
                self.download_token
            )
        })
    }
}

/// Requests an export of the viewer's data: the pending or running one when there is one,
/// else a new pending export (`RATE_LIMITED` past [`MAX_PER_DAY`] a day).
pub async fn request(state: &AppState, user: Uuid) -> AppResult<ExportRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        if let Some(open) = open_export(conn, user).await? {
            return Ok(open);
        }
        ratelimit::hit(
            conn,
            &format!("export:{user}"),
            std::time::Duration::from_secs(86_400),
            MAX_PER_DAY,
        )
        .await?;
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let inserted = diesel::insert_into(data_exports::table)
            .values((
                data_exports::id.eq(Uuid::now_v7()),
                data_exports::user_id.eq(user),
                data_exports::download_token.eq(token),
            ))
            .on_conflict_do_nothing()
            .returning(ExportRow::as_returning())
            .get_result(conn)
            .await
            .optional()?;
        match inserted {
            Some(row) => Ok(row),
            // A concurrent request of the same user inserted first.
            None => open_export(conn, user)
                .await?
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("export vanished"))),
        }
    })
    .await
}

async fn open_export(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<Option<ExportRow>> {
    data_exports::table
        .filter(data_exports::user_id.eq(user))
        .filter(data_exports::status.eq_any(["pending", "running"]))
        .select(ExportRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// One export of the viewer's; `None` for another user's.
pub async fn find(state: &AppState, user: Uuid, id: Uuid) -> AppResult<Option<ExportRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(data_exports::table
        .find(id)
        .filter(data_exports::user_id.eq(user))
        .select(ExportRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

/// An export by id (the download route checks the token).
pub async fn by_id(state: &AppState, id: Uuid) -> AppResult<Option<ExportRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(data_exports::table
        .find(id)
        .select(ExportRow::as_select())
        .first(&mut conn)
        .await
        .optional()?)
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
}

/// Claims the oldest pending (or abandoned running) export, if any.
async fn claim(conn: &mut AsyncPgConnection) -> QueryResult<Option<Claimed>> {
    diesel::sql_query(
        "UPDATE data_exports SET status = 'running', claimed_at = now(), attempts = attempts + 1 \
         WHERE id = (SELECT id FROM data_exports \
                     WHERE status = 'pending' OR (status = 'running' \
                       AND claimed_at < now() - make_interval(mins => $1)) \
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, user_id, attempts",
    )
    .bind::<diesel::sql_types::Integer, _>(ABANDONED_AFTER_MINUTES)
    .get_result(conn)
    .await
    .optional()
}

/// Builds the next claimable export; `false` when there was none.
pub async fn run_one(state: &AppState) -> AppResult<bool> {
    let mut conn = db::conn(&state.pool).await?;
    let Some(job) = claim(&mut conn).await? else {
        return Ok(false);
    };
    if job.attempts > MAX_ATTEMPTS {
        fail(&mut conn, job.id, "gave up after repeated attempts", true).await?;
        return Ok(true);
    }
    let key = format!(
        "exports/{}/{}.zip",
        job.id,
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    );
    let built = async {
        let zip = build(state, &mut conn, job.user_id).await?;
        let size = zip.len() as i64;
        state
            .media
            .put(&key, zip)
            .await
            .map_err(AppError::internal)?;
        Ok::<_, AppError>(size)
    }
    .await;
    match built {
        Ok(size) => {
            let marked = conn
                .transaction(async |conn| {
                    let n = diesel::sql_query(
                        "UPDATE data_exports SET status = 'ready', storage_key = $2, \
                         byte_size = $3, error = NULL, completed_at = now(), \
                         expires_at = now() + make_interval(hours => $4::int) \
                         WHERE id = $1 AND status = 'running'",
                    )
                    .bind::<SqlUuid, _>(job.id)
                    .bind::<Text, _>(&key)
                    .bind::<BigInt, _>(size)
                    .bind::<BigInt, _>(state.config.retention.export_ttl_hours)
                    .execute(conn)
                    .await?;
                    if n == 1
                        && let Some(user) = accounts::user_by_id_in(conn, job.user_id).await?
                    {
                        accounts::notify_in(
                            conn,
                            &user,
                            "data_export_ready",
                            "Your data export is ready",
                            "Your Easel data export is ready. Open the app to download it.",
                        )
                        .await?;
                    }
                    Ok::<_, AppError>(n == 1)
                })
                .await?;
            if marked {
                state.outbox_wakeup.notify_one();
                tracing::info!(export = %job.id, bytes = size, "data export ready");
            } else {
                // Deleted meanwhile (the account went): the file goes too.
                let _ = state.media.delete(&[&key]).await;
            }
        }
        Err(e) => {
            tracing::warn!(export = %job.id, error = %e.log_line(), "data export failed");
            fail(
                &mut conn,
                job.id,
                "the export could not be built",
                job.attempts >= MAX_ATTEMPTS,
            )
            .await?;
        }
    }
    Ok(true)
}

/// Records a failed attempt: back to `pending` for another try, or `failed` for good.
async fn fail(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    error: &str,
    last: bool,
) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE data_exports SET status = CASE WHEN $3 THEN 'failed' ELSE 'pending' END, \
         error = $2, completed_at = CASE WHEN $3 THEN now() END \
         WHERE id = $1 AND status = 'running'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(error)
    .bind::<diesel::sql_types::Bool, _>(last)
    .execute(conn)
    .await
}

/// Every table holding rows about a user, with the column naming them. Secrets (password
/// and refresh-token hashes, download tokens) are left out.
const TABLES: &[(&str, &str)] = &[
    (
        "users",
        "SELECT to_jsonb(t) - 'password_hash' AS row FROM users t WHERE id = $1",
    ),
    (
        "vendor_profiles",
        "SELECT to_jsonb(t) AS row FROM vendor_profiles t WHERE user_id = $1",
    ),
    (
        "sessions",
        "SELECT to_jsonb(t) - 'refresh_token_hash' AS row FROM sessions t WHERE user_id = $1 ORDER BY created_at",
    ),
    (
        "oauth_accounts",
        "SELECT to_jsonb(t) AS row FROM oauth_accounts t WHERE user_id = $1",
    ),
    (
        "credit_accounts",
        "SELECT to_jsonb(t) AS row FROM credit_accounts t WHERE user_id = $1",
    ),
    (
        "credit_transactions",
        "SELECT to_jsonb(t) AS row FROM credit_transactions t WHERE user_id = $1 ORDER BY created_at",
    ),
    (
        "payments",
        "SELECT to_jsonb(t) AS row FROM payments t WHERE user_id = $1 ORDER BY created_at",
    ),
    (
        "subscriptions",
        "SELECT to_jsonb(t) AS row FROM subscriptions t WHERE user_id = $1",
    ),
    (
        "characters",
        "SELECT to_jsonb(t) AS row FROM characters t WHERE owner_id = $1",
    ),
    (
        "collections",
        "SELECT to_jsonb(t) AS row FROM collections t WHERE owner_id = $1",
    ),
    (
        "albums",
        "SELECT to_jsonb(t) AS row FROM albums t WHERE owner_id = $1",
    ),
    (
        "images",
        "SELECT to_jsonb(t) AS row FROM images t WHERE owner_id = $1",
    ),
    (
        "character_likes",
        "SELECT to_jsonb(t) AS row FROM character_likes t WHERE user_id = $1",
    ),
    (
        "character_ratings",
        "SELECT to_jsonb(t) AS row FROM character_ratings t WHERE user_id = $1",
    ),
    (
        "generation_jobs",
        "SELECT to_jsonb(t) AS row FROM generation_jobs t WHERE user_id = $1",
    ),
    (
        "chat_threads",
        "SELECT to_jsonb(t) AS row FROM chat_threads t WHERE user_id = $1",
    ),
    (
        "chat_messages",
        "SELECT to_jsonb(m) AS row FROM chat_messages m JOIN chat_threads t ON t.id = m.thread_id WHERE t.user_id = $1",
    ),
    (
        "referrals",
        "SELECT to_jsonb(t) AS row FROM referrals t WHERE referrer_id = $1 OR referred_id = $1",
    ),
    (
        "feedback",
        "SELECT to_jsonb(t) AS row FROM feedback t WHERE user_id = $1",
    ),
    (
        "content_reports",
        "SELECT to_jsonb(t) AS row FROM content_reports t WHERE reporter_id = $1",
    ),
    (
        "data_exports",
        "SELECT to_jsonb(t) - 'download_token' AS row FROM data_exports t WHERE user_id = $1",
    ),
];

#[derive(QueryableByName)]
struct JsonRow {
    #[diesel(sql_type = Jsonb)]
    row: Value,
}

#[derive(QueryableByName)]
struct Key {
    #[diesel(sql_type = Nullable<Text>)]
    key: Option<String>,
}

/// The zip of one user's data.
async fn build(state: &AppState, conn: &mut AsyncPgConnection, user: Uuid) -> AppResult<Bytes> {
    let mut data = Map::new();
    for (name, sql) in TABLES {
        let rows: Vec<JsonRow> = diesel::sql_query(*sql)
            .bind::<SqlUuid, _>(user)
            .load(conn)
            .await?;
        data.insert(
            (*name).to_string(),
            Value::Array(rows.into_iter().map(|r| r.row).collect()),
        );
    }
    let keys: Vec<Key> = diesel::sql_query(
        "SELECT storage_key AS key FROM images WHERE owner_id = $1 ORDER BY created_at",
    )
    .bind::<SqlUuid, _>(user)
    .load(conn)
    .await?;
    let mut media = Vec::new();
    for key in keys.into_iter().filter_map(|k| k.key) {
        if let Some(bytes) = state.media.get(&key).await.map_err(AppError::internal)? {
            media.push((key, bytes));
        }
    }
    let json = serde_json::to_vec_pretty(&Value::Object(data)).map_err(AppError::internal)?;
    tokio::task::spawn_blocking(move || -> zip::result::ZipResult<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("data.json", deflated)?;
        zip.write_all(&json)?;
        // Images are compressed already.
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (key, bytes) in media {
            zip.start_file(format!("media/{key}"), stored)?;
            zip.write_all(&bytes)?;
        }
        Ok(zip.finish()?.into_inner())
    })
    .await
    .map_err(AppError::internal)?
    .map(Bytes::from)
    .map_err(AppError::internal)
}

/// Deletes a user's exports (rows) in the caller's transaction; returns their files' keys.
pub async fn delete_user_exports_in(
    conn: &mut AsyncPgConnection,
    user: Uuid,
) -> QueryResult<Vec<String>> {
    let keys: Vec<Key> = diesel::sql_query(
        "DELETE FROM data_exports WHERE user_id = $1 RETURNING storage_key AS key",
    )
    .bind::<SqlUuid, _>(user)
    .load(conn)
    .await?;
    Ok(keys.into_iter().filter_map(|k| k.key).collect())
}

/// Deletes expired exports (and failed ones older than the TTL), at most `batch`, with their
/// files; returns how many rows went.
pub async fn purge_expired(state: &AppState, batch: i64) -> AppResult<usize> {
    let mut conn = db::conn(&state.pool).await?;
    let keys: Vec<Key> = diesel::sql_query(
        "DELETE FROM data_exports WHERE id IN ( \
           SELECT id FROM data_exports WHERE expires_at < now() \
              OR (status = 'failed' AND created_at < now() - make_interval(hours => $1::int)) \
           ORDER BY id LIMIT $2) RETURNING storage_key AS key",
    )
    .bind::<BigInt, _>(state.config.retention.export_ttl_hours)
    .bind::<BigInt, _>(batch)
    .load(&mut conn)
    .await?;
    let files: Vec<&str> = keys.iter().filter_map(|k| k.key.as_deref()).collect();
    if !files.is_empty()
        && let Err(e) = state.media.delete(&files).await
    {
        tracing::warn!(error = %e, "deleting expired data exports");
    }
    Ok(keys.len())
}

/// The export loop of a serving process: builds claimable exports every two seconds.
pub fn spawn_exporter(state: &AppState) -> JoinHandle<()> {
    let state = state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(2));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            loop {
                match run_one(&state).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(error = %e.log_line(), "data export loop");
                        break;
                    }
                }
            }
        }
    })
}
