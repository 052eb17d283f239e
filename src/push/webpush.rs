//! Web Push (RFC 8030): a POST of the encrypted message to the subscription's endpoint.
//!
//! - the body is the notification's JSON encrypted for the browser (RFC 8291, `aes128gcm`), with
//!   a fresh ephemeral key and salt per message ([`crate::domain::webpush::encrypt`]);
//! - `Authorization: vapid t=<JWT>, k=<key>` (RFC 8292): an ES256 JWT whose `aud` is the
//!   endpoint's origin, valid 12 hours, `sub` the configured contact;
//! - `TTL` (how long the push service keeps it for an offline browser) and `Urgency: normal`.
//!
//! 201 (or any 2xx) is delivered; 404 and 410 mean the subscription is gone (the device is
//! deactivated); 408, 429 and 5xx are retried; other answers fail the delivery with their status.
//! Endpoints are checked as webhook URLs are (`https`, public addresses), redirects not followed.

use super::{Outcome, Payload};
use crate::config::PushSettings;
use crate::domain::webpush::{SubscriptionKeys, Vapid, encrypt, parse_keys};
use crate::service::net::may_call;
use anyhow::Context;
use p256::SecretKey;
use rand::Rng;
use std::sync::Arc;

/// How long a push service keeps a message for a browser that is offline.
const TTL_S: u32 = 24 * 3600;
/// Lifetime of a VAPID token (RFC 8292: at most 24 hours).
const VAPID_TTL_S: i64 = 12 * 3600;

/// A Web Push sender.
pub struct WebPush {
    client: reqwest::Client,
    vapid: Arc<Vapid>,
    subject: String,
    allow_private: bool,
}

/// A fresh ephemeral P-256 key and salt for one message.
fn ephemeral() -> (SecretKey, [u8; 16]) {
    let mut rng = rand::rng();
    let mut salt = [0u8; 16];
    rng.fill(&mut salt);
    loop {
        let mut secret = [0u8; 32];
        rng.fill(&mut secret);
        if let Ok(k) = SecretKey::from_slice(&secret) {
            return (k, salt);
        }
    }
}

impl WebPush {
    pub fn new(s: &PushSettings, vapid: Arc<Vapid>) -> anyhow::Result<Self> {
        let client =
            super::webhook::public_client(s, "hereabouts-webpush/1").context("building the Web Push client")?;
        Ok(Self {
            client,
            vapid,
            subject: s.webpush_vapid_subject.clone(),
            allow_private: s.webhook_allow_private,
        })
    }

    /// Sends one notification to a subscription (`endpoint` and its keys, base64url).
    pub async fn send(&self, endpoint: &str, p256dh: Option<&str>, auth: Option<&str>, p: &Payload) -> Outcome {
        let Ok(url) = reqwest::Url::parse(endpoint) else {
            return Outcome::Unregistered("web: the endpoint no longer parses".into());
        };
        if !may_call(&url, self.allow_private) {
            return Outcome::Reject("web: the endpoint is not allowed".into());
        }
        let keys: SubscriptionKeys = match (p256dh, auth) {
            (Some(k), Some(a)) => match parse_keys(k, a) {
                Ok(keys) => keys,
                Err(_) => return Outcome::Unregistered("web: the subscription's keys are invalid".into()),
            },
            _ => return Outcome::Unregistered("web: the subscription has no keys".into()),
        };
        let message = serde_json::json!({
            "id": p.notification_id,
            "kind": p.kind,
            "request_id": p.request_id,
            "actor_user_id": p.actor_user_id,
            "actor_display_name": p.actor_display_name,
            "distance_m": p.distance_m,
            "created_at": p.created_at_rfc3339(),
            "title": p.message.title,
            "body": p.message.body,
            "locale": p.message.locale,
        });
        let (key, salt) = ephemeral();
        let body = match encrypt(&keys, message.to_string().as_bytes(), &key, &salt) {
            Ok(b) => b,
            Err(e) => return Outcome::Reject(format!("web: {e}")),
        };
        let audience = url.origin().ascii_serialization();
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + VAPID_TTL_S;
        let authorization = self.vapid.authorization(&audience, &self.subject, expires);
        let res = self
            .client
            .post(url)
            .header("authorization", authorization)
            .header("content-encoding", "aes128gcm")
            .header("content-type", "application/octet-stream")
            .header("ttl", TTL_S.to_string())
            .header("urgency", "normal")
            .body(body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("web: {}", super::describe(&e))),
        };
        let status = res.status().as_u16();
        match status {
            200..=299 => Outcome::Delivered,
            404 | 410 => Outcome::Unregistered(format!("web push {status}: the subscription is gone")),
            408 | 429 | 500..=599 => Outcome::Retry(format!("web push {status}")),
            413 => Outcome::Reject("web push 413: the message is too large".into()),
            401 | 403 => Outcome::Reject(format!("web push {status}: the push service refused the VAPID key")),
            _ => Outcome::Reject(format!("web push {status}")),
        }
    }
}
