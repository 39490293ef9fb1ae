//! Payments: credit packages bought through payment gateways. A purchase creates a pending
//! payment and a checkout at the gateway; the gateway's signed webhook lands in
//! `payment_events` first (an idempotent inbox) and then completes the payment, granting its
//! credits exactly once whatever the number or order of deliveries.

pub mod gateways;
pub mod graphql;
pub mod http;
pub mod loaders;
pub mod model;
pub mod notices;
pub mod service;
pub mod subscriptions;

use crate::db_enum;

db_enum! {
    /// Where a payment is made.
    #[graphql(name = "PaymentGateway")]
    pub enum Gateway {
        /// Built in, for development and tests: a hosted approve/decline page and signed webhooks.
        Sandbox => "sandbox",
        /// Stripe Checkout.
        Stripe => "stripe",
    }
}

db_enum! {
    /// The state of a payment.
    pub enum PaymentStatus {
        /// Waiting for the buyer at the gateway.
        Pending => "pending",
        /// Paid; credits granted.
        Completed => "completed",
        /// Declined, or the gateway's amount did not match.
        Failed => "failed",
        /// Not paid in time (a buyer who leaves the checkout leaves it pending until then).
        Expired => "expired",
    }
}

db_enum! {
    /// Where a subscription came from.
    pub enum SubscriptionSource {
        /// Bought at a gateway (`subscribeToPlan`).
        Checkout => "checkout",
        /// Given by an admin (`giftSubscription`).
        Gift => "gift",
        /// Given by an invite token (`redeemInvite`).
        Invite => "invite",
        /// A referral reward.
        Referral => "referral",
    }
}

db_enum! {
    /// Where a subscription stands.
    pub enum SubscriptionStatus {
        /// A free trial: the plan's tier, no monthly credits, no charge yet.
        Trial => "trial",
        /// Paid (or gifted) for the current period.
        Active => "active",
        /// The gateway could not take a renewal and is retrying; the plan stays on meanwhile.
        PastDue => "past_due",
        /// Ended early (replaced by a paid plan, or cancelled at the gateway).
        Cancelled => "cancelled",
        /// Ended: its period ran out without a renewal.
        Expired => "expired",
    }
}
