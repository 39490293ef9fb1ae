//! Credits: the ledger is the truth. This module is the only code that writes
//! `credit_accounts` and `credit_transactions`: every balance change is one append-only ledger
//! row with `balance_after`, written in the same transaction as the balance, so that for every
//! user at every moment `balance = sum(amount)` and `balance >= 0`.

pub mod account;
pub mod graphql;
pub mod loaders;
pub mod model;
pub mod plans;
pub mod service;

use crate::db_enum;

db_enum! {
    /// Why a ledger entry exists.
    #[graphql(name = "CreditTransactionKind")]
    pub enum TransactionKind {
        /// Credits every new account starts with.
        SignupBonus => "signup_bonus",
        /// Credits bought with a payment.
        Purchase => "purchase",
        /// Credits spent on an operation (a generation).
        Usage => "usage",
        /// A usage given back (a failed or cancelled job).
        Refund => "refund",
        /// Credits given to another user.
        GiftSent => "gift_sent",
        /// Credits received from another user.
        GiftReceived => "gift_received",
        /// Daily allowance bookkeeping.
        DailyAllowance => "daily_allowance",
        /// A promotional bonus.
        Bonus => "bonus",
        /// A referral reward.
        Referral => "referral",
        /// An achievement reward.
        Achievement => "achievement",
        /// A correction by an admin (with a reason).
        AdminAdjustment => "admin_adjustment",
        /// A subscription plan's credits for a paid period (once per period).
        SubscriptionGrant => "subscription_grant",
    }
}
