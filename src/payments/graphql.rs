//! GraphQL types and root fields of payments.

use async_graphql::{Context, ID, InputObject, Object, connection::Connection};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Gateway, PaymentStatus,
    model::PaymentRow,
    service::{self, SandboxRenewal},
    subscriptions::{Request, graphql::PlanSubscription},
};
use crate::graphql::parse_id;
use crate::{
    accounts::{
        Role,
        guards::{Authenticated, HasRole, require_user},
    },
    graphql::{
        ContextExt,
        pagination::{Page, connection},
    },
};

/// A payment.
pub struct Payment(pub PaymentRow);

/// A purchase at a payment gateway. Send the buyer to `checkoutUrl`; when the gateway reports
/// success the status becomes `COMPLETED` and `creditsGranted` credits are added (once).
#[Object]
impl Payment {
    /// Stable identifier; the gateway's return URL carries it as `payment`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// Where the payment stands; changes when the gateway reports (poll `payment(id)` or
    /// watch `creditBalanceChanged` after the buyer returns).
    async fn status(&self) -> PaymentStatus {
        self.0.status
    }

    /// Amount in minor units of `currency`.
    async fn amount_minor(&self) -> i64 {
        self.0.amount_minor
    }

    /// ISO 4217 currency code.
    async fn currency(&self) -> &str {
        &self.0.currency
    }

    /// The gateway that takes the payment.
    async fn gateway(&self) -> Gateway {
        self.0.gateway
    }

    /// Where to send the buyer's browser to pay.
    async fn checkout_url(&self) -> Option<&str> {
        self.0.checkout_url.as_deref()
    }

    /// Credits this payment grants when completed.
    async fn credits(&self) -> i64 {
        self.0.gateway_data["credits"].as_i64().unwrap_or(0)
    }

    /// Credits granted (0 until completed).
    async fn credits_granted(&self) -> i64 {
        self.0.credits_granted
    }

    /// The package bought.
    async fn package_id(&self) -> Option<ID> {
        self.0.package_id.map(|id| ID(id.to_string()))
    }

    /// The plan subscribed to (`subscribeToPlan`); the subscription starts when the payment
    /// completes (see `me { subscription }`).
    async fn plan_id(&self) -> Option<ID> {
        self.0.plan_id.map(|id| ID(id.to_string()))
    }

    /// When `purchaseCredits` created it.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// When the gateway reported it paid; null until `COMPLETED`.
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }

    /// A pending payment not paid by then expires.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

/// Input of `purchaseCredits`.
#[derive(InputObject)]
pub struct PurchaseCreditsInput {
    /// An active package from `creditPackages`.
    package_id: ID,
    /// Where to pay; `SANDBOX` only where the server enables it.
    gateway: Gateway,
    /// The app page the gateway sends the buyer back to (`?payment=<id>&status=...` is added).
    /// Required except with `SANDBOX`, whose own "done" page is the default.
    return_url: Option<String>,
    /// Retrying with the same key returns the same payment.
    idempotency_key: Option<String>,
}

/// Input of `subscribeToPlan`.
#[derive(InputObject)]
pub struct SubscribeToPlanInput {
    /// A paid plan on sale, from `paymentPlans`.
    plan_id: ID,
    /// Where to pay; `SANDBOX` only where the server enables it.
    gateway: Gateway,
    /// The app page the gateway sends the buyer back to (`?payment=<id>&status=...` is added).
    /// Required except with `SANDBOX`.
    return_url: Option<String>,
    /// Retrying with the same key returns the same payment.
    idempotency_key: Option<String>,
}

/// Input of `giftSubscription`.
#[derive(InputObject)]
pub struct GiftSubscriptionInput {
    /// Who gets the plan.
    user_id: ID,
    /// A paid plan on sale.
    plan_id: ID,
    /// How many days, 1 to 3650 (added to a given plan the user already has).
    days: i32,
}

/// Payment queries.
#[derive(Default)]
pub struct PaymentsQuery;

#[Object]
impl PaymentsQuery {
    /// One of the viewer's payments (null when it is someone else's).
    #[graphql(guard = "Authenticated")]
    async fn payment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "One of the viewer's payments.")] id: ID,
    ) -> async_graphql::Result<Option<Payment>> {
        let id = parse_id(&id, "id")?;
        Ok(service::payment_for(ctx.state()?, ctx.viewer(), id)
            .await?
            .map(Payment))
    }

    /// The viewer's payments, newest first.
    #[graphql(guard = "Authenticated")]
    async fn payments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "How many items to return, 0 to 100 (default 20).")] first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: the `pageInfo.endCursor` of the previous page."
        )]
        after: Option<String>,
    ) -> async_graphql::Result<
        Connection<async_graphql::connection::OpaqueCursor<(DateTime<Utc>, Uuid)>, Payment>,
    > {
        let viewer = require_user(ctx)?;
        let page = Page::<(DateTime<Utc>, Uuid)>::new(first, after)?;
        let rows = service::payments(ctx.state()?, viewer.id, page.after, page.limit()).await?;
        Ok(connection(
            &page,
            rows.into_iter().map(Payment).collect(),
            |p| (p.0.created_at, p.0.id),
        ))
    }
}

/// Payment mutations.
#[derive(Default)]
pub struct PaymentsMutation;

#[Object]
impl PaymentsMutation {
    /// Starts buying a credit package: a pending payment with the gateway's `checkoutUrl`.
    /// A gateway that is not enabled on this server answers `BAD_USER_INPUT` on
    /// `input.gateway` (production enables none unless configured).
    #[graphql(guard = "Authenticated")]
    async fn purchase_credits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: PurchaseCreditsInput,
    ) -> async_graphql::Result<Payment> {
        let viewer = require_user(ctx)?;
        let package = parse_id(&input.package_id, "input.packageId")?;
        let payment = service::purchase(
            ctx.state()?,
            viewer.id,
            package,
            input.gateway,
            input.return_url.as_deref(),
            input.idempotency_key.as_deref(),
        )
        .await?;
        Ok(Payment(payment))
    }

    /// Starts a subscription to a plan: a pending payment with the gateway's `checkoutUrl`
    /// (like `purchaseCredits`). The amount is the plan's price, or 0 when the plan has
    /// `trialDays` and the viewer never had a trial (the trial then starts at the checkout).
    /// When the gateway reports the checkout paid, `me { subscription }` is live and
    /// `subscriptionTier` is the plan's. `CONFLICT` when the viewer already pays for a plan
    /// (use `changeSubscriptionPlan`); `BAD_USER_INPUT` for an unknown, archived or free plan.
    #[graphql(guard = "Authenticated")]
    async fn subscribe_to_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: SubscribeToPlanInput,
    ) -> async_graphql::Result<Payment> {
        let viewer = require_user(ctx)?;
        let plan = parse_id(&input.plan_id, "input.planId")?;
        let payment = service::subscribe(
            ctx.state()?,
            viewer.id,
            plan,
            input.gateway,
            input.return_url.as_deref(),
            input.idempotency_key.as_deref(),
        )
        .await?;
        Ok(Payment(payment))
    }

    /// Ends the viewer's paid subscription at the end of the current period (no refund; the
    /// plan stays on until then). `NOT_FOUND` without a live subscription, `CONFLICT` when
    /// it is already set to end.
    #[graphql(guard = "Authenticated")]
    async fn cancel_subscription(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PlanSubscription> {
        let viewer = require_user(ctx)?;
        let row = service::change_subscription(ctx.state()?, viewer.id, Request::Cancel).await?;
        Ok(PlanSubscription(row))
    }

    /// Undoes `cancelSubscription` before the period ends: the subscription renews again.
    #[graphql(guard = "Authenticated")]
    async fn resume_subscription(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<PlanSubscription> {
        let viewer = require_user(ctx)?;
        let row = service::change_subscription(ctx.state()?, viewer.id, Request::Resume).await?;
        Ok(PlanSubscription(row))
    }

    /// Moves the viewer's paid subscription to another plan in the same currency. A dearer
    /// plan (per month) applies now: tier at once, the difference charged prorated by the
    /// gateway. A cheaper one waits for the period's end (`pendingPlan`), the tier with it.
    /// Choosing the current plan again drops a pending downgrade.
    #[graphql(guard = "Authenticated")]
    async fn change_subscription_plan(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A plan on sale, from `paymentPlans`.")] plan_id: ID,
    ) -> async_graphql::Result<PlanSubscription> {
        let viewer = require_user(ctx)?;
        let plan = parse_id(&plan_id, "input.planId")?;
        let row = service::change_subscription(ctx.state()?, viewer.id, Request::ChangePlan(plan))
            .await?;
        Ok(PlanSubscription(row))
    }

    /// Admin: gives a user days of a plan without payment (audit-logged). Extends a given
    /// plan the user already has; `CONFLICT` when the user pays for a plan.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn gift_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields of the request (see the input type).")]
        input: GiftSubscriptionInput,
    ) -> async_graphql::Result<PlanSubscription> {
        let admin = require_user(ctx)?;
        let user = parse_id(&input.user_id, "input.userId")?;
        let plan = parse_id(&input.plan_id, "input.planId")?;
        let row =
            service::gift_subscription(ctx.state()?, admin.id, user, plan, input.days).await?;
        Ok(PlanSubscription(row))
    }

    /// Admin, sandbox gateway only: does to a sandbox subscription what a real gateway does
    /// on its own schedule, through the same signed webhook: renew it (a new paid period and
    /// its credits), fail the renewal charge, or end it. For testing apps end to end.
    #[graphql(guard = "HasRole(Role::Admin)")]
    async fn sandbox_advance_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription (`PlanSubscription.id`).")] id: ID,
        #[graphql(desc = "What happens at the gateway.")] outcome: SandboxRenewal,
    ) -> async_graphql::Result<PlanSubscription> {
        let id = parse_id(&id, "id")?;
        let row = service::sandbox_advance(ctx.state()?, id, outcome).await?;
        Ok(PlanSubscription(row))
    }
}
