//! Secrets and tokens: JWT access tokens (HS256 with a `kid` so keys can rotate), opaque
//! refresh tokens (stored only as SHA-256 hashes), and one-time codes (stored as HMACs).

use std::{path::Path, time::Duration};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Role;
use crate::config::{Config, Environment};

const ISSUER: &str = "easel";

/// What an access token carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub role: Role,
    /// The session (refresh-token family) the token belongs to.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    Invalid,
}

struct Key {
    kid: String,
    secret: Vec<u8>,
}

impl Key {
    fn new(secret: &[u8]) -> Self {
        let digest = Sha256::digest(secret);
        let kid = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Key {
            kid,
            secret: secret.to_vec(),
        }
    }
}

/// The server's signing keys: the current one signs; previous ones still verify.
pub struct Keys {
    current: Key,
    previous: Vec<Key>,
    access_ttl: Duration,
}

impl Keys {
    /// From configuration; in development without `EASEL_JWT_SECRET` a secret is generated
    /// once and kept in `<data dir>/jwt-secret`.
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        let secret = match &config.jwt_secret {
            Some(s) => s.expose_secret().as_bytes().to_vec(),
            None if config.env == Environment::Production => {
                anyhow::bail!("EASEL_JWT_SECRET is required in production")
            }
            None => dev_secret(&config.data_dir)?,
        };
        Ok(Self::new(
            &secret,
            &config.jwt_previous_secrets,
            config.access_token_ttl,
        ))
    }

    pub fn new(secret: &[u8], previous: &[SecretString], access_ttl: Duration) -> Self {
        Keys {
            current: Key::new(secret),
            previous: previous
                .iter()
                .map(|s| Key::new(s.expose_secret().as_bytes()))
                .collect(),
            access_ttl,
        }
    }

    /// Signs an access token; returns it with its expiry.
    pub fn issue(&self, user: Uuid, role: Role, session: Uuid) -> (String, DateTime<Utc>) {
        let now = Utc::now();
        let exp = now
            + chrono::Duration::from_std(self.access_ttl).unwrap_or(chrono::Duration::minutes(15));
        let claims = Claims {
            sub: user,
            role,
            sid: session,
            iat: now.timestamp(),
            exp: exp.timestamp(),
            iss: ISSUER.into(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(&self.current.secret),
        )
        .expect("HS256 signing cannot fail");
        (token, exp)
    }

    /// Verifies signature (HS256 only: `alg: none` and other algorithms are refused), issuer
    /// and expiry, with the key the `kid` names.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| header.kid.as_deref() == Some(k.kid.as_str()))
            .ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&key.secret), &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }

    /// HMAC of a one-time code, bound to where it was sent.
    pub fn otp_hash(&self, destination: &str, code: &str) -> String {
        hex(&self.otp_mac(destination, code).finalize().into_bytes())
    }

    /// Constant-time check of a one-time code against its stored HMAC.
    pub fn otp_matches(&self, destination: &str, code: &str, stored_hex: &str) -> bool {
        let Some(stored) = unhex(stored_hex) else {
            return false;
        };
        self.otp_mac(destination, code)
            .verify_slice(&stored)
            .is_ok()
    }

    fn otp_mac(&self, destination: &str, code: &str) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.current.secret)
            .expect("HMAC takes any key length");
        mac.update(b"easel-otp\0");
        mac.update(destination.as_bytes());
        mac.update(b"\0");
        mac.update(code.as_bytes());
        mac
    }
}

fn dev_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("jwt-secret");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && existing.trim().len() >= 32
    {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = random_token(48);
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    tracing::info!(path = %path.display(), "generated a development JWT secret");
    Ok(secret.into_bytes())
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    URL_SAFE_NO_PAD.encode(buf)
}

/// A random 6-digit code.
pub fn otp_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// How refresh tokens are stored: SHA-256, hex (they are long and random, so no salt is needed).
pub fn refresh_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        Keys::new(secret.as_bytes(), &[], Duration::from_secs(900))
    }

    #[test]
    fn tokens_round_trip_and_carry_a_kid() {
        let k = keys("a-very-long-secret-for-testing-purposes");
        let (user, sid) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, exp) = k.issue(user, Role::Vendor, sid);
        assert!(exp > Utc::now());
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(k.current.kid.as_str()));
        let claims = k.verify(&token).unwrap();
        assert_eq!(
            (claims.sub, claims.sid, claims.role),
            (user, sid, Role::Vendor)
        );
    }

    #[test]
    fn foreign_tampered_and_unsigned_tokens_are_refused() {
        let k = keys("a-very-long-secret-for-testing-purposes");
        let other = keys("another-secret-of-sufficient-length!!");
        let (theirs, _) = other.issue(Uuid::now_v7(), Role::Admin, Uuid::now_v7());
        assert_eq!(k.verify(&theirs).unwrap_err(), TokenError::Invalid);
        let (mine, _) = k.issue(Uuid::now_v7(), Role::User, Uuid::now_v7());
        let mut parts: Vec<&str> = mine.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"sub": Uuid::now_v7(), "role": "admin", "sid": Uuid::now_v7(), "iat": 0, "exp": 4_000_000_000i64, "iss": "easel"}).to_string(),
        );
        parts[1] = &forged_claims;
        assert_eq!(k.verify(&parts.join(".")).unwrap_err(), TokenError::Invalid);
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#,
            k.current.kid
        ));
        assert_eq!(
            k.verify(&format!("{none_header}.{forged_claims}."))
                .unwrap_err(),
            TokenError::Invalid
        );
        for garbage in ["", "abc", "a.b.c", "Bearer x"] {
            assert_eq!(k.verify(garbage).unwrap_err(), TokenError::Invalid);
        }
    }

    #[test]
    fn rotated_keys_still_verify_their_tokens() {
        let old = keys("the-old-secret-that-signed-yesterday");
        let (token, _) = old.issue(Uuid::now_v7(), Role::User, Uuid::now_v7());
        let rotated = Keys::new(
            b"the-new-secret-that-signs-from-today",
            &[SecretString::from(
                "the-old-secret-that-signed-yesterday".to_string(),
            )],
            Duration::from_secs(900),
        );
        assert!(rotated.verify(&token).is_ok());
        assert_eq!(
            keys("the-new-secret-that-signs-from-today")
                .verify(&token)
                .unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn expired_tokens_say_so() {
        let k = Keys::new(
            b"a-very-long-secret-for-testing-purposes",
            &[],
            Duration::ZERO,
        );
        let (token, _) = k.issue(Uuid::now_v7(), Role::User, Uuid::now_v7());
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(k.verify(&token).unwrap_err(), TokenError::Expired);
    }

    #[test]
    fn otp_hashes_bind_code_and_destination() {
        let k = keys("a-very-long-secret-for-testing-purposes");
        let code = otp_code();
        assert_eq!(code.len(), 6);
        let stored = k.otp_hash("+14155552671", &code);
        assert_eq!(stored.len(), 64, "a hex HMAC-SHA256, not the code");
        assert!(k.otp_matches("+14155552671", &code, &stored));
        assert!(!k.otp_matches("+14155552672", &code, &stored));
        assert!(!k.otp_matches("+14155552671", "not-it", &stored));
        assert!(!k.otp_matches("+14155552671", &code, "zz"));
    }
}
