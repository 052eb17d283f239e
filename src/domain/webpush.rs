//! Web Push cryptography, pure (the caller brings the randomness): the message encryption of
//! RFC 8291 in the `aes128gcm` content coding of RFC 8188 (one record), and the VAPID token of
//! RFC 8292 (an ES256 JWT naming the push service's origin).

use super::FieldError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes128Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hkdf::Hkdf;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use p256::elliptic_curve::sec1::ToEncodedPoint;
use p256::{PublicKey, SecretKey};
use sha2::Sha256;

/// Record size written in the header (RFC 8188): one record holds the whole message.
const RECORD_SIZE: u32 = 4096;
/// The largest plaintext one record holds (the tag and the delimiter take 17 bytes).
pub const MAX_PLAINTEXT: usize = RECORD_SIZE as usize - 17;

/// A subscription's keys (RFC 8291 §2): the user agent's P-256 public key and its auth secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionKeys {
    /// The uncompressed point, 65 bytes.
    pub p256dh: Vec<u8>,
    /// 16 bytes.
    pub auth: Vec<u8>,
}

fn b64(field: &str, s: &str) -> Result<Vec<u8>, FieldError> {
    URL_SAFE_NO_PAD
        .decode(s.trim().trim_end_matches('='))
        .map_err(|_| FieldError::new(field, "must be base64url"))
}

/// Checks a subscription's keys as a browser gives them (base64url, padding tolerated):
/// `p256dh` an uncompressed point on P-256, `auth` 16 bytes.
pub fn parse_keys(p256dh: &str, auth: &str) -> Result<SubscriptionKeys, FieldError> {
    let point = b64("subscription.keys.p256dh", p256dh)?;
    if point.len() != 65 || PublicKey::from_sec1_bytes(&point).is_err() {
        return Err(FieldError::new(
            "subscription.keys.p256dh",
            "must be an uncompressed P-256 public key (65 bytes, base64url)",
        ));
    }
    let auth = b64("subscription.keys.auth", auth)?;
    if auth.len() != 16 {
        return Err(FieldError::new(
            "subscription.keys.auth",
            "must be a 16-byte secret (base64url)",
        ));
    }
    Ok(SubscriptionKeys { p256dh: point, auth })
}

/// Why a message could not be encrypted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncryptError {
    #[error("the subscription's p256dh key is not a P-256 point")]
    BadKey,
    #[error("the message is longer than one record")]
    TooLong,
    #[error("encryption failed")]
    Cipher,
}

fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), EncryptError> {
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, out)
        .map_err(|_| EncryptError::Cipher)
}

/// Encrypts `plaintext` for a subscription (RFC 8291 §3.4) with the sender's ephemeral key
/// `ephemeral` and a random 16-byte `salt`: the whole body of the push message, header
/// (salt, record size, the ephemeral public key as key id) and one record.
pub fn encrypt(
    keys: &SubscriptionKeys,
    plaintext: &[u8],
    ephemeral: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    if plaintext.len() > MAX_PLAINTEXT {
        return Err(EncryptError::TooLong);
    }
    let ua_public = PublicKey::from_sec1_bytes(&keys.p256dh).map_err(|_| EncryptError::BadKey)?;
    let as_public = ephemeral.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(ephemeral.to_nonzero_scalar(), ua_public.as_affine());
    // IKM = HKDF(auth, ecdh, "WebPush: info" 0x00 ua_public as_public, 32)
    let mut key_info = b"WebPush: info\0".to_vec();
    key_info.extend_from_slice(&keys.p256dh);
    key_info.extend_from_slice(as_public.as_bytes());
    let mut ikm = [0u8; 32];
    hkdf_expand(&keys.auth, shared.raw_secret_bytes(), &key_info, &mut ikm)?;
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    hkdf_expand(salt, &ikm, b"Content-Encoding: aes128gcm\0", &mut cek)?;
    hkdf_expand(salt, &ikm, b"Content-Encoding: nonce\0", &mut nonce)?;
    // the last (and only) record ends with the delimiter 0x02, unpadded
    let mut record = plaintext.to_vec();
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| EncryptError::Cipher)?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: &record, aad: b"" })
        .map_err(|_| EncryptError::Cipher)?;
    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// The application server's VAPID key pair (RFC 8292).
pub struct Vapid {
    key: SigningKey,
    /// The uncompressed public key, base64url: what `GET /v1/push/vapid-public-key` gives
    /// browsers as `applicationServerKey`, and the `k` of every request.
    public_b64: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vapid")
            .field("public", &self.public_b64)
            .finish_non_exhaustive()
    }
}

impl Vapid {
    /// A key from its 32 secret bytes.
    pub fn from_bytes(secret: &[u8]) -> Option<Self> {
        SecretKey::from_slice(secret).ok().map(Self::from_secret)
    }

    /// A key from the text of its file: PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) or
    /// the base64url of its 32 bytes (what `web-push generate-vapid-keys` prints).
    pub fn parse(text: &str) -> Option<Self> {
        use p256::pkcs8::DecodePrivateKey;
        let t = text.trim();
        if t.starts_with("-----BEGIN") {
            return SecretKey::from_pkcs8_pem(t)
                .ok()
                .or_else(|| SecretKey::from_sec1_pem(t).ok())
                .map(Self::from_secret);
        }
        let bytes = URL_SAFE_NO_PAD.decode(t.trim_end_matches('=')).ok()?;
        (bytes.len() == 32).then(|| Self::from_bytes(&bytes)).flatten()
    }

    fn from_secret(secret: SecretKey) -> Self {
        let public_b64 = URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false).as_bytes());
        Self {
            key: SigningKey::from(secret),
            public_b64,
        }
    }

    pub fn public_key(&self) -> &str {
        &self.public_b64
    }

    /// The `Authorization` header of a push to a service of origin `audience`
    /// (`https://push.example.net`): `vapid t=<ES256 JWT>, k=<public key>`, the JWT valid until
    /// `expires_unix` (RFC 8292 allows at most 24 h).
    pub fn authorization(&self, audience: &str, subject: &str, expires_unix: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({"aud": audience, "exp": expires_unix, "sub": subject});
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string().as_bytes());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.key.sign(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(signature.to_bytes());
        format!("vapid t={signing_input}.{signature}, k={}", self.public_b64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).expect("base64url")
    }

    /// RFC 8291, Appendix A: the example message, byte for byte.
    #[test]
    fn encrypts_the_rfc_8291_example() {
        let keys = SubscriptionKeys {
            p256dh: d("BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"),
            auth: d("BTBZMqHH6r4Tts7J_aSIgg"),
        };
        let ephemeral = SecretKey::from_slice(&d("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).expect("key");
        let salt: [u8; 16] = d("DGv6ra1nlYgDCS1FRnbzlw").try_into().expect("16 bytes");
        let body = encrypt(&keys, b"When I grow up, I want to be a watermelon", &ephemeral, &salt).expect("encrypt");
        assert_eq!(
            URL_SAFE_NO_PAD.encode(&body),
            "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
        );
    }

    #[test]
    fn keys_are_checked() {
        let p = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        assert!(parse_keys(p, "BTBZMqHH6r4Tts7J_aSIgg").is_ok());
        assert!(parse_keys(p, "BTBZMqHH6r4Tts7J_aSIgg==").is_ok());
        assert_eq!(
            parse_keys(p, "short").expect_err("auth").field,
            "subscription.keys.auth"
        );
        assert_eq!(
            parse_keys("BCVx", "BTBZMqHH6r4Tts7J_aSIgg").expect_err("p256dh").field,
            "subscription.keys.p256dh"
        );
        // 65 bytes, but not a point on the curve
        let off = URL_SAFE_NO_PAD.encode([4u8; 65]);
        assert!(parse_keys(&off, "BTBZMqHH6r4Tts7J_aSIgg").is_err());
    }

    #[test]
    fn a_vapid_token_is_an_es256_jwt_over_its_claims() {
        let v = Vapid::parse("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw").expect("key");
        let h = v.authorization("https://push.example.net", "mailto:ops@example.com", 1_900_000_000);
        let (t, k) = h
            .strip_prefix("vapid t=")
            .and_then(|r| r.split_once(", k="))
            .expect("vapid t=…, k=…");
        assert_eq!(k, v.public_key());
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value = serde_json::from_slice(&d(parts[1])).expect("claims");
        assert_eq!(claims["aud"], "https://push.example.net");
        assert_eq!(claims["exp"], 1_900_000_000);
        use p256::ecdsa::VerifyingKey;
        use p256::ecdsa::signature::Verifier;
        let verifying = VerifyingKey::from_sec1_bytes(&d(k)).expect("public key");
        let sig = Signature::from_slice(&d(parts[2])).expect("64-byte signature");
        assert!(
            verifying
                .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
                .is_ok()
        );
        assert!(Vapid::parse("not a key").is_none());
    }
}
