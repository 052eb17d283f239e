//! Credentials: access tokens (JWT, algorithm pinned per key id), opaque refresh tokens, and
//! argon2id password hashing off the async executor.

use crate::config::{JwtAlgorithm, Settings};
use crate::domain::account::Role;
use anyhow::Context;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlg, Argon2, Params, Version};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
    pub aud: String,
    /// The session (refresh-token family) the token belongs to; its end ends the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

struct VerifyKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// Signing key and every accepted verification key, by `kid`.
pub struct TokenKeys {
    kid: String,
    alg: Algorithm,
    signing: EncodingKey,
    verify: HashMap<String, VerifyKey>,
    issuer: String,
    audience: String,
    ttl_s: u64,
}

impl TokenKeys {
    /// Builds the keys from settings; errors name the setting at fault.
    pub fn from_settings(s: &Settings) -> anyhow::Result<Self> {
        let mut verify = HashMap::new();
        let (alg, signing) = match s.jwt_algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = s.jwt_secret.expose_secret().as_bytes();
                verify.insert(
                    s.jwt_kid.clone(),
                    VerifyKey {
                        alg: Algorithm::HS256,
                        key: DecodingKey::from_secret(secret),
                    },
                );
                (Algorithm::HS256, EncodingKey::from_secret(secret))
            }
            JwtAlgorithm::Es256 | JwtAlgorithm::EdDsa => {
                let pem = s
                    .jwt_private_key_pem
                    .as_ref()
                    .context("HEREABOUTS_JWT_PRIVATE_KEY_FILE is required")?
                    .expose_secret()
                    .as_bytes()
                    .to_vec();
                if s.jwt_algorithm == JwtAlgorithm::Es256 {
                    (
                        Algorithm::ES256,
                        EncodingKey::from_ec_pem(&pem)
                            .context("HEREABOUTS_JWT_PRIVATE_KEY_FILE: not an EC P-256 PEM key")?,
                    )
                } else {
                    (
                        Algorithm::EdDSA,
                        EncodingKey::from_ed_pem(&pem)
                            .context("HEREABOUTS_JWT_PRIVATE_KEY_FILE: not an Ed25519 PEM key")?,
                    )
                }
            }
        };
        for (kid, secret) in &s.jwt_previous_secrets {
            verify.insert(
                kid.clone(),
                VerifyKey {
                    alg: Algorithm::HS256,
                    key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
                },
            );
        }
        for (kid, path) in &s.jwt_public_keys {
            let pem = std::fs::read(path).with_context(|| format!("HEREABOUTS_JWT_PUBLIC_KEYS: cannot read {path}"))?;
            let (alg, key) = if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, k)
            } else {
                (
                    Algorithm::EdDSA,
                    DecodingKey::from_ed_pem(&pem).with_context(|| {
                        format!("HEREABOUTS_JWT_PUBLIC_KEYS: {path} is not an EC or Ed25519 public key")
                    })?,
                )
            };
            verify.insert(kid.clone(), VerifyKey { alg, key });
        }
        if !verify.contains_key(&s.jwt_kid) {
            anyhow::bail!(
                "HEREABOUTS_JWT_PUBLIC_KEYS: must hold the public key of the signing key id {:?}",
                s.jwt_kid
            );
        }
        Ok(Self {
            kid: s.jwt_kid.clone(),
            alg,
            signing,
            verify,
            issuer: s.jwt_issuer.clone(),
            audience: s.jwt_audience.clone(),
            ttl_s: s.access_token_ttl.as_secs(),
        })
    }

    /// Lifetime of new access tokens, in seconds.
    pub fn ttl_s(&self) -> u64 {
        self.ttl_s
    }

    /// Issues an access token for a user's session.
    pub fn issue(&self, user: Uuid, role: Role, session: Uuid) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        self.sign(&Claims {
            sub: user,
            role,
            iat: now,
            exp: now + self.ttl_s,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: Some(session),
        })
    }

    /// Signs arbitrary claims with the current key (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.signing)?)
    }

    /// Verifies a token: known `kid`, that key's algorithm only, signature, `exp`, `iss`, `aud`.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.verify.get(header.kid.as_deref()?)?;
        if header.alg != key.alg {
            return None;
        }
        let mut v = Validation::new(key.alg);
        v.leeway = 5;
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.key, &v)
            .ok()
            .map(|d| d.claims)
    }
}

/// Argon2id hashing with configured (OWASP) parameters, plus a dummy hash so that a login for an
/// unknown email costs the same as one with a wrong password.
#[derive(Clone)]
pub struct Passwords {
    params: Params,
    dummy: Arc<String>,
}

impl Passwords {
    pub fn new(memory_kib: u32, iterations: u32) -> anyhow::Result<Self> {
        let params =
            Params::new(memory_kib, iterations, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let mut p = Self {
            params,
            dummy: Arc::new(String::new()),
        };
        let mut pw = [0u8; 16];
        rand::rng().fill_bytes(&mut pw);
        p.dummy = Arc::new(p.hash_blocking(&hex::encode(pw))?);
        Ok(p)
    }

    fn argon(&self) -> Argon2<'static> {
        Argon2::new(ArgonAlg::Argon2id, Version::V0x13, self.params.clone())
    }

    fn hash_blocking(&self, password: &str) -> anyhow::Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        self.argon()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))
    }

    /// Hashes on the blocking pool.
    pub async fn hash(&self, password: SecretString) -> anyhow::Result<String> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.hash_blocking(password.expose_secret())).await?
    }

    /// Verifies on the blocking pool; `None` checks against the dummy hash and is always false.
    pub async fn verify(&self, password: SecretString, hash: Option<String>) -> bool {
        let me = self.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| me.dummy.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    me.argon()
                        .verify_password(password.expose_secret().as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        ok && known
    }
}

/// A new opaque refresh token (256 random bits, base64url) and the hash that is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash_token(&token);
    (token, hash)
}

/// The stored form of a refresh token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        let env: Vec<(String, String)> = vec![
            ("HEREABOUTS_DATABASE_URL".into(), "postgres://x@h/d".into()),
            (
                "HEREABOUTS_JWT_SECRET".into(),
                "0123456789abcdef0123456789abcdef".into(),
            ),
        ];
        TokenKeys::from_settings(&Settings::from_sources(&env).expect("settings")).expect("keys")
    }

    #[test]
    fn issued_tokens_verify_and_carry_claims() {
        let k = keys();
        let id = Uuid::new_v4();
        let t = k.issue(id, Role::Admin, Uuid::new_v4()).expect("issue");
        let c = k.verify(&t).expect("valid");
        assert_eq!(c.sub, id);
        assert_eq!(c.role, Role::Admin);
        assert_eq!(c.exp - c.iat, 900);
    }

    #[test]
    fn unsigned_and_tampered_tokens_are_rejected() {
        let k = keys();
        let t = k.issue(Uuid::new_v4(), Role::User, Uuid::new_v4()).expect("issue");
        let parts: Vec<&str> = t.split('.').collect();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let none_header = b64.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#);
        assert!(k.verify(&format!("{none_header}.{}.", parts[1])).is_none());
        let mut claims: serde_json::Value = serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        claims["role"] = "admin".into();
        let forged = b64.encode(serde_json::to_vec(&claims).expect("json"));
        assert!(k.verify(&format!("{}.{forged}.{}", parts[0], parts[2])).is_none());
    }

    #[test]
    fn refresh_tokens_are_256_bits_and_hashed() {
        let (t, h) = new_refresh_token();
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&t)
                .expect("b64")
                .len(),
            32
        );
        assert_eq!(h, hash_token(&t));
        assert_ne!(new_refresh_token().0, t);
    }
}
