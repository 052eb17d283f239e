//! Push notifications: "a connection arrived near you".
//!
//! - [`detect`] — after a check-in is indexed, which connections to notify (the planner of
//!   `/v1/nearby`, its rules, an atomic per-pair cooldown in Redis); it listens on the channel the
//!   service layer announces check-ins on, so the check-in answers before anything is decided.
//! - [`worker`] — claims due deliveries from the outbox (`store::outbox`), sends them, retries
//!   with backoff, releases on stop.
//! - [`apns`], [`fcm`], [`webhook`], [`webpush`] — the providers, each with a configurable base
//!   URL (Web Push: the subscription's endpoint); [`devlog`] logs instead of sending.
//! - [`templates`] — localised texts; they carry a name and a rounded distance, never a place.
//!
//! Extras beyond the contract: a device may give a `locale` (texts in `en`, `fr`, `de`, `es`,
//! default `push_default_locale`); `push_daily_cap` bounds notifications per user per 24 h
//! (0 = no cap); at most `push_max_devices_per_user` devices per user (409 `too_many_devices`);
//! a delivery is not sent when, since the decision, the pair was blocked or disconnected or the
//! actor hid from the recipient; notifications older than the policy's `retention_days` are
//! purged by the worker.

pub mod apns;
pub mod detect;
pub mod devlog;
pub mod fcm;
pub mod templates;
pub mod webhook;
pub mod webpush;
pub mod worker;

use crate::service::Ctx;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What a provider answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// A transient failure (timeout, 429, 5xx): try again later.
    Retry(String),
    /// A permanent refusal of this message: do not try again.
    Reject(String),
    /// The token or URL is gone: deactivate the device.
    Unregistered(String),
}

/// What every provider sends about one delivery.
#[derive(Debug, Clone)]
pub struct Payload {
    pub delivery_id: Uuid,
    /// The notification's kind (`connection_nearby`, `connection_request`, …).
    pub kind: &'static str,
    /// `connection_request` / `connection_accepted`: the request.
    pub request_id: Option<Uuid>,
    pub notification_id: Uuid,
    pub actor_user_id: Uuid,
    pub actor_display_name: String,
    /// Rounded as the recipient's nearby list shows it.
    pub distance_m: i64,
    pub created_at: OffsetDateTime,
    pub message: templates::Message,
}

impl Payload {
    pub fn created_at_rfc3339(&self) -> String {
        self.created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }
}

/// A reqwest error without the URL (a webhook URL may carry a secret path).
pub(crate) fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "cannot connect".into()
    } else if e.is_request() {
        "request failed".into()
    } else {
        let s = e.to_string();
        match e.url() {
            Some(u) => s.replace(u.as_str(), "<url>"),
            None => s,
        }
    }
}

/// Runs the delivery worker until `shutdown` is cancelled (it releases its claims first);
/// logs and returns when the provider settings are unusable.
pub async fn run_worker(ctx: Ctx, shutdown: CancellationToken) {
    match worker::Worker::new(ctx) {
        Ok(w) => w.run(shutdown.cancelled_owned()).await,
        Err(e) => tracing::error!(error = %format!("{e:#}"), "push worker not started"),
    }
}
