//! Push notifications: "a connection arrived near you".
//!
//! - [`detect`] — after a check-in is indexed, which connections to notify (bounded round trips,
//!   the rules of `/v1/nearby`, an atomic per-pair cooldown in Redis); runs in a spawned task so
//!   the check-in answers before anything is decided or sent.
//! - [`outbox`] — the notifications and their per-device deliveries in PostgreSQL, written in
//!   the transaction of the decision; the worker's claim/lease/outcome statements.
//! - [`worker`] — claims due deliveries, sends them, retries with backoff, releases on stop.
//! - [`apns`], [`fcm`], [`webhook`] — the providers, each with a configurable base URL.
//! - [`devices`] — registered devices and token validation; [`net`] — where webhooks may go.
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
pub mod devices;
pub mod fcm;
pub mod net;
pub mod outbox;
pub mod templates;
pub mod webhook;
pub mod worker;

use crate::domain::nearby::LiveRecord;
use crate::startup::AppState;
use crate::store::StoreResult;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// Bound on one arrival detection (it runs after the check-in answered).
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Called after `user`'s check-in was committed and indexed: decides, in a task of its own,
/// whom to notify. Never fails or delays the check-in.
pub fn on_checkin(state: &AppState, user: Uuid, record: LiveRecord) {
    let state = state.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(DETECT_TIMEOUT, detect::detect(&state, user, &record)).await {
            Ok(Ok(d)) => tracing::debug!(
                user_id = %user,
                candidates = d.candidates,
                inside = d.inside,
                notified = d.notified.len(),
                "arrival detection"
            ),
            Ok(Err(e)) => {
                state
                    .metrics
                    .count("push_detect_errors_total", "arrival detections that failed", &[], 1.0);
                tracing::warn!(user_id = %user, error = %e, "arrival detection failed");
            }
            Err(_) => {
                state
                    .metrics
                    .count("push_detect_errors_total", "arrival detections that failed", &[], 1.0);
                tracing::warn!(user_id = %user, "arrival detection timed out");
            }
        }
    });
}

/// Starts the delivery worker of `serve` (stops on SIGTERM/SIGINT, releasing its claims);
/// `None` (logged) when the provider settings are unusable.
pub fn spawn_worker(state: &AppState) -> Option<tokio::task::JoinHandle<()>> {
    match worker::Worker::new(state.clone()) {
        Ok(w) => Some(tokio::spawn(w.run(worker::signal()))),
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "push worker not started");
            None
        }
    }
}

/// Runs the delivery worker alone until SIGTERM/SIGINT (`hereabouts worker`).
pub async fn run_worker(state: AppState) -> anyhow::Result<()> {
    if let Err(e) = state.controls.reload(&state.db).await {
        tracing::warn!(error = %e, "policy not loaded yet; defaults apply until PostgreSQL answers");
    }
    worker::Worker::new(state)?.run(worker::signal()).await;
    Ok(())
}

/// Gauges for `/metrics`: queue depth and the age of the oldest pending delivery.
pub async fn gauges(state: &AppState) -> Vec<(&'static str, &'static str, String, f64)> {
    match outbox::stats(&state.db).await {
        Ok((depth, age)) => vec![
            (
                "push_queue_depth",
                "deliveries pending or being sent",
                String::new(),
                depth as f64,
            ),
            (
                "push_oldest_pending_age_seconds",
                "age of the oldest pending delivery",
                String::new(),
                age,
            ),
        ],
        Err(_) => vec![],
    }
}

/// For erasure, before the user row goes (devices, notifications and deliveries follow it by
/// `ON DELETE CASCADE`): deletes the user's cooldown keys in Redis, as recipient
/// (`cool:{<user>}:*`) and as actor (`cool:{*}:<user>`). One SCAN of the keyspace.
pub async fn forget_user(state: &AppState, user: Uuid) -> StoreResult<()> {
    let redis = &state.redis;
    let pattern = redis.key(format_args!("cool:*{user}*"));
    let keys = redis.scan_keys(&pattern).await?;
    let cmds = keys.iter().map(|k| redis::cmd("DEL").arg(k).clone()).collect();
    redis.run_many(cmds).await?;
    Ok(())
}
