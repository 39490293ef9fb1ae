//! Payments: credit packages bought through payment gateways. A purchase creates a pending
//! payment and a checkout at the gateway; the gateway's signed webhook lands in
//! `payment_events` first (an idempotent inbox) and then completes the payment, granting its
//! credits exactly once whatever the number or order of deliveries.

pub mod gateways;
pub mod graphql;
pub mod http;
pub mod loaders;
pub mod model;
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
