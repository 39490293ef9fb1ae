//! GraphQL types and root fields of chat.

use std::collections::VecDeque;

use async_graphql::{
    Context, Enum, ID, InputObject, Object, Subscription,
    connection::{Connection, CursorType, OpaqueCursor},
};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::{
    ChatEventKind, ChatRole,
    model::{MessageRow, ThreadRow},
    service::{self, SendMessage, ThreadEvent},
};
use crate::{
    AppState,
    accounts::guards::{Authenticated, require_user},
    error::AppError,
    events::Event,
    gallery::{graphql::Image, loaders::ImageId},
    generation::graphql::{GenerateInput, GenerationJob},
    graphql::{
        ContextExt,
        pagination::{Page, connection},
        parse_id,
    },
};

type Res<T> = async_graphql::Result<T>;
/// A page of threads, keyed by (latest activity, id).
type ThreadConnection = Connection<OpaqueCursor<(DateTime<Utc>, Uuid)>, ChatThread>;

/// The cursor of event (or message) `seq` of a thread.
fn seq_cursor(seq: i64) -> String {
    OpaqueCursor(seq).encode_cursor()
}

/// A conversation of one user, in which messages may ask for images.
pub struct ChatThread(pub ThreadRow);

/// A conversation of the viewer's. Its messages ask for images; the assistant answers with
/// them when the generation ends.
#[Object]
impl ChatThread {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The title: as given or renamed, else taken from the first message (null until then).
    async fn title(&self) -> Option<&str> {
        self.0.title.as_deref()
    }

    /// When the thread was started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the thread last changed (a message, a rename, ...).
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    /// When the latest message was added (or the thread started): what `chatThreads` orders by.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.0.last_activity_at
    }

    /// When the thread was deleted (null unless it is in the trash).
    async fn deleted_at(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at
    }

    /// Until when `restoreChatThread` can bring a deleted thread back (it is purged after).
    async fn restorable_until(&self) -> Option<DateTime<Utc>> {
        self.0.deleted_at.map(service::restorable_until)
    }

    /// The cursor of the thread's latest event: pass it as `after` to `chatThreadUpdated` to
    /// get every change after what this answer shows.
    async fn event_cursor(&self) -> String {
        seq_cursor(self.0.last_seq)
    }

    /// How many messages the thread has.
    async fn message_count(&self, ctx: &Context<'_>) -> Res<i64> {
        Ok(service::message_count(ctx.state()?, self.0.id).await?)
    }

    /// The messages, newest first by default. A deleted thread's messages are `NOT_FOUND`.
    async fn messages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many messages to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
        #[graphql(
            desc = "NEWEST_FIRST (the default: a chat screen, paging back in time) or OLDEST_FIRST.",
            default_with = "Some(ChatMessageOrder::NewestFirst)"
        )]
        order: Option<ChatMessageOrder>,
    ) -> Res<Connection<OpaqueCursor<i64>, ChatMessage>> {
        if self.0.deleted_at.is_some() {
            return Err(AppError::NotFound("chat thread").into());
        }
        let page = Page::<i64>::new(first, after)?;
        let rows = service::messages(
            ctx.state()?,
            self.0.id,
            order != Some(ChatMessageOrder::OldestFirst),
            page.after,
            page.limit(),
        )
        .await?;
        let nodes = rows.into_iter().map(ChatMessage).collect();
        Ok(connection(&page, nodes, |m| m.0.seq))
    }
}

/// The order of a thread's messages.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum ChatMessageOrder {
    /// The latest first (page back in time with `after`).
    NewestFirst,
    /// The first first (page forward in time with `after`).
    OldestFirst,
}

/// A message of a chat thread.
pub struct ChatMessage(pub MessageRow);

/// A message: the user's (with the images they attached, and the generation it asked for),
/// or the assistant's answer to a generation (its output images, or why it failed).
#[Object]
impl ChatMessage {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The thread's id.
    async fn thread_id(&self) -> ID {
        ID(self.0.thread_id.to_string())
    }

    /// Who wrote it.
    async fn role(&self) -> ChatRole {
        self.0.role
    }

    /// The text (trimmed).
    async fn content(&self) -> &str {
        &self.0.content
    }

    /// The images the user attached, or the images the generation made (assistant). An
    /// image deleted since is left out.
    async fn images(&self, ctx: &Context<'_>) -> Res<Vec<Image>> {
        let keys: Vec<ImageId> = self.0.image_ids.iter().copied().map(ImageId).collect();
        let loaded = ctx
            .loader::<crate::gallery::loaders::GalleryLoader>()?
            .load_many(keys)
            .await?;
        Ok(self
            .0
            .image_ids
            .iter()
            .filter_map(|id| loaded.get(&ImageId(*id)).cloned())
            .map(Image::new)
            .collect())
    }

    /// The generation the message asked for (user), or that it answers (assistant).
    async fn job(&self, ctx: &Context<'_>) -> Res<Option<GenerationJob>> {
        let Some(id) = self.0.job_id else {
            return Ok(None);
        };
        let viewer = require_user(ctx)?;
        Ok(
            crate::generation::service::find_job(ctx.state()?, viewer, id)
                .await?
                .map(GenerationJob::new),
        )
    }

    /// When it was sent.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// This message's place in the thread: usable as `after` of the thread's `messages`, and
    /// of `chatThreadUpdated` (to get every change after this message).
    async fn cursor(&self) -> String {
        seq_cursor(self.0.seq)
    }
}

/// Something that happened in a chat thread, in the thread's order.
pub struct ChatThreadEvent(ThreadEvent);

/// One change of a thread: a message added, a generation's progress, or the thread renamed,
/// deleted or restored. Events come in the thread's order, each once.
#[Object]
impl ChatThreadEvent {
    /// This event's place in the thread: after a reconnect, pass the last one received as
    /// `after` to `chatThreadUpdated` to get exactly the events missed.
    async fn cursor(&self) -> String {
        seq_cursor(self.0.event.seq)
    }

    /// What the event is about.
    async fn kind(&self) -> ChatEventKind {
        self.0.event.kind
    }

    /// The message added (`MESSAGE` events).
    async fn message(&self) -> Option<ChatMessage> {
        self.0.message.clone().map(ChatMessage)
    }

    /// The generation job, with the status it reached at this event (`JOB` events).
    async fn job(&self) -> Option<GenerationJob> {
        self.0.job.clone().map(GenerationJob::new)
    }

    /// The thread as it is now.
    async fn thread(&self) -> ChatThread {
        ChatThread(self.0.thread.clone())
    }

    /// When the event happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.event.created_at
    }
}

/// Input of `createChatThread`.
#[derive(InputObject, Default)]
pub struct CreateChatThreadInput {
    /// Up to 200 characters; without one the thread takes its first message as title.
    title: Option<String>,
}

/// Input of `sendChatMessage`.
#[derive(InputObject)]
pub struct SendChatMessageInput {
    /// One of the viewer's threads.
    thread_id: ID,
    /// The message (trimmed), up to `EASEL_CHAT_MAX_MESSAGE_CHARS` characters (2000); may be
    /// empty when images are attached. Also the prompt of the generation, unless
    /// `generate.prompt` is given.
    content: String,
    /// The viewer's own images to attach (up to `EASEL_CHAT_MAX_IMAGES_PER_MESSAGE`, 4); they
    /// are the generation's input images too.
    input_image_ids: Option<Vec<ID>>,
    /// Ask for a generation with the message: priced, charged and queued with it, in one
    /// transaction (as `generate`). Leave its `prompt` out to use the message, and its
    /// `inputImageIds` and `idempotencyKey` out (the message's apply).
    generate: Option<GenerateInput>,
    /// Retrying with the same key in the same thread answers the first message (and its
    /// generation) instead of sending and charging twice.
    idempotency_key: Option<String>,
}

/// Chat queries.
#[derive(Default)]
pub struct ChatQuery;

#[Object]
impl ChatQuery {
    /// The viewer's chat threads, the latest activity first: the live ones, or the trash.
    #[graphql(guard = "Authenticated")]
    async fn chat_threads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many threads to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
        #[graphql(
            desc = "true lists the deleted threads that can still be restored instead.",
            default_with = "Some(false)"
        )]
        deleted: Option<bool>,
    ) -> Res<ThreadConnection> {
        let viewer = require_user(ctx)?;
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let rows = service::threads(
            ctx.state()?,
            viewer,
            deleted == Some(true),
            page.after,
            page.limit(),
        )
        .await?;
        let nodes = rows.into_iter().map(ChatThread).collect();
        Ok(connection(&page, nodes, |t| (t.0.last_activity_at, t.0.id)))
    }

    /// One of the viewer's threads; `NOT_FOUND` for anyone else's, or a deleted one.
    #[graphql(guard = "Authenticated")]
    async fn chat_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's chat threads.")] id: ID,
    ) -> Res<Option<ChatThread>> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(Some(ChatThread(
            service::thread(ctx.state()?, viewer, id).await?,
        )))
    }
}

/// Chat mutations.
#[derive(Default)]
pub struct ChatMutation;

#[Object]
impl ChatMutation {
    /// Starts a chat thread (at most `EASEL_CHAT_MAX_THREADS_PER_USER` live ones per user).
    #[graphql(guard = "Authenticated")]
    async fn create_chat_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The thread's title, if any.", default)] input: CreateChatThreadInput,
    ) -> Res<ChatThread> {
        let viewer = require_user(ctx)?;
        Ok(ChatThread(
            service::create_thread(ctx.state()?, viewer, input.title.as_deref()).await?,
        ))
    }

    /// Renames one of the viewer's threads.
    #[graphql(guard = "Authenticated")]
    async fn rename_chat_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's chat threads.")] id: ID,
        #[graphql(desc = "The new title, 1 to 200 characters.")] title: String,
    ) -> Res<ChatThread> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(ChatThread(
            service::rename(ctx.state()?, viewer, id, &title).await?,
        ))
    }

    /// Moves one of the viewer's threads to the trash: it leaves `chatThreads`, its messages
    /// answer `NOT_FOUND`, and `restoreChatThread` brings it back within 30 days (it is
    /// purged after).
    #[graphql(guard = "Authenticated")]
    async fn delete_chat_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's chat threads.")] id: ID,
    ) -> Res<ChatThread> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(ChatThread(service::delete(ctx.state()?, viewer, id).await?))
    }

    /// Brings a deleted thread back with its messages (within 30 days of its deletion).
    #[graphql(guard = "Authenticated")]
    async fn restore_chat_thread(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's deleted chat threads.")] id: ID,
    ) -> Res<ChatThread> {
        let viewer = require_user(ctx)?;
        let id = parse_id(&id, "id")?;
        Ok(ChatThread(
            service::restore(ctx.state()?, viewer, id).await?,
        ))
    }

    /// Sends a message to one of the viewer's threads and, with `generate`, prices, charges
    /// and queues its generation in the same transaction (pricing, limits and
    /// `INSUFFICIENT_CREDITS` as `generate`: a refusal stores no message). When the job ends,
    /// the assistant answers in the thread with its images, or with why it failed (the
    /// credits are refunded).
    #[graphql(guard = "Authenticated")]
    async fn send_chat_message(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The message (see the input type).")] input: SendChatMessageInput,
    ) -> Res<ChatMessage> {
        let viewer = require_user(ctx)?;
        let thread_id = parse_id(&input.thread_id, "input.threadId")?;
        let image_ids = input
            .input_image_ids
            .unwrap_or_default()
            .iter()
            .map(|id| parse_id(id, "input.inputImageIds"))
            .collect::<Result<Vec<_>, _>>()?;
        let generate = input
            .generate
            .map(|g| g.into_request("input.generate"))
            .transpose()?;
        let message = service::send_message(
            ctx.state()?,
            viewer,
            SendMessage {
                thread_id,
                content: input.content,
                image_ids,
                generate,
                idempotency_key: input.idempotency_key,
            },
        )
        .await?;
        Ok(ChatMessage(message))
    }
}

/// How many missed events one catch-up read returns (the rest are read as these are sent).
const CATCH_UP_PAGE: i64 = 100;

struct Follow {
    rx: tokio::sync::broadcast::Receiver<Event>,
    state: AppState,
    thread: Uuid,
    /// The sequence number of the last event delivered (or skipped as already seen).
    last: i64,
    /// Events read, not yet delivered.
    pending: VecDeque<ThreadEvent>,
    /// Events after `last` may be committed: read them before waiting.
    behind: bool,
    ended: bool,
}

/// Follows a thread's events after `after`, in sequence order, each once: those committed
/// already first (read from `chat_events`), then each as it commits. A notification is only
/// a hint: the stream reads the events after the last it delivered, so none is skipped when
/// notifications were lost (the listener reconnected) or came out of order. Ends after an
/// event that shows the thread deleted.
fn follow(
    rx: tokio::sync::broadcast::Receiver<Event>,
    state: AppState,
    thread: Uuid,
    after: i64,
    behind: bool,
) -> impl Stream<Item = Res<ChatThreadEvent>> {
    let start = Follow {
        rx,
        state,
        thread,
        last: after,
        pending: VecDeque::new(),
        behind,
        ended: false,
    };
    futures_util::stream::unfold(start, |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            if let Some(event) = s.pending.pop_front() {
                if event.event.kind == ChatEventKind::Thread && event.thread.deleted_at.is_some() {
                    s.ended = true;
                }
                return Some((Ok(ChatThreadEvent(event)), s));
            }
            if s.behind {
                let (state, thread, last) = (&s.state, s.thread, s.last);
                match crate::events::catch_up(|| {
                    service::events_after(state, thread, last, CATCH_UP_PAGE)
                })
                .await
                {
                    Ok(events) => {
                        s.behind = events.len() as i64 == CATCH_UP_PAGE;
                        if let Some(e) = events.last() {
                            s.last = e.event.seq;
                        }
                        s.pending.extend(events);
                        continue;
                    }
                    Err(_) => {
                        s.ended = true;
                        return Some((Err(AppError::SubscriptionLagged.into()), s));
                    }
                }
            }
            match s.rx.recv().await {
                Ok(Event::Chat { thread_id, seq, .. }) if thread_id == s.thread => {
                    s.behind = seq > s.last;
                }
                Ok(Event::Resync) => s.behind = true,
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    s.ended = true;
                    return Some((Err(AppError::SubscriptionLagged.into()), s));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    })
}

/// Chat subscriptions.
#[derive(Default)]
pub struct ChatSubscription;

#[Subscription]
impl ChatSubscription {
    /// Every change of one of the viewer's threads, in order, each once: messages added
    /// (the user's, and the assistant's answers), the progress of its generations, renames,
    /// deletion (the stream ends after it). With `after` (the cursor of the last event
    /// received, of a message, or a thread's `eventCursor`) the events committed since come
    /// first, so a client that reconnects misses nothing; without it, changes from now on.
    /// Anyone else's thread, or a deleted one, is `NOT_FOUND`.
    #[graphql(guard = "Authenticated")]
    async fn chat_thread_updated(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's chat threads.")] thread_id: ID,
        #[graphql(
            desc = "Replay the events after this cursor (a `ChatThreadEvent.cursor`, a `ChatMessage.cursor` or a `ChatThread.eventCursor`)."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<ChatThreadEvent>>> {
        let viewer = require_user(ctx)?.clone();
        let state = ctx.state()?.clone();
        let id = parse_id(&thread_id, "threadId")?;
        let after = after
            .map(|c| {
                OpaqueCursor::<i64>::decode_cursor(&c)
                    .map(|c| c.0)
                    .map_err(|_| {
                        AppError::bad_input("after", "after is not a cursor of this thread")
                    })
            })
            .transpose()?;
        // Subscribe before reading the thread, so no change falls between the two.
        let rx = state.events.subscribe();
        let thread = service::thread(&state, &viewer, id).await?;
        let (from, behind) = match after {
            Some(after) => (after, after < thread.last_seq),
            None => (thread.last_seq, false),
        };
        Ok(follow(rx, state, id, from, behind))
    }
}
