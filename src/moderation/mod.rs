//! Moderation: users report content (or another user) they can see; admins list the reports
//! and resolve each once: dismiss it, hide the content (from everyone but its owner and
//! admins, for good), warn its owner (a notice through the outbox; warnings are counted) or
//! suspend the owner's account (through the accounts service: sessions end). Every
//! resolution is audited.

pub mod graphql;
pub mod model;
pub mod service;

use crate::db_enum;

db_enum! {
    /// What a report is about.
    pub enum ReportTargetType {
        /// A character (`character(id)`).
        Character => "character",
        /// An image (`image(id)`).
        Image => "image",
        /// A vendor album (`album(id)`).
        Album => "album",
        /// A collection of characters (`collection(id)`).
        Collection => "collection",
        /// A user's account and profile (`user(id)`).
        User => "user",
    }
}

db_enum! {
    /// Why content is reported.
    pub enum ReportReason {
        /// Unsolicited advertising or repetitive junk.
        Spam => "spam",
        /// Sexual or otherwise not-safe-for-work content.
        Nsfw => "nsfw",
        /// Abuse of, or threats against, a person.
        Harassment => "harassment",
        /// Someone else's work used without permission.
        Copyright => "copyright",
        /// Anything else (say what in `details`).
        Other => "other",
    }
}

db_enum! {
    /// Where a report stands.
    pub enum ReportStatus {
        /// Waiting for an admin.
        Open => "open",
        /// An admin resolved it (see `resolution`).
        Resolved => "resolved",
    }
}

db_enum! {
    /// How an admin resolves a report.
    pub enum ReportAction {
        /// Nothing to do: the report is closed and the content left as it is.
        Dismiss => "dismiss",
        /// Hide the content from everyone but its owner and admins, for good: it becomes
        /// private and cannot be made public again. Not for reports of a USER.
        HideContent => "hide_content",
        /// Send the content's owner (or the reported user) a warning notice and count it.
        WarnUser => "warn_user",
        /// Suspend the owner's (or the reported user's) account; their sessions end.
        SuspendUser => "suspend_user",
    }
}
