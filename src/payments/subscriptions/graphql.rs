//! The subscription as GraphQL shows it (`User.subscription`, the subscription mutations'
//! answers).

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::SubscriptionRow;
use crate::{
    credits::plans::PaymentPlan,
    error::AppError,
    graphql::ContextExt,
    payments::{Gateway, SubscriptionSource, SubscriptionStatus},
};

/// A user's plan subscription.
pub struct PlanSubscription(pub SubscriptionRow);

/// The viewer's live subscription, if any (owner or admin: the caller checks).
pub async fn of_user(
    ctx: &Context<'_>,
    user: Uuid,
) -> async_graphql::Result<Option<PlanSubscription>> {
    Ok(super::live(ctx.state()?, user).await?.map(PlanSubscription))
}

async fn plan(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<PaymentPlan> {
    let plan = crate::credits::service::plan(ctx.state()?, id)
        .await?
        .ok_or(AppError::NotFound("plan"))?;
    Ok(PaymentPlan(plan))
}

/// A subscription to a plan: bought at a gateway (renewed by it), in a trial, or given (an
/// admin gift, an invite, a referral reward). While it is live (`TRIAL`, `ACTIVE`,
/// `PAST_DUE`) the user's `subscriptionTier` is its plan's tier.
#[Object]
impl PlanSubscription {
    /// Stable identifier.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The plan (archived plans stay on the subscriptions that have them).
    async fn plan(&self, ctx: &Context<'_>) -> async_graphql::Result<PaymentPlan> {
        plan(ctx, self.0.plan_id).await
    }

    /// Where it stands.
    async fn status(&self) -> SubscriptionStatus {
        self.0.status
    }

    /// Where it came from: bought, or given (an admin gift, an invite, a referral reward).
    async fn source(&self) -> SubscriptionSource {
        self.0.source
    }

    /// The start of the current period.
    async fn current_period_start(&self) -> DateTime<Utc> {
        self.0.current_period_start.unwrap_or(self.0.created_at)
    }

    /// When the current period ends: the renewal (paid), or the end (given, cancelled).
    async fn current_period_end(&self) -> DateTime<Utc> {
        self.0.current_period_end
    }

    /// Set by `cancelSubscription`: it ends at `currentPeriodEnd` instead of renewing.
    async fn cancel_at_period_end(&self) -> bool {
        self.0.cancel_at_period_end
    }

    /// A downgrade waiting for the end of the period.
    async fn pending_plan(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<PaymentPlan>> {
        match self.0.pending_plan_id {
            Some(id) => Ok(Some(plan(ctx, id).await?)),
            None => Ok(None),
        }
    }

    /// When the free trial ends (null without one).
    async fn trial_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.trial_ends_at
    }

    /// The gateway that bills it (null for a given plan).
    async fn gateway(&self) -> Option<Gateway> {
        self.0.gateway
    }

    /// The price agreed to per period, in minor units (null for a given plan). Later plan
    /// price changes do not touch it.
    async fn price_minor(&self) -> Option<i64> {
        self.0.price_minor
    }

    /// ISO 4217 code of `priceMinor`.
    async fn currency(&self) -> Option<&str> {
        self.0.currency.as_deref()
    }

    /// Generations counted against the plan's `monthlyGenerationLimit` this month.
    async fn generations_this_month(&self) -> i32 {
        self.0.usage_at(Utc::now()).1
    }

    /// When it started.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
