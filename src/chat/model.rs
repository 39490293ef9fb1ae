//! Rows and queries of chat: threads, messages and the per-thread event sequence. Every
//! change a subscriber must hear of goes through [`append_event`], which takes the thread's
//! next sequence number (under its row lock), writes the `chat_events` row and notifies, in
//! the caller's transaction.

use chrono::{DateTime, Utc};
use diesel::{prelude::*, sql_types};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::{ChatEventKind, ChatRole};
use crate::{
    db::schema::{chat_events, chat_messages, chat_threads},
    events::{self, Event},
};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chat_threads, check_for_backend(diesel::pg::Pg))]
pub struct ThreadRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    /// The sequence number of the thread's latest event (0: none yet).
    pub last_seq: i64,
}

#[derive(Insertable)]
#[diesel(table_name = chat_threads)]
pub struct NewThread<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub title: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chat_messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub role: ChatRole,
    pub content: String,
    /// The job the message asked for (user) or answers (assistant).
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// The thread event that added the message.
    pub seq: i64,
    /// The images the user attached, or the job's outputs (assistant).
    pub image_ids: Vec<Uuid>,
    pub idempotency_key: Option<String>,
    pub request_hash: Option<String>,
}

#[derive(Insertable)]
#[diesel(table_name = chat_messages)]
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub thread_id: Uuid,
    pub role: ChatRole,
    pub content: &'a str,
    pub job_id: Option<Uuid>,
    pub seq: i64,
    pub image_ids: Vec<Uuid>,
    pub idempotency_key: Option<&'a str>,
    pub request_hash: Option<&'a str>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = chat_events, check_for_backend(diesel::pg::Pg))]
pub struct EventRow {
    pub thread_id: Uuid,
    pub seq: i64,
    pub kind: ChatEventKind,
    pub message_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    /// The job's status at this event (`job` events).
    pub job_status: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What an event is about.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    Message(Uuid),
    Job { id: Uuid, status: &'a str },
    Thread,
}

pub async fn insert_thread(
    conn: &mut AsyncPgConnection,
    thread: &NewThread<'_>,
) -> QueryResult<ThreadRow> {
    diesel::insert_into(chat_threads::table)
        .values(thread)
        .returning(ThreadRow::as_returning())
        .get_result(conn)
        .await
}

/// Takes `user`'s thread-count lock until the end of the transaction (two parallel creates
/// cannot both pass the limit).
pub async fn lock_user(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended('chat:' || $1::text, 0))")
        .bind::<sql_types::Uuid, _>(user)
        .execute(conn)
        .await
        .map(drop)
}

/// How many threads `user` has that are not deleted.
pub async fn count_live(conn: &mut AsyncPgConnection, user: Uuid) -> QueryResult<i64> {
    chat_threads::table
        .filter(chat_threads::user_id.eq(user))
        .filter(chat_threads::deleted_at.is_null())
        .count()
        .get_result(conn)
        .await
}

pub async fn thread_by_id(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> QueryResult<Option<ThreadRow>> {
    chat_threads::table
        .find(id)
        .select(ThreadRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// The thread, locked until the end of the transaction (every change of a thread takes this
/// lock first, so its changes commit in sequence order).
pub async fn lock_thread(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Option<ThreadRow>> {
    chat_threads::table
        .find(id)
        .select(ThreadRow::as_select())
        .for_update()
        .first(conn)
        .await
        .optional()
}

/// A page of `user`'s threads by latest activity, newest first, after the keyset
/// `(last_activity_at, id)`: the live ones, or with `deleted` those in the trash.
pub async fn list_threads(
    conn: &mut AsyncPgConnection,
    user: Uuid,
    deleted: bool,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> QueryResult<Vec<ThreadRow>> {
    let mut q = chat_threads::table
        .filter(chat_threads::user_id.eq(user))
        .select(ThreadRow::as_select())
        .order((
            chat_threads::last_activity_at.desc(),
            chat_threads::id.desc(),
        ))
        .limit(limit)
        .into_boxed();
    q = if deleted {
        q.filter(chat_threads::deleted_at.is_not_null())
    } else {
        q.filter(chat_threads::deleted_at.is_null())
    };
    if let Some((at, id)) = after {
        q = q.filter(
            chat_threads::last_activity_at
                .lt(at)
                .or(chat_threads::last_activity_at
                    .eq(at)
                    .and(chat_threads::id.lt(id))),
        );
    }
    q.load(conn).await
}

/// Sets a thread's title (`None`: untitled).
pub async fn set_title(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    title: Option<&str>,
) -> QueryResult<ThreadRow> {
    diesel::update(chat_threads::table.find(id))
        .set(chat_threads::title.eq(title))
        .returning(ThreadRow::as_returning())
        .get_result(conn)
        .await
}

/// Marks a thread deleted now, or (`None`) restores it.
pub async fn set_deleted(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    at: Option<DateTime<Utc>>,
) -> QueryResult<ThreadRow> {
    diesel::update(chat_threads::table.find(id))
        .set(chat_threads::deleted_at.eq(at))
        .returning(ThreadRow::as_returning())
        .get_result(conn)
        .await
}

/// Deletes for good the threads deleted before `before` (their messages and events go with
/// them; their jobs stay, without a thread). Returns how many.
pub async fn purge_deleted_before(
    conn: &mut AsyncPgConnection,
    before: DateTime<Utc>,
) -> QueryResult<usize> {
    diesel::delete(chat_threads::table.filter(chat_threads::deleted_at.lt(before)))
        .execute(conn)
        .await
}

#[derive(QueryableByName)]
struct Bumped {
    #[diesel(sql_type = sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = sql_types::BigInt)]
    last_seq: i64,
}

/// Takes the thread's next sequence number (locking its row until the end of the
/// transaction), marks new activity when `activity`, and gives an untitled thread
/// `default_title`. `None` when the thread is gone.
async fn next_seq(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    activity: bool,
    default_title: Option<&str>,
) -> QueryResult<Option<(Uuid, i64)>> {
    let row: Option<Bumped> = diesel::sql_query(
        "UPDATE chat_threads SET last_seq = last_seq + 1, \
         last_activity_at = CASE WHEN $2 THEN now() ELSE last_activity_at END, \
         title = coalesce(title, $3) \
         WHERE id = $1 RETURNING user_id, last_seq",
    )
    .bind::<sql_types::Uuid, _>(thread)
    .bind::<sql_types::Bool, _>(activity)
    .bind::<sql_types::Nullable<sql_types::Text>, _>(default_title)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.user_id, r.last_seq)))
}

/// The thread's owner and the sequence number of its next event, which is a new message
/// (activity; an untitled thread gets `default_title`), with the thread's row locked; the
/// message is then inserted with it and [`record_event`] records it.
pub async fn reserve_seq(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    default_title: Option<&str>,
) -> QueryResult<Option<(Uuid, i64)>> {
    next_seq(conn, thread, true, default_title).await
}

/// Records event `seq` of `thread` (reserved with [`reserve_seq`]) and notifies.
pub async fn record_event(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    user: Uuid,
    seq: i64,
    change: Change<'_>,
) -> QueryResult<()> {
    let (kind, message_id, job_id, job_status) = match change {
        Change::Message(id) => (ChatEventKind::Message, Some(id), None, None),
        Change::Job { id, status } => (ChatEventKind::Job, None, Some(id), Some(status)),
        Change::Thread => (ChatEventKind::Thread, None, None, None),
    };
    diesel::insert_into(chat_events::table)
        .values((
            chat_events::thread_id.eq(thread),
            chat_events::seq.eq(seq),
            chat_events::kind.eq(kind),
            chat_events::message_id.eq(message_id),
            chat_events::job_id.eq(job_id),
            chat_events::job_status.eq(job_status),
        ))
        .execute(conn)
        .await?;
    events::notify(
        conn,
        &Event::Chat {
            thread_id: thread,
            user_id: user,
            seq,
        },
    )
    .await
}

/// Takes the thread's next sequence number and records `change` under it (a message's
/// activity counts for the thread's order; a job's progress or a rename does not). Nothing
/// happens when the thread is gone. Returns the sequence number.
pub async fn append_event(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    change: Change<'_>,
) -> QueryResult<Option<i64>> {
    let activity = matches!(change, Change::Message(_));
    let Some((user, seq)) = next_seq(conn, thread, activity, None).await? else {
        return Ok(None);
    };
    record_event(conn, thread, user, seq, change).await?;
    Ok(Some(seq))
}

pub async fn insert_message(
    conn: &mut AsyncPgConnection,
    message: &NewMessage<'_>,
) -> QueryResult<MessageRow> {
    diesel::insert_into(chat_messages::table)
        .values(message)
        .returning(MessageRow::as_returning())
        .get_result(conn)
        .await
}

pub async fn set_message_job(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    job: Uuid,
) -> QueryResult<MessageRow> {
    diesel::update(chat_messages::table.find(id))
        .set(chat_messages::job_id.eq(job))
        .returning(MessageRow::as_returning())
        .get_result(conn)
        .await
}

/// The message stored under an idempotency key in a thread.
pub async fn message_by_key(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    key: &str,
) -> QueryResult<Option<MessageRow>> {
    chat_messages::table
        .filter(chat_messages::thread_id.eq(thread))
        .filter(chat_messages::idempotency_key.eq(key))
        .select(MessageRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// A page of a thread's messages in sequence order (newest first, or oldest first), after
/// sequence number `after`.
pub async fn messages_page(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    newest_first: bool,
    after: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut q = chat_messages::table
        .filter(chat_messages::thread_id.eq(thread))
        .select(MessageRow::as_select())
        .limit(limit)
        .into_boxed();
    q = if newest_first {
        if let Some(after) = after {
            q = q.filter(chat_messages::seq.lt(after));
        }
        q.order(chat_messages::seq.desc())
    } else {
        if let Some(after) = after {
            q = q.filter(chat_messages::seq.gt(after));
        }
        q.order(chat_messages::seq.asc())
    };
    q.load(conn).await
}

/// How many messages a thread has.
pub async fn message_count(conn: &mut AsyncPgConnection, thread: Uuid) -> QueryResult<i64> {
    chat_messages::table
        .filter(chat_messages::thread_id.eq(thread))
        .count()
        .get_result(conn)
        .await
}

pub async fn messages_by_ids(
    conn: &mut AsyncPgConnection,
    ids: &[Uuid],
) -> QueryResult<Vec<MessageRow>> {
    chat_messages::table
        .filter(chat_messages::id.eq_any(ids))
        .select(MessageRow::as_select())
        .load(conn)
        .await
}

/// Up to `limit` events of a thread after sequence number `after`, oldest first.
pub async fn events_after(
    conn: &mut AsyncPgConnection,
    thread: Uuid,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    chat_events::table
        .filter(chat_events::thread_id.eq(thread))
        .filter(chat_events::seq.gt(after))
        .select(EventRow::as_select())
        .order(chat_events::seq.asc())
        .limit(limit)
        .load(conn)
        .await
}
