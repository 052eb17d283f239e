//! The live radar: a stream of what the caller's nearby list would answer, as it changes. A
//! published change that may affect a stream — a check-in inside its circle, a user it shows who
//! moved, left or changed what others see, a block, a connection or a share of its owner —
//! heard through Redis pub/sub ([`super::radar`]), so a change on one instance reaches streams
//! held by another, makes it read the users the messages named, exactly as `/v1/nearby` would
//! list them ([`super::nearby::listed_among`]); its owner's own change makes it read its whole
//! answer again (the same planner as `/v1/nearby`, without its rate limit). Then it sends only
//! the differences: `enter`, `move` (distance or cell changed), `leave`. It also reads its whole
//! answer when a user it shows expires and at a slow safety pace ([`SAFETY`]: what is not
//! announced, such as a zone, and messages lost while Redis was away). A stream ends, with its
//! reason, when the caller stops sharing (no live check-in), the operator disables sharing, or
//! the caller's session ends (checked every [`TICK`], without I/O). Open streams are counted per
//! user across instances ([`crate::store::streams`]).

use super::nearby::{listed_among, unmetered};
use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::nearby::Hit;
use crate::store::streams;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// How often a stream without a radar hub (a context without its listener) re-reads the index.
pub const PACE: Duration = Duration::from_millis(700);
/// How often a stream re-reads the index without being woken (what is not announced).
pub const SAFETY: Duration = Duration::from_secs(10);
/// How often a stream checks, without I/O, whether it must end.
pub const TICK: Duration = Duration::from_millis(500);
/// After a wake-up, how long a stream waits for more before it reads (a burst costs one read).
const COALESCE: Duration = Duration::from_millis(250);
/// A stream's slot lasts this long unless renewed (a crashed instance's streams stop counting).
const LEASE: Duration = Duration::from_secs(30);
/// Items a stream follows, as nearby's largest page.
const LIMIT: usize = 500;

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    NotSharing,
    KillSwitch,
    SessionEnded,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::NotSharing => "not_sharing",
            EndReason::KillSwitch => "kill_switch",
            EndReason::SessionEnded => "session_ended",
        }
    }
}

/// What a stream sends, each with its id (an item boxed: the channel's slots stay a few words).
#[derive(Debug)]
pub enum Event {
    Snapshot(Vec<Hit>),
    Enter(Box<Hit>),
    Move(Box<Hit>),
    Leave(Uuid),
    End(EndReason),
}

/// What a stream remembers of an item it shows (a few bytes, not the item): what the caller
/// sees of it — a change of it is a `move` — and when it expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    distance_m: u64,
    range: (u64, u64),
    /// The published cell, as its 64-bit index.
    cell: u64,
    expires_at_ms: i64,
}

impl Shown {
    pub fn of(h: &Hit) -> Self {
        Self {
            distance_m: h.distance_m,
            range: h.distance_range_m,
            cell: u64::from_str_radix(&h.record.cell, 16).unwrap_or(0),
            expires_at_ms: h.record.expires_at_ms,
        }
    }

    fn same_view(&self, other: &Self) -> bool {
        (self.distance_m, self.range, self.cell) == (other.distance_m, other.range, other.cell)
    }
}

/// What a stream shows, by user.
pub fn remember(hits: &[Hit]) -> HashMap<Uuid, Shown> {
    hits.iter().map(|h| (h.user_id, Shown::of(h))).collect()
}

/// The events that turn `before` into `now` (leaves first, then enters and moves by distance).
pub fn diff(before: &HashMap<Uuid, Shown>, now: &[Hit]) -> Vec<Event> {
    let mut out: Vec<Event> = before
        .keys()
        .filter(|id| !now.iter().any(|h| h.user_id == **id))
        .map(|id| Event::Leave(*id))
        .collect();
    for h in now {
        match before.get(&h.user_id) {
            None => out.push(Event::Enter(Box::new(h.clone()))),
            Some(old) if !old.same_view(&Shown::of(h)) => out.push(Event::Move(Box::new(h.clone()))),
            Some(_) => {}
        }
    }
    out
}

/// The events that bring `before` up to date for the `named` users alone, `now` being those of
/// them listed now (sorted as nearby sorts them): leaves first, then enters and moves by
/// distance. `None` when more than `limit` would be shown: only the whole answer tells which
/// are kept.
pub fn changes(before: &HashMap<Uuid, Shown>, named: &[Uuid], now: Vec<Hit>, limit: usize) -> Option<Vec<Event>> {
    let mut out: Vec<Event> = named
        .iter()
        .filter(|id| before.contains_key(id) && !now.iter().any(|h| h.user_id == **id))
        .map(|id| Event::Leave(*id))
        .collect();
    let entering = now.iter().filter(|h| !before.contains_key(&h.user_id)).count();
    if before.len() - out.len() + entering > limit {
        return None;
    }
    for h in now {
        match before.get(&h.user_id) {
            None => out.push(Event::Enter(Box::new(h))),
            Some(old) if !old.same_view(&Shown::of(&h)) => out.push(Event::Move(Box::new(h))),
            Some(_) => {}
        }
    }
    Some(out)
}

/// `known` after `events`; whether the users shown changed (not only where they are).
fn apply(known: &mut HashMap<Uuid, Shown>, events: &[Event]) -> bool {
    let mut who = false;
    for e in events {
        match e {
            Event::Leave(id) => who |= known.remove(id).is_some(),
            Event::Enter(h) | Event::Move(h) => who |= known.insert(h.user_id, Shown::of(h)).is_none(),
            Event::Snapshot(_) | Event::End(_) => {}
        }
    }
    who
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Why the stream must end now, if it must.
fn ended(ctx: &Ctx, user: Uuid, session: Option<Uuid>) -> Option<EndReason> {
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Some(EndReason::KillSwitch);
    }
    let session_over = session.is_some_and(|s| ctx.sessions.is_ended(s)) || ctx.sessions.is_suspended(user);
    session_over.then_some(EndReason::SessionEnded)
}

/// Opens a stream for `user` (of `session`) over `radius_m`: 409 `no_active_checkin` without a
/// live check-in, 429 past the streams a user may hold. Events are numbered from `after + 1`
/// (a reconnect's `Last-Event-ID`), and the first is always a snapshot.
pub async fn open(
    ctx: &Ctx,
    user: Uuid,
    session: Option<Uuid>,
    radius_m: f64,
    after: u64,
) -> ServiceResult<mpsc::Receiver<(u64, Event)>> {
    let no_checkin = || {
        ServiceError::refused(
            Code::NoActiveCheckin,
            "check in first: the radar follows your live check-in",
        )
    };
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Err(no_checkin());
    }
    let first = unmetered(ctx, user, radius_m, LIMIT).await?;
    let id = Uuid::new_v4();
    let t = now_ms();
    let lease = LEASE.as_millis() as i64;
    if !streams::claim(&ctx.redis, user, id, t, t + lease, ctx.settings.max_streams_per_user).await? {
        return Err(ServiceError::RateLimited {
            retry_after_s: LEASE.as_secs(),
        });
    }
    let (tx, rx) = mpsc::channel(64);
    let ctx = ctx.clone();
    tokio::spawn(async move {
        follow(&ctx, user, session, radius_m, after, first.hits, tx, id).await;
        if let Err(e) = streams::release(&ctx.redis, user, id).await {
            tracing::debug!(error = %e, "stream slot not released; its lease ends it");
        }
    });
    Ok(rx)
}

/// The caller's own point (the centre of the circle) and when their check-in expires.
async fn own(ctx: &Ctx, user: Uuid) -> Option<(crate::domain::geo::Coord, i64)> {
    match crate::store::index::record(&ctx.redis, user).await {
        Ok(Some(r)) => Some((r.centre(), r.expires_at_ms)),
        _ => None,
    }
}

/// Sends the snapshot, then the differences whenever the hub wakes the stream (or at the
/// safety pace, or when a user shown expires), until the caller goes or the stream must end.
/// A wake that names users reads only them ([`listed_among`]); the whole answer is read again
/// when only it can tell (see [`super::radar::Woken`]), at the safety pace, when a user shown
/// (or the caller) expires, and when the stream shows as many as it may.
#[allow(clippy::too_many_arguments)]
async fn follow(
    ctx: &Ctx,
    user: Uuid,
    session: Option<Uuid>,
    radius_m: f64,
    mut id: u64,
    first: Vec<Hit>,
    tx: mpsc::Sender<(u64, Event)>,
    slot: Uuid,
) {
    let registration = ctx.radar.as_ref().map(|hub| hub.register(user));
    let mut centre = Box::pin(own(ctx, user)).await;
    let mut known = remember(&first);
    if let Some(r) = &registration {
        r.follow(centre.map(|c| c.0), radius_m, known.keys().copied());
    }
    id += 1;
    if tx.send((id, Event::Snapshot(first))).await.is_err() {
        return;
    }
    let safety = if registration.is_some() { SAFETY } else { PACE };
    let mut tick = tokio::time::interval(TICK.min(safety));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed = std::time::Instant::now();
    let mut read_at = std::time::Instant::now();
    // a store that does not answer: a full read at the next tick
    let retry_soon = || {
        let now = std::time::Instant::now();
        now.checked_sub(safety.saturating_sub(TICK)).unwrap_or(now)
    };
    loop {
        let woken = async {
            match &registration {
                Some(r) => r.wake.notified().await,
                None => std::future::pending().await,
            }
        };
        let woke = tokio::select! {
            () = tx.closed() => return,
            () = woken => true,
            _ = tick.tick() => false,
        };
        if woke {
            // a burst of changes costs one read
            tokio::time::sleep(COALESCE).await;
        }
        let named = registration.as_ref().map(|r| r.take()).unwrap_or_default();
        // the earliest expiry among what is shown, the caller's own included
        let expiry = known
            .values()
            .map(|h| h.expires_at_ms)
            .chain(centre.map(|c| c.1))
            .min()
            .unwrap_or(i64::MAX);
        let mut full = named.full
            || read_at.elapsed() >= safety
            || expiry <= now_ms()
            || (!named.users.is_empty() && (centre.is_none() || known.len() >= LIMIT));
        let mut end = ended(ctx, user, session);
        if end.is_none()
            && !full
            && !named.users.is_empty()
            && let Some((c, _)) = centre
        {
            ctx.metrics.radar_partial_reads.inc();
            match Box::pin(listed_among(ctx, user, c, radius_m, &named.users)).await {
                Ok(Some(now)) => match changes(&known, &named.users, now, LIMIT) {
                    Some(events) => {
                        let who = apply(&mut known, &events);
                        for event in events {
                            id += 1;
                            if tx.send((id, event)).await.is_err() {
                                return;
                            }
                        }
                        if who && let Some(r) = &registration {
                            r.follow(Some(c), radius_m, known.keys().copied());
                        }
                    }
                    None => full = true,
                },
                Ok(None) => full = true,
                Err(_) => read_at = retry_soon(),
            }
        }
        if end.is_none() && full {
            read_at = std::time::Instant::now();
            ctx.metrics.radar_reads.inc();
            let (answer, me) =
                Box::pin(async { futures_util::join!(unmetered(ctx, user, radius_m, LIMIT), own(ctx, user)) }).await;
            match answer {
                Ok(answer) => {
                    for event in diff(&known, &answer.hits) {
                        id += 1;
                        if tx.send((id, event)).await.is_err() {
                            return;
                        }
                    }
                    known = remember(&answer.hits);
                    if me.is_some() {
                        centre = me;
                    }
                    if let Some(r) = &registration {
                        r.follow(centre.map(|c| c.0), radius_m, known.keys().copied());
                    }
                }
                Err(ServiceError::Refused {
                    code: Code::NoActiveCheckin | Code::NotIndexed,
                    ..
                }) => end = Some(EndReason::NotSharing),
                Err(_) => read_at = retry_soon(),
            }
        }
        if let Some(reason) = end {
            let _ = tx.send((id + 1, Event::End(reason))).await;
            return;
        }
        if renewed.elapsed() > LEASE / 3 {
            let t = now_ms();
            let max = ctx.settings.max_streams_per_user.saturating_add(1);
            // boxed, as the reads: what a stream's task holds between wake-ups stays small
            if Box::pin(streams::claim(
                &ctx.redis,
                user,
                slot,
                t,
                t + LEASE.as_millis() as i64,
                max,
            ))
            .await
            .is_ok()
            {
                renewed = std::time::Instant::now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::nearby::LiveRecord;
    use crate::domain::policy::Precision;

    fn hit(id: Uuid, d: u64, cell: &str) -> Hit {
        let record = LiveRecord {
            checkin_id: Uuid::nil(),
            lat: 0.0,
            lng: 0.0,
            precision: Precision::Exact,
            cell: cell.into(),
            recorded_at: 0,
            expires_at_ms: 0,
            display_name: "x".into(),
            hidden_from: vec![],
            own: (0.0, 0.0),
            profile: Default::default(),
        };
        Hit::for_tests(id, d, record)
    }

    #[test]
    fn differences_are_leaves_enters_and_moves() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let before = remember(&[hit(a, 100, "8928308280fffff"), hit(b, 200, "8928308281fffff")]);
        let now = vec![hit(b, 210, "8928308281fffff"), hit(c, 300, "8928308283fffff")];
        let events = diff(&before, &now);
        assert!(matches!(events[0], Event::Leave(id) if id == a));
        assert!(matches!(&events[1], Event::Move(h) if h.user_id == b));
        assert!(matches!(&events[2], Event::Enter(h) if h.user_id == c));
        assert_eq!(events.len(), 3);
        // nothing changed, nothing sent
        assert!(diff(&remember(&now), &now).is_empty());
    }

    /// A tokio channel allocates its slots 32 at a time, at its first message: with items
    /// inline each block of a stream's channel took 32 × (8 + an item) bytes.
    #[test]
    fn an_event_is_a_few_words() {
        let slot = std::mem::size_of::<(u64, Event)>();
        println!("event slot {slot} B, an item {} B", std::mem::size_of::<Hit>());
        assert!(slot <= 40, "{slot} B");
    }

    #[test]
    fn the_named_users_alone_change_and_past_the_limit_only_a_full_read_tells() {
        let (a, b, c, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut known = remember(&[hit(a, 100, "8928308280fffff"), hit(b, 200, "8928308281fffff")]);
        // a and c were named: a is no longer listed, c is; b was not named and stays
        let events = changes(&known, &[a, c], vec![hit(c, 300, "8928308283fffff")], LIMIT).expect("within");
        assert!(matches!(events[0], Event::Leave(id) if id == a));
        assert!(matches!(&events[1], Event::Enter(h) if h.user_id == c));
        assert_eq!(events.len(), 2);
        assert!(apply(&mut known, &events), "who is shown changed");
        assert_eq!(known.len(), 2);
        assert!(known.contains_key(&b) && known.contains_key(&c));
        // b moves: where, not who
        let events = changes(&known, &[b], vec![hit(b, 250, "8928308281fffff")], LIMIT).expect("within");
        assert!(matches!(&events[0], Event::Move(h) if h.user_id == b));
        assert!(!apply(&mut known, &events));
        // named but unchanged: nothing
        assert!(
            changes(&known, &[b], vec![hit(b, 250, "8928308281fffff")], LIMIT)
                .expect("within")
                .is_empty()
        );
        // one more than the limit: only the whole answer tells which are kept
        assert!(changes(&known, &[d], vec![hit(d, 10, "8928308283fffff")], 2).is_none());
        assert!(changes(&known, &[c, d], vec![hit(d, 10, "8928308283fffff")], 2).is_some());
    }
}
