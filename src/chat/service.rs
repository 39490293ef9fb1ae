//! The rules of chat: threads (limits, titles, soft delete, restore, purge) and messages
//! (limits, idempotency, and the generation a message asks for, charged and queued in the
//! message's own transaction).

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde_json::json;
use uuid::Uuid;

use super::{
    ChatRole, RESTORE_DAYS,
    model::{self, Change, EventRow, MessageRow, NewMessage, NewThread, ThreadRow},
};
use crate::{
    AppState,
    accounts::viewer::ViewerUser,
    db,
    error::{AppError, AppResult},
    gallery,
    generation::{
        model::JobRow,
        service::{self as generation, GenerateRequest, JobOrigin},
    },
    idempotency,
};

/// The longest thread title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest title a thread takes from its first message.
const DEFAULT_TITLE_CHARS: usize = 80;

fn bad(field: &str, message: impl Into<String>) -> AppError {
    AppError::bad_input(field, message)
}

/// A title as given: trimmed, inner runs of white space made one space; `None` when empty.
fn tidy(title: &str) -> Option<String> {
    let title = title.split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then_some(title)
}

/// The title a thread takes from its first message: the message trimmed to one line of at
/// most [`DEFAULT_TITLE_CHARS`] characters (cut ones end with `…`).
pub fn default_title(content: &str) -> Option<String> {
    let title = tidy(content)?;
    if title.chars().count() <= DEFAULT_TITLE_CHARS {
        return Some(title);
    }
    let cut: String = title.chars().take(DEFAULT_TITLE_CHARS - 1).collect();
    Some(format!("{}…", cut.trim_end()))
}

fn checked_title(title: &str, field: &str) -> AppResult<Option<String>> {
    let title = tidy(title);
    if title
        .as_deref()
        .is_some_and(|t| t.chars().count() > MAX_TITLE_CHARS)
    {
        return Err(bad(field, format!("at most {MAX_TITLE_CHARS} characters")));
    }
    Ok(title)
}

/// The viewer's thread, unless deleted; `NOT_FOUND` for anyone else's.
fn visible(row: Option<ThreadRow>, viewer: &ViewerUser) -> AppResult<ThreadRow> {
    row.filter(|t| t.user_id == viewer.id && t.deleted_at.is_none())
        .ok_or(AppError::NotFound("chat thread"))
}

/// The viewer's thread, deleted or not; `NOT_FOUND` for anyone else's.
fn owned(row: Option<ThreadRow>, viewer: &ViewerUser) -> AppResult<ThreadRow> {
    row.filter(|t| t.user_id == viewer.id)
        .ok_or(AppError::NotFound("chat thread"))
}

fn thread_limit(state: &AppState) -> AppError {
    AppError::bad_input_because(
        "input",
        "THREAD_LIMIT",
        format!(
            "at most {} chat threads; delete some first",
            state.config.chat_max_threads_per_user
        ),
    )
}

/// Starts a thread (untitled until its first message unless `title` is given), within the
/// per-user limit of live threads.
pub async fn create_thread(
    state: &AppState,
    viewer: &ViewerUser,
    title: Option<&str>,
) -> AppResult<ThreadRow> {
    let title = match title {
        Some(t) => checked_title(t, "input.title")?,
        None => None,
    };
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        model::lock_user(conn, viewer.id).await?;
        if model::count_live(conn, viewer.id).await? >= state.config.chat_max_threads_per_user {
            return Err(thread_limit(state));
        }
        Ok(model::insert_thread(
            conn,
            &NewThread {
                id: Uuid::now_v7(),
                user_id: viewer.id,
                title: title.as_deref(),
            },
        )
        .await?)
    })
    .await
}

/// One of the viewer's threads (not deleted); `NOT_FOUND` otherwise.
pub async fn thread(state: &AppState, viewer: &ViewerUser, id: Uuid) -> AppResult<ThreadRow> {
    let mut conn = db::conn(&state.pool).await?;
    visible(model::thread_by_id(&mut conn, id).await?, viewer)
}

/// A page of the viewer's threads by latest activity, newest first: the live ones, or with
/// `deleted` those in the trash.
pub async fn threads(
    state: &AppState,
    viewer: &ViewerUser,
    deleted: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<ThreadRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::list_threads(&mut conn, viewer.id, deleted, after, limit).await?)
}

/// A page of a thread's messages (the caller checked the thread is the viewer's).
pub async fn messages(
    state: &AppState,
    thread: Uuid,
    newest_first: bool,
    after: Option<i64>,
    limit: i64,
) -> AppResult<Vec<MessageRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::messages_page(&mut conn, thread, newest_first, after, limit).await?)
}

/// How many messages a thread has.
pub async fn message_count(state: &AppState, thread: Uuid) -> AppResult<i64> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::message_count(&mut conn, thread).await?)
}

/// A change of a thread itself.
#[derive(Debug, Clone, Copy)]
enum ThreadChange<'a> {
    Rename(&'a str),
    Delete,
    Restore,
}

/// Applies `change` to the viewer's thread `id` under its row lock and records a `thread`
/// event when it changed anything; answers the thread as it is then.
async fn change_thread(
    state: &AppState,
    viewer: &ViewerUser,
    id: Uuid,
    change: ThreadChange<'_>,
) -> AppResult<ThreadRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let thread = owned(model::lock_thread(conn, id).await?, viewer)?;
        let changed = match change {
            ThreadChange::Rename(title) => {
                if thread.deleted_at.is_some() {
                    return Err(AppError::NotFound("chat thread"));
                }
                if thread.title.as_deref() == Some(title) {
                    return Ok(thread);
                }
                model::set_title(conn, id, Some(title)).await?
            }
            ThreadChange::Delete => {
                if thread.deleted_at.is_some() {
                    return Ok(thread);
                }
                model::set_deleted(conn, id, Some(Utc::now())).await?
            }
            ThreadChange::Restore => {
                let Some(deleted_at) = thread.deleted_at else {
                    return Ok(thread);
                };
                if restorable_until(deleted_at) <= Utc::now() {
                    return Err(AppError::NotFound("chat thread"));
                }
                model::lock_user(conn, viewer.id).await?;
                if model::count_live(conn, viewer.id).await?
                    >= state.config.chat_max_threads_per_user
                {
                    return Err(thread_limit(state));
                }
                model::set_deleted(conn, id, None).await?
            }
        };
        let seq = model::append_event(conn, id, Change::Thread).await?;
        Ok(ThreadRow {
            last_seq: seq.unwrap_or(changed.last_seq),
            ..changed
        })
    })
    .await
}

/// Renames one of the viewer's threads.
pub async fn rename(
    state: &AppState,
    viewer: &ViewerUser,
    id: Uuid,
    title: &str,
) -> AppResult<ThreadRow> {
    let title = checked_title(title, "title")?.ok_or_else(|| bad("title", "must not be empty"))?;
    change_thread(state, viewer, id, ThreadChange::Rename(&title)).await
}

/// Moves one of the viewer's threads to the trash (deleting a deleted one changes nothing).
pub async fn delete(state: &AppState, viewer: &ViewerUser, id: Uuid) -> AppResult<ThreadRow> {
    change_thread(state, viewer, id, ThreadChange::Delete).await
}

/// Until when a thread deleted at `deleted_at` can be restored.
pub fn restorable_until(deleted_at: DateTime<Utc>) -> DateTime<Utc> {
    deleted_at + chrono::Duration::days(RESTORE_DAYS)
}

/// Brings a deleted thread back (within [`RESTORE_DAYS`], and the live-thread limit).
pub async fn restore(state: &AppState, viewer: &ViewerUser, id: Uuid) -> AppResult<ThreadRow> {
    change_thread(state, viewer, id, ThreadChange::Restore).await
}

/// Deletes for good the threads deleted more than `EASEL_RETENTION_CHAT_DELETED_DAYS` (at
/// least [`RESTORE_DAYS`]) ago (the background sweep). Returns how many.
pub async fn purge_deleted(state: &AppState) -> AppResult<usize> {
    let mut conn = db::conn(&state.pool).await?;
    let days = state.config.retention.chat_deleted_days.max(RESTORE_DAYS);
    let before = Utc::now() - chrono::Duration::days(days);
    Ok(model::purge_deleted_before(&mut conn, before).await?)
}

/// What `sendChatMessage` asks for.
#[derive(Debug, Clone)]
pub struct SendMessage {
    pub thread_id: Uuid,
    pub content: String,
    /// The viewer's own images, attached to the message (and the job's inputs).
    pub image_ids: Vec<Uuid>,
    /// A generation to queue with the message. Its prompt defaults to the message; its input
    /// images are the message's; the message's idempotency key covers it.
    pub generate: Option<GenerateRequest>,
    pub idempotency_key: Option<String>,
}

impl idempotency::Fingerprinted for MessageRow {
    fn fingerprint(&self) -> Option<&str> {
        self.request_hash.as_deref()
    }
}

/// Names a generation error's field as `sendChatMessage`'s input has it.
fn in_chat_input(err: AppError, prompt_from_content: bool) -> AppError {
    match err {
        AppError::BadUserInput {
            field,
            message,
            reason,
        } => {
            let field = match field.as_str() {
                "input.inputImageIds" => field,
                "input.prompt" if prompt_from_content => "input.content".to_string(),
                other => match other.strip_prefix("input.") {
                    Some(rest) => format!("input.generate.{rest}"),
                    None => field,
                },
            };
            AppError::BadUserInput {
                field,
                message,
                reason,
            }
        }
        other => other,
    }
}

/// Stores the viewer's message in their thread and, when it asks for one, prices, charges
/// and queues its generation (tied to the thread and the message), all in one transaction:
/// `INSUFFICIENT_CREDITS` (or any other refusal) stores nothing. The same idempotency key in
/// the same thread answers the first message (and its job) again, charging nothing.
pub async fn send_message(
    state: &AppState,
    viewer: &ViewerUser,
    msg: SendMessage,
) -> AppResult<MessageRow> {
    let config = &state.config;
    let content = msg.content.trim().to_string();
    if content.chars().count() > config.chat_max_message_chars {
        return Err(bad(
            "input.content",
            format!("at most {} characters", config.chat_max_message_chars),
        ));
    }
    if content.is_empty() && msg.image_ids.is_empty() {
        return Err(bad("input.content", "write something or attach an image"));
    }
    if msg.image_ids.len() > config.chat_max_images_per_message {
        return Err(bad(
            "input.inputImageIds",
            format!(
                "at most {} images per message",
                config.chat_max_images_per_message
            ),
        ));
    }
    let key = idempotency::validate_key(msg.idempotency_key.as_deref())?.map(str::to_string);
    let mut prompt_from_content = false;
    let generate = match msg.generate {
        None => None,
        Some(mut req) => {
            if req.idempotency_key.is_some() {
                return Err(bad(
                    "input.generate.idempotencyKey",
                    "set input.idempotencyKey: one key covers the message and its generation",
                ));
            }
            if !req.input_image_ids.is_empty() {
                return Err(bad(
                    "input.generate.inputImageIds",
                    "attach input images to the message (input.inputImageIds)",
                ));
            }
            req.input_image_ids = msg.image_ids.clone();
            if req.prompt.as_deref().is_none_or(|p| p.trim().is_empty()) {
                prompt_from_content = true;
                req.prompt = (!content.is_empty()).then(|| content.clone());
            }
            generation::validate(&req).map_err(|e| in_chat_input(e, prompt_from_content))?;
            Some(req)
        }
    };
    let hash = idempotency::fingerprint(&json!({ "chatMessage": {
        "threadId": msg.thread_id,
        "content": content,
        "inputImageIds": msg.image_ids,
        "generate": generate.as_ref().map(generation::request_json),
    } }));
    let thread_id = msg.thread_id;
    let by_key = async move |conn: &mut AsyncPgConnection, key: &str| {
        model::message_by_key(conn, thread_id, key).await
    };
    let mut conn = db::conn(&state.pool).await?;
    let mut charged = 0;
    let message = conn
        .transaction(async |conn| {
            charged = 0;
            // Every change of the thread waits for this lock: a parallel first use of the
            // same key finds the winner's message below.
            visible(model::lock_thread(conn, thread_id).await?, viewer)?;
            if let Some(done) = idempotency::stored(conn, key.as_deref(), &hash, &by_key).await? {
                return Ok(done);
            }
            if !msg.image_ids.is_empty()
                && !gallery::service::owns_images(conn, viewer.id, &msg.image_ids).await?
            {
                return Err(bad(
                    "input.inputImageIds",
                    "attach your own images (upload them first)",
                ));
            }
            let (owner, seq) =
                model::reserve_seq(conn, thread_id, default_title(&content).as_deref())
                    .await?
                    .ok_or(AppError::NotFound("chat thread"))?;
            let mut message = model::insert_message(
                conn,
                &NewMessage {
                    id: Uuid::now_v7(),
                    thread_id,
                    role: ChatRole::User,
                    content: &content,
                    job_id: None,
                    seq,
                    image_ids: msg.image_ids.clone(),
                    idempotency_key: key.as_deref(),
                    request_hash: Some(&hash),
                },
            )
            .await?;
            model::record_event(conn, thread_id, owner, seq, Change::Message(message.id)).await?;
            if let Some(req) = &generate {
                let origin = JobOrigin {
                    thread_id: Some(thread_id),
                    ..JobOrigin::default()
                };
                let job = generation::generate_in(conn, state, viewer, req, origin)
                    .await
                    .map_err(|e| in_chat_input(e, prompt_from_content))?;
                message = model::set_message_job(conn, message.id, job.id).await?;
                charged = job.cost_credits;
            }
            Ok::<_, AppError>(message)
        })
        .await?;
    state.metrics.credits_charged(charged);
    Ok(message)
}

/// Up to `limit` events of a thread after sequence number `after`, oldest first, each with
/// what it is about: the message, the job (with the event's status), and the thread as it is.
pub async fn events_after(
    state: &AppState,
    thread: Uuid,
    after: i64,
    limit: i64,
) -> AppResult<Vec<ThreadEvent>> {
    let mut conn = db::conn(&state.pool).await?;
    let rows = model::events_after(&mut conn, thread, after, limit).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let message_ids: Vec<Uuid> = rows.iter().filter_map(|e| e.message_id).collect();
    let job_ids: Vec<Uuid> = rows.iter().filter_map(|e| e.job_id).collect();
    let messages = model::messages_by_ids(&mut conn, &message_ids).await?;
    let jobs = if job_ids.is_empty() {
        Vec::new()
    } else {
        crate::generation::model::by_ids(&mut conn, &job_ids).await?
    };
    let Some(row) = model::thread_by_id(&mut conn, thread).await? else {
        return Ok(Vec::new());
    };
    Ok(rows
        .into_iter()
        .map(|event| {
            let message = event
                .message_id
                .and_then(|id| messages.iter().find(|m| m.id == id).cloned());
            let job = event.job_id.and_then(|id| {
                let mut job = jobs.iter().find(|j| j.id == id).cloned()?;
                if let Some(status) = event
                    .job_status
                    .as_deref()
                    .and_then(crate::generation::JobStatus::from_db)
                {
                    job.status = status;
                }
                Some(job)
            });
            ThreadEvent {
                event,
                message,
                job,
                thread: row.clone(),
            }
        })
        .collect())
}

/// A thread event with what it is about.
#[derive(Debug, Clone)]
pub struct ThreadEvent {
    pub event: EventRow,
    pub message: Option<MessageRow>,
    /// The job with the status of this event (other fields as the job is now).
    pub job: Option<JobRow>,
    /// The thread as it is now.
    pub thread: ThreadRow,
}
