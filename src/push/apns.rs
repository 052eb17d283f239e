//! Apple Push Notification service over HTTP/2 with provider-token (JWT) authentication.
//!
//! The provider token is an ES256 JWT (`iss` team id, `kid` key id, `iat`) signed with the
//! `.p8` key and reused for up to 50 minutes (Apple refuses tokens older than an hour and too
//! frequent renewals). `https` base URLs negotiate HTTP/2 by ALPN; an `http` base URL (a local
//! stand-in) speaks HTTP/2 with prior knowledge.

use super::{Outcome, Payload};
use crate::config::PushSettings;
use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a provider token is reused.
pub const TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);
/// How long APNs keeps trying to reach a device that is offline.
const EXPIRATION_S: i64 = 3_600;

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    iat: i64,
}

#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

/// An APNs client.
pub struct Apns {
    client: reqwest::Client,
    base: String,
    topic: String,
    team_id: String,
    key_id: String,
    key: EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

impl Apns {
    /// `None` when APNs is not configured (no key); an error when it is configured wrongly.
    pub fn from_settings(s: &PushSettings) -> anyhow::Result<Option<Self>> {
        let Some(pem) = &s.apns_key_pem else { return Ok(None) };
        let key = EncodingKey::from_ec_pem(pem.expose_secret().as_bytes())
            .context("HEREABOUTS_APNS_KEY_FILE: not a PKCS#8 P-256 private key (.p8)")?;
        let team_id = s
            .apns_team_id
            .clone()
            .context("HEREABOUTS_APNS_TEAM_ID is required with an APNs key")?;
        let key_id = s
            .apns_key_id
            .clone()
            .context("HEREABOUTS_APNS_KEY_ID is required with an APNs key")?;
        let topic = s
            .apns_topic
            .clone()
            .context("HEREABOUTS_APNS_TOPIC (the app's bundle id) is required with an APNs key")?;
        let mut builder = reqwest::Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(300))
            .http2_keep_alive_interval(Duration::from_secs(60))
            .http2_keep_alive_while_idle(true);
        if s.apns_base_url.starts_with("http://") {
            builder = builder.http2_prior_knowledge();
        }
        Ok(Some(Self {
            client: builder.build().context("building the APNs client")?,
            base: s.apns_base_url.clone(),
            topic,
            team_id,
            key_id,
            key,
            token: Mutex::new(None),
        }))
    }

    /// The provider token, made anew when older than [`TOKEN_REUSE`].
    fn provider_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().map_err(|_| "token cache poisoned".to_string())?;
        if let Some((t, at)) = cached.as_ref()
            && at.elapsed() < TOKEN_REUSE
        {
            return Ok(t.clone());
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = Claims {
            iss: &self.team_id,
            iat: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let t = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("signing the provider token: {e}"))?;
        *cached = Some((t.clone(), Instant::now()));
        Ok(t)
    }

    fn forget_token(&self) {
        if let Ok(mut cached) = self.token.lock() {
            *cached = None;
        }
    }

    /// Sends one alert to a device token.
    pub async fn send(&self, device_token: &str, p: &Payload) -> Outcome {
        let jwt = match self.provider_token() {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(e),
        };
        let body = serde_json::json!({
            "aps": {
                "alert": {"title": p.message.title, "body": p.message.body},
                "sound": "default",
                "thread-id": p.kind,
            },
            "hereabouts": {
                "kind": p.kind,
                "request_id": p.request_id,
                "notification_id": p.notification_id,
                "actor_user_id": p.actor_user_id,
                "distance_m": p.distance_m,
            },
        });
        let expiration = time::OffsetDateTime::now_utc().unix_timestamp() + EXPIRATION_S;
        let res = self
            .client
            .post(format!("{}/3/device/{device_token}", self.base))
            .bearer_auth(jwt)
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", expiration.to_string())
            .header("apns-collapse-id", format!("{}-{}", p.kind, p.actor_user_id.simple()))
            .header("apns-id", p.delivery_id.to_string())
            .json(&body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("apns: {}", super::describe(&e))),
        };
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Outcome::Delivered;
        }
        let reason = res
            .json::<Reason>()
            .await
            .ok()
            .and_then(|r| r.reason)
            .unwrap_or_default();
        let what = format!("apns {status} {reason}");
        match (status, reason.as_str()) {
            (410, _) | (400, "BadDeviceToken") | (400, "DeviceTokenNotForTopic") | (_, "Unregistered") => {
                Outcome::Unregistered(what)
            }
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                self.forget_token();
                Outcome::Retry(what)
            }
            (429 | 500..=599, _) => Outcome::Retry(what),
            _ => Outcome::Reject(what),
        }
    }
}
