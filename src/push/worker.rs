//! The delivery worker: claims due deliveries (`FOR UPDATE SKIP LOCKED`, with a lease), sends
//! them through their provider, and records the outcome — delivered; retried later with
//! exponential backoff and jitter; failed after `push_max_attempts` or on a permanent refusal;
//! or the device deactivated when the provider says the token is gone.
//!
//! Several workers (in several processes) share the queue safely. On a graceful stop the worker
//! hands back what it claimed but has not finished (pending again, the attempt not counted); if
//! it dies instead, its leases run out and another worker takes the deliveries again.

use super::apns::Apns;
use super::devlog;
use super::fcm::Fcm;
use super::templates;
use super::webhook::Webhook;
use super::webpush::WebPush;
use super::{Outcome, Payload};
use crate::domain::device::Platform;
use crate::domain::quiet;
use crate::domain::webpush::Vapid;
use crate::metrics::{FailureLabels, PlatformLabels};
use crate::service::Ctx;
use crate::store::devices;
use crate::store::outbox::{self, Claimed};
use crate::store::{StoreError, StoreResult};
use futures_util::{FutureExt, StreamExt};
use rand::Rng;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often the worker re-reads the policy and purges notifications past the retention.
const HOUSEKEEPING: Duration = Duration::from_secs(60);

/// How often an outcome that could not be written (PostgreSQL unavailable) is written again.
const RECORD_RETRY: Duration = Duration::from_millis(200);

/// The providers a worker sends through (each `None` when not configured).
pub struct Providers {
    pub apns: Option<Apns>,
    pub fcm: Option<Fcm>,
    pub webhook: Option<Webhook>,
    /// Always there: its VAPID key is configured or generated.
    pub webpush: WebPush,
    /// `push_dev_log`: log every push instead of sending it.
    pub dev_log: bool,
}

impl Providers {
    /// Builds the configured providers; an error names the setting that is wrong.
    pub fn from_settings(s: &crate::config::PushSettings, vapid: Arc<Vapid>) -> anyhow::Result<Self> {
        Ok(Self {
            apns: Apns::from_settings(s)?,
            fcm: Fcm::from_settings(s)?,
            webhook: Webhook::from_settings(s)?,
            webpush: WebPush::new(s, vapid)?,
            dev_log: s.dev_log,
        })
    }
}

/// A delivery worker.
pub struct Worker {
    ctx: Ctx,
    providers: Providers,
}

/// Exponential backoff with jitter: `base · 2^(attempt-1)`, capped, then a uniformly random
/// point in its upper half (so retries of many deliveries spread out but never come early).
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(max);
    let half = full / 2;
    let jitter = rand::rng().random_range(0..=half.as_millis().min(u128::from(u64::MAX)) as u64);
    half + Duration::from_millis(jitter)
}

impl Worker {
    pub fn new(ctx: Ctx) -> anyhow::Result<Self> {
        let providers = Providers::from_settings(&ctx.settings.push, ctx.vapid.clone())?;
        if providers.dev_log {
            tracing::info!("HEREABOUTS_PUSH_DEV_LOG: pushes are logged, not sent");
        }
        for (name, on) in [
            ("apns", providers.apns.is_some()),
            ("fcm", providers.fcm.is_some()),
            ("webhook", providers.webhook.is_some()),
        ] {
            if !on {
                tracing::info!(provider = name, "push provider not configured; its deliveries fail");
            }
        }
        Ok(Self { ctx, providers })
    }

    /// Runs until `shutdown` completes, then releases what it still holds.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let s = self.ctx.settings.push.clone();
        let mut last_housekeeping: Option<Instant> = None;
        tracing::info!("push worker started");
        loop {
            if last_housekeeping.is_none_or(|t| t.elapsed() >= HOUSEKEEPING) {
                last_housekeeping = Some(Instant::now());
                self.housekeeping().await;
            }
            let lease = Uuid::new_v4();
            // a claim is never abandoned half-way: it could commit with nobody left to release it
            if shutdown.as_mut().now_or_never().is_some() {
                break;
            }
            let lease_ends = Instant::now() + s.lease;
            let claimed = outbox::claim(&self.ctx.db, s.batch_size, s.lease, lease).await;
            let batch = match claimed {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(s.poll_interval) => continue,
                    }
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(s.poll_interval) => continue,
                }
            }
            let stopped = tokio::select! {
                () = &mut shutdown => true,
                () = self.send_all(batch, lease, lease_ends) => false,
            };
            if stopped {
                self.release(lease).await;
                break;
            }
        }
        tracing::info!("push worker stopped");
    }

    /// Sends a claimed batch, `push_concurrency` at a time.
    async fn send_all(&self, batch: Vec<Claimed>, lease: Uuid, lease_ends: Instant) {
        futures_util::stream::iter(batch)
            .map(|d| self.process(d, lease, lease_ends))
            .buffer_unordered(self.ctx.settings.push.concurrency)
            .collect::<Vec<()>>()
            .await;
    }

    /// Delivers everything due now, batch after batch, and returns how many deliveries it
    /// handled: tests drive the worker with it, where `run` is the loop of a process.
    pub async fn deliver_due(&self) -> usize {
        let s = &self.ctx.settings.push;
        let mut handled = 0;
        loop {
            let lease = Uuid::new_v4();
            let lease_ends = Instant::now() + s.lease;
            match outbox::claim(&self.ctx.db, s.batch_size, s.lease, lease).await {
                Ok(batch) if !batch.is_empty() => {
                    handled += batch.len();
                    self.send_all(batch, lease, lease_ends).await;
                }
                _ => return handled,
            }
        }
    }

    async fn release(&self, lease: Uuid) {
        match outbox::release(&self.ctx.db, lease).await {
            Ok(n) if n > 0 => tracing::info!(deliveries = n, "released claimed deliveries"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot release claimed deliveries; their lease will expire"),
        }
    }

    async fn housekeeping(&self) {
        let db = &self.ctx.db;
        let _ = self.ctx.controls.reload(db).await;
        let days = self.ctx.controls.get().policy.retention_days;
        match outbox::purge(db, days).await {
            Ok(n) if n > 0 => tracing::info!(notifications = n, "purged notifications past the retention"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "notification purge skipped"),
        }
    }

    /// Writes an outcome, again while PostgreSQL is unavailable and the lease lasts: a delivery
    /// that was sent must not be sent again only because its outcome could not be written at once.
    async fn record<F, Fut>(&self, until: Instant, write: F) -> StoreResult<bool>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = StoreResult<bool>>,
    {
        loop {
            match write().await {
                Err(StoreError::Unavailable(e)) if Instant::now() + RECORD_RETRY < until => {
                    tracing::debug!(error = %e, "cannot record a delivery outcome yet; retrying");
                    tokio::time::sleep(RECORD_RETRY).await;
                }
                r => return r,
            }
        }
    }

    /// Sends one claimed delivery and records the outcome (while the lease lasts, until `until`).
    async fn process(&self, d: Claimed, lease: Uuid, until: Instant) {
        let db = &self.ctx.db;
        let s = &self.ctx.settings.push;
        let platform = d.platform;
        let label = platform.as_str();
        let by_platform = PlatformLabels { platform: label };
        let failed = |reason: &'static str| {
            self.ctx
                .metrics
                .push_failed
                .get_or_create(&FailureLabels {
                    platform: label,
                    reason,
                })
                .inc();
        };
        if let Some(release_at) = quiet_until(&d) {
            // inside the recipient's quiet hours: held until they end, the attempt not counted
            self.ctx.metrics.push_held.inc();
            match self.record(until, || outbox::hold(db, d.id, lease, release_at)).await {
                Ok(true) => tracing::debug!(delivery = %d.id, "delivery held for the recipient's quiet hours"),
                Ok(false) => tracing::info!(delivery = %d.id, "lease lost before the hold was recorded"),
                Err(e) => tracing::warn!(delivery = %d.id, error = %e, "cannot hold a delivery; its lease will expire"),
            }
            return;
        }
        let outcome = if d.withdrawn {
            Outcome::Reject("withdrawn: the pair is no longer allowed to see each other".into())
        } else if !d.device_active {
            Outcome::Reject("device deactivated".into())
        } else if d.attempts > i32::try_from(s.max_attempts).unwrap_or(i32::MAX) {
            // claimed again after leases ran out, beyond the limit
            Outcome::Retry("the lease of the last attempt ran out".into())
        } else {
            let payload = payload_of(&d, &s.default_locale);
            let started = Instant::now();
            let o = match (platform, &self.providers) {
                (_, Providers { dev_log: true, .. }) => devlog::send(platform, d.device_id, &payload),
                (Platform::Web, Providers { webpush, .. }) => {
                    webpush
                        .send(&d.token, d.web_p256dh.as_deref(), d.web_auth.as_deref(), &payload)
                        .await
                }
                (Platform::Ios, Providers { apns: Some(p), .. }) => p.send(&d.token, &payload).await,
                (Platform::Android, Providers { fcm: Some(p), .. }) => p.send(&d.token, &payload).await,
                (Platform::Webhook, Providers { webhook: Some(p), .. }) => p.send(&d.token, &payload).await,
                _ => Outcome::Reject(format!("{label}: provider not configured")),
            };
            self.ctx
                .metrics
                .push_send_duration
                .get_or_create(&by_platform)
                .observe(started.elapsed().as_secs_f64());
            o
        };
        let attempts = u32::try_from(d.attempts).unwrap_or(0);
        let recorded = match &outcome {
            Outcome::Delivered => {
                self.ctx.metrics.push_sent.get_or_create(&by_platform).inc();
                self.record(until, || outbox::delivered(db, d.id, lease)).await
            }
            Outcome::Retry(e) if attempts < s.max_attempts => {
                self.ctx.metrics.push_retried.get_or_create(&by_platform).inc();
                let delay = backoff(attempts, s.backoff_base, s.backoff_max);
                tracing::debug!(delivery = %d.id, attempts, delay_ms = delay.as_millis() as u64, error = %e, "delivery will be retried");
                self.record(until, || outbox::retry_later(db, d.id, lease, delay, e))
                    .await
            }
            Outcome::Retry(e) => {
                failed("exhausted");
                tracing::warn!(delivery = %d.id, attempts, error = %e, "delivery failed after the last attempt");
                self.record(until, || outbox::failed(db, d.id, lease, e)).await
            }
            Outcome::Reject(e) => {
                failed("rejected");
                tracing::warn!(delivery = %d.id, error = %e, "delivery refused");
                self.record(until, || outbox::failed(db, d.id, lease, e)).await
            }
            Outcome::Unregistered(e) => {
                failed("unregistered");
                self.ctx.metrics.push_deactivated.get_or_create(&by_platform).inc();
                tracing::info!(device = %d.device_id, error = %e, "device unregistered by its provider; deactivated");
                let r = self.record(until, || outbox::failed(db, d.id, lease, e)).await;
                if let Err(err) = devices::deactivate(db, d.device_id, e).await {
                    tracing::warn!(error = %err, "cannot deactivate device");
                }
                r
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::info!(delivery = %d.id, "lease lost before the outcome was recorded"),
            Err(e) => {
                tracing::warn!(delivery = %d.id, error = %e, "cannot record a delivery outcome; its lease will expire")
            }
        }
    }
}

/// When the recipient's quiet hours holding this delivery end, if they hold it now. An unknown
/// stored zone (the tz database changed) counts as UTC.
fn quiet_until(d: &Claimed) -> Option<time::OffsetDateTime> {
    let (Some(from), Some(to)) = (d.quiet_from, d.quiet_to) else {
        return None;
    };
    let civil = |t: time::Time| jiff::civil::Time::new(t.hour() as i8, t.minute() as i8, 0, 0).ok();
    let window = quiet::QuietHours {
        from: civil(from)?,
        to: civil(to)?,
    };
    let tz = quiet::parse_time_zone("time_zone", &d.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let end = quiet::held_until(jiff::Timestamp::now(), &tz, window)?;
    time::OffsetDateTime::from_unix_timestamp(end.as_second()).ok()
}

/// What the providers send about a claimed delivery: its kind's template in the device's language.
fn payload_of(d: &Claimed, default_locale: &str) -> Payload {
    let (locale, name) = (d.locale.as_deref(), d.actor_display_name.as_str());
    let (kind, message) = match d.kind.as_str() {
        "connection_request" => (
            "connection_request",
            templates::connection_request(locale, default_locale, name),
        ),
        "connection_accepted" => (
            "connection_accepted",
            templates::connection_accepted(locale, default_locale, name),
        ),
        "trip_overlap" => (
            "trip_overlap",
            templates::trip_overlap(locale, default_locale, name, d.overlap_from, d.overlap_to),
        ),
        _ => (
            "connection_nearby",
            templates::connection_nearby(locale, default_locale, name, i64::from(d.distance_m)),
        ),
    };
    Payload {
        delivery_id: d.id,
        kind,
        request_id: d.request_id,
        notification_id: d.notification_id,
        actor_user_id: d.actor_user_id,
        actor_display_name: d.actor_display_name.clone(),
        distance_m: i64::from(d.distance_m),
        created_at: d.notification_created_at,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_in_the_upper_half_and_is_capped() {
        let base = Duration::from_millis(200);
        let max = Duration::from_secs(2);
        for _ in 0..200 {
            let one = backoff(1, base, max);
            assert!(one >= Duration::from_millis(100) && one <= base, "{one:?}");
            let three = backoff(3, base, max);
            assert!(
                three >= Duration::from_millis(400) && three <= Duration::from_millis(800),
                "{three:?}"
            );
            let many = backoff(40, base, max);
            assert!(many >= max / 2 && many <= max, "{many:?}");
        }
    }
}
