//! GraphQL types and root fields of payments.

use async_graphql::{Context, ID, InputObject, Object, connection::Connection};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Gateway, PaymentStatus, model::PaymentRow, service};
use crate::graphql::parse_id;
use crate::{
    accounts::guards::{Authenticated, require_user},
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
}
