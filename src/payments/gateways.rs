//! Payment gateways behind one trait. Both built-in gateways sign webhooks the same way
//! (Stripe's scheme): a header `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`,
//! checked in constant time with a timestamp tolerance.

use std::time::Duration;

use futures_util::future::BoxFuture;
use hmac::{Hmac, KeyInit, Mac};
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::Sha256;
use uuid::Uuid;

use chrono::{DateTime, Utc};

use super::{
    Gateway, SubscriptionStatus,
    subscriptions::{GatewayChange, GatewayEvent},
};
use crate::config::StripeConfig;

/// How old a signed webhook may be.
pub const SIGNATURE_TOLERANCE_SECS: i64 = 300;

/// What a checkout is created for.
pub struct CheckoutRequest<'a> {
    pub payment_id: Uuid,
    pub amount_minor: i64,
    pub currency: &'a str,
    pub description: &'a str,
    /// Where the buyer's browser returns to (the app's page).
    pub return_url: &'a str,
}

/// A plan's price as a gateway sells it.
#[derive(Clone, Copy)]
pub struct PlanPrice<'a> {
    pub plan_id: Uuid,
    pub name: &'a str,
    pub amount_minor: i64,
    pub currency: &'a str,
    /// `month` or `year`.
    pub interval: &'a str,
}

/// What a subscription checkout is created for.
pub struct SubscriptionCheckoutRequest<'a> {
    pub payment_id: Uuid,
    pub user_id: Uuid,
    pub price: PlanPrice<'a>,
    /// Days free before the first charge (0: none).
    pub trial_days: i32,
    pub return_url: &'a str,
}

/// A change of a running subscription at its gateway.
pub enum SubscriptionUpdate<'a> {
    /// End at the period's end (true) or keep renewing (false).
    CancelAtPeriodEnd(bool),
    /// Move to another price: prorated now (an upgrade) or from the next period on.
    ChangePrice {
        item_ref: Option<&'a str>,
        price: PlanPrice<'a>,
        prorate: bool,
    },
}

/// A created checkout.
pub struct Checkout {
    pub checkout_url: String,
    pub gateway_ref: Option<String>,
}

/// What a webhook says happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Expired,
    /// An event kind Easel does not act on.
    Ignored,
}

/// A verified webhook event.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    pub event_id: String,
    pub outcome: Outcome,
    /// Our payment id, when the gateway echoes it.
    pub payment_id: Option<Uuid>,
    /// The gateway's own reference (e.g. a Checkout Session id).
    pub gateway_ref: Option<String>,
    pub amount_minor: Option<i64>,
    pub currency: Option<String>,
    /// The gateway's subscription a completed subscription checkout started.
    pub subscription_ref: Option<String>,
    /// What the event says about a subscription.
    pub subscription: Option<GatewayEvent>,
    pub payload: Value,
}

/// A payment gateway.
pub trait PaymentGateway: Send + Sync + 'static {
    fn gateway(&self) -> Gateway;
    /// Creates the checkout the buyer is sent to.
    fn create_checkout<'a>(
        &'a self,
        req: CheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>>;
    /// Creates the checkout that starts a subscription.
    fn create_subscription_checkout<'a>(
        &'a self,
        req: SubscriptionCheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>>;
    /// Changes a running subscription at the gateway (its events follow).
    fn update_subscription<'a>(
        &'a self,
        gateway_ref: &'a str,
        update: SubscriptionUpdate<'a>,
    ) -> BoxFuture<'a, Result<(), String>>;
    /// Verifies a webhook on its raw body and reads it.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, String>;
}

/// A timestamp from unix seconds.
fn unix(v: &Value) -> Option<DateTime<Utc>> {
    v.as_i64().and_then(|t| DateTime::from_timestamp(t, 0))
}

fn uuid_at(v: &Value) -> Option<Uuid> {
    v.as_str().and_then(|s| Uuid::parse_str(s).ok())
}

/// Signs `body` at time `t` (what a gateway sends; the sandbox page uses it).
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let sig: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={sig}")
}

/// Checks a `t=...,v1=...` signature header against the raw body.
pub fn verify_signature(
    header: Option<&str>,
    body: &[u8],
    secret: &[u8],
    now: i64,
) -> Result<(), String> {
    let header = header.ok_or("missing signature header")?;
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v.to_string()),
            _ => {}
        }
    }
    let t = t.ok_or("signature header has no timestamp")?;
    if (now - t).abs() > SIGNATURE_TOLERANCE_SECS {
        return Err("signature timestamp is outside the tolerance".into());
    }
    for candidate in candidates {
        let Some(bytes) = unhex(&candidate) else {
            continue;
        };
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&bytes).is_ok() {
            return Ok(());
        }
    }
    Err("signature does not match".into())
}

/// The token that binds a sandbox checkout link to its payment: hex HMAC-SHA256, keyed with
/// the sandbox secret, of `"checkout:<payment id>"`. Knowing (or guessing) a payment id is not
/// enough to approve it: only whoever was given the checkout URL can.
pub fn checkout_token(secret: &[u8], payment: Uuid) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"checkout:");
    mac.update(payment.to_string().as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `token` is the checkout token of `payment` (compared in constant time).
pub fn checkout_token_matches(secret: &[u8], payment: Uuid, token: Option<&str>) -> bool {
    let Some(bytes) = token.and_then(unhex) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(b"checkout:");
    mac.update(payment.to_string().as_bytes());
    mac.verify_slice(&bytes).is_ok()
}

/// Reads a webhook body as JSON, refusing NUL characters (`\u0000`) anywhere in it:
/// PostgreSQL stores neither them in `text` nor in `jsonb`, so such an event could not be
/// recorded (and no real gateway sends one).
fn webhook_json(body: &[u8]) -> Result<Value, String> {
    fn has_nul(v: &Value) -> bool {
        match v {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            Value::Null | Value::Bool(_) | Value::Number(_) => false,
        }
    }
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    if has_nul(&payload) {
        return Err("body contains a NUL character".into());
    }
    Ok(payload)
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

// ---- sandbox ----------------------------------------------------------------------------

/// The built-in gateway: the checkout is a page Easel serves with Approve and Decline buttons;
/// choosing sends a signed webhook to Easel, exactly as a real gateway would. The page's URL
/// carries a [`checkout_token`], without which it answers 404.
///
/// Wire format: `POST /webhooks/payments/sandbox` with the JSON body
/// `{"id": "<unique event id>", "type": "payment.succeeded" | "payment.failed",
/// "paymentId": "<Payment.id>", "amountMinor": <int>, "currency": "<code>"}` and the header
/// `Easel-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed with
/// `EASEL_SANDBOX_WEBHOOK_SECRET`.
///
/// Subscriptions: a plan's checkout is approved like a package's (`payment.succeeded`); the
/// sandbox names the subscription `sbx_sub_<payment id without dashes>`. Renewals and
/// failures, which a real gateway sends on its own schedule, are sent when an admin asks
/// (`sandboxAdvanceSubscription`): `{"id", "type": "subscription.renewed", "subscriptionRef",
/// "periodStart", "periodEnd" (RFC 3339), "created" (unix seconds)}`,
/// `"subscription.payment_failed"` and `"subscription.ended"` (with `subscriptionRef`).
pub struct Sandbox {
    pub public_url: String,
    pub secret: SecretString,
}

pub const SANDBOX_SIGNATURE_HEADER: &str = "easel-signature";

impl PaymentGateway for Sandbox {
    fn gateway(&self) -> Gateway {
        Gateway::Sandbox
    }

    fn create_checkout<'a>(
        &'a self,
        req: CheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>> {
        Box::pin(async move {
            let token = checkout_token(self.secret.expose_secret().as_bytes(), req.payment_id);
            Ok(Checkout {
                checkout_url: format!(
                    "{}/sandbox/checkout/{}?token={token}",
                    self.public_url, req.payment_id
                ),
                gateway_ref: None,
            })
        })
    }

    fn create_subscription_checkout<'a>(
        &'a self,
        req: SubscriptionCheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>> {
        self.create_checkout(CheckoutRequest {
            payment_id: req.payment_id,
            amount_minor: req.price.amount_minor,
            currency: req.price.currency,
            description: req.price.name,
            return_url: req.return_url,
        })
    }

    /// The sandbox keeps no state of its own: Easel's record is the subscription.
    fn update_subscription<'a>(
        &'a self,
        _gateway_ref: &'a str,
        _update: SubscriptionUpdate<'a>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, String> {
        let header = headers
            .get(SANDBOX_SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok());
        verify_signature(
            header,
            body,
            self.secret.expose_secret().as_bytes(),
            chrono::Utc::now().timestamp(),
        )?;
        let payload = webhook_json(body)?;
        let event_id = payload["id"]
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 255)
            .ok_or("missing `id`")?
            .to_string();
        let outcome = match payload["type"].as_str() {
            Some("payment.succeeded") => Outcome::Succeeded,
            Some("payment.failed") => Outcome::Failed,
            _ => Outcome::Ignored,
        };
        let payment_id = payload["paymentId"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok());
        if outcome != Outcome::Ignored && payment_id.is_none() {
            return Err("missing or invalid `paymentId`".into());
        }
        let time = |key: &str| {
            payload[key]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let change = match payload["type"].as_str() {
            Some("subscription.renewed") => Some(GatewayChange::PeriodPaid {
                period_start: time("periodStart").ok_or("missing or invalid `periodStart`")?,
                period_end: time("periodEnd").ok_or("missing or invalid `periodEnd`")?,
                invoice_ref: None,
                no_new_period: false,
            }),
            Some("subscription.payment_failed") => Some(GatewayChange::PaymentFailed),
            Some("subscription.ended") => Some(GatewayChange::Ended),
            _ => None,
        };
        let subscription = match change {
            Some(change) => Some(GatewayEvent {
                gateway_ref: payload["subscriptionRef"]
                    .as_str()
                    .filter(|r| !r.is_empty() && r.len() <= 255)
                    .ok_or("missing `subscriptionRef`")?
                    .to_string(),
                change,
                user: None,
                plan: None,
                payment: None,
                created: unix(&payload["created"]),
            }),
            None => None,
        };
        Ok(WebhookEvent {
            event_id,
            outcome,
            payment_id,
            gateway_ref: None,
            amount_minor: payload["amountMinor"].as_i64(),
            currency: payload["currency"].as_str().map(str::to_string),
            subscription_ref: None,
            subscription,
            payload,
        })
    }
}

// ---- stripe -----------------------------------------------------------------------------

/// Stripe Checkout: `POST /v1/checkout/sessions` (form-encoded, bearer secret key) creates the
/// session whose `url` the buyer is sent to; `Stripe-Signature` webhooks report the outcome
/// (`checkout.session.completed` with `payment_status: paid`, `..async_payment_succeeded`,
/// `..async_payment_failed`, `checkout.session.expired`).
pub struct Stripe {
    client: reqwest::Client,
    config: StripeConfig,
}

impl Stripe {
    pub fn new(config: StripeConfig) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        Stripe { client, config }
    }

    /// Calls Stripe's API (form-encoded, the secret key as bearer) and reads its JSON answer;
    /// an error status is reported with Stripe's message.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<String>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.config.api_url);
        let mut req = self
            .client
            .request(method.clone(), url)
            .bearer_auth(self.config.secret_key.expose_secret());
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req = if method == reqwest::Method::GET {
            req.query(form)
        } else {
            req.form(form)
        };
        let resp = req
            .send()
            .await
            .map_err(|e| format!("Stripe unreachable: {e}"))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| format!("Stripe answered {status} without JSON: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "Stripe answered {status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            ));
        }
        Ok(body)
    }

    /// `POST /v1/checkout/sessions` for payment `id` (its idempotency key), and the checkout
    /// the session is.
    async fn create_session(&self, id: &str, form: &[(&str, String)]) -> Result<Checkout, String> {
        let session = self
            .call(
                reqwest::Method::POST,
                "/v1/checkout/sessions",
                form,
                Some(format!("easel-checkout-{id}")),
            )
            .await?;
        Ok(Checkout {
            checkout_url: session["url"]
                .as_str()
                .ok_or("Stripe's session has no url")?
                .to_string(),
            gateway_ref: Some(
                session["id"]
                    .as_str()
                    .ok_or("Stripe's session has no id")?
                    .to_string(),
            ),
        })
    }

    /// The Stripe Price of a plan's price: looked up by its lookup key (which names the plan,
    /// amount, currency and interval, so a changed plan price is a new Price and running
    /// subscriptions keep theirs), created the first time.
    async fn price_id(&self, price: PlanPrice<'_>) -> Result<String, String> {
        let key = price_lookup_key(price);
        let found = self
            .call(
                reqwest::Method::GET,
                "/v1/prices",
                &[
                    ("lookup_keys[]", key.clone()),
                    ("active", "true".into()),
                    ("limit", "1".into()),
                ],
                None,
            )
            .await?;
        if let Some(id) = found["data"][0]["id"].as_str() {
            return Ok(id.to_string());
        }
        let created = self
            .call(
                reqwest::Method::POST,
                "/v1/prices",
                &[
                    ("currency", price.currency.to_lowercase()),
                    ("unit_amount", price.amount_minor.to_string()),
                    ("recurring[interval]", price.interval.to_string()),
                    ("product_data[name]", price.name.to_string()),
                    ("lookup_key", key.clone()),
                    ("metadata[easel_plan]", price.plan_id.to_string()),
                ],
                Some(format!("easel-{key}")),
            )
            .await?;
        created["id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| "Stripe's price has no id".into())
    }
}

/// The lookup key of a plan's price at Stripe.
pub fn price_lookup_key(price: PlanPrice<'_>) -> String {
    format!(
        "easel_plan_{}_{}_{}_{}",
        price.plan_id.simple(),
        price.amount_minor,
        price.currency.to_lowercase(),
        price.interval
    )
}

/// The plan a Stripe Price belongs to, from its lookup key (or its metadata).
fn plan_of_price(price: &Value) -> Option<Uuid> {
    price["lookup_key"]
        .as_str()
        .and_then(|k| k.strip_prefix("easel_plan_"))
        .and_then(|rest| rest.get(..32))
        .and_then(|hex| Uuid::parse_str(hex).ok())
        .or_else(|| uuid_at(&price["metadata"]["easel_plan"]))
}

/// Stripe's subscription statuses; `incomplete` and `paused` change nothing here.
fn stripe_status(status: &str) -> Option<SubscriptionStatus> {
    match status {
        "trialing" => Some(SubscriptionStatus::Trial),
        "active" => Some(SubscriptionStatus::Active),
        "past_due" | "unpaid" => Some(SubscriptionStatus::PastDue),
        "canceled" | "incomplete_expired" => Some(SubscriptionStatus::Expired),
        _ => None,
    }
}

/// Reads a Stripe event about a subscription or its invoices.
fn stripe_subscription_event(
    kind: &str,
    object: &Value,
    created: Option<DateTime<Utc>>,
) -> Option<GatewayEvent> {
    let (gateway_ref, metadata, change) = match kind {
        "customer.subscription.created" | "customer.subscription.updated" => {
            let item = &object["items"]["data"][0];
            // Newer API versions keep the period on the item.
            let period = |key: &str| unix(&object[key]).or_else(|| unix(&item[key]));
            (
                object["id"].as_str()?,
                &object["metadata"],
                GatewayChange::Updated {
                    status: object["status"].as_str().and_then(stripe_status),
                    period_start: period("current_period_start"),
                    period_end: period("current_period_end"),
                    cancel_at_period_end: object["cancel_at_period_end"].as_bool(),
                    trial_end: unix(&object["trial_end"]),
                    plan: plan_of_price(&item["price"]),
                    item_ref: item["id"].as_str().map(str::to_string),
                },
            )
        }
        "customer.subscription.deleted" => (
            object["id"].as_str()?,
            &object["metadata"],
            GatewayChange::Ended,
        ),
        "invoice.paid" | "invoice.payment_failed" => {
            // Older API versions: `subscription` and `subscription_details`; newer ones:
            // `parent.subscription_details`.
            let details = if object["parent"]["subscription_details"].is_object() {
                &object["parent"]["subscription_details"]
            } else {
                &object["subscription_details"]
            };
            let sub = object["subscription"]
                .as_str()
                .or_else(|| details["subscription"].as_str())?;
            let change = if kind == "invoice.paid" {
                let period = &object["lines"]["data"][0]["period"];
                GatewayChange::PeriodPaid {
                    period_start: unix(&period["start"])?,
                    period_end: unix(&period["end"])?,
                    invoice_ref: object["id"].as_str().map(str::to_string),
                    no_new_period: object["billing_reason"] == "subscription_update"
                        || object["amount_paid"].as_i64() == Some(0),
                }
            } else {
                GatewayChange::PaymentFailed
            };
            (sub, &details["metadata"], change)
        }
        _ => return None,
    };
    let plan = match &change {
        GatewayChange::Updated { plan, .. } => plan.or_else(|| uuid_at(&metadata["easel_plan"])),
        _ => uuid_at(&metadata["easel_plan"]),
    };
    Some(GatewayEvent {
        gateway_ref: gateway_ref.to_string(),
        change,
        user: uuid_at(&metadata["easel_user"]),
        plan,
        payment: uuid_at(&metadata["easel_payment"]),
        created,
    })
}

impl PaymentGateway for Stripe {
    fn gateway(&self) -> Gateway {
        Gateway::Stripe
    }

    fn create_checkout<'a>(
        &'a self,
        req: CheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>> {
        Box::pin(async move {
            let id = req.payment_id.to_string();
            let sep = if req.return_url.contains('?') {
                '&'
            } else {
                '?'
            };
            let success = format!("{}{sep}payment={id}&status=success", req.return_url);
            let cancel = format!("{}{sep}payment={id}&status=cancelled", req.return_url);
            let form = [
                ("mode", "payment".to_string()),
                ("success_url", success),
                ("cancel_url", cancel),
                ("client_reference_id", id.clone()),
                ("metadata[payment_id]", id.clone()),
                ("payment_intent_data[metadata][payment_id]", id.clone()),
                ("line_items[0][quantity]", "1".into()),
                (
                    "line_items[0][price_data][currency]",
                    req.currency.to_lowercase(),
                ),
                (
                    "line_items[0][price_data][unit_amount]",
                    req.amount_minor.to_string(),
                ),
                (
                    "line_items[0][price_data][product_data][name]",
                    req.description.to_string(),
                ),
            ];
            self.create_session(&id, &form).await
        })
    }

    /// `mode=subscription` with the plan's Price; the subscription carries Easel's user, plan
    /// and payment in its metadata (so its events can be matched in any order).
    fn create_subscription_checkout<'a>(
        &'a self,
        req: SubscriptionCheckoutRequest<'a>,
    ) -> BoxFuture<'a, Result<Checkout, String>> {
        Box::pin(async move {
            let price = self.price_id(req.price).await?;
            let id = req.payment_id.to_string();
            let sep = if req.return_url.contains('?') {
                '&'
            } else {
                '?'
            };
            let mut form = vec![
                ("mode", "subscription".to_string()),
                (
                    "success_url",
                    format!("{}{sep}payment={id}&status=success", req.return_url),
                ),
                (
                    "cancel_url",
                    format!("{}{sep}payment={id}&status=cancelled", req.return_url),
                ),
                ("client_reference_id", id.clone()),
                ("metadata[payment_id]", id.clone()),
                ("line_items[0][price]", price),
                ("line_items[0][quantity]", "1".into()),
                (
                    "subscription_data[metadata][easel_user]",
                    req.user_id.to_string(),
                ),
                (
                    "subscription_data[metadata][easel_plan]",
                    req.price.plan_id.to_string(),
                ),
                ("subscription_data[metadata][easel_payment]", id.clone()),
            ];
            if req.trial_days > 0 {
                form.push((
                    "subscription_data[trial_period_days]",
                    req.trial_days.to_string(),
                ));
            }
            self.create_session(&id, &form).await
        })
    }

    /// `POST /v1/subscriptions/<id>`: `cancel_at_period_end`, or the item's new price with
    /// `proration_behavior=always_invoice` (an upgrade, charged now) or `none` (a downgrade:
    /// the next period is billed at the new price).
    fn update_subscription<'a>(
        &'a self,
        gateway_ref: &'a str,
        update: SubscriptionUpdate<'a>,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let form = match update {
                SubscriptionUpdate::CancelAtPeriodEnd(cancel) => {
                    vec![("cancel_at_period_end", cancel.to_string())]
                }
                SubscriptionUpdate::ChangePrice {
                    item_ref,
                    price,
                    prorate,
                } => {
                    let item = item_ref
                        .ok_or("the subscription's item is not known yet; retry shortly")?;
                    vec![
                        ("items[0][id]", item.to_string()),
                        ("items[0][price]", self.price_id(price).await?),
                        (
                            "proration_behavior",
                            if prorate { "always_invoice" } else { "none" }.to_string(),
                        ),
                        ("metadata[easel_plan]", price.plan_id.to_string()),
                    ]
                }
            };
            self.call(
                reqwest::Method::POST,
                &format!("/v1/subscriptions/{gateway_ref}"),
                &form,
                None,
            )
            .await
            .map(drop)
        })
    }

    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, String> {
        let header = headers
            .get("stripe-signature")
            .and_then(|v| v.to_str().ok());
        verify_signature(
            header,
            body,
            self.config.webhook_secret.expose_secret().as_bytes(),
            chrono::Utc::now().timestamp(),
        )?;
        let payload = webhook_json(body)?;
        let event_id = payload["id"].as_str().ok_or("missing `id`")?.to_string();
        let object = &payload["data"]["object"];
        let kind = payload["type"].as_str().unwrap_or_default();
        let outcome = match payload["type"].as_str() {
            Some("checkout.session.completed") if object["payment_status"] == "paid" => {
                Outcome::Succeeded
            }
            // A subscription that starts with a trial: nothing is charged yet.
            Some("checkout.session.completed")
                if object["mode"] == "subscription"
                    && object["payment_status"] == "no_payment_required" =>
            {
                Outcome::Succeeded
            }
            Some("checkout.session.async_payment_succeeded") => Outcome::Succeeded,
            Some("checkout.session.async_payment_failed") => Outcome::Failed,
            Some("checkout.session.expired") => Outcome::Expired,
            _ => Outcome::Ignored,
        };
        let payment_id = object["metadata"]["payment_id"]
            .as_str()
            .or_else(|| object["client_reference_id"].as_str())
            .and_then(|s| Uuid::parse_str(s).ok())
            .filter(|_| kind.starts_with("checkout.session."));
        Ok(WebhookEvent {
            event_id,
            outcome,
            payment_id,
            gateway_ref: object["id"]
                .as_str()
                .filter(|_| kind.starts_with("checkout.session."))
                .map(str::to_string),
            amount_minor: object["amount_total"].as_i64(),
            currency: object["currency"].as_str().map(str::to_string),
            subscription_ref: object["subscription"]
                .as_str()
                .filter(|_| kind.starts_with("checkout.session."))
                .map(str::to_string),
            subscription: stripe_subscription_event(kind, object, unix(&payload["created"])),
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign(b"secret", 1_700_000_000, body);
        assert!(verify_signature(Some(&header), body, b"secret", 1_700_000_100).is_ok());
        assert!(
            verify_signature(
                Some(&header),
                br#"{"id":"evt_2"}"#,
                b"secret",
                1_700_000_100
            )
            .is_err(),
            "tampered body"
        );
        assert!(
            verify_signature(Some(&header), body, b"other", 1_700_000_100).is_err(),
            "other key"
        );
        assert!(
            verify_signature(Some(&header), body, b"secret", 1_700_000_400).is_err(),
            "too old"
        );
        assert!(verify_signature(None, body, b"secret", 1_700_000_000).is_err());
        assert!(
            verify_signature(Some("t=1700000000,v1=zz"), body, b"secret", 1_700_000_000).is_err()
        );
        // Several v1 signatures (a rolling secret): one match is enough.
        let both = format!("{header},v1={}", "0".repeat(64));
        assert!(verify_signature(Some(&both), body, b"secret", 1_700_000_000).is_ok());
    }

    #[test]
    fn checkout_tokens_bind_one_payment_to_one_key() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let token = checkout_token(b"secret", a);
        assert_eq!(token.len(), 64);
        assert!(checkout_token_matches(b"secret", a, Some(&token)));
        assert!(
            !checkout_token_matches(b"secret", b, Some(&token)),
            "other payment"
        );
        assert!(
            !checkout_token_matches(b"other", a, Some(&token)),
            "other key"
        );
        assert!(!checkout_token_matches(b"secret", a, None));
        assert!(!checkout_token_matches(b"secret", a, Some("")));
        assert!(!checkout_token_matches(b"secret", a, Some(&token[..62])));
        assert!(!checkout_token_matches(
            b"secret",
            a,
            Some(&"zz".repeat(32))
        ));
    }

    /// Stripe's older API versions put the subscription on the invoice itself and the period
    /// on the subscription; both shapes are read.
    #[test]
    fn stripe_subscription_events_of_older_api_versions_are_read() {
        let plan = Uuid::now_v7();
        let user = Uuid::now_v7();
        let key = price_lookup_key(PlanPrice {
            plan_id: plan,
            name: "Pro",
            amount_minor: 2999,
            currency: "USD",
            interval: "month",
        });
        assert_eq!(
            plan_of_price(&serde_json::json!({ "lookup_key": key })),
            Some(plan)
        );
        let invoice = serde_json::json!({
            "id": "in_9", "subscription": "sub_9", "billing_reason": "subscription_cycle", "amount_paid": 2999,
            "subscription_details": { "metadata": { "easel_user": user.to_string(), "easel_plan": plan.to_string() } },
            "lines": { "data": [ { "period": { "start": 1_700_000_000, "end": 1_702_592_000 } } ] }
        });
        let ev = stripe_subscription_event("invoice.paid", &invoice, None).unwrap();
        assert_eq!(ev.gateway_ref, "sub_9");
        assert_eq!((ev.user, ev.plan), (Some(user), Some(plan)));
        assert_eq!(
            ev.change,
            GatewayChange::PeriodPaid {
                period_start: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
                period_end: DateTime::from_timestamp(1_702_592_000, 0).unwrap(),
                invoice_ref: Some("in_9".into()),
                no_new_period: false,
            }
        );
        let subscription = serde_json::json!({
            "id": "sub_9", "status": "past_due", "cancel_at_period_end": false,
            "current_period_start": 1_700_000_000, "current_period_end": 1_702_592_000,
            "items": { "data": [ { "id": "si_9", "price": { "lookup_key": key } } ] }
        });
        let ev = stripe_subscription_event("customer.subscription.updated", &subscription, None)
            .unwrap();
        match ev.change {
            GatewayChange::Updated {
                status,
                period_end,
                plan: p,
                item_ref,
                ..
            } => {
                assert_eq!(status, Some(SubscriptionStatus::PastDue));
                assert_eq!(period_end, DateTime::from_timestamp(1_702_592_000, 0));
                assert_eq!(p, Some(plan));
                assert_eq!(item_ref.as_deref(), Some("si_9"));
            }
            other => panic!("{other:?}"),
        }
        // A one-off invoice (no subscription) is no subscription event.
        let one_off = serde_json::json!({ "id": "in_1", "lines": { "data": [] } });
        assert!(stripe_subscription_event("invoice.paid", &one_off, None).is_none());
    }

    #[test]
    fn webhook_bodies_with_nul_characters_are_refused() {
        assert!(webhook_json(br#"{"id":"evt_1","currency":"USD"}"#).is_ok());
        for body in [
            &br#"{"id":"evt\u0000"}"#[..],
            br#"{"id":"evt_1","data":{"object":{"currency":"us\u0000d"}}}"#,
            br#"{"id":"evt_1","list":["\u0000"]}"#,
            br#"{"id":"evt_1","k\u0000":1}"#,
        ] {
            let err = webhook_json(body).unwrap_err();
            assert!(err.contains("NUL"), "{err}");
        }
    }
}
