//! Webhooks: a JSON POST to the registered URL, signed so that the receiver can check it came
//! from this server and was not replayed long after:
//!
//! - `x-hereabouts-timestamp`: Unix seconds when it was sent;
//! - `x-hereabouts-signature`: `sha256=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`;
//! - `x-hereabouts-delivery`: the delivery id (the same on a retry: deliveries are at-least-once,
//!   receivers de-duplicate by it).
//!
//! A 2xx answer is delivered; 410 Gone unregisters the URL; 408, 429 and 5xx are retried; other
//! answers fail the delivery. Redirects are not followed; requests time out quickly.

use super::{Outcome, Payload};
use crate::config::PushSettings;
use crate::service::net::{PublicResolver, may_call};
use anyhow::Context;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::sync::Arc;

/// A webhook sender.
pub struct Webhook {
    client: reqwest::Client,
    secret: SecretString,
    allow_private: bool,
}

/// `sha256=<hex>` of the HMAC over `"{timestamp}.{body}"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A client for URLs that users give (webhooks, Web Push endpoints): bounded in time, no
/// redirects, no proxy, and only public addresses resolved (unless private ones are allowed).
pub fn public_client(s: &PushSettings, user_agent: &str) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(s.request_timeout)
        .connect_timeout(s.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(Arc::new(PublicResolver {
            allow_private: s.webhook_allow_private,
        }))
        .user_agent(user_agent)
        .build()
}

impl Webhook {
    /// `None` when no webhook secret is configured.
    pub fn from_settings(s: &PushSettings) -> anyhow::Result<Option<Self>> {
        let Some(secret) = s.webhook_secret.clone() else {
            return Ok(None);
        };
        let client = public_client(s, "hereabouts-webhook/1").context("building the webhook client")?;
        Ok(Some(Self {
            client,
            secret,
            allow_private: s.webhook_allow_private,
        }))
    }

    /// POSTs one notification to `url`.
    pub async fn send(&self, url: &str, p: &Payload) -> Outcome {
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return Outcome::Unregistered("webhook: the URL no longer parses".into());
        };
        if !may_call(&parsed, self.allow_private) {
            return Outcome::Reject("webhook: the URL is not allowed".into());
        }
        let body = serde_json::json!({
            "id": p.notification_id,
            "delivery_id": p.delivery_id,
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
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => return Outcome::Reject(format!("webhook: {e}")),
        };
        let ts = time::OffsetDateTime::now_utc().unix_timestamp();
        let sig = signature(self.secret.expose_secret().as_bytes(), ts, &body);
        let res = self
            .client
            .post(parsed)
            .header("content-type", "application/json")
            .header("x-hereabouts-timestamp", ts.to_string())
            .header("x-hereabouts-signature", sig)
            .header("x-hereabouts-delivery", p.delivery_id.to_string())
            .body(body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("webhook: {}", super::describe(&e))),
        };
        let status = res.status().as_u16();
        match status {
            200..=299 => Outcome::Delivered,
            410 => Outcome::Unregistered("webhook 410".into()),
            408 | 429 | 500..=599 => Outcome::Retry(format!("webhook {status}")),
            _ => Outcome::Reject(format!("webhook {status}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature(b"key", 1, b"{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
        assert_ne!(signature(b"key", 2, b"{}"), signature(b"key", 1, b"{}"));
    }
}
