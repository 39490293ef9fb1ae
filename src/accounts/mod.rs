//! Accounts: users, roles, profiles (sign-in arrives with the accounts capability).

pub mod graphql;
pub mod guards;
pub mod loaders;
pub mod model;
pub mod oauth;
pub mod password;
pub mod phone;
pub mod recovery;
pub mod revocations;
pub mod security;
pub mod self_service;
pub mod service;
pub mod tokens;
pub mod vendors;
/// Who is asking (it lives below the capabilities, for the GraphQL toolkit).
pub use crate::viewer;
pub use crate::viewer::Role;

use crate::db_enum;

db_enum! {
    /// The plan tier that sets daily allowances and prices.
    pub enum SubscriptionTier {
        /// No plan: the default allowances and prices.
        Free => "FREE",
        /// The first paid tier.
        Premium => "PREMIUM",
        /// The professional tier: larger allowances, lower multipliers.
        Pro => "PRO",
        /// The largest tier, for teams and businesses.
        Enterprise => "ENTERPRISE",
    }
}

db_enum! {
    /// Whether an account may be used.
    pub enum AccountStatus {
        /// In good standing: may sign in and act.
        Active => "active",
        /// Blocked for now by an admin (may be reactivated); its sessions are revoked.
        Suspended => "suspended",
        /// Blocked for good by an admin; its sessions are revoked.
        Banned => "banned",
        /// Closed; it can no longer sign in.
        Deleted => "deleted",
    }
}

db_enum! {
    /// Who may see a user's profile.
    pub enum ProfileVisibility {
        /// Anyone may see the profile and its public gallery.
        Public => "public",
        /// Others see the user's `id` only; the user and admins see the whole profile.
        Private => "private",
    }
}
