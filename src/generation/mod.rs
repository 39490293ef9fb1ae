//! Generation: the priced `generate` mutation, a crash-safe job queue in PostgreSQL, image
//! providers, and job status pushed to subscribers.
//!
//! A job's life: `generate` charges and inserts it `queued` in one transaction; a worker claims
//! it (`FOR UPDATE SKIP LOCKED`) with a lease it keeps alive by heartbeats; the result is written
//! only while the lease is still the worker's. A reaper re-queues jobs whose lease ran out (a
//! crashed worker) until `max_attempts`, then fails them; jobs past their deadline time out.
//! Every failure, time-out and cancel refunds the charge exactly once. Every status change
//! writes a `job_events` row and a `pg_notify` in the same transaction.

pub mod graphql;
pub mod model;
pub mod prompts;
pub mod providers;
pub mod service;
pub mod snapshots;
pub mod worker;

use crate::db_enum;

db_enum! {
    /// What a job makes.
    pub enum GenerationKind {
        /// Character images from a prompt.
        CharacterGeneration => "character_generation",
        /// An input image redrawn in another style.
        StyleTransfer => "style_transfer",
        /// An input image at a higher resolution.
        Upscale => "upscale",
        /// Variations of an input image.
        Variation => "variation",
        /// An input image without its background.
        BackgroundRemoval => "background_removal",
        /// A logo from a prompt.
        Logo => "logo",
    }
}

impl GenerationKind {
    /// The `operation_prices` key of this kind.
    pub fn operation(self) -> &'static str {
        match self {
            GenerationKind::CharacterGeneration => "generate.character",
            GenerationKind::StyleTransfer => "generate.style_transfer",
            GenerationKind::Upscale => "generate.upscale",
            GenerationKind::Variation => "generate.variation",
            GenerationKind::BackgroundRemoval => "generate.background_removal",
            GenerationKind::Logo => "generate.logo",
        }
    }

    /// Whether the kind works on input images (and needs at least one).
    pub fn needs_input(self) -> bool {
        matches!(
            self,
            GenerationKind::StyleTransfer
                | GenerationKind::Upscale
                | GenerationKind::Variation
                | GenerationKind::BackgroundRemoval
        )
    }

    /// Whether the kind needs a prompt.
    pub fn needs_prompt(self) -> bool {
        matches!(
            self,
            GenerationKind::CharacterGeneration
                | GenerationKind::Logo
                | GenerationKind::StyleTransfer
        )
    }
}

db_enum! {
    /// Where a job is in its life.
    pub enum JobStatus {
        /// Waiting for a worker.
        Queued => "queued",
        /// A worker is rendering it.
        Processing => "processing",
        /// Done; `outputs` holds the images.
        Succeeded => "succeeded",
        /// Gave up (refunded); `error` says why.
        Failed => "failed",
        /// Cancelled by its owner (refunded).
        Cancelled => "cancelled",
        /// Not finished before its deadline (refunded).
        TimedOut => "timed_out",
    }
}

impl JobStatus {
    /// Whether the job will not change any more (unless retried).
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Processing)
    }
}
