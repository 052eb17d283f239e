//! The check-in pipeline: group commit. Concurrent check-ins queue here and are written in
//! batches: one Redis round trip for their rate limits, one query for their idempotency keys,
//! one transaction (the users' privacy and live rows locked in user-id order, one multi-row
//! upsert, one for the answers to remember), the index moves in one round trip on a single
//! Redis (new memberships and records, then old memberships: [`index::apply`]), one commit —
//! then every caller of the batch gets its answer. A 201 still means the check-in is in
//! PostgreSQL and in the index. Its Redis calls take their own connection
//! ([`Lane::Writes`]), so that they do not queue behind the queries' scripts.
//!
//! Batches form by themselves: while one is being written, the next requests queue. Up to
//! [`IN_FLIGHT`] batches are written at once; a user appears at most once per batch (a second
//! check-in of the same user waits for the next), and row locks order the batches that share a
//! user, so the index follows PostgreSQL.

use super::live::{Checkin, CheckinInput, MAX_FUTURE, Outcome, publish_row, published_of, record_for, sync_user};
use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::geo::Coord;
use crate::domain::nearby::LiveRecord;
use crate::domain::policy::Precision;
use crate::store::live::{self, LiveRow};
use crate::store::privacy::{self, PrivacyRecord};
use crate::store::redis::Lane;
use crate::store::{StoreError, index, ratelimit};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration as StdDuration;
use time::{Duration, OffsetDateTime};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most check-ins in one batch.
pub const MAX_BATCH: usize = 256;
/// Batches written at once.
pub const IN_FLIGHT: usize = 2;
/// Check-ins waiting at most; past it a check-in is refused with 503 (the server is saturated).
const QUEUE: usize = 8_192;
/// After shutdown is asked for, how long the pipeline still takes check-ins of requests that
/// were already in flight.
const DRAIN_IDLE: StdDuration = StdDuration::from_millis(500);

/// One check-in waiting to be written.
pub struct Submitted {
    user: Uuid,
    raw: Coord,
    input: CheckinInput,
    reply: oneshot::Sender<ServiceResult<Outcome>>,
}

/// The sending end of the pipeline, in [`Ctx`]; without a pipeline (tools), a check-in is
/// written as a batch of one in the caller's task.
#[derive(Clone, Debug)]
pub struct Ingest(Option<mpsc::Sender<Submitted>>);

/// The receiving end, for [`run`].
pub struct Queue(mpsc::Receiver<Submitted>);

impl Ingest {
    /// A pipeline: the sender for the context, the queue for [`run`].
    pub fn channel() -> (Self, Queue) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(Some(tx)), Queue(rx))
    }

    /// No pipeline: check-ins are written one by one.
    pub fn none() -> Self {
        Self(None)
    }

    /// Writes a validated check-in and answers when it is durable and indexed.
    pub async fn submit(&self, ctx: &Ctx, user: Uuid, raw: Coord, input: CheckinInput) -> ServiceResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        let job = Submitted {
            user,
            raw,
            input,
            reply,
        };
        match &self.0 {
            None => write_batch(ctx, vec![job]).await,
            Some(tx) => tx
                .try_send(job)
                .map_err(|_| ServiceError::Unavailable("check-ins: the queue is full".into()))?,
        }
        answer
            .await
            .unwrap_or_else(|_| Err(ServiceError::Unavailable("check-ins: the server is stopping".into())))
    }
}

/// Writes queued check-ins in batches until `shutdown`, then what is still queued.
///
/// A batch never takes a user whose check-in another batch is writing: that check-in waits,
/// in order, for a batch after it (batches that shared a user would wait on each other's row
/// locks until the first committed, and the pipeline would write one batch at a time).
pub async fn run(ctx: Ctx, mut queue: Queue, shutdown: CancellationToken) {
    let mut carry: VecDeque<Submitted> = VecDeque::new();
    let mut busy: HashSet<Uuid> = HashSet::new();
    let mut writing = futures_util::stream::FuturesUnordered::new();
    let (mut stopping, mut closed) = (false, false);
    loop {
        if writing.len() >= IN_FLIGHT {
            if let Some(done) = writing.next().await {
                release(&mut busy, done);
            }
            continue;
        }
        let batch = form(&mut carry, &mut queue, &busy, closed);
        if batch.is_empty() {
            if closed && writing.is_empty() {
                // nothing is written and nothing can come: what waits is empty too (a batch
                // is formed from it whenever no user of it is being written)
                break;
            }
            // wait for a check-in, or for a batch to finish (its users may go again)
            tokio::select! {
                j = queue.0.recv(), if !closed => match j {
                    Some(j) => carry.push_back(j),
                    None => closed = true,
                },
                Some(done) = writing.next(), if !writing.is_empty() => release(&mut busy, done),
                () = shutdown.cancelled(), if !stopping => stopping = true,
                // after shutdown, the queue is read until it stays idle
                () = tokio::time::sleep(DRAIN_IDLE), if stopping && !closed => closed = true,
            }
            continue;
        }
        let users: Vec<Uuid> = batch.iter().map(|j| j.user).collect();
        busy.extend(users.iter().copied());
        let ctx = &ctx;
        writing.push(async move {
            write_batch(ctx, batch).await;
            users
        });
    }
}

/// The users of a batch that was written may go in the next.
fn release(busy: &mut HashSet<Uuid>, done: Vec<Uuid>) {
    for u in done {
        busy.remove(&u);
    }
}

/// The next batch: what waits (in order), then what is queued (unless `closed`), one check-in
/// per user and none of a user in `busy`; what it cannot take waits in `carry`, in order. The
/// queue is read no further once the batch is full or [`MAX_BATCH`] check-ins wait (the
/// queue's bound stays the one that refuses check-ins when the server is saturated).
fn form(carry: &mut VecDeque<Submitted>, queue: &mut Queue, busy: &HashSet<Uuid>, closed: bool) -> Vec<Submitted> {
    let mut users = HashSet::new();
    let mut batch = vec![];
    let mut waits = VecDeque::new();
    let mut place = |job: Submitted, batch: &mut Vec<Submitted>, waits: &mut VecDeque<Submitted>| {
        if batch.len() < MAX_BATCH && !busy.contains(&job.user) && users.insert(job.user) {
            batch.push(job);
        } else {
            waits.push_back(job);
        }
    };
    while let Some(job) = carry.pop_front() {
        place(job, &mut batch, &mut waits);
    }
    while !closed && batch.len() < MAX_BATCH && waits.len() < MAX_BATCH {
        match queue.0.try_recv() {
            Ok(job) => place(job, &mut batch, &mut waits),
            Err(_) => break,
        }
    }
    *carry = waits;
    batch
}

/// The same failure, for each caller of a batch.
fn shared(e: &ServiceError) -> ServiceError {
    match e {
        ServiceError::Unavailable(c) => ServiceError::Unavailable(c.clone()),
        ServiceError::RateLimited { retry_after_s } => ServiceError::RateLimited {
            retry_after_s: *retry_after_s,
        },
        other => ServiceError::Internal(anyhow::anyhow!("check-in batch: {other}")),
    }
}

/// What one check-in of a batch comes to.
enum Decision {
    Refused(ServiceError),
    Ignored(Checkin),
    Write(Box<Write>),
}

/// A check-in to write: the new row, the one it replaces, the settings it was published with.
struct Write {
    row: LiveRow,
    previous: Option<LiveRow>,
    privacy: PrivacyRecord,
}

/// Decides one check-in against the user's locked rows: sharing, policy, time window, an older
/// `recorded_at`, and what is published (precision, policy, zones).
fn decide(
    ctx: &Ctx,
    job: &Submitted,
    privacy: Option<&PrivacyRecord>,
    previous: Option<&LiveRow>,
    t: OffsetDateTime,
) -> Decision {
    let controls = ctx.controls.get();
    let Some(privacy) = privacy else {
        return Decision::Refused(ServiceError::unauthorized());
    };
    if privacy.suspended {
        return Decision::Refused(ServiceError::suspended());
    }
    if !controls.policy.location_sharing_enabled {
        return Decision::Refused(ServiceError::refused(
            Code::SharingDisabled,
            "location sharing is disabled by the operator",
        ));
    }
    if !privacy.is_sharing(t) {
        return Decision::Refused(ServiceError::refused(
            Code::SharingDisabled,
            "location sharing is off or paused for this account",
        ));
    }
    let input = &job.input;
    let max_ttl = i64::from(controls.policy.max_ttl_s);
    let ttl = input.ttl_s.unwrap_or(i64::from(privacy.default_ttl_s)).min(max_ttl);
    let recorded_at = input.recorded_at.unwrap_or(t);
    if recorded_at > t + MAX_FUTURE {
        return Decision::Refused(ServiceError::field(
            "recorded_at",
            "must not be more than 5 minutes in the future",
        ));
    }
    if recorded_at < t - Duration::seconds(ttl) {
        return Decision::Refused(ServiceError::field(
            "recorded_at",
            "is older than the check-in's lifetime (ttl_s)",
        ));
    }
    if let Some(prev) = previous
        && prev.expires_at > t
        && prev.recorded_at > recorded_at
    {
        return Decision::Ignored(Checkin::from(prev));
    }
    let mut row = LiveRow {
        user_id: job.user,
        checkin_id: Uuid::now_v7(),
        lat: job.raw.lat(),
        lng: job.raw.lng(),
        accuracy_m: input.accuracy_m,
        pub_lat: 0.0,
        pub_lng: 0.0,
        precision: Precision::Exact,
        h3_cell: String::new(),
        indexed: false,
        reason: None,
        recorded_at,
        expires_at: (recorded_at + Duration::seconds(ttl)).min(t + Duration::seconds(max_ttl)),
        client_id: input.client_id.clone(),
    };
    publish_row(&mut row, privacy, &controls);
    Decision::Write(Box::new(Write {
        row,
        previous: previous.cloned(),
        privacy: privacy.clone(),
    }))
}

/// Writes one batch and answers each of its callers.
async fn write_batch(ctx: &Ctx, jobs: Vec<Submitted>) {
    // rate limits, one round trip
    let buckets: Vec<String> = jobs.iter().map(|j| format!("checkin:{}", j.user)).collect();
    let writes = ctx.redis.lane(Lane::Writes);
    let limits = match ratelimit::hit_many(&writes, &buckets, ctx.settings.rate_checkins_per_user_per_min, 60).await {
        Ok(l) => l,
        Err(e) => return fail_all(jobs, &ServiceError::from(e)),
    };
    let mut pending = vec![];
    for (job, limit) in jobs.into_iter().zip(limits) {
        match limit {
            Ok(()) => pending.push(job),
            Err(retry_after_s) => {
                let _ = job.reply.send(Err(ServiceError::RateLimited { retry_after_s }));
            }
        }
    }
    // idempotency keys, one query: a repeated client id answers the first answer
    let keys: Vec<(Uuid, String)> = pending
        .iter()
        .filter_map(|j| j.input.client_id.clone().map(|c| (j.user, c)))
        .collect();
    let replays: HashMap<(Uuid, String), serde_json::Value> = match live::idempotent_responses(&ctx.db, &keys).await {
        Ok(r) => r.into_iter().map(|(u, c, v)| ((u, c), v)).collect(),
        Err(e) => return fail_all(pending, &ServiceError::from(e)),
    };
    let mut fresh = vec![];
    for job in pending {
        let key = job.input.client_id.clone().map(|c| (job.user, c));
        match key.and_then(|k| replays.get(&k)) {
            Some(first) => replay(ctx, job, first.clone()).await,
            None => fresh.push(job),
        }
    }
    if fresh.is_empty() {
        return;
    }
    match write_fresh(ctx, &fresh).await {
        Ok(decisions) => {
            for (job, outcome) in fresh.into_iter().zip(decisions) {
                if let Ok(Outcome::Created(_)) = &outcome {
                    tracing::debug!(user_id = %job.user, "check-in accepted");
                }
                let _ = job.reply.send(outcome);
            }
        }
        Err(e) => fail_all(fresh, &e),
    }
}

/// A retry of an earlier check-in: the first answer, and the index made right again (a retry may
/// follow a failure between the commit and the index).
async fn replay(ctx: &Ctx, job: Submitted, first: serde_json::Value) {
    let answer = match serde_json::from_value::<Checkin>(first) {
        // the same key with another position is another request, not a retry
        Ok(first) if !same_request(&first, &job) => Err(ServiceError::refused(
            Code::IdempotencyConflict,
            "this client_id was used for another check-in",
        )),
        Ok(first) => match sync_user(ctx, job.user).await {
            Ok(()) => Ok(Outcome::Replayed(first)),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(ServiceError::internal(e)),
    };
    let _ = job.reply.send(answer);
}

/// Whether a check-in repeats the one that was first answered under its client id: the same
/// point and accuracy, and the same `recorded_at` when it gives one.
fn same_request(first: &Checkin, job: &Submitted) -> bool {
    first.lat == job.raw.lat()
        && first.lng == job.raw.lng()
        && first.accuracy_m == job.input.accuracy_m
        && job.input.recorded_at.is_none_or(|t| t == first.recorded_at)
}

fn fail_all(jobs: Vec<Submitted>, e: &ServiceError) {
    for job in jobs {
        let _ = job.reply.send(Err(shared(e)));
    }
}

/// The transaction of a batch: locks, decisions, one upsert, the index, one commit. Answers in
/// the order of `jobs`.
async fn write_fresh(ctx: &Ctx, jobs: &[Submitted]) -> ServiceResult<Vec<ServiceResult<Outcome>>> {
    let mut ids: Vec<Uuid> = jobs.iter().map(|j| j.user).collect();
    ids.sort();
    let mut tx = ctx.db.begin().await.map_err(StoreError::from)?;
    let privacies: HashMap<Uuid, PrivacyRecord> = privacy::get_many_for_update(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|p| (p.user_id, p))
        .collect();
    let previous: HashMap<Uuid, LiveRow> = live::get_many_for_update(&mut tx, &ids)
        .await?
        .into_iter()
        .map(|r| (r.user_id, r))
        .collect();
    let t = OffsetDateTime::now_utc();
    let decisions: Vec<Decision> = jobs
        .iter()
        .map(|j| decide(ctx, j, privacies.get(&j.user), previous.get(&j.user), t))
        .collect();
    // users erased while their check-ins queued: the batch counted them in a rate-limit bucket
    let erased: Vec<Uuid> = ids.iter().filter(|u| !privacies.contains_key(u)).copied().collect();

    let mut rows = vec![];
    let mut remembered = vec![];
    let (mut publish, mut unpublish, mut moves): (Vec<(Uuid, LiveRecord)>, Vec<_>, Vec<_>) = (vec![], vec![], vec![]);
    for d in &decisions {
        let Decision::Write(w) = d else {
            continue;
        };
        let Write { row, previous, privacy } = w.as_ref();
        let old = previous.as_ref().filter(|p| p.indexed).map(published_of);
        if row.indexed {
            publish.push((row.user_id, record_for(row, privacy)));
            if let Some(o) = old.filter(|o| *o != published_of(row)) {
                moves.push((row.user_id, o, published_of(row)));
            }
        } else {
            unpublish.push((row.user_id, old));
        }
        if let Some(cid) = &row.client_id {
            let answer = serde_json::to_value(Checkin::from(row)).map_err(ServiceError::internal)?;
            remembered.push((row.user_id, cid.clone(), answer, row.expires_at));
        }
        rows.push(row.clone());
    }
    live::upsert_many(&mut tx, &rows).await?;
    live::remember_responses(&mut tx, &remembered).await?;
    // the index while the rows are locked: new memberships and records first, old ones last
    index::apply(&ctx.redis.lane(Lane::Writes), &unpublish, &publish, &moves).await?;
    if let Err(e) = tx.commit().await {
        undo(ctx, &decisions).await;
        return Err(StoreError::from(e).into());
    }
    for user in erased {
        if let Err(e) = ratelimit::forget_user(&ctx.redis, user).await {
            tracing::warn!(error = %e, "cannot forget the rate-limit buckets of an erased user; they expire within a minute");
        }
    }
    for (user, _) in &unpublish {
        // checked in where nothing is indexed: the radars that showed the user, or are the
        // user's, look again
        ctx.checkins.changed(*user, None);
    }
    for (user, record) in publish {
        // arrival notifications: decided after these answers, off the request path
        if !ctx.checkins.announce(user, record) {
            ctx.metrics.detect_dropped.inc();
        }
    }
    Ok(decisions
        .into_iter()
        .map(|d| match d {
            Decision::Refused(e) => Err(e),
            Decision::Ignored(c) => Ok(Outcome::Ignored(c)),
            Decision::Write(w) => Ok(Outcome::Created(Checkin::from(&w.row))),
        })
        .collect())
}

/// After a batch that was not committed: puts its users back in the index as PostgreSQL still
/// has them (their previous rows, or nowhere) and out of the cells of the refused points, so that
/// a refused check-in is never published. Best effort: a failure is logged.
async fn undo(ctx: &Ctx, decisions: &[Decision]) {
    let t = OffsetDateTime::now_utc();
    let (mut back, mut out, mut refused) = (vec![], vec![], vec![]);
    for d in decisions {
        let Decision::Write(w) = d else {
            continue;
        };
        let Write { row, previous, privacy } = w.as_ref();
        let refused_at = row.indexed.then(|| published_of(row));
        match previous.as_ref().filter(|p| p.indexed && p.expires_at > t) {
            Some(prev) => {
                back.push((row.user_id, record_for(prev, privacy)));
                if let Some(r) = refused_at.filter(|r| *r != published_of(prev)) {
                    refused.push((row.user_id, r, published_of(prev)));
                }
            }
            None => out.push((row.user_id, refused_at)),
        }
    }
    let undone = async {
        index::put_many(&ctx.redis, &back).await?;
        index::drop_stale_cells(&ctx.redis, &refused).await?;
        index::remove_many(&ctx.redis, &out).await
    }
    .await;
    if let Err(e) = undone {
        tracing::warn!(error = %e, "cannot take check-ins that were not committed out of the index");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(user: Uuid, n: f64) -> Submitted {
        let (reply, _) = oneshot::channel();
        let input = CheckinInput {
            lat: n,
            lng: 0.0,
            accuracy_m: None,
            recorded_at: None,
            ttl_s: None,
            client_id: None,
        };
        Submitted {
            user,
            raw: Coord::new(n, 0.0).expect("a point"),
            input,
            reply,
        }
    }

    fn seen(jobs: &[Submitted]) -> Vec<(Uuid, f64)> {
        jobs.iter().map(|j| (j.user, j.input.lat)).collect()
    }

    #[test]
    fn a_batch_takes_no_user_being_written_and_keeps_each_users_order() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let (Ingest(Some(tx)), mut queue) = Ingest::channel() else {
            panic!("a pipeline")
        };
        for (u, n) in [(a, 1.0), (b, 2.0), (a, 3.0), (c, 4.0), (b, 5.0)] {
            assert!(tx.try_send(job(u, n)).is_ok());
        }
        let mut carry = VecDeque::new();
        // b's earlier check-in is being written: b's wait; a's second waits for the next batch
        let busy = HashSet::from([b]);
        let first = form(&mut carry, &mut queue, &busy, false);
        assert_eq!(seen(&first), vec![(a, 1.0), (c, 4.0)]);
        assert_eq!(seen(carry.make_contiguous()), vec![(b, 2.0), (a, 3.0), (b, 5.0)]);
        // a is now written by the first batch, b is free: b's first goes, a's and b's next wait
        let busy = HashSet::from([a, c]);
        let second = form(&mut carry, &mut queue, &busy, false);
        assert_eq!(seen(&second), vec![(b, 2.0)]);
        assert_eq!(seen(carry.make_contiguous()), vec![(a, 3.0), (b, 5.0)]);
        let third = form(&mut carry, &mut queue, &HashSet::new(), true);
        assert_eq!(seen(&third), vec![(a, 3.0), (b, 5.0)]);
        assert!(carry.is_empty());
    }

    #[test]
    fn a_batch_is_bounded_and_the_queue_is_not_drained_into_the_waiting_ones() {
        let (Ingest(Some(tx)), mut queue) = Ingest::channel() else {
            panic!("a pipeline")
        };
        let hot = Uuid::from_u128(9);
        for i in 0..(3 * MAX_BATCH) {
            assert!(tx.try_send(job(hot, (i % 80) as f64)).is_ok());
        }
        let mut carry = VecDeque::new();
        let batch = form(&mut carry, &mut queue, &HashSet::new(), false);
        assert_eq!(batch.len(), 1, "one check-in per user");
        assert_eq!(carry.len(), MAX_BATCH, "the rest stays queued, where its bound applies");
        assert_eq!(queue.0.len(), 2 * MAX_BATCH - 1);
    }
}
