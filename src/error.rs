//! The closed list of errors a client can see. Each variant is one `extensions.code` of
//! `API.md`; [`AppError::into_graphql`] (used by `?` through `From`) is the one place the
//! codes are set.
//!
//! `AppError` deliberately does not implement `Display`: async-graphql converts any
//! `Display` type into an error without a code, so leaving it out makes `?` go through our
//! own `From` impl and never loses the code.

use async_graphql::ErrorExtensions;
use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// Every error code a client may receive in `extensions.code`.
pub mod codes {
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const FORBIDDEN: &str = "FORBIDDEN";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub const INSUFFICIENT_CREDITS: &str = "INSUFFICIENT_CREDITS";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const CONFLICT: &str = "CONFLICT";
    pub const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub const SUBSCRIPTION_LAGGED: &str = "SUBSCRIPTION_LAGGED";
    /// An automatic persisted query's hash the server does not know (yet): send the query
    /// with the hash (Apollo's `createPersistedQueryLink` does so by itself).
    pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
    pub const INTERNAL: &str = "INTERNAL";
}

/// An error of the request path.
#[derive(Debug)]
pub enum AppError {
    /// No or an invalid token or credentials where they are needed; the message says which.
    Unauthenticated(&'static str),
    /// The viewer is known but may not do this.
    Forbidden(String),
    /// The object does not exist, or the viewer may not see it.
    NotFound(&'static str),
    /// An input value is wrong; `field` names it (e.g. `input.phone`). `reason`, when set,
    /// is a machine-readable cause apps can switch on (`extensions.reason`, e.g. `EXPIRED`
    /// for an invite token), so they need not parse the message.
    BadUserInput {
        field: String,
        message: String,
        reason: Option<&'static str>,
    },
    /// A charge needs more credits than the account holds.
    InsufficientCredits { required: i64, available: i64 },
    /// Too many requests; retry after this many seconds.
    RateLimited { retry_after_seconds: u64 },
    /// The request clashes with the current state (a duplicate, a change made meanwhile, ...).
    Conflict(String),
    /// An idempotency key reused for a different request (`CONFLICT` as well). A variant of
    /// its own, so that code tells it apart by type, never by its message; see
    /// [`crate::idempotency`].
    IdempotencyConflict,
    /// The query is too deep or too complex.
    QueryTooComplex(String),
    /// A subscription fell too far behind its events and ended: subscribe again (its first
    /// event is the current state).
    SubscriptionLagged,
    /// No database connection could be had in time.
    Busy,
    /// Anything else: logged in full, answered with a generic message.
    Internal(anyhow::Error),
}

pub type AppResult<T> = Result<T, AppError>;

/// `err` and its causes on one line (`outer: cause: root`), without a backtrace, for logs.
pub fn one_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}

/// An HTTP answer outside GraphQL in the GraphQL error shape
/// (`{"errors":[{"message","extensions":{"code"}}]}`), so clients parse one shape everywhere.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "errors": [{ "message": message.into(), "extensions": { "code": code } }] });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The `FORBIDDEN` message when content a moderator hid would be made public again.
pub const HIDDEN_BY_MODERATION: &str =
    "a moderator hid this content; it cannot be made public again";

/// The `CONFLICT` message of an idempotency key reused with a different input.
pub const IDEMPOTENCY_CONFLICT: &str =
    "this idempotency key was already used for a different request";

impl AppError {
    pub fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            field: field.into(),
            message: message.into(),
            reason: None,
        }
    }

    /// `BAD_USER_INPUT` on `field` with a machine-readable `reason` (`extensions.reason`).
    pub fn bad_input_because(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        AppError::BadUserInput {
            field: field.into(),
            message: message.into(),
            reason: Some(reason),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        AppError::Internal(err.into())
    }

    /// The `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => codes::UNAUTHENTICATED,
            AppError::Forbidden(_) => codes::FORBIDDEN,
            AppError::NotFound(_) => codes::NOT_FOUND,
            AppError::BadUserInput { .. } => codes::BAD_USER_INPUT,
            AppError::InsufficientCredits { .. } => codes::INSUFFICIENT_CREDITS,
            AppError::RateLimited { .. } => codes::RATE_LIMITED,
            AppError::Conflict(_) | AppError::IdempotencyConflict => codes::CONFLICT,
            AppError::QueryTooComplex(_) => codes::QUERY_TOO_COMPLEX,
            AppError::SubscriptionLagged => codes::SUBSCRIPTION_LAGGED,
            AppError::Busy | AppError::Internal(_) => codes::INTERNAL,
        }
    }

    /// The message a client sees: never SQL, paths or stack traces.
    pub fn message(&self) -> String {
        match self {
            AppError::Unauthenticated(m) => (*m).into(),
            AppError::Forbidden(m) | AppError::Conflict(m) | AppError::QueryTooComplex(m) => {
                m.clone()
            }
            AppError::IdempotencyConflict => IDEMPOTENCY_CONFLICT.into(),
            AppError::NotFound(what) => format!("{what} not found"),
            AppError::BadUserInput { message, .. } => message.clone(),
            AppError::InsufficientCredits {
                required,
                available,
            } => format!("insufficient credits: {required} needed, {available} available"),
            AppError::RateLimited {
                retry_after_seconds,
            } => {
                format!("too many requests; retry in {retry_after_seconds} s")
            }
            AppError::Busy => "the server is busy; retry shortly".into(),
            AppError::SubscriptionLagged => {
                "this subscription fell behind its events; subscribe again".into()
            }
            AppError::Internal(_) => "internal server error".into(),
        }
    }

    /// The error for a log line: the code and message, or an internal error's whole chain
    /// (`{:#}`), on one line. Never `{:?}`: an `anyhow::Error`'s `Debug` adds a multi-line
    /// backtrace when `RUST_BACKTRACE=1`, which a retry loop would print on every retry.
    pub fn log_line(&self) -> String {
        match self {
            AppError::Internal(err) => one_line(err),
            other => format!("{}: {}", other.code(), other.message()).replace(['\n', '\r'], " "),
        }
    }

    /// Converts into a GraphQL error with `extensions.code` (and the code's extra fields).
    pub fn into_graphql(self) -> async_graphql::Error {
        if let AppError::Internal(err) = &self {
            tracing::error!(error = format!("{err:#}"), "internal error");
        }
        if let AppError::Busy = &self {
            tracing::warn!("no database connection available in time");
        }
        let code = self.code();
        async_graphql::Error::new(self.message()).extend_with(|_, ext| {
            ext.set("code", code);
            match &self {
                AppError::BadUserInput { field, reason, .. } => {
                    ext.set("field", field.as_str());
                    if let Some(reason) = reason {
                        ext.set("reason", *reason);
                    }
                }
                AppError::InsufficientCredits {
                    required,
                    available,
                } => {
                    ext.set("required", *required);
                    ext.set("available", *available);
                    ext.set("missing", (*required - *available).max(0));
                }
                AppError::RateLimited {
                    retry_after_seconds,
                } => ext.set("retryAfterSeconds", *retry_after_seconds),
                _ => {}
            }
        })
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.into_graphql()
    }
}

impl From<DieselError> for AppError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => AppError::NotFound("record"),
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)
                if info
                    .constraint_name()
                    .is_some_and(|c| c.ends_with("idempotency_key_key")) =>
            {
                AppError::IdempotencyConflict
            }
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                AppError::Conflict(conflict_message(info.constraint_name()))
            }
            // `<table>_hidden_check`: a moderator hid the row; it stays private.
            DieselError::DatabaseError(DatabaseErrorKind::CheckViolation, info)
                if info
                    .constraint_name()
                    .is_some_and(|c| c.ends_with("_hidden_check")) =>
            {
                AppError::Forbidden(HIDDEN_BY_MODERATION.into())
            }
            other => AppError::Internal(other.into()),
        }
    }
}

impl From<diesel_async::pooled_connection::deadpool::PoolError> for AppError {
    fn from(err: diesel_async::pooled_connection::deadpool::PoolError) -> Self {
        use diesel_async::pooled_connection::deadpool::PoolError;
        match err {
            PoolError::Timeout(_) => AppError::Busy,
            other => AppError::Internal(anyhow::anyhow!("database pool: {other}")),
        }
    }
}

/// A client-facing sentence for a unique constraint, by its name.
fn conflict_message(constraint: Option<&str>) -> String {
    let what = match constraint.unwrap_or_default() {
        "users_phone_key" => "this phone number is already registered",
        "users_email_lower_key" => "this email address is already registered",
        "users_username_key" => "this username is taken",
        "users_referral_code_key" => "this referral code is taken",
        _ => "this already exists",
    };
    what.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::Value;

    #[test]
    fn log_lines_are_one_line_with_the_whole_chain() {
        use anyhow::Context;
        let err = Err::<(), _>(std::io::Error::other("connection refused\nDETAIL: x"))
            .context("connecting to the database")
            .unwrap_err();
        let line = AppError::Internal(err).log_line();
        assert_eq!(
            line,
            "connecting to the database: connection refused DETAIL: x"
        );
        assert!(!line.contains("backtrace") && !line.contains('\n'));
        assert_eq!(
            AppError::NotFound("job").log_line(),
            "NOT_FOUND: job not found"
        );
    }

    fn ext(err: AppError) -> (String, async_graphql::ErrorExtensionValues) {
        let e: async_graphql::Error = err.into();
        (e.message, e.extensions.expect("extensions are set"))
    }

    #[test]
    fn every_variant_sets_its_code() {
        let cases = [
            (
                AppError::Unauthenticated("sign in first"),
                "UNAUTHENTICATED",
            ),
            (AppError::Forbidden("no".into()), "FORBIDDEN"),
            (AppError::NotFound("user"), "NOT_FOUND"),
            (AppError::bad_input("input.phone", "bad"), "BAD_USER_INPUT"),
            (
                AppError::InsufficientCredits {
                    required: 5,
                    available: 2,
                },
                "INSUFFICIENT_CREDITS",
            ),
            (
                AppError::RateLimited {
                    retry_after_seconds: 30,
                },
                "RATE_LIMITED",
            ),
            (AppError::Conflict("dup".into()), "CONFLICT"),
            (AppError::IdempotencyConflict, "CONFLICT"),
            (
                AppError::QueryTooComplex("deep".into()),
                "QUERY_TOO_COMPLEX",
            ),
            (AppError::SubscriptionLagged, "SUBSCRIPTION_LAGGED"),
            (AppError::Busy, "INTERNAL"),
            (AppError::internal(anyhow::anyhow!("x")), "INTERNAL"),
        ];
        for (err, code) in cases {
            let (_, ext) = ext(err);
            assert_eq!(ext.get("code"), Some(&Value::from(code)));
        }
    }

    #[test]
    fn extra_fields_travel_with_their_codes() {
        let (_, e) = ext(AppError::bad_input("input.phone", "not a phone number"));
        assert_eq!(e.get("field"), Some(&Value::from("input.phone")));
        assert_eq!(e.get("reason"), None);
        let (_, e) = ext(AppError::bad_input_because("token", "EXPIRED", "expired"));
        assert_eq!(e.get("field"), Some(&Value::from("token")));
        assert_eq!(e.get("reason"), Some(&Value::from("EXPIRED")));
        let (_, e) = ext(AppError::RateLimited {
            retry_after_seconds: 42,
        });
        assert_eq!(e.get("retryAfterSeconds"), Some(&Value::from(42u64)));
        let (msg, e) = ext(AppError::InsufficientCredits {
            required: 5,
            available: 2,
        });
        assert_eq!(e.get("missing"), Some(&Value::from(3i64)));
        assert!(msg.contains("5 needed"), "{msg}");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let (msg, _) = ext(AppError::internal(anyhow::anyhow!(
            "relation \"users\" does not exist at /srv/easel/src/db.rs"
        )));
        assert_eq!(msg, "internal server error");
    }

    #[test]
    fn database_errors_map_to_codes() {
        assert_eq!(AppError::from(DieselError::NotFound).code(), "NOT_FOUND");
        assert_eq!(
            AppError::from(DieselError::RollbackTransaction).code(),
            "INTERNAL"
        );
        assert_eq!(
            conflict_message(Some("users_username_key")),
            "this username is taken"
        );
        assert_eq!(conflict_message(None), "this already exists");
    }

    /// A unique violation as PostgreSQL reports it.
    fn unique_violation(constraint: &'static str) -> DieselError {
        struct Info(&'static str);
        impl diesel::result::DatabaseErrorInformation for Info {
            fn message(&self) -> &str {
                "duplicate key value violates unique constraint"
            }
            fn details(&self) -> Option<&str> {
                None
            }
            fn hint(&self) -> Option<&str> {
                None
            }
            fn table_name(&self) -> Option<&str> {
                None
            }
            fn column_name(&self) -> Option<&str> {
                None
            }
            fn constraint_name(&self) -> Option<&str> {
                Some(self.0)
            }
            fn statement_position(&self) -> Option<i32> {
                None
            }
        }
        DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(Info(constraint)),
        )
    }

    #[test]
    fn idempotency_conflicts_are_typed_with_the_same_code_and_message() {
        for constraint in [
            "credit_transactions_user_id_idempotency_key_key",
            "payments_user_id_idempotency_key_key",
            "generation_jobs_user_id_idempotency_key_key",
        ] {
            let err = AppError::from(unique_violation(constraint));
            assert!(matches!(err, AppError::IdempotencyConflict), "{err:?}");
        }
        let (message, e) = ext(AppError::IdempotencyConflict);
        assert_eq!(e.get("code"), Some(&Value::from("CONFLICT")));
        assert_eq!(message, IDEMPOTENCY_CONFLICT);
        let other = AppError::from(unique_violation("users_username_key"));
        assert!(
            matches!(other, AppError::Conflict(ref m) if m == "this username is taken"),
            "{other:?}"
        );
    }
}
