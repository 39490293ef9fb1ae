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

use super::Gateway;
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
    /// Verifies a webhook on its raw body and reads it.
    fn verify_webhook(&self, headers: &HeaderMap, body: &[u8]) -> Result<WebhookEvent, String>;
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
        Ok(WebhookEvent {
            event_id,
            outcome,
            payment_id,
            gateway_ref: None,
            amount_minor: payload["amountMinor"].as_i64(),
            currency: payload["currency"].as_str().map(str::to_string),
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
            let resp = self
                .client
                .post(format!("{}/v1/checkout/sessions", self.config.api_url))
                .bearer_auth(self.config.secret_key.expose_secret())
                .header("Idempotency-Key", format!("easel-checkout-{id}"))
                .form(&form)
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
            let url = body["url"]
                .as_str()
                .ok_or("Stripe's session has no url")?
                .to_string();
            let session = body["id"]
                .as_str()
                .ok_or("Stripe's session has no id")?
                .to_string();
            Ok(Checkout {
                checkout_url: url,
                gateway_ref: Some(session),
            })
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
        let outcome = match payload["type"].as_str() {
            Some("checkout.session.completed") if object["payment_status"] == "paid" => {
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
            .and_then(|s| Uuid::parse_str(s).ok());
        Ok(WebhookEvent {
            event_id,
            outcome,
            payment_id,
            gateway_ref: object["id"].as_str().map(str::to_string),
            amount_minor: object["amount_total"].as_i64(),
            currency: object["currency"].as_str().map(str::to_string),
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
