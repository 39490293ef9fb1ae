//! Image chat: threads of messages in which each user message may ask for a generation, whose
//! end the assistant answers in the same thread (the output images, or why it failed and the
//! refund).
//!
//! - A thread belongs to one user; anyone else gets `NOT_FOUND`. Deleting one is soft: it
//!   leaves the lists and its messages are `NOT_FOUND`, `restoreChatThread` brings it back
//!   within [`RESTORE_DAYS`], after which a background sweep purges it.
//! - `sendChatMessage` stores the user's message and, when asked, charges and queues the job
//!   through `generation::service::generate_in`, in one transaction.
//! - Every change of a thread (a message, a job's progress, a rename, delete or restore) takes
//!   the next number of the thread's own sequence under the thread's row lock, writes a
//!   `chat_events` row and a `pg_notify` in the transaction of the change: sequence order is
//!   commit order, so `chatThreadUpdated(after: <cursor>)` replays exactly what a client
//!   missed.
//! - [`hooks`] is what generation calls in its own transactions (a job's progress, its end);
//!   it imports nothing from generation, so the modules stay acyclic.

pub mod graphql;
pub mod hooks;
pub mod model;
pub mod service;

use crate::db_enum;

/// How long a deleted thread can be restored; it is purged afterwards.
pub const RESTORE_DAYS: i64 = 30;

db_enum! {
    /// Who wrote a chat message.
    pub enum ChatRole {
        /// The thread's owner.
        User => "user",
        /// Easel, answering a generation the user asked for.
        Assistant => "assistant",
    }
}

db_enum! {
    /// What a chat thread event is about.
    pub enum ChatEventKind {
        /// A message was added (`message` is set).
        Message => "message",
        /// A generation job of the thread changed status (`job` is set, with the status of
        /// this event).
        Job => "job",
        /// The thread was renamed, deleted or restored (`thread` shows it now).
        Thread => "thread",
    }
}
