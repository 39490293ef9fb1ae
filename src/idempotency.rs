//! Idempotent requests, one rule for credits, payments and generation. A client may send an
//! idempotency key with a request; retrying with the same key answers the first result instead
//! of doing the work twice.
//!
//! - The request's input is stored beside the key as its [`fingerprint`]: SHA-256 over a
//!   canonical JSON text (object keys sorted, no white space), so neither the order of keys
//!   nor a serialise/parse round trip changes it. Never Debug output, which is no stable format.
//! - The same key with the same fingerprint answers the stored result ([`replay`]); with
//!   another fingerprint, [`AppError::IdempotencyConflict`] (`CONFLICT`).
//! - Two first uses of a key racing: the unique constraint on the key refuses the loser (the
//!   unique violation becomes `IdempotencyConflict`), which then re-reads the winner's result and
//!   answers it ([`settle`]).
//!
//! [`run`] does all three around one operation; [`stored`] and [`settle`] are its halves, for
//! a caller with work of its own between the look-up and the operation.

use diesel::QueryResult;
use diesel_async::AsyncPgConnection;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// The stored result of an idempotent request, which knows the fingerprint of the request that
/// made it.
pub trait Fingerprinted {
    fn fingerprint(&self) -> Option<&str>;
}

/// Checks an idempotency key's shape: 1 to 128 printable characters, trimmed.
pub fn validate_key(key: Option<&str>) -> AppResult<Option<&str>> {
    match key.map(str::trim) {
        None => Ok(None),
        Some(k) if !k.is_empty() && k.len() <= 128 && !k.chars().any(char::is_control) => {
            Ok(Some(k))
        }
        Some(_) => Err(AppError::bad_input(
            "input.idempotencyKey",
            "1 to 128 printable characters",
        )),
    }
}

/// The fingerprint of a request's input (hex SHA-256 of its canonical JSON text). Name the
/// operation in the input (`{"gift": {...}}`), so that one key used for two operations that
/// share a table never matches.
pub fn fingerprint(input: &Value) -> String {
    let mut text = String::new();
    canonical(input, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `value` as JSON with every object's keys in order and no white space.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// The answer to a request whose key already has a result: that result when the request is
/// the same, `CONFLICT` when the key was used for a different request.
pub fn replay<T: Fingerprinted>(stored: T, fingerprint: &str) -> AppResult<T> {
    if stored.fingerprint() == Some(fingerprint) {
        Ok(stored)
    } else {
        Err(AppError::IdempotencyConflict)
    }
}

/// The first result of `key`, replayed (see [`replay`]); `None` without a key or before its
/// first use. `lookup` reads the result stored under a key.
pub async fn stored<T, L>(
    conn: &mut AsyncPgConnection,
    key: Option<&str>,
    fingerprint: &str,
    lookup: &L,
) -> AppResult<Option<T>>
where
    T: Fingerprinted,
    L: AsyncFn(&mut AsyncPgConnection, &str) -> QueryResult<Option<T>>,
{
    let Some(key) = key else { return Ok(None) };
    lookup(conn, key)
        .await?
        .map(|done| replay(done, fingerprint))
        .transpose()
}

/// Settles the outcome of a first use of `key`: when the key's unique constraint refused it,
/// a parallel first use won, and its result is re-read and replayed.
pub async fn settle<T, L>(
    outcome: AppResult<T>,
    conn: &mut AsyncPgConnection,
    key: Option<&str>,
    fingerprint: &str,
    lookup: &L,
) -> AppResult<T>
where
    T: Fingerprinted,
    L: AsyncFn(&mut AsyncPgConnection, &str) -> QueryResult<Option<T>>,
{
    match outcome {
        Err(AppError::IdempotencyConflict) if key.is_some() => {
            stored(conn, key, fingerprint, lookup)
                .await?
                .ok_or(AppError::IdempotencyConflict)
        }
        other => other,
    }
}

/// Runs `op` idempotently under `key`: answers the key's stored result if there is one, else
/// runs `op` (which stores `fingerprint` with its result under the key) and settles a race
/// with a parallel first use.
pub async fn run<T, L, O>(
    conn: &mut AsyncPgConnection,
    key: Option<&str>,
    fingerprint: &str,
    lookup: L,
    op: O,
) -> AppResult<T>
where
    T: Fingerprinted,
    L: AsyncFn(&mut AsyncPgConnection, &str) -> QueryResult<Option<T>>,
    O: AsyncFnOnce(&mut AsyncPgConnection) -> AppResult<T>,
{
    if let Some(done) = stored(conn, key, fingerprint, &lookup).await? {
        return Ok(done);
    }
    let outcome = op(conn).await;
    settle(outcome, conn, key, fingerprint, &lookup).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, PartialEq)]
    struct Done(Option<&'static str>);

    impl Fingerprinted for Done {
        fn fingerprint(&self) -> Option<&str> {
            self.0
        }
    }

    #[test]
    fn fingerprints_ignore_key_order_and_survive_a_round_trip() {
        let a = json!({ "kind": "LOGO", "params": { "width": 512, "cfgScale": 7.5, "seed": null }, "ids": ["b", "a"] });
        let reordered: Value = serde_json::from_str(
            r#"{ "ids": ["b", "a"], "params": { "seed": null, "cfgScale": 7.5, "width": 512 }, "kind": "LOGO" }"#,
        )
        .unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&reordered));
        let round_trip: Value = serde_json::from_str(&a.to_string()).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&round_trip));
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&a).unwrap()).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&pretty));
        assert_eq!(fingerprint(&a).len(), 64, "hex SHA-256");
    }

    /// Shaped like a request's parameters (optional numbers, floats, text).
    #[derive(serde::Serialize, Default)]
    struct Params {
        width: Option<i32>,
        cfg_scale: Option<f64>,
        seed: Option<i64>,
        sampler: Option<String>,
    }

    #[test]
    fn a_struct_fingerprints_like_its_json_in_any_key_order() {
        let params = Params {
            width: Some(512),
            cfg_scale: Some(7.5),
            sampler: Some("euler".into()),
            ..Params::default()
        };
        let typed = fingerprint(&json!({ "generate": { "kind": "LOGO", "params": params } }));
        let text = r#"{"generate":{"params":{"sampler":"euler","seed":null,"cfg_scale":7.5,"width":512},"kind":"LOGO"}}"#;
        assert_eq!(typed, fingerprint(&serde_json::from_str(text).unwrap()));
        let seeded = Params {
            seed: Some(1),
            ..params
        };
        assert_ne!(
            typed,
            fingerprint(&json!({ "generate": { "kind": "LOGO", "params": seeded } }))
        );
    }

    #[test]
    fn different_inputs_have_different_fingerprints() {
        let base = json!({ "kind": "LOGO", "params": { "width": 512, "cfgScale": 7.5 } });
        for other in [
            json!({ "kind": "LOGO", "params": { "width": 520, "cfgScale": 7.5 } }),
            json!({ "kind": "LOGO", "params": { "width": 512, "cfgScale": 7.6 } }),
            json!({ "kind": "LOGO", "params": { "width": 512 } }),
            json!({ "kind": "LOGO", "params": { "width": 512, "cfgScale": 7.5, "seed": 1 } }),
            json!({ "kind": "LOGO", "params": { "width": "512", "cfgScale": 7.5 } }),
            json!({ "kind": "UPSCALE", "params": { "width": 512, "cfgScale": 7.5 } }),
            json!({ "kind": "LOGO", "params": [512, 7.5] }),
        ] {
            assert_ne!(fingerprint(&base), fingerprint(&other), "{other}");
        }
        // Parts never run together: the text is JSON, not a concatenation.
        assert_ne!(
            fingerprint(&json!(["ab", "c"])),
            fingerprint(&json!(["a", "bc"]))
        );
        assert_ne!(
            fingerprint(&json!({ "a": "b,c" })),
            fingerprint(&json!({ "a": "b", "c": null }))
        );
    }

    #[test]
    fn keys_are_checked_and_trimmed() {
        assert_eq!(validate_key(Some(" k1 ")).unwrap(), Some("k1"));
        assert_eq!(validate_key(None).unwrap(), None);
        for bad in [String::new(), "k".repeat(200), "a\u{0}b".into()] {
            assert!(validate_key(Some(&bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_replays_its_own_request_only() {
        assert_eq!(replay(Done(Some("f1")), "f1").unwrap(), Done(Some("f1")));
        for stored in [Done(Some("f2")), Done(None)] {
            let err = replay(stored, "f1").unwrap_err();
            assert!(matches!(err, AppError::IdempotencyConflict), "{err:?}");
            assert_eq!(err.code(), "CONFLICT");
            assert_eq!(err.message(), crate::error::IDEMPOTENCY_CONFLICT);
        }
    }
}
