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
//! [`choose`]); then one read of their live records, one SQL query for the settings and rules of
//! all of them, one Redis round trip for the cooldowns, one transaction for the outbox.
//!
//! At most once per pair and cooldown: the key `<prefix>:cool:{<B>}:<A>` is written with
//! `SET … EX <cooldown> GET` — one atomic command that both claims (the answer is nil only for
//! the one caller that created it) and, while A stays in B's area, keeps extending the quiet
//! period, so moving around inside the area never re-notifies, while leaving and coming back
//! after the cooldown does. Two API instances or a retried check-in race on the same key and only
//! one notifies. When the outbox write fails, the claimed keys are deleted again so that the next
//! check-in can notify.

use super::outbox::{self, NewNotification};
use crate::domain::cover::{MAX_RADIUS_M, cover};
use crate::domain::nearby::{LiveRecord, Plan, choose, select};
use crate::startup::AppState;
use crate::store::redis::Redis;
use crate::store::{StoreError, StoreResult, graph, index};
use redis::Value;
use std::collections::HashSet;
use uuid::Uuid;

/// The cooldown key of the pair (recipient `b`, actor `a`); hash-tagged by the recipient.
pub fn cooldown_key(redis: &Redis, b: Uuid, a: Uuid) -> String {
    redis.key(format_args!("cool:{{{b}}}:{a}"))
}

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

/// Live records of A's connections that could lie within 200 km (the largest notify radius) of
/// A's published point: a bounded number of round trips, whichever side is cheaper.
async fn live_connections(
    state: &AppState,
    actor: Uuid,
    me: &LiveRecord,
) -> StoreResult<(Plan, Vec<(Uuid, LiveRecord)>)> {
    let redis = &state.redis;
    let degree = graph::ensure_adjacency(&state.db, redis, actor).await?;
    if degree == 0 {
        return Ok((Plan::GraphFirst, vec![]));
    }
    let cov = cover(me.published(), MAX_RADIUS_M);
    let population: u64 = index::populations(redis, &cov.cells).await?.iter().sum();
    let plan = choose(population, degree);
    let ids: Vec<Uuid> = match plan {
        Plan::CellFirst => {
            let mut seen = HashSet::new();
            let members: Vec<Uuid> = index::members(redis, &cov.cells)
                .await?
                .into_iter()
                .filter(|m| *m != actor && seen.insert(*m))
                .collect();
            let flags = index::set_contains(redis, &graph::adjacency_key(redis, actor), &members).await?;
            members
                .into_iter()
                .zip(flags)
                .filter_map(|(m, f)| f.then_some(m))
                .collect()
        }
        Plan::GraphFirst => graph::adjacency(&state.db, redis, actor).await?,
    };
    let records = index::records(redis, &ids).await?;
    let now = now_ms();
    let live = ids
        .into_iter()
        .zip(records)
        .filter_map(|(id, r)| r.map(|r| (id, r)))
        .filter(|(id, r)| *id != actor && r.is_live(now))
        .filter(|(_, r)| crate::domain::geo::distance_m(r.centre(), me.published()) <= MAX_RADIUS_M)
        .collect();
    Ok((plan, live))
}

/// The candidates who may be notified about `actor` and their radii, per the rules in
/// PostgreSQL (one query): the recipient's settings, the pair's connection and blocks, the
/// actor's hidden list and both accounts' sharing state. With `daily_cap`, recipients who had
/// that many notifications in the last 24 hours are left out.
async fn eligible(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    actor: Uuid,
    candidates: &[Uuid],
    daily_cap: u32,
) -> StoreResult<Vec<(Uuid, i32)>> {
    Ok(sqlx::query_as(
        "WITH a AS (
             SELECT p.user_id, p.hidden_from FROM privacy_settings p JOIN users u ON u.id = p.user_id
             WHERE p.user_id = $1 AND p.sharing AND (p.paused_until IS NULL OR p.paused_until <= now())
               AND NOT u.suspended
         )
         SELECT p.user_id, p.notify_radius_m
         FROM a, privacy_settings p JOIN users u ON u.id = p.user_id
         WHERE p.user_id = ANY($2) AND p.user_id <> a.user_id
           AND p.notify_nearby AND p.sharing AND (p.paused_until IS NULL OR p.paused_until <= now())
           AND NOT u.suspended
           AND NOT (p.user_id = ANY(a.hidden_from))
           AND EXISTS (SELECT 1 FROM connections c WHERE c.user_id = a.user_id AND c.peer_id = p.user_id)
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = a.user_id AND b.blocked_id = p.user_id)
                              OR (b.blocker_id = p.user_id AND b.blocked_id = a.user_id))
           AND ($3 = 0 OR (SELECT count(*) FROM notifications n
                           WHERE n.user_id = p.user_id AND n.created_at > now() - interval '1 day') < $3)",
    )
    .bind(actor)
    .bind(candidates)
    .bind(i64::from(daily_cap))
    .fetch_all(&mut **tx)
    .await?)
}

/// Runs the detection for `actor`'s new check-in `me` and writes the outbox.
pub async fn detect(state: &AppState, actor: Uuid, me: &LiveRecord) -> StoreResult<Detection> {
    let controls = state.controls.get();
    let mut out = Detection::default();
    if !controls.policy.location_sharing_enabled || !me.is_live(now_ms()) {
        return Ok(out);
    }
    let (plan, live) = live_connections(state, actor, me).await?;
    out.plan = Some(plan);
    out.candidates = live.len();
    if live.is_empty() {
        return Ok(out);
    }
    let ids: Vec<Uuid> = live.iter().map(|(id, _)| *id).collect();
    let mut tx = state.db.begin().await?;
    let rules = eligible(&mut tx, actor, &ids, state.settings.push.daily_cap).await?;
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
                &cover(rec.centre(), r),
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
    let keys: Vec<String> = inside
        .iter()
        .map(|r| cooldown_key(&state.redis, r.user_id, actor))
        .collect();
    let cmds = keys
        .iter()
        .map(|k| {
            redis::cmd("SET")
                .arg(k)
                .arg(1)
                .arg("EX")
                .arg(cooldown_s)
                .arg("GET")
                .clone()
        })
        .collect();
    let answers = state.redis.run_many(cmds).await?;
    let claimed: Vec<(&Recipient, &String)> = inside
        .iter()
        .zip(keys.iter())
        .zip(answers.iter())
        .filter(|(_, v)| matches!(v, Value::Nil))
        .map(|((r, k), _)| (r, k))
        .collect();
    if claimed.is_empty() {
        return Ok(out);
    }
    let items: Vec<NewNotification> = claimed
        .iter()
        .map(|(r, _)| NewNotification {
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
            out.notified = claimed.iter().map(|(r, _)| r.user_id).collect();
            state.metrics.count(
                "push_notifications_total",
                "notifications decided (connection_nearby)",
                &[],
                out.notified.len() as f64,
            );
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
            let cmds = claimed.iter().map(|(_, k)| redis::cmd("DEL").arg(*k).clone()).collect();
            if let Err(undo) = state.redis.run_many(cmds).await {
                tracing::warn!(error = %undo, "cannot release cooldown keys after a failed outbox write");
            }
            Err(e)
        }
    }
}
