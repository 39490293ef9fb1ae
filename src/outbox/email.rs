//! Email over SMTP (the `lettre` crate): plain-text messages from the outbox, through one
//! configured submission server. The connection URL says how to reach it:
//! `smtp://host:25` (plain), `smtp://user:pass@host:587?tls=required` (STARTTLS, required),
//! `?tls=opportunistic` (STARTTLS when offered), `smtps://user:pass@host:465` (implicit TLS);
//! a user and password in the URL are sent with `AUTH` (PLAIN or LOGIN); a separate password
//! (`EASEL_SMTP_PASSWORD`, a secret) replaces the URL's. Certificates are
//! checked against the Mozilla roots (webpki-roots), plus an optional PEM file of extra
//! roots (a private CA). The outbox message id becomes the `Message-ID`, so a retried message
//! keeps its id and receivers can drop the duplicate.

use std::time::Duration;

use futures_util::future::BoxFuture;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use secrecy::{ExposeSecret, SecretString};

use super::{OutboxMessage, SendError, sender::MessageSender};

/// Sends the outbox's emails through an SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    /// A sender for `url` (see the module documentation) writing as `from`
    /// (`Easel <no-reply@example.com>`), authenticating with `password` (else the URL's) and
    /// trusting the extra roots in `ca_pem` if given.
    pub fn new(
        url: &SecretString,
        password: Option<&SecretString>,
        from: &str,
        ca_pem: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let url_str = url.expose_secret();
        let parsed =
            url::Url::parse(url_str).map_err(|e| anyhow::anyhow!("EASEL_SMTP_URL: {e}"))?;
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url_str)
            .map_err(|e| anyhow::anyhow!("EASEL_SMTP_URL: {e}"))?
            .timeout(Some(Duration::from_secs(20)));
        if let Some(password) = password {
            let user = percent_decode(parsed.username());
            builder =
                builder.credentials(Credentials::new(user, password.expose_secret().to_string()));
        }
        if let Some(pem) = ca_pem {
            let host = parsed.host_str().unwrap_or_default().to_string();
            let params = TlsParameters::builder(host)
                .add_root_certificate(
                    Certificate::from_pem(pem)
                        .map_err(|e| anyhow::anyhow!("EASEL_SMTP_CA_FILE: {e}"))?,
                )
                .build()
                .map_err(|e| anyhow::anyhow!("EASEL_SMTP_CA_FILE: {e}"))?;
            let mode = parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.to_string());
            builder = match (parsed.scheme(), mode.as_deref()) {
                ("smtps", _) => builder.tls(Tls::Wrapper(params)),
                (_, Some("required")) => builder.tls(Tls::Required(params)),
                (_, Some("opportunistic")) => builder.tls(Tls::Opportunistic(params)),
                _ => builder,
            };
        }
        let from = from
            .parse::<Mailbox>()
            .map_err(|e| anyhow::anyhow!("EASEL_EMAIL_FROM: {e}"))?;
        Ok(SmtpSender {
            transport: builder.build(),
            from,
        })
    }

    fn message(&self, msg: &OutboxMessage) -> Result<Message, SendError> {
        let to = msg
            .destination
            .parse::<Mailbox>()
            .map_err(|e| SendError::Permanent(format!("bad recipient address: {e}")))?;
        let domain = self.from.email.domain().to_string();
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.as_deref().unwrap_or("Easel"))
            .message_id(Some(format!("<{}@{domain}>", msg.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(msg.body.clone())
            .map_err(|e| SendError::Permanent(format!("building the email: {e}")))
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("u={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

impl MessageSender for SmtpSender {
    fn send<'a>(&'a self, msg: &'a OutboxMessage) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let email = self.message(msg)?;
            match self.transport.send(email).await {
                Ok(_) => Ok(()),
                // 5xx: the server refused this message for good (unknown mailbox, ...).
                Err(e) if e.is_permanent() => {
                    Err(SendError::Permanent(format!("SMTP server refused: {e}")))
                }
                // 4xx, network trouble, TLS or AUTH failures: try again later.
                Err(e) => Err(SendError::Retryable(format!("SMTP delivery failed: {e}"))),
            }
        })
    }
}
