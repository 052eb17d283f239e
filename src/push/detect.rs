//! Arrival detection: after user A's check-in is indexed, which of A's connections should hear
//! that A is nearby.
//!
//! B is notified when A's published point lies within B's `notify_radius_m` of B's own live
//! point and B could see A in `/v1/nearby` right now: B has `notify_nearby` on, is connected to A,
//! neither blocked the other, A does not hide from B, both share (not paused, not suspended) and
//! B has a live, indexed check-in. The distance is the one B's nearby list would show (to A's
//! published point, rounded by A's precision).
//!
//! Cost, whatever the sizes: like the nearby query, the candidates come from the cheaper of A's
//! adjacency and the live members of the cover of the largest notify radius (the planner
//! [`crate::service::nearby::candidates`]); then one read of their live records, one SQL query for the settings and rules of
//! all of them, one Redis round trip for the cooldowns, one transaction for the outbox.
//!
//! At most once per pair and cooldown ([`crate::store::cooldown`]); when the outbox write fails,
//! the claimed pairs are given back so that the next check-in can notify.
//!
//! [`run`] takes check-ins from the channel the service layer announces them on, several at a
//! time, until the shutdown token is cancelled; detections under way finish.

use crate::domain::cover::{MAX_RADIUS_M, MIN_RADIUS_M, cover};
use crate::domain::nearby::{LiveRecord, PROBE_SLACK_M, Plan, select};
use crate::service::Ctx;
use crate::service::events::{Announced, Checkin};
use crate::service::nearby::candidates;
use crate::store::outbox::{self, NewNotification};
use crate::store::{StoreError, cooldown};
use futures_util::StreamExt;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Bound on one arrival detection.
const DETECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How far a published point may lie from the user's own point: twice the longest edge of a
/// resolution-5 cell (`city` precision), generously.
const PUBLISHED_OFFSET_M: f64 = 25_000.0;
/// Detections run at once at most.
const CONCURRENCY: usize = 16;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A connection who may hear about the actor, with the distance they would see.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipient {
    pub user_id: Uuid,
    pub distance_m: u64,
}

/// What one detection did (for logs, metrics and tests).
#[derive(Debug, Default)]
pub struct Detection {
    pub candidates: usize,
    pub inside: usize,
    pub notified: Vec<Uuid>,
    pub plan: Option<Plan>,
}

/// Live records of A's connections whose own point could lie within the largest notify radius
/// in use (at most 200 km) of A's published point: the one planner of nearby, whichever side is
/// cheaper.
async fn live_connections(
    ctx: &Ctx,
    actor: Uuid,
    me: &LiveRecord,
    reach_m: f64,
) -> crate::service::ServiceResult<(Option<Plan>, Vec<(Uuid, LiveRecord)>)> {
    // B is indexed at B's published point, which may lie a coarse cell away from B's own point
    let found = candidates(
        ctx,
        actor,
        me.published(),
        (reach_m + PUBLISHED_OFFSET_M).min(MAX_RADIUS_M),
        None,
    )
    .await?;
    let now = now_ms();
    let live = found
        .records
        .into_iter()
        .filter(|(id, r)| *id != actor && r.is_live(now))
        .filter(|(_, r)| crate::domain::geo::distance_m(r.centre(), me.published()) <= reach_m)
        .collect();
    Ok((found.plan, live))
}

/// Runs the detection for `actor`'s new check-in `me` and writes the outbox.
pub async fn detect(ctx: &Ctx, actor: Uuid, me: &LiveRecord) -> crate::service::ServiceResult<Detection> {
    let controls = ctx.controls.get();
    let mut out = Detection::default();
    if !controls.policy.location_sharing_enabled || !me.is_live(now_ms()) {
        return Ok(out);
    }
    if controls.max_notify_radius_m < MIN_RADIUS_M {
        // nobody wants arrival notifications
        return Ok(out);
    }
    let (plan, live) = live_connections(ctx, actor, me, controls.max_notify_radius_m).await?;
    out.plan = plan;
    out.candidates = live.len();
    if live.is_empty() {
        return Ok(out);
    }
    let ids: Vec<Uuid> = live.iter().map(|(id, _)| *id).collect();
    let mut tx = ctx.db.begin().await?;
    let rules = outbox::eligible_recipients(&mut tx, actor, &ids, ctx.settings.push.daily_cap).await?;
    let radius: std::collections::HashMap<Uuid, i32> = rules.into_iter().collect();
    let now = now_ms();
    // would B see A in a nearby query of B's notify radius?
    let inside: Vec<Recipient> = live
        .iter()
        .filter_map(|(b, rec)| {
            let r = f64::from(*radius.get(b)?);
            let hits = select(
                *b,
                rec.centre(),
                r,
                &cover(rec.centre(), r + PROBE_SLACK_M),
                now,
                [(actor, me.clone())],
                1,
            );
            hits.first().map(|h| Recipient {
                user_id: *b,
                distance_m: h.distance_m,
            })
        })
        .collect();
    out.inside = inside.len();
    if inside.is_empty() {
        return Ok(out);
    }
    let cooldown_s = u64::try_from(controls.policy.notification_cooldown_s)
        .unwrap_or(0)
        .max(1);
    let pairs: Vec<(Uuid, Uuid)> = inside.iter().map(|r| (r.user_id, actor)).collect();
    let free = cooldown::claim(&ctx.redis, &pairs, cooldown_s).await?;
    let claimed: Vec<&Recipient> = inside
        .iter()
        .zip(free)
        .filter_map(|(r, free)| free.then_some(r))
        .collect();
    if claimed.is_empty() {
        return Ok(out);
    }
    let items: Vec<NewNotification> = claimed
        .iter()
        .map(|r| NewNotification {
            user_id: r.user_id,
            actor_user_id: actor,
            distance_m: i64::try_from(r.distance_m).unwrap_or(i64::MAX),
        })
        .collect();
    let written = async {
        let counts = outbox::insert(&mut tx, &items).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(counts)
    }
    .await;
    match written {
        Ok((_, deliveries)) => {
            out.notified = claimed.iter().map(|r| r.user_id).collect();
            ctx.metrics.notifications.inc_by(out.notified.len() as u64);
            tracing::info!(
                actor = %actor,
                notified = out.notified.len(),
                deliveries,
                "connection_nearby notifications written"
            );
            Ok(out)
        }
        Err(e) => {
            // give the pairs back so that the next check-in can notify them
            let pairs: Vec<(Uuid, Uuid)> = claimed.iter().map(|r| (r.user_id, actor)).collect();
            if let Err(undo) = cooldown::release(&ctx.redis, &pairs).await {
                tracing::warn!(error = %undo, "cannot release cooldown keys after a failed outbox write");
            }
            Err(e.into())
        }
    }
}

/// Runs one detection within its bound, logging and counting what went wrong.
async fn detect_one(ctx: Ctx, c: Checkin) {
    match tokio::time::timeout(DETECT_TIMEOUT, detect(&ctx, c.user, &c.record)).await {
        Ok(Ok(d)) => {
            ctx.metrics.detect_lag.observe(c.at.elapsed().as_secs_f64());
            tracing::debug!(
                user_id = %c.user,
                candidates = d.candidates,
                inside = d.inside,
                notified = d.notified.len(),
                "arrival detection"
            )
        }
        Ok(Err(e)) => {
            ctx.metrics.detect_errors.inc();
            tracing::warn!(user_id = %c.user, error = %e, "arrival detection failed");
        }
        Err(_) => {
            ctx.metrics.detect_errors.inc();
            tracing::warn!(user_id = %c.user, "arrival detection timed out");
        }
    }
}

/// Detects arrivals for the check-ins announced on `checkins`, [`CONCURRENCY`] at a time, until
/// `shutdown` is cancelled; the detections under way finish first.
pub async fn run(ctx: Ctx, mut checkins: Announced, shutdown: CancellationToken) {
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(()) = running.next(), if !running.is_empty() => checkins.done(),
            c = checkins.rx.recv(), if running.len() < CONCURRENCY => match c {
                Some(c) => running.push(detect_one(ctx.clone(), c)),
                None => break,
            },
        }
    }
    while running.next().await.is_some() {
        checkins.done();
    }
}
