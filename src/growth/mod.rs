//! Growth: referrals (every user's referral code, who brought whom, the one reward) and
//! admin invite tokens (credits, plan days or the vendor role, redeemed once per user).
//! It sits above accounts, credits and payments: accounts call it back through
//! `accounts::service::SignUpHook` (installed by the composition root), payments call
//! [`service::on_payment_in`] on every completed payment.

pub mod graphql;
pub mod model;
pub mod referrals;
pub mod service;

/// Where an invite token stands.
#[derive(async_graphql::Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteTokenStatus {
    /// It can be redeemed.
    Active,
    /// Past its `expiresAt`.
    Expired,
    /// Redeemed `maxUses` times.
    Exhausted,
    /// Revoked by an admin.
    Revoked,
}

/// Why an invite token was refused: `extensions.reason` of its `BAD_USER_INPUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteFailure {
    /// No such token (or not a token at all).
    Unknown,
    /// Past its `expiresAt`.
    Expired,
    /// Redeemed `maxUses` times already.
    Exhausted,
    /// Revoked by an admin.
    Revoked,
    /// This user redeemed it before.
    AlreadyRedeemed,
    /// A VENDOR token needs a vendor profile first (`becomeVendor`).
    VendorProfileRequired,
    /// The plan whose days it gives is no longer on sale.
    PlanUnavailable,
}

impl InviteFailure {
    /// The `extensions.reason` value.
    pub fn code(self) -> &'static str {
        match self {
            InviteFailure::Unknown => "UNKNOWN",
            InviteFailure::Expired => "EXPIRED",
            InviteFailure::Exhausted => "EXHAUSTED",
            InviteFailure::Revoked => "REVOKED",
            InviteFailure::AlreadyRedeemed => "ALREADY_REDEEMED",
            InviteFailure::VendorProfileRequired => "VENDOR_PROFILE_REQUIRED",
            InviteFailure::PlanUnavailable => "PLAN_UNAVAILABLE",
        }
    }

    /// The error message.
    pub fn message(self) -> &'static str {
        match self {
            InviteFailure::Unknown => "no such invite token",
            InviteFailure::Expired => "this invite token has expired",
            InviteFailure::Exhausted => "this invite token has been used up",
            InviteFailure::Revoked => "this invite token was revoked",
            InviteFailure::AlreadyRedeemed => "you already redeemed this invite token",
            InviteFailure::VendorProfileRequired => {
                "this invite makes a verified vendor: create your vendor profile with becomeVendor first"
            }
            InviteFailure::PlanUnavailable => "the plan this invite gives is no longer on sale",
        }
    }
}
