//! Password hashing with argon2id (the `argon2` crate's recommended parameters).

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};

use crate::error::{AppError, AppResult};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

/// Checks a new password's length (characters, not bytes).
pub fn validate(password: &str, field: &str) -> AppResult<()> {
    let n = password.chars().count();
    if !(MIN_LEN..=MAX_LEN).contains(&n) {
        return Err(AppError::bad_input(
            field,
            format!("password must be {MIN_LEN} to {MAX_LEN} characters"),
        ));
    }
    Ok(())
}

/// Hashes on a blocking thread (argon2 is deliberately slow).
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(anyhow::anyhow!("argon2: {e}")))
    })
    .await
    .map_err(AppError::internal)?
}

/// Verifies on a blocking thread. With no stored hash (unknown account) a dummy hash is
/// checked so that the answer takes as long as for a wrong password.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        let dummy = dummy_hash();
        let known = stored.is_some();
        let stored = stored.unwrap_or_else(|| dummy.to_string());
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| AppError::internal(anyhow::anyhow!("stored password hash: {e}")))?;
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(ok && known)
    })
    .await
    .map_err(AppError::internal)?
}

fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"easel-dummy-password")
            .expect("argon2 works")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ() {
        let a = hash("correct horse".into()).await.unwrap();
        let b = hash("correct horse".into()).await.unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "salted");
        assert!(
            verify("correct horse".into(), Some(a.clone()))
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse".into(), Some(a)).await.unwrap());
        assert!(!verify("easel-dummy-password".into(), None).await.unwrap());
    }

    #[test]
    fn length_is_bounded() {
        assert!(validate("short", "p").is_err());
        assert!(validate(&"x".repeat(10_000), "p").is_err());
        assert!(validate("long enough", "p").is_ok());
    }
}
