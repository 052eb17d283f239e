//! Arrival detection: after user A's check-in is indexed, which of A's connections should hear
//! that A is nearby.
//!
//! B is notified when A's point as B would see it lies within B's `notify_radius_m` of B's own
//! live point and B could see A in `/v1/nearby` right now: B has `notify_nearby` on, is connected
//! to A, neither blocked the other, A does not hide from B, B did not mute A, both share (not
//! paused, not suspended) and B has a live, indexed check-in. The distance is the one B's nearby
//! list would show: to A's published point rounded by A's precision, or to A's own point when A
//! shares exactly with B ([`crate::service::shares`]).
//!
//! Check-ins are decided in batches of what is queued (at most [`BATCH`]), so the cost per
//! check-in falls as the rate rises: per check-in, the candidates come from the cheaper of A's
//! adjacency and the live members of the cover of the largest notify radius in use (the
//! planner's rule, [`crate::service::nearby::candidates`]) — on one Redis, one script for up to
//! [`ACTORS_PER_SCRIPT`] actors near one another, which reads each cell they share once; then,
//! for the whole batch, one query for the exact shares its actors give, one read of those
//! recipients' records, one SQL query for the settings and rules of every pair, one Redis round
//! trip for the cooldowns and one transaction for the outbox.
//!
//! At most once per pair and cooldown ([`crate::store::cooldown`]); when the outbox write fails,
//! the claimed pairs are given back so that the next check-in can notify.
//!
//! [`run`] takes check-ins from the channel the service layer announces them on, a batch at a
//! time, until the shutdown token is cancelled; batches under way finish.

use crate::domain::cover::{MAX_RADIUS_M, MIN_RADIUS_M, cover, fetch_cover};
use crate::domain::geo::{Coord, within_m};
use crate::domain::nearby::{LiveRecord, RECORD_WEIGHT, listed_distance, published_reach_m};
use crate::service::Ctx;
use crate::service::events::{Announced, Checkin};
use crate::service::nearby::candidates;
use crate::store::outbox::{self, NewNotification};
use crate::store::{StoreError, cooldown, index, shares};
use futures_util::StreamExt;
use h3o::{CellIndex, Resolution};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Bound on deciding one batch (the reads and the rules; the writes after it are not cut short).
const DECIDE_TIMEOUT: Duration = Duration::from_secs(10);
/// Check-ins of a batch whose connections are read at once (each may rebuild an adjacency set
/// from PostgreSQL: the pool is shared with the API).
const READS_AT_ONCE: usize = 8;
/// Actors whose connections one script reads at most: the more, the more cells they share, and
/// the longer Redis serves nothing else (a script runs alone). Measured by the radar bench
/// (10k users, 1,000 streams, 2,000 check-ins/s offered; 2026-12-04): 1,825 check-ins/s at 16,
/// 1,928 at 32, 1,831 and 1,999 at 64 (runs differ by ~5 %), where the script of a full batch
/// holds Redis ~14 ms.
const ACTORS_PER_SCRIPT: usize = 32;
/// Check-ins decided together at most.
pub const BATCH: usize = 64;
/// Batches decided at once at most.
const CONCURRENCY: usize = 4;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// What one batch's detection did (for logs, metrics and tests).
#[derive(Debug, Default)]
pub struct Detection {
    /// Pairs (actor, connection) within reach before the rules.
    pub candidates: usize,
    /// Pairs the rules and the recipient's radius keep.
    pub inside: usize,
    /// Pairs notified: (recipient, actor).
    pub notified: Vec<(Uuid, Uuid)>,
}

/// One pair to decide: the actor, the connection B with B's record, and the actor as B sees them.
struct Pair<'a> {
    actor: Uuid,
    recipient: Uuid,
    record: LiveRecord,
    seen: std::borrow::Cow<'a, LiveRecord>,
}

/// How far from A's published point A's connections are read, for a notify radius of `reach_m`.
/// B lists a coarse A when B's circle reaches A's cell: B's own point may lie as far as the
/// cell reaches beyond A's published point. An exact B is indexed at B's own point; a coarse B
/// at the centre of B's cell, which the coarse cover (widened by a res-5 cell's reach) holds
/// whenever B's own point is in reach.
fn read_reach_m(me: &LiveRecord, reach_m: f64) -> f64 {
    (reach_m + published_reach_m(me)).min(MAX_RADIUS_M)
}

/// Live records of A's connections whose own point could lie within `reach_m` (the largest
/// notify radius in use, at most 200 km) of A's published point: the one planner of nearby,
/// whichever side is cheaper.
async fn live_connections(
    ctx: &Ctx,
    actor: Uuid,
    me: &LiveRecord,
    reach_m: f64,
) -> crate::service::ServiceResult<Vec<(Uuid, LiveRecord)>> {
    let reach_m = read_reach_m(me, reach_m);
    let found = candidates(ctx, actor, me.published(), reach_m, reach_m, None).await?;
    let now = now_ms();
    Ok(found
        .records
        .into_iter()
        .filter(|(id, r)| *id != actor && r.is_live(now))
        .collect())
}

/// [`live_connections`] of every actor of a batch; an actor whose connections cannot be read is
/// left out (logged and counted). On a single Redis, the actors near one another (by their
/// res-3 cell) are asked together, [`ACTORS_PER_SCRIPT`] to a script that reads each cell once
/// for all of them ([`index::nearby_many_in_one`]); an actor whose adjacency set is absent, and
/// every actor on a cluster, goes through the planner alone.
async fn connections_of_all(
    ctx: &Ctx,
    latest: &HashMap<Uuid, &LiveRecord>,
    reach_m: f64,
) -> Vec<(Uuid, Vec<(Uuid, LiveRecord)>)> {
    let mut alone: Vec<Uuid> = vec![];
    let mut out = vec![];
    if ctx.redis.is_cluster() {
        alone.extend(latest.keys());
    } else {
        let mut near: Vec<(CellIndex, Uuid)> = latest
            .iter()
            .map(|(a, me)| (me.published().cell(Resolution::Three), *a))
            .collect();
        near.sort_unstable();
        let scripts = near.chunks(ACTORS_PER_SCRIPT).map(|chunk| {
            // each actor's two covers, as `candidates` makes them
            let asked: Vec<(Uuid, Vec<CellIndex>, Vec<CellIndex>)> = chunk
                .iter()
                .map(|(_, a)| {
                    let me = latest[a];
                    let (centre, reach) = (me.published(), read_reach_m(me, reach_m));
                    (*a, cover(centre, reach).cells, fetch_cover(centre, reach).cells)
                })
                .collect();
            async move {
                let questions: Vec<index::Asked> = asked
                    .iter()
                    .map(|(user, exact, coarse)| index::Asked {
                        user: *user,
                        exact_cells: exact,
                        coarse_cells: coarse,
                    })
                    .collect();
                let answers = index::nearby_many_in_one(&ctx.redis, &questions, RECORD_WEIGHT).await;
                (asked, answers)
            }
        });
        let now = now_ms();
        for (asked, answers) in futures_util::future::join_all(scripts).await {
            let answers = match answers {
                Ok(a) => a,
                Err(e) => {
                    ctx.metrics.detect_errors.inc_by(asked.len() as u64);
                    tracing::warn!(checkins = asked.len(), error = %e, "arrival detection: cannot read these check-ins' connections");
                    continue;
                }
            };
            for ((actor, ..), answer) in asked.into_iter().zip(answers) {
                match answer {
                    Some(found) => out.push((
                        actor,
                        found
                            .records
                            .into_iter()
                            .filter(|(id, r)| *id != actor && r.is_live(now))
                            .collect(),
                    )),
                    None => alone.push(actor),
                }
            }
        }
    }
    let reads = alone.into_iter().map(|a| {
        let me = latest[&a];
        async move { (a, live_connections(ctx, a, me, reach_m).await) }
    });
    let mut reads = futures_util::stream::iter(reads).buffer_unordered(READS_AT_ONCE);
    while let Some((actor, found)) = reads.next().await {
        match found {
            Ok(f) => out.push((actor, f)),
            Err(e) => {
                ctx.metrics.detect_errors.inc();
                tracing::warn!(user_id = %actor, error = %e, "arrival detection: cannot read one check-in's connections");
            }
        }
    }
    out
}

/// The exact shares the actors give (none when the policy's minimum precision is coarser):
/// per giver, each recipient with the giver's own point; and the live records of the recipients.
async fn shared_with(
    ctx: &Ctx,
    actors: &[Uuid],
) -> crate::service::ServiceResult<(HashMap<Uuid, Vec<(Uuid, Coord)>>, HashMap<Uuid, LiveRecord>)> {
    if !crate::service::shares::exact_shares_apply(ctx) {
        return Ok(Default::default());
    }
    let mut given: HashMap<Uuid, Vec<(Uuid, Coord)>> = HashMap::new();
    for (giver, recipient, lat, lng) in shares::exact_points_given(&ctx.db, actors).await? {
        given
            .entry(giver)
            .or_default()
            .push((recipient, Coord::stored(lat, lng)));
    }
    let recipients: Vec<Uuid> = given
        .values()
        .flatten()
        .map(|(r, _)| *r)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let records = if recipients.is_empty() {
        HashMap::new()
    } else {
        let now = now_ms();
        recipients
            .iter()
            .zip(index::records(&ctx.redis, &recipients).await?)
            .filter_map(|(id, r)| r.filter(|r| r.is_live(now)).map(|r| (*id, r)))
            .collect()
    };
    Ok((given, records))
}

/// Decides the arrival notifications of a batch of check-ins (actor, indexed record) and writes
/// the outbox. A user who checked in twice in the batch is decided at the last check-in. The
/// decision is bounded by [`DECIDE_TIMEOUT`]; the writes that follow (cooldown claims, the
/// outbox, the claims given back when it fails) are bounded by the stores' own timeouts only,
/// so that a claim is never left without its notification.
pub async fn detect(ctx: &Ctx, batch: &[(Uuid, LiveRecord)]) -> crate::service::ServiceResult<Detection> {
    let (mut out, inside) = tokio::time::timeout(DECIDE_TIMEOUT, decide(ctx, batch))
        .await
        .map_err(|_| crate::service::ServiceError::Unavailable("arrival detection: deciding timed out".into()))??;
    if inside.is_empty() {
        return Ok(out);
    }
    let cooldown_s = u64::try_from(ctx.controls.get().policy.notification_cooldown_s)
        .unwrap_or(0)
        .max(1);
    let keys: Vec<(Uuid, Uuid)> = inside.iter().map(|n| (n.user_id, n.actor_user_id)).collect();
    let free = cooldown::claim(&ctx.redis, &keys, cooldown_s).await?;
    let claimed: Vec<NewNotification> = inside
        .into_iter()
        .zip(free)
        .filter_map(|(n, free)| free.then_some(n))
        .collect();
    if claimed.is_empty() {
        return Ok(out);
    }
    let written = async {
        let mut tx = ctx.db.begin().await?;
        let counts = outbox::insert(&mut tx, &claimed).await?;
        tx.commit().await?;
        Ok::<_, StoreError>(counts)
    }
    .await;
    let pairs: Vec<(Uuid, Uuid)> = claimed.iter().map(|n| (n.user_id, n.actor_user_id)).collect();
    match written {
        Ok((_, deliveries)) => {
            ctx.metrics.notifications.inc_by(pairs.len() as u64);
            tracing::info!(
                notified = pairs.len(),
                deliveries,
                "connection_nearby notifications written"
            );
            out.notified = pairs;
            Ok(out)
        }
        Err(e) => {
            // give the pairs back so that the next check-in can notify them
            if let Err(undo) = cooldown::release(&ctx.redis, &pairs).await {
                tracing::warn!(error = %undo, "cannot release cooldown keys after a failed outbox write");
            }
            Err(e.into())
        }
    }
}

/// Who should hear of the batch's check-ins: the pairs within reach, the rules, the radius, and
/// each recipient's daily allowance (several arrivals of one batch may near the same person).
/// A check-in whose connections cannot be read is skipped (logged and counted), not the batch.
async fn decide(
    ctx: &Ctx,
    batch: &[(Uuid, LiveRecord)],
) -> crate::service::ServiceResult<(Detection, Vec<NewNotification>)> {
    let controls = ctx.controls.get();
    let mut out = Detection::default();
    if !controls.policy.location_sharing_enabled || controls.max_notify_radius_m < MIN_RADIUS_M {
        // sharing is off, or nobody wants arrival notifications
        return Ok((out, vec![]));
    }
    let reach_m = controls.max_notify_radius_m;
    let now = now_ms();
    let mut latest: HashMap<Uuid, &LiveRecord> = HashMap::new();
    for (actor, me) in batch {
        latest.insert(*actor, me);
    }
    latest.retain(|_, me| me.is_live(now));
    if latest.is_empty() {
        return Ok((out, vec![]));
    }
    let actors: Vec<Uuid> = latest.keys().copied().collect();
    let (found, shared) = futures_util::join!(connections_of_all(ctx, &latest, reach_m), shared_with(ctx, &actors));
    let (given, shared_records) = shared?;
    let mut pairs: Vec<Pair> = vec![];
    for (actor, found) in found {
        let me = latest[&actor];
        // how far the actor's area reaches past their point: once per actor (0 when shown exactly)
        let me_reach = reach_m + published_reach_m(me);
        let exact: HashMap<Uuid, Coord> = given.get(&actor).into_iter().flatten().copied().collect();
        let mut seen_ids = HashSet::new();
        let shared_only = exact
            .keys()
            .filter_map(|b| shared_records.get(b).map(|r| (*b, r.clone())));
        // never the actor: the planner's answer leaves them out, and nobody shares with themselves
        for (b, record) in found.into_iter().chain(shared_only) {
            if !seen_ids.insert(b) {
                continue;
            }
            let (seen, bound) = match exact.get(&b) {
                Some(own) => (std::borrow::Cow::Owned(me.clone().shown_exactly(*own)), reach_m),
                None => (std::borrow::Cow::Borrowed(me), me_reach),
            };
            if within_m(record.centre(), seen.published(), bound) {
                pairs.push(Pair {
                    actor,
                    recipient: b,
                    record,
                    seen,
                });
            }
        }
    }
    out.candidates = pairs.len();
    if pairs.is_empty() {
        return Ok((out, vec![]));
    }
    let asked: Vec<(Uuid, Uuid)> = pairs.iter().map(|p| (p.actor, p.recipient)).collect();
    let rules: HashMap<(Uuid, Uuid), (i32, Option<i64>)> =
        outbox::eligible_pairs(&ctx.db, &asked, ctx.settings.push.daily_cap)
            .await?
            .into_iter()
            .map(|(a, b, r, allowance)| ((a, b), (r, allowance)))
            .collect();
    let now = now_ms();
    let mut given_today: HashMap<Uuid, i64> = HashMap::new();
    // would B see A in a nearby query of B's notify radius? and may B hear of one more today?
    let inside: Vec<NewNotification> = pairs
        .iter()
        .filter_map(|p| {
            let (r, allowance) = *rules.get(&(p.actor, p.recipient))?;
            let d = listed_distance(p.recipient, p.record.centre(), f64::from(r), now, &p.seen)?;
            let count = given_today.entry(p.recipient).or_insert(0);
            if allowance.is_some_and(|left| *count >= left) {
                return None;
            }
            *count += 1;
            Some(NewNotification {
                user_id: p.recipient,
                actor_user_id: p.actor,
                distance_m: i64::try_from(d).unwrap_or(i64::MAX),
            })
        })
        .collect();
    out.inside = inside.len();
    Ok((out, inside))
}

/// Runs one batch's detection ([`detect`] bounds it), logging and counting what went wrong;
/// the check-ins it handled.
async fn detect_batch(ctx: Ctx, batch: Vec<Checkin>) -> usize {
    ctx.metrics.detect_batch.observe(batch.len() as f64);
    let items: Vec<(Uuid, LiveRecord)> = batch.iter().map(|c| (c.user, c.record.clone())).collect();
    match detect(&ctx, &items).await {
        Ok(d) => {
            for c in &batch {
                ctx.metrics.detect_lag.observe(c.at.elapsed().as_secs_f64());
            }
            tracing::debug!(
                checkins = batch.len(),
                candidates = d.candidates,
                inside = d.inside,
                notified = d.notified.len(),
                "arrival detection"
            )
        }
        Err(e) => {
            ctx.metrics.detect_errors.inc_by(batch.len() as u64);
            tracing::warn!(checkins = batch.len(), error = %e, "arrival detection failed");
        }
    }
    batch.len()
}

/// Detects arrivals for the check-ins announced on `checkins`, in batches of what is queued
/// ([`BATCH`] at most), [`CONCURRENCY`] batches at a time, until `shutdown` is cancelled; the
/// batches under way finish first.
pub async fn run(ctx: Ctx, mut checkins: Announced, shutdown: CancellationToken) {
    let mut running = futures_util::stream::FuturesUnordered::new();
    let mut buf = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            Some(n) = running.next(), if !running.is_empty() => (0..n).for_each(|_| checkins.done()),
            got = checkins.rx.recv_many(&mut buf, BATCH), if running.len() < CONCURRENCY => {
                if got == 0 {
                    break;
                }
                running.push(detect_batch(ctx.clone(), std::mem::take(&mut buf)));
            }
        }
    }
    while let Some(n) = running.next().await {
        (0..n).for_each(|_| checkins.done());
    }
}
