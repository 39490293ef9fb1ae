//! Accounts: users, roles, profiles (sign-in arrives with the accounts capability).

pub mod graphql;
pub mod guards;
pub mod loaders;
pub mod model;
pub mod password;
pub mod phone;
pub mod revocations;
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
        Free => "FREE",
        Premium => "PREMIUM",
        Pro => "PRO",
        Enterprise => "ENTERPRISE",
    }
}

db_enum! {
    /// Whether an account may be used.
    pub enum AccountStatus {
        Active => "active",
        Suspended => "suspended",
        Banned => "banned",
        Deleted => "deleted",
    }
}

db_enum! {
    /// Who may see a user's profile.
    pub enum ProfileVisibility {
        Public => "public",
        Private => "private",
    }
}
