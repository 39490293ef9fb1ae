//! Data rights: deleting an account (a tombstone that keeps the legal records) and the
//! retention sweeper that purges what Easel no longer needs.
//!
//! - `deleteAccount` runs in one transaction: the account's queued and running generation
//!   jobs are cancelled (refunded like any cancel, so the ledger stays whole; a worker still
//!   rendering one finds its lease gone and records nothing), its gallery content, chat
//!   threads, jobs, feedback, social logins and codes are deleted, its live subscription is
//!   marked cancelled, gift texts naming it are cleared, and the user row becomes a tombstone
//!   (`account_status = deleted`, `deleted_at`, every personal field null) whose sessions are
//!   revoked on every process. Ledger, payment, subscription and referral rows stay (their
//!   foreign keys are `RESTRICT`: they are the legal record). Media files are deleted once
//!   the transaction committed.
//! - `requestDataExport` queues a zip of the user's data, built in the background (see
//!   [`export`]); expired exports are deleted by the sweeper, all of them by `deleteAccount`.
//! - The sweeper ([`service::sweep`]) runs in the background loop on
//!   `EASEL_RETENTION_INTERVAL_SECS`, each kind of row in bounded batches.

pub mod export;
pub mod graphql;
pub mod model;
pub mod service;
