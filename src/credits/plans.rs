//! The subscription plan as GraphQL shows it, apart from the rest of credits' API so that
//! other capabilities' types (a user's subscription) can name it.

use async_graphql::{ID, Object};

use super::model::PlanRow;
use crate::accounts::SubscriptionTier;

/// A subscription plan.
pub struct PaymentPlan(pub PlanRow);

/// A subscription plan and what it includes; `subscribeToPlan` buys one.
#[Object]
impl PaymentPlan {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Machine name, e.g. `pro_monthly`.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// Name to show, e.g. `Pro`.
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }

    /// Longer text for the pricing page.
    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    /// The tier a subscriber gets.
    async fn tier(&self) -> SubscriptionTier {
        self.0.tier
    }

    /// Price per `interval` in minor units of `currency` (cents for USD).
    async fn price_minor(&self) -> i64 {
        self.0.price_minor
    }

    /// ISO 4217 currency code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    /// `month` or `year`.
    async fn interval(&self) -> &str {
        &self.0.interval
    }

    /// Credits the plan includes each month, granted with each paid period (a yearly plan's
    /// period brings twelve months' worth).
    async fn monthly_credits(&self) -> i64 {
        self.0.monthly_credits
    }

    /// Generations the plan includes each month; null means unlimited.
    async fn monthly_generation_limit(&self) -> Option<i32> {
        self.0.monthly_generation_limit
    }

    /// Feature lines to show on the pricing page.
    async fn features(&self) -> &[String] {
        &self.0.features
    }

    /// Days of free trial a new subscriber gets (once per user; 0: none).
    async fn trial_days(&self) -> i32 {
        self.0.trial_days
    }

    /// A vendor plan lifts the vendor's album quota.
    async fn is_vendor_plan(&self) -> bool {
        self.0.is_vendor_plan
    }

    /// Archived plans are off sale (only admins list them; subscribers keep theirs).
    async fn is_archived(&self) -> bool {
        !self.0.is_active
    }
}
