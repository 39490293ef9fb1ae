//! The rules of payments: purchases, the webhook inbox, the sandbox's decisions, expiry.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use reqwest::header::HeaderMap;
use secrecy::ExposeSecret;
use serde_json::json;
use uuid::Uuid;

pub use super::model::{PaymentRow, payment_json};
use super::{
    Gateway, PaymentStatus,
    gateways::{
        self, CheckoutRequest, Outcome, PaymentGateway, PlanPrice, Sandbox, Stripe,
        SubscriptionCheckoutRequest, SubscriptionUpdate, WebhookEvent,
    },
    model::{self, NewPayment},
    notices,
    subscriptions::{self, Request, SubscriptionRow},
};
use crate::{
    AppState,
    config::{Config, Environment},
    credits::{self, model::PlanRow},
    db,
    error::{AppError, AppResult},
    growth, idempotency,
};

/// The enabled gateways.
pub struct Gateways {
    sandbox: Option<Sandbox>,
    stripe: Option<Stripe>,
}

impl Gateways {
    pub fn from_config(config: &Config) -> Self {
        let enabled = |name: &str| config.payment_gateways.iter().any(|g| g == name);
        if enabled("sandbox") && config.env == Environment::Production {
            tracing::warn!(
                "THE SANDBOX GATEWAY IS ENABLED IN PRODUCTION (EASEL_ALLOW_SANDBOX_IN_PRODUCTION): \
                 anyone with a sandbox checkout link can grant themselves credits without paying"
            );
        }
        Gateways {
            sandbox: enabled("sandbox").then(|| Sandbox {
                public_url: config.public_url.clone(),
                secret: config.sandbox_webhook_secret.clone(),
            }),
            stripe: config
                .stripe
                .clone()
                .filter(|_| enabled("stripe"))
                .map(Stripe::new),
        }
    }

    /// Whether the sandbox gateway (and its pages) is enabled.
    pub fn sandbox_enabled(&self) -> bool {
        self.sandbox.is_some()
    }

    pub fn get(&self, gateway: Gateway) -> Option<&dyn PaymentGateway> {
        match gateway {
            Gateway::Sandbox => self.sandbox.as_ref().map(|g| g as &dyn PaymentGateway),
            Gateway::Stripe => self.stripe.as_ref().map(|g| g as &dyn PaymentGateway),
        }
    }
}

/// Starts buying a credit package: a pending payment and the gateway's checkout URL.
pub async fn purchase(
    state: &AppState,
    user: Uuid,
    package_id: Uuid,
    gateway: Gateway,
    return_url: Option<&str>,
    key: Option<&str>,
) -> AppResult<PaymentRow> {
    let key = idempotency::validate_key(key)?;
    let (gw, return_url) = checkout_target(state, gateway, return_url)?;
    let fingerprint = idempotency::fingerprint(&json!({
        "purchase": { "package": package_id, "gateway": gateway.as_str(), "returnUrl": return_url }
    }));
    let mut conn = db::conn(&state.pool).await?;
    let purchase = NewPurchase {
        user,
        package_id,
        gateway,
        gw,
        return_url: &return_url,
        key,
        fingerprint: &fingerprint,
    };
    idempotency::run(
        &mut conn,
        key,
        &fingerprint,
        async move |conn: &mut AsyncPgConnection, key: &str| model::by_key(conn, user, key).await,
        async |conn| start_purchase(state, conn, &purchase).await,
    )
    .await
}

/// The enabled gateway and the checked return URL of a checkout.
fn checkout_target<'s>(
    state: &'s AppState,
    gateway: Gateway,
    return_url: Option<&str>,
) -> AppResult<(&'s dyn PaymentGateway, String)> {
    let gw = state.gateways.get(gateway).ok_or_else(|| {
        AppError::bad_input(
            "input.gateway",
            format!("the {} gateway is not enabled here", gateway.as_str()),
        )
    })?;
    let return_url = match return_url.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => {
            let parsed = reqwest::Url::parse(u)
                .map_err(|_| AppError::bad_input("input.returnUrl", "not a valid URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") || u.len() > 2048 {
                return Err(AppError::bad_input(
                    "input.returnUrl",
                    "an http(s) URL of at most 2048 characters",
                ));
            }
            u.to_string()
        }
        // The sandbox's own "done" page exists only with the sandbox; a real gateway sends the
        // buyer back to the app.
        None if gateway == Gateway::Sandbox => format!("{}/sandbox/done", state.config.public_url),
        None => {
            return Err(AppError::bad_input(
                "input.returnUrl",
                format!(
                    "the {} gateway needs the app page to send the buyer back to",
                    gateway.as_str()
                ),
            ));
        }
    };
    Ok((gw, return_url))
}

/// A purchase whose input was checked.
struct NewPurchase<'a> {
    user: Uuid,
    package_id: Uuid,
    gateway: Gateway,
    gw: &'a dyn PaymentGateway,
    return_url: &'a str,
    key: Option<&'a str>,
    fingerprint: &'a str,
}

/// The first use of a purchase: the pending payment, then the gateway's checkout. A parallel
/// first use of the same key loses on the key's unique constraint, before any checkout.
async fn start_purchase(
    state: &AppState,
    conn: &mut AsyncPgConnection,
    p: &NewPurchase<'_>,
) -> AppResult<PaymentRow> {
    let package = credits::service::package_in(conn, p.package_id)
        .await?
        .filter(|package| package.is_active)
        .ok_or_else(|| AppError::bad_input("input.packageId", "no such credit package on sale"))?;
    let credits = package
        .credits
        .checked_add(package.bonus_credits)
        .filter(|c| *c > 0)
        .ok_or_else(|| {
            AppError::bad_input("input.packageId", "this credit package cannot be sold")
        })?;
    let expires_at = Utc::now()
        + chrono::Duration::from_std(state.config.payment_expiry).map_err(AppError::internal)?;
    let payment = model::insert(
        conn,
        &NewPayment {
            id: Uuid::now_v7(),
            user_id: p.user,
            package_id: Some(package.id),
            plan_id: None,
            gateway: p.gateway,
            amount_minor: package.price_minor,
            currency: &package.currency,
            status: PaymentStatus::Pending,
            gateway_data: json!({ "credits": credits, "package": package.name, "return_url": p.return_url }),
            idempotency_key: p.key,
            request_hash: Some(p.fingerprint),
            expires_at,
        },
    )
    .await?;
    let description = format!("{} ({} credits)", package.name, credits);
    let checkout =
        p.gw.create_checkout(CheckoutRequest {
            payment_id: payment.id,
            amount_minor: payment.amount_minor,
            currency: &payment.currency,
            description: &description,
            return_url: p.return_url,
        })
        .await;
    finish_checkout(conn, &payment, checkout).await
}

/// Stores the gateway's checkout on its pending payment, or fails the payment when the
/// gateway could not make one (`INTERNAL`; a retry with a new key tries again).
async fn finish_checkout(
    conn: &mut AsyncPgConnection,
    payment: &PaymentRow,
    checkout: Result<gateways::Checkout, String>,
) -> AppResult<PaymentRow> {
    match checkout {
        Ok(c) => {
            Ok(
                model::set_checkout(conn, payment.id, &c.checkout_url, c.gateway_ref.as_deref())
                    .await?,
            )
        }
        Err(e) => {
            model::settle(
                conn,
                payment.id,
                PaymentStatus::Failed,
                0,
                Some(json!({ "checkout_error": e })),
            )
            .await?;
            Err(AppError::internal(anyhow::anyhow!(
                "creating a {} checkout: {e}",
                payment.gateway.as_str()
            )))
        }
    }
}

/// Starts a subscription to a plan: a pending payment of the first period's price (0 when
/// the plan starts with a trial the user has not had) and the gateway's checkout. The
/// subscription starts when the gateway reports the checkout paid.
pub async fn subscribe(
    state: &AppState,
    user: Uuid,
    plan_id: Uuid,
    gateway: Gateway,
    return_url: Option<&str>,
    key: Option<&str>,
) -> AppResult<PaymentRow> {
    let key = idempotency::validate_key(key)?;
    let (gw, return_url) = checkout_target(state, gateway, return_url)?;
    let fingerprint = idempotency::fingerprint(&json!({
        "subscribe": { "plan": plan_id, "gateway": gateway.as_str(), "returnUrl": return_url }
    }));
    let mut conn = db::conn(&state.pool).await?;
    idempotency::run(
        &mut conn,
        key,
        &fingerprint,
        async move |conn: &mut AsyncPgConnection, key: &str| model::by_key(conn, user, key).await,
        async |conn| {
            let plan = credits::service::plan_in(conn, plan_id)
                .await?
                .filter(|p| p.is_active)
                .ok_or_else(|| AppError::bad_input("input.planId", "no such plan on sale"))?;
            if plan.price_minor == 0 || plan.tier == crate::accounts::SubscriptionTier::Free {
                return Err(AppError::bad_input(
                    "input.planId",
                    "this plan is free: it needs no subscription",
                ));
            }
            if subscriptions::live_in(conn, user)
                .await?
                .is_some_and(|s| s.gateway.is_some())
            {
                return Err(AppError::Conflict(
                    "you already subscribe to a plan: change it with changeSubscriptionPlan".into(),
                ));
            }
            let trial_days =
                if plan.trial_days > 0 && subscriptions::trial_available_in(conn, user).await? {
                    plan.trial_days
                } else {
                    0
                };
            let expires_at = Utc::now()
                + chrono::Duration::from_std(state.config.payment_expiry)
                    .map_err(AppError::internal)?;
            let payment = model::insert(
                conn,
                &NewPayment {
                    id: Uuid::now_v7(),
                    user_id: user,
                    package_id: None,
                    plan_id: Some(plan.id),
                    gateway,
                    amount_minor: if trial_days > 0 { 0 } else { plan.price_minor },
                    currency: &plan.currency,
                    status: PaymentStatus::Pending,
                    gateway_data: json!({
                        "plan": plan.display_name, "credits": 0, "trial_days": trial_days,
                        "price_minor": plan.price_minor, "interval": plan.interval,
                        "return_url": return_url,
                    }),
                    idempotency_key: key,
                    request_hash: Some(&fingerprint),
                    expires_at,
                },
            )
            .await?;
            let checkout = gw
                .create_subscription_checkout(SubscriptionCheckoutRequest {
                    payment_id: payment.id,
                    user_id: user,
                    price: plan_price(&plan),
                    trial_days,
                    return_url: &return_url,
                })
                .await;
            finish_checkout(conn, &payment, checkout).await
        },
    )
    .await
}

/// A plan's current price, as gateways sell it.
fn plan_price(plan: &PlanRow) -> PlanPrice<'_> {
    PlanPrice {
        plan_id: plan.id,
        name: &plan.display_name,
        amount_minor: plan.price_minor,
        currency: &plan.currency,
        interval: &plan.interval,
    }
}

impl idempotency::Fingerprinted for PaymentRow {
    fn fingerprint(&self) -> Option<&str> {
        self.request_hash.as_deref()
    }
}

/// Why a webhook was refused (the gateway is told with a 4xx and nothing changes).
#[derive(Debug)]
pub enum WebhookError {
    UnknownGateway,
    BadSignature(String),
    Internal(AppError),
}

/// Verifies and applies one webhook delivery. Replays and unknown payments are acknowledged
/// and change nothing.
pub async fn handle_webhook(
    state: &AppState,
    gateway: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), WebhookError> {
    let gateway = Gateway::from_db(gateway).ok_or(WebhookError::UnknownGateway)?;
    let gw = state
        .gateways
        .get(gateway)
        .ok_or(WebhookError::UnknownGateway)?;
    let event = gw
        .verify_webhook(headers, body)
        .map_err(WebhookError::BadSignature)?;
    apply(state, gateway, &event)
        .await
        .map_err(WebhookError::Internal)
}

async fn apply(state: &AppState, gateway: Gateway, event: &WebhookEvent) -> AppResult<()> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        if !model::record_event(conn, gateway, &event.event_id, event.payment_id, &event.payload).await? {
            return Ok(()); // a replay: the first delivery did the work
        }
        if let Some(change) = &event.subscription {
            let applied = subscriptions::apply_gateway_event_in(conn, gateway, change).await?;
            if let Some(user) = applied.paid_by {
                growth::service::on_payment_in(conn, state, user).await?;
            }
            model::finish_event(conn, gateway, &event.event_id, None, applied.note).await?;
            return Ok(());
        }
        let payment = model::lock(conn, gateway, event.payment_id, event.gateway_ref.as_deref()).await?;
        let Some(payment) = payment else {
            model::finish_event(conn, gateway, &event.event_id, None, Some("unknown payment")).await?;
            return Ok(());
        };
        let note = match (event.outcome, payment.status) {
            (Outcome::Ignored, _) => Some("event type not acted on"),
            (_, status) if status != PaymentStatus::Pending => Some("payment already settled"),
            (Outcome::Succeeded, _) if payment.expires_at.is_some_and(|at| at < Utc::now()) => {
                model::settle(conn, payment.id, PaymentStatus::Expired, 0, Some(json!({ "late_success_event": event.event_id })))
                    .await?;
                Some("payment had expired; nothing granted")
            }
            (Outcome::Succeeded, _) => {
                let amount_ok = event.amount_minor == Some(payment.amount_minor);
                let currency_ok = event.currency.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(&payment.currency));
                if !(amount_ok && currency_ok) {
                    let mismatch = json!({ "mismatch": { "amount_minor": event.amount_minor, "currency": event.currency } });
                    model::settle(conn, payment.id, PaymentStatus::Failed, 0, Some(mismatch)).await?;
                    Some("amount or currency does not match the payment; failed")
                } else if payment.plan_id.is_some() {
                    model::settle(conn, payment.id, PaymentStatus::Completed, 0, None).await?;
                    let note = subscriptions::start_from_payment_in(conn, &payment, event.subscription_ref.as_deref()).await?;
                    if payment.amount_minor > 0 {
                        growth::service::on_payment_in(conn, state, payment.user_id).await?;
                        notices::receipt_in(conn, &payment, "plan subscription", 0).await?;
                    }
                    note
                } else {
                    let credits = payment.gateway_data["credits"].as_i64().unwrap_or(0);
                    model::settle(conn, payment.id, PaymentStatus::Completed, credits, None).await?;
                    let what = payment.gateway_data["package"].as_str().unwrap_or("credit package");
                    credits::service::grant_purchase_in(conn, payment.user_id, payment.id, credits, &format!("Purchase: {what}"))
                        .await?;
                    notices::receipt_in(conn, &payment, what, credits).await?;
                    growth::service::on_payment_in(conn, state, payment.user_id).await?;
                    None
                }
            }
            (Outcome::Failed, _) => {
                model::settle(conn, payment.id, PaymentStatus::Failed, 0, None).await?;
                None
            }
            (Outcome::Expired, _) => {
                model::settle(conn, payment.id, PaymentStatus::Expired, 0, None).await?;
                None
            }
        };
        model::finish_event(conn, gateway, &event.event_id, Some(payment.id), note).await?;
        Ok(())
    })
    .await
}

/// A subscriber's change of their paid subscription: told to the gateway first (which must
/// accept it), then recorded. The gateway's events that follow agree with the record.
pub async fn change_subscription(
    state: &AppState,
    user: Uuid,
    request: Request,
) -> AppResult<SubscriptionRow> {
    let mut conn = db::conn(&state.pool).await?;
    let planned = subscriptions::plan_request(&mut conn, user, &request).await?;
    let sub = &planned.sub;
    let gateway = sub.gateway.ok_or(AppError::NotFound("subscription"))?;
    let gw = state.gateways.get(gateway).ok_or_else(|| {
        AppError::Conflict(format!(
            "the {} gateway is not enabled here; try again later",
            gateway.as_str()
        ))
    })?;
    let gateway_ref = sub
        .gateway_ref
        .as_deref()
        .ok_or(AppError::NotFound("subscription"))?;
    let update = match (&request, &planned.change_to) {
        (Request::Cancel, _) => Some(SubscriptionUpdate::CancelAtPeriodEnd(true)),
        (Request::Resume, _) => Some(SubscriptionUpdate::CancelAtPeriodEnd(false)),
        // Back to the current plan (dropping a downgrade): back to the price the subscriber
        // has, whatever the plan's price is now, without proration.
        (Request::ChangePlan(_), Some((plan, _))) if plan.id == sub.plan_id => {
            Some(SubscriptionUpdate::ChangePrice {
                item_ref: sub.gateway_item_ref.as_deref(),
                price: PlanPrice {
                    amount_minor: sub.price_minor.unwrap_or(plan.price_minor),
                    currency: sub.currency.as_deref().unwrap_or(&plan.currency),
                    interval: sub.billing_interval.as_deref().unwrap_or(&plan.interval),
                    ..plan_price(plan)
                },
                prorate: false,
            })
        }
        (Request::ChangePlan(_), Some((plan, upgrade))) => Some(SubscriptionUpdate::ChangePrice {
            item_ref: sub.gateway_item_ref.as_deref(),
            price: plan_price(plan),
            prorate: *upgrade,
        }),
        (Request::ChangePlan(_), None) => None,
    };
    if let Some(update) = update {
        gw.update_subscription(gateway_ref, update)
            .await
            .map_err(|e| {
                AppError::internal(anyhow::anyhow!(
                    "{} subscription update: {e}",
                    gateway.as_str()
                ))
            })?;
    }
    conn.transaction(async |conn| subscriptions::record_request_in(conn, &planned, &request).await)
        .await
}

/// Admin: gives a user `days` days of a plan (audit-logged); see
/// [`subscriptions::grant_days_in`].
pub async fn gift_subscription(
    state: &AppState,
    admin: Uuid,
    user: Uuid,
    plan: Uuid,
    days: i32,
) -> AppResult<SubscriptionRow> {
    let mut conn = db::conn(&state.pool).await?;
    conn.transaction(async |conn| {
        let row =
            subscriptions::grant_days_in(conn, user, plan, days, super::SubscriptionSource::Gift)
                .await?;
        crate::audit::admin(
            conn,
            admin,
            "subscriptions.gifted",
            "user",
            user.to_string(),
            json!({ "plan": plan, "days": days, "subscription": row.id }),
        )
        .await?;
        Ok(row)
    })
    .await
}

/// What the sandbox's stand-in for a gateway's renewal does to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
#[graphql(name = "SandboxRenewalOutcome")]
pub enum SandboxRenewal {
    /// The next period is paid (its credits are granted).
    Renew,
    /// The renewal charge fails: `PAST_DUE`.
    Fail,
    /// The gateway ends the subscription: `EXPIRED`, the tier falls back to FREE.
    End,
}

/// Admin, sandbox only: sends the signed webhook a real gateway would send at a sandbox
/// subscription's renewal (paid, failed) or end, to this server's own webhook endpoint, then
/// answers the subscription as it now stands.
pub async fn sandbox_advance(
    state: &AppState,
    subscription: Uuid,
    outcome: SandboxRenewal,
) -> AppResult<SubscriptionRow> {
    let mut conn = db::conn(&state.pool).await?;
    let sub = subscriptions::by_id_in(&mut conn, subscription)
        .await?
        .filter(|s| s.gateway == Some(Gateway::Sandbox) && state.gateways.sandbox_enabled())
        .ok_or(AppError::NotFound("subscription"))?;
    if !sub.is_live() {
        return Err(AppError::Conflict(format!(
            "this subscription is {}",
            sub.status.as_str()
        )));
    }
    let (kind, start, end) = match outcome {
        SandboxRenewal::Renew => {
            let months = if sub.billing_interval.as_deref() == Some("year") {
                12
            } else {
                1
            };
            let start = sub.current_period_end;
            (
                "subscription.renewed",
                Some(start),
                Some(subscriptions::add_months(start, months)),
            )
        }
        SandboxRenewal::Fail => ("subscription.payment_failed", None, None),
        SandboxRenewal::End => ("subscription.ended", None, None),
    };
    let body = json!({
        "id": format!("evt_{}", Uuid::now_v7().simple()),
        "type": kind,
        "subscriptionRef": sub.gateway_ref,
        "periodStart": start.map(|t| t.to_rfc3339()),
        "periodEnd": end.map(|t| t.to_rfc3339()),
        "created": Utc::now().timestamp(),
    });
    send_sandbox_webhook(state, body.to_string()).await?;
    subscriptions::by_id_in(&mut conn, subscription)
        .await?
        .ok_or(AppError::NotFound("subscription"))
}

/// Sends a signed sandbox webhook to this server's own endpoint, as the gateway would.
async fn send_sandbox_webhook(state: &AppState, body: String) -> AppResult<()> {
    let signature = gateways::sign(
        state
            .config
            .sandbox_webhook_secret
            .expose_secret()
            .as_bytes(),
        Utc::now().timestamp(),
        body.as_bytes(),
    );
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/webhooks/payments/sandbox",
            state.config.public_url
        ))
        .header(gateways::SANDBOX_SIGNATURE_HEADER, signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("sandbox webhook delivery: {e}")))?;
    if !resp.status().is_success() {
        return Err(AppError::internal(anyhow::anyhow!(
            "sandbox webhook answered {}",
            resp.status()
        )));
    }
    Ok(())
}

/// Ends subscriptions whose time is up (run periodically, with the payment expiry).
pub async fn end_overdue_subscriptions(state: &AppState) -> AppResult<usize> {
    let mut conn = db::conn(&state.pool).await?;
    let grace =
        chrono::Duration::from_std(state.config.subscription_grace).map_err(AppError::internal)?;
    subscriptions::end_overdue(&mut conn, grace).await
}

/// The sandbox's Approve/Decline: sends the signed webhook a real gateway would send, over
/// HTTP to this server's own webhook endpoint, then answers the payment as it now stands.
///
/// `token` must be the payment's [`gateways::checkout_token`] (from the checkout URL), else
/// `NOT_FOUND` as for an unknown payment. A decision is taken once: a payment that is no
/// longer pending answers `CONFLICT` and nothing is sent.
pub async fn sandbox_decide(
    state: &AppState,
    payment_id: Uuid,
    token: Option<&str>,
    approve: bool,
) -> AppResult<PaymentRow> {
    let payment = sandbox_checkout(state, payment_id, token).await?;
    if payment.status != PaymentStatus::Pending {
        return Err(AppError::Conflict(format!(
            "this payment is already {}",
            payment.status.as_str()
        )));
    }
    let body = json!({
        "id": format!("evt_{}", Uuid::now_v7().simple()),
        "type": if approve { "payment.succeeded" } else { "payment.failed" },
        "paymentId": payment.id,
        "amountMinor": payment.amount_minor,
        "currency": payment.currency,
    })
    .to_string();
    send_sandbox_webhook(state, body).await?;
    let mut conn = db::conn(&state.pool).await?;
    model::by_id(&mut conn, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))
}

/// The sandbox payment a checkout link names, if its token is right; `NOT_FOUND` for a wrong
/// or missing token, the same answer as for an unknown payment (the token is checked first,
/// so guessing ids learns nothing).
pub async fn sandbox_checkout(
    state: &AppState,
    payment_id: Uuid,
    token: Option<&str>,
) -> AppResult<PaymentRow> {
    let secret = state.config.sandbox_webhook_secret.expose_secret();
    if !state.gateways.sandbox_enabled()
        || !gateways::checkout_token_matches(secret.as_bytes(), payment_id, token)
    {
        return Err(AppError::NotFound("payment"));
    }
    let mut conn = db::conn(&state.pool).await?;
    model::by_id(&mut conn, payment_id)
        .await?
        .filter(|p| p.gateway == Gateway::Sandbox)
        .ok_or(AppError::NotFound("payment"))
}

/// Expires pending payments nobody paid in time (run periodically).
pub async fn expire_overdue(state: &AppState) -> AppResult<usize> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::expire_overdue(&mut conn).await?)
}

/// The viewer's payment, or an admin's view of any; `None` when not theirs.
pub async fn payment_for(
    state: &AppState,
    viewer: &crate::accounts::viewer::Viewer,
    id: Uuid,
) -> AppResult<Option<PaymentRow>> {
    let mut conn = db::conn(&state.pool).await?;
    Ok(model::by_id(&mut conn, id)
        .await?
        .filter(|p| viewer.is_self_or_admin(p.user_id)))
}

/// A user's payments, newest first, after the keyset `after`.
pub async fn payments(
    state: &AppState,
    user: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<PaymentRow>> {
    let mut conn = state.read_conn(Some(user)).await?;
    Ok(model::list(&mut conn, user, after, limit).await?)
}

pub fn shared(config: &Config) -> Arc<Gateways> {
    Arc::new(Gateways::from_config(config))
}
