//! Firebase Cloud Messaging, HTTP v1 API, with the OAuth 2.0 service-account flow: an RS256
//! JWT assertion (`iss` the service account, `scope` firebase.messaging, `aud` the token URI) is
//! exchanged at the token URI for an access token, which is cached until a minute before it
//! expires; then `POST {base}/v1/projects/{project}/messages:send`.

use super::{Outcome, Payload};
use crate::config::PushSettings;
use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Lifetime asked for in the assertion (Google's maximum).
const ASSERTION_LIFETIME_S: i64 = 3_600;
/// An access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// The fields of a service-account JSON key that matter here.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    private_key_id: Option<String>,
    project_id: Option<String>,
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    error: Option<ErrorInfo>,
}

#[derive(Deserialize, Default)]
struct ErrorInfo {
    status: Option<String>,
    message: Option<String>,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

/// An FCM client.
pub struct Fcm {
    client: reqwest::Client,
    base: String,
    token_uri: String,
    project: String,
    client_email: String,
    key_id: Option<String>,
    key: EncodingKey,
    token: Mutex<Option<(String, Instant)>>,
}

impl Fcm {
    /// `None` when FCM is not configured (no service account); an error when it is configured wrongly.
    pub fn from_settings(s: &PushSettings) -> anyhow::Result<Option<Self>> {
        let Some(json) = &s.fcm_service_account_json else {
            return Ok(None);
        };
        let sa: ServiceAccount = serde_json::from_str(json.expose_secret())
            .context("HEREABOUTS_FCM_SERVICE_ACCOUNT_FILE: not a service-account JSON key")?;
        let key = EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
            .context("HEREABOUTS_FCM_SERVICE_ACCOUNT_FILE: private_key is not an RSA PEM key")?;
        let project = s
            .fcm_project_id
            .clone()
            .or(sa.project_id)
            .context("HEREABOUTS_FCM_PROJECT_ID is required (the key file names no project_id)")?;
        let token_uri = s
            .fcm_token_uri
            .clone()
            .or(sa.token_uri)
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.into());
        let client = reqwest::Client::builder()
            .timeout(s.request_timeout)
            .connect_timeout(s.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("building the FCM client")?;
        Ok(Some(Self {
            client,
            base: s.fcm_base_url.clone(),
            token_uri,
            project,
            client_email: sa.client_email,
            key_id: sa.private_key_id,
            key,
            token: Mutex::new(None),
        }))
    }

    /// A valid access token: the cached one, or a new one from the token URI.
    async fn access_token(&self) -> Result<String, String> {
        let mut cached = self.token.lock().await;
        if let Some((t, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(t.clone());
        }
        let iat = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        let assertion = jsonwebtoken::encode(
            &header,
            &Assertion {
                iss: &self.client_email,
                scope: SCOPE,
                aud: &self.token_uri,
                iat,
                exp: iat + ASSERTION_LIFETIME_S,
            },
            &self.key,
        )
        .map_err(|e| format!("signing the FCM assertion: {e}"))?;
        let res = self
            .client
            .post(&self.token_uri)
            .form(&[("grant_type", GRANT_TYPE), ("assertion", assertion.as_str())])
            .send()
            .await
            .map_err(|e| format!("fcm token: {}", super::describe(&e)))?;
        if !res.status().is_success() {
            return Err(format!("fcm token: {}", res.status().as_u16()));
        }
        let t: TokenResponse = res
            .json()
            .await
            .map_err(|_| "fcm token: unreadable answer".to_string())?;
        let lifetime = Duration::from_secs(t.expires_in.unwrap_or(3_600));
        let until = Instant::now() + lifetime.saturating_sub(RENEW_BEFORE);
        *cached = Some((t.access_token.clone(), until));
        Ok(t.access_token)
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// Sends one notification to a registration token.
    pub async fn send(&self, device_token: &str, p: &Payload) -> Outcome {
        let bearer = match self.access_token().await {
            Ok(t) => t,
            Err(e) => return Outcome::Retry(e),
        };
        let body = serde_json::json!({
            "message": {
                "token": device_token,
                "notification": {"title": p.message.title, "body": p.message.body},
                "data": {
                    "kind": p.kind,
                    "request_id": p.request_id.map(|r| r.to_string()).unwrap_or_default(),
                    "notification_id": p.notification_id.to_string(),
                    "actor_user_id": p.actor_user_id.to_string(),
                    "distance_m": p.distance_m.to_string(),
                },
                "android": {
                    "priority": "HIGH",
                    "ttl": "3600s",
                    "collapse_key": format!("{}-{}", p.kind, p.actor_user_id.simple()),
                },
            }
        });
        let res = self
            .client
            .post(format!("{}/v1/projects/{}/messages:send", self.base, self.project))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await;
        let res = match res {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(format!("fcm: {}", super::describe(&e))),
        };
        let status = res.status().as_u16();
        if res.status().is_success() {
            return Outcome::Delivered;
        }
        let info = res
            .json::<ErrorBody>()
            .await
            .unwrap_or_default()
            .error
            .unwrap_or_default();
        let code = info
            .details
            .iter()
            .find_map(|d| d.get("errorCode").and_then(|c| c.as_str()).map(str::to_string))
            .or(info.status.clone())
            .unwrap_or_default();
        let what = format!(
            "fcm {status} {code} {}",
            info.message.unwrap_or_default().chars().take(200).collect::<String>()
        );
        match (status, code.as_str()) {
            (_, "UNREGISTERED" | "INVALID_ARGUMENT" | "SENDER_ID_MISMATCH") => Outcome::Unregistered(what),
            (401, _) => {
                self.forget_token().await;
                Outcome::Retry(what)
            }
            (429 | 500..=599, _) => Outcome::Retry(what),
            _ => Outcome::Reject(what),
        }
    }
}
