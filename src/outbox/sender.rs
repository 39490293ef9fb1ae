//! Where messages go: the log (development), an HTTP SMS gateway, an SMTP server
//! (`super::email`), or memory (tests); [`ChannelRouter`] sends each channel to its own.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::OutboxMessage;

/// Why a message was not delivered.
#[derive(Debug)]
pub enum SendError {
    /// Try again later (network trouble, 408, 429, 5xx).
    Retryable(String),
    /// The gateway refused the message for good (other 4xx).
    Permanent(String),
}

/// Delivers one message.
pub trait MessageSender: Send + Sync + 'static {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Routes each message by its channel: SMS to one sender, email to another.
pub struct ChannelRouter {
    pub sms: Arc<dyn MessageSender>,
    pub email: Arc<dyn MessageSender>,
}

impl MessageSender for ChannelRouter {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>> {
        match msg.channel.as_str() {
            "email" => self.email.send(msg),
            _ => self.sms.send(msg),
        }
    }
}

/// Development: writes the message to the log at INFO (`otp code` with the phone for codes,
/// `email` with the recipient, subject and body for emails).
pub struct LogSender;

impl MessageSender for LogSender {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            if msg.template.starts_with("otp") {
                tracing::info!(phone = %msg.destination, body = %msg.body, "otp code");
            } else if msg.channel == "email" {
                let subject = msg.subject.as_deref().unwrap_or_default();
                tracing::info!(to = %msg.destination, subject = %subject, body = %msg.body, "email");
            } else {
                tracing::info!(to = %msg.destination, channel = %msg.channel, body = %msg.body, "outbox message");
            }
            Ok(())
        })
    }
}

/// An HTTP SMS gateway: `POST <url>` with `Authorization: Bearer <token>`,
/// `Idempotency-Key: <message id>` and the JSON body
/// `{"to": "+14155552671", "message": "...", "reference": "<message id>"}`.
/// 2xx is delivered; 408, 429 and 5xx are retried with backoff; other answers give up.
pub struct HttpSmsSender {
    client: reqwest::Client,
    url: String,
    token: Option<SecretString>,
}

impl HttpSmsSender {
    pub fn new(url: String, token: Option<SecretString>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        HttpSmsSender { client, url, token }
    }
}

impl MessageSender for HttpSmsSender {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let mut req = self
                .client
                .post(&self.url)
                .header("Idempotency-Key", msg.id.to_string())
                .json(&json!({ "to": msg.destination, "message": msg.body, "reference": msg.id }));
            if let Some(token) = &self.token {
                req = req.bearer_auth(token.expose_secret());
            }
            let resp = req
                .send()
                .await
                .map_err(|e| SendError::Retryable(format!("SMS gateway unreachable: {e}")))?;
            let status = resp.status();
            if status.is_success() {
                return Ok(());
            }
            let detail = format!("SMS gateway answered {status}");
            if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                Err(SendError::Retryable(detail))
            } else {
                Err(SendError::Permanent(detail))
            }
        })
    }
}

/// Keeps delivered messages in memory: for tests and for embedding Easel.
#[derive(Default)]
pub struct MemorySender {
    sent: Mutex<Vec<OutboxMessage>>,
}

impl MemorySender {
    /// Every message delivered so far, oldest first.
    pub fn sent(&self) -> Vec<OutboxMessage> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl MessageSender for MemorySender {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.clone());
        Box::pin(async { Ok(()) })
    }
}
