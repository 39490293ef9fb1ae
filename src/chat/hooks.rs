//! What generation tells a job's chat thread, inside generation's own transactions: each
//! status change of the job (an event of the thread), and its end (the assistant's answer).
//! Nothing here imports generation, which calls in.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::{
    ChatRole,
    model::{self, Change, NewMessage},
};

/// A job of `thread` reached `status` (its `job_events` row was just written).
pub async fn job_changed(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    job: Uuid,
    status: &str,
) -> QueryResult<()> {
    model::append_event(conn, thread, Change::Job { id: job, status }).await?;
    Ok(())
}

/// A job of `thread` succeeded with `images`: the assistant answers with them.
pub async fn job_succeeded(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    job: Uuid,
    images: &[Uuid],
) -> QueryResult<()> {
    let content = match images.len() {
        1 => "Here is your image.".to_string(),
        n => format!("Here are your {n} images."),
    };
    answer(conn, thread, job, &content, images.to_vec()).await
}

/// A job of `thread` ended without images (`failed`, `timed_out` or `cancelled`) and
/// `refunded` credits came back: the assistant says so.
pub async fn job_ended_without_images(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    job: Uuid,
    status: &str,
    error: Option<&str>,
    refunded: i64,
) -> QueryResult<()> {
    let what = match status {
        "cancelled" => "The generation was cancelled.".to_string(),
        "timed_out" => "The generation did not finish in time.".to_string(),
        _ => match error {
            Some(e) if !e.is_empty() => format!("The generation failed: {e}."),
            _ => "The generation failed.".to_string(),
        },
    };
    let content = match refunded {
        0 => what,
        1 => format!("{what} Your 1 credit was refunded."),
        n => format!("{what} Your {n} credits were refunded."),
    };
    answer(conn, thread, job, &content, Vec::new()).await
}

/// Appends the assistant's message about `job` (nothing when the thread is gone).
async fn answer(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    job: Uuid,
    content: &str,
    images: Vec<Uuid>,
) -> QueryResult<()> {
    let Some((owner, seq)) = model::reserve_seq(conn, thread, None).await? else {
        return Ok(());
    };
    let message = model::insert_message(
        conn,
        &NewMessage {
            id: Uuid::now_v7(),
            thread_id: thread,
            role: ChatRole::Assistant,
            content,
            job_id: Some(job),
            seq,
            image_ids: images,
            idempotency_key: None,
            request_hash: None,
        },
    )
    .await?;
    model::record_event(conn, thread, owner, seq, Change::Message(message.id)).await
}
