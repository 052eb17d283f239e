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
//!
//! A stream ([`Radar`]) is polled by the response body that sends it: no task and no channel
//! of its own. Its state waits between wake-ups (the hub wakes the body's waker), its one timer
//! serves its ticks, its wait for more after a wake-up and its keep-alives, and a look that
//! needs I/O is a boxed future that lives as long as the look. The body's drop (the client
//! went) is the stream's end: it leaves the hub and gives its slot back.

use super::nearby::{Among, listed_among, unmetered};
use super::radar::{Registration, Woken};
use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::geo::Coord;
use crate::domain::nearby::Hit;
use crate::store::streams;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
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
/// When a read finds that the caller moved, how long the stream waits for the news of it (which
/// makes it read its whole answer) before it reads anyway.
const MOVED_WAIT: Duration = Duration::from_secs(1);
/// Items a stream follows, as nearby's largest page.
const LIMIT: usize = 500;
/// How often a stream sends a sign of life (a comment), whatever else it sent.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

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

/// What a stream shows, by user: sorted by user, as long as what it shows (a hash map's table
/// grows by doubling, and is most of a small stream's state).
#[derive(Debug, Default)]
pub struct Known(Vec<(Uuid, Shown)>);

impl Known {
    fn find(&self, id: &Uuid) -> Result<usize, usize> {
        self.0.binary_search_by(|(u, _)| u.cmp(id))
    }

    pub fn get(&self, id: &Uuid) -> Option<&Shown> {
        self.find(id).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, id: &Uuid) -> bool {
        self.find(id).is_ok()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The item it replaced, if any.
    pub fn insert(&mut self, id: Uuid, shown: Shown) -> Option<Shown> {
        match self.find(&id) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, shown)),
            Err(i) => {
                self.0.insert(i, (id, shown));
                None
            }
        }
    }

    pub fn remove(&mut self, id: &Uuid) -> Option<Shown> {
        self.find(id).ok().map(|i| self.0.remove(i).1)
    }

    pub fn keys(&self) -> impl Iterator<Item = &Uuid> {
        self.0.iter().map(|(u, _)| u)
    }

    pub fn values(&self) -> impl Iterator<Item = &Shown> {
        self.0.iter().map(|(_, s)| s)
    }
}

/// What a stream shows, by user.
pub fn remember(hits: &[Hit]) -> Known {
    let mut shown: Vec<(Uuid, Shown)> = hits.iter().map(|h| (h.user_id, Shown::of(h))).collect();
    shown.sort_unstable_by_key(|(u, _)| *u);
    shown.dedup_by_key(|(u, _)| *u);
    Known(shown)
}

/// The events that turn `before` into `now` (leaves first, then enters and moves by distance).
pub fn diff(before: &Known, now: &[Hit]) -> Vec<Event> {
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
pub fn changes(before: &Known, named: &[Uuid], now: Vec<Hit>, limit: usize) -> Option<Vec<Event>> {
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
fn apply(known: &mut Known, events: &[Event]) -> bool {
    let mut who = false;
    for e in events {
        match e {
            Event::Leave(id) => who |= known.remove(id).is_some(),
            Event::Enter(h) | Event::Move(h) => who |= known.insert(h.user_id, Shown::of(h)).is_none(),
            Event::Snapshot(_) | Event::End(_) => {}
        }
    }
    known.0.shrink_to_fit();
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

/// What a stream yields: an event with its id, or a sign of life every [`KEEP_ALIVE`] (a
/// client gone is noticed when it is written).
#[derive(Debug)]
pub enum Item {
    Event(u64, Event),
    KeepAlive,
}

/// An open stream, driven by whoever polls it (the response body): no task and no channel of
/// its own. Between wake-ups it holds its core (boxed), one timer and an empty queue; a
/// look that needs I/O runs as a boxed future for its duration only. Dropping it (the client
/// went, or the stream ended) leaves the hub and gives its slot back.
pub struct Radar {
    /// `None` while a look holds it.
    core: Option<Box<Core>>,
    /// The look in flight: the reads (and the lease renewal) of one wake-up or tick.
    looking: Option<Pin<Box<dyn Future<Output = Looked>>>>,
    /// Events made, not yet yielded.
    out: VecDeque<(u64, Event)>,
    /// The one timer: the next tick, the end of a wait for more, or the next keep-alive.
    timer: Pin<Box<Sleep>>,
    next_tick: Instant,
    keep_alive_at: Instant,
    /// Woken: when to look (a burst of changes costs one read).
    coalesce_until: Option<Instant>,
    /// The end was made: nothing follows what is queued.
    over: bool,
}

/// What a stream knows between looks.
struct Core {
    ctx: Arc<Ctx>,
    user: Uuid,
    session: Option<Uuid>,
    /// Its slot among the user's streams.
    slot: Uuid,
    radius_m: f64,
    /// The id of the last event made.
    id: u64,
    known: Known,
    /// The caller's own point (the centre of the circle) and when their check-in expires.
    centre: Option<(Coord, i64)>,
    registration: Option<Registration>,
    renewed: Instant,
    read_at: Instant,
    /// Set when a read of named users found the caller moved: the whole answer is read when
    /// the caller's own change is heard, or at this time if it is not.
    moved_until: Option<Instant>,
}

/// A look done: the core back, the events it made, whether the stream ends.
struct Looked {
    core: Box<Core>,
    events: Vec<(u64, Event)>,
    over: bool,
}

impl Drop for Core {
    /// The stream is gone (its end sent, or its client gone): its slot is given back, in a
    /// task of its own (a drop cannot wait); without a runtime the lease ends it.
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (redis, user, slot) = (self.ctx.redis.clone(), self.user, self.slot);
        rt.spawn(async move {
            if let Err(e) = streams::release(&redis, user, slot).await {
                tracing::debug!(error = %e, "stream slot not released; its lease ends it");
            }
        });
    }
}

impl Core {
    /// How often it reads its whole answer without being woken.
    fn safety(&self) -> Duration {
        if self.registration.is_some() { SAFETY } else { PACE }
    }

    /// When a store did not answer: a full read at the next tick.
    fn retry_soon(&self) -> Instant {
        let now = Instant::now();
        now.checked_sub(self.safety().saturating_sub(TICK)).unwrap_or(now)
    }

    /// Numbers `events` after the last one made.
    fn number(&mut self, out: &mut Vec<(u64, Event)>, events: Vec<Event>) {
        for e in events {
            self.id += 1;
            out.push((self.id, e));
        }
    }

    fn follow(&self) {
        if let Some(r) = &self.registration {
            r.follow(self.centre.map(|c| c.0), self.radius_m, self.known.keys().copied());
        }
    }
}

/// Opens a stream for `user` (of `session`) over `radius_m`: 409 `no_active_checkin` without a
/// live check-in, 429 past the streams a user may hold. Events are numbered from `after + 1`
/// (a reconnect's `Last-Event-ID`), and the first is always a snapshot.
pub async fn open(ctx: Arc<Ctx>, user: Uuid, session: Option<Uuid>, radius_m: f64, after: u64) -> ServiceResult<Radar> {
    let no_checkin = || {
        ServiceError::refused(
            Code::NoActiveCheckin,
            "check in first: the radar follows your live check-in",
        )
    };
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Err(no_checkin());
    }
    let centre = own(&ctx, user).await;
    let slot = Uuid::new_v4();
    let t = now_ms();
    let lease = LEASE.as_millis() as i64;
    if !streams::claim(&ctx.redis, user, slot, t, t + lease, ctx.settings.max_streams_per_user).await? {
        return Err(ServiceError::RateLimited {
            retry_after_s: LEASE.as_secs(),
        });
    }
    // from here on, the core's drop gives the slot back; it follows its circle before the
    // opening read, so that a change published during the read wakes it (the named users are
    // read at its first look, against what the snapshot showed)
    let now = Instant::now();
    let mut core = Box::new(Core {
        registration: ctx.radar.as_ref().map(|hub| hub.register(user)),
        ctx,
        user,
        session,
        slot,
        radius_m,
        id: after + 1,
        known: Known::default(),
        centre,
        renewed: now,
        read_at: now,
        moved_until: None,
    });
    core.follow();
    let first = unmetered(&core.ctx, user, radius_m, LIMIT).await?;
    core.known = remember(&first.hits);
    // and the users it shows, wherever they go
    core.follow();
    Ok(Radar {
        core: Some(core),
        looking: None,
        out: VecDeque::from([(after + 1, Event::Snapshot(first.hits))]),
        timer: Box::pin(tokio::time::sleep_until(now + KEEP_ALIVE)),
        // the first tick at once, as an interval's
        next_tick: now,
        keep_alive_at: now + KEEP_ALIVE,
        coalesce_until: None,
        over: false,
    })
}

/// The caller's own point (the centre of the circle) and when their check-in expires.
async fn own(ctx: &Ctx, user: Uuid) -> Option<(Coord, i64)> {
    match crate::store::index::record(&ctx.redis, user).await {
        Ok(Some(r)) => Some((r.centre(), r.expires_at_ms)),
        _ => None,
    }
}

impl Radar {
    /// Looks, after a wake-up or at a tick: what woke it, whether it must end, then — only when
    /// needed — a read (see [`look`]) or a renewal of its slot.
    fn start(&mut self) {
        let Some(core) = self.core.take() else { return };
        let named = core.registration.as_ref().map(|r| r.take()).unwrap_or_default();
        // the earliest expiry among what is shown, the caller's own included
        let expiry = core
            .known
            .values()
            .map(|h| h.expires_at_ms)
            .chain(core.centre.map(|c| c.1))
            .min()
            .unwrap_or(i64::MAX);
        let full = named.full
            || core.read_at.elapsed() >= core.safety()
            || expiry <= now_ms()
            || core.moved_until.is_some_and(|t| t <= Instant::now())
            || (!named.users.is_empty() && (core.centre.is_none() || core.known.len() >= LIMIT));
        // while the caller's own news is awaited, the users named wait for the full read it makes
        let named = if full || core.moved_until.is_none() {
            named
        } else {
            Woken::default()
        };
        if let Some(reason) = ended(&core.ctx, core.user, core.session) {
            self.out.push_back((core.id + 1, Event::End(reason)));
            self.over = true;
            return;
        }
        let renew = core.renewed.elapsed() > LEASE / 3;
        if full || !named.users.is_empty() || renew {
            self.looking = Some(Box::pin(look(core, named, full, renew)));
        } else {
            self.core = Some(core);
        }
    }
}

impl futures_util::Stream for Radar {
    type Item = Item;

    /// The queued events first, then a keep-alive when due, then the look in flight; idle, it
    /// waits for the hub's wake-up and for its one timer.
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = &mut *self;
        loop {
            if let Some((id, event)) = this.out.pop_front() {
                if this.out.is_empty() {
                    // give a long diff's queue back
                    this.out = VecDeque::new();
                }
                return Poll::Ready(Some(Item::Event(id, event)));
            }
            if this.over {
                // leave the hub and give the slot back now, not when the body goes
                this.core = None;
                this.looking = None;
                return Poll::Ready(None);
            }
            let now = Instant::now();
            if now >= this.keep_alive_at {
                this.keep_alive_at = now + KEEP_ALIVE;
                return Poll::Ready(Some(Item::KeepAlive));
            }
            let mut due = this.keep_alive_at;
            if let Some(looking) = &mut this.looking {
                if let Poll::Ready(looked) = looking.as_mut().poll(cx) {
                    this.looking = None;
                    this.core = Some(looked.core);
                    this.out.extend(looked.events);
                    this.over = looked.over;
                    continue;
                }
            } else if let Some(until) = this.coalesce_until {
                if now >= until {
                    this.coalesce_until = None;
                    this.start();
                    continue;
                }
                due = due.min(until);
            } else if let Some(core) = &this.core {
                if core.registration.as_ref().is_some_and(|r| r.poll_woken(cx).is_ready()) {
                    this.coalesce_until = Some(now + COALESCE);
                    continue;
                }
                if now >= this.next_tick {
                    // as an interval that delays its missed ticks
                    this.next_tick = now + TICK.min(core.safety());
                    this.start();
                    continue;
                }
                due = due.min(this.next_tick);
            }
            if this.timer.deadline() != due {
                this.timer.as_mut().reset(due);
            }
            if this.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }
}

/// One look: reads what may have changed and makes the differences. A wake that names users
/// reads only them ([`listed_among`]); the whole answer is read again when only it can tell
/// (see [`super::radar::Woken`]), at the safety pace, when a user shown (or the caller)
/// expires, and when the stream shows as many as it may. Then, when due, renews the slot.
async fn look(mut core: Box<Core>, named: Woken, mut full: bool, renew: bool) -> Looked {
    let ctx = core.ctx.clone();
    let mut events = vec![];
    if !full
        && !named.users.is_empty()
        && let Some((c, _)) = core.centre
    {
        ctx.metrics.radar_partial_reads.inc();
        match listed_among(&ctx, core.user, c, core.radius_m, &named.users).await {
            Ok(Among::Listed(now)) => match changes(&core.known, &named.users, now, LIMIT) {
                Some(changed) => {
                    let who = apply(&mut core.known, &changed);
                    core.number(&mut events, changed);
                    if who {
                        core.follow();
                    }
                }
                None => full = true,
            },
            // the caller's own change makes the full read when it is heard (each would be a
            // full read otherwise: one now, one for the news)
            Ok(Among::Moved) => core.moved_until = Some(Instant::now() + MOVED_WAIT),
            Ok(Among::Unknown) => full = true,
            Err(_) => core.read_at = core.retry_soon(),
        }
    }
    if full {
        core.read_at = Instant::now();
        core.moved_until = None;
        ctx.metrics.radar_reads.inc();
        let (answer, me) = futures_util::join!(unmetered(&ctx, core.user, core.radius_m, LIMIT), own(&ctx, core.user));
        match answer {
            Ok(answer) => {
                let changed = diff(&core.known, &answer.hits);
                core.number(&mut events, changed);
                core.known = remember(&answer.hits);
                if me.is_some() {
                    core.centre = me;
                }
                core.follow();
            }
            Err(ServiceError::Refused {
                code: Code::NoActiveCheckin | Code::NotIndexed,
                ..
            }) => {
                events.push((core.id + 1, Event::End(EndReason::NotSharing)));
                return Looked {
                    core,
                    events,
                    over: true,
                };
            }
            Err(_) => core.read_at = core.retry_soon(),
        }
    }
    if renew {
        let t = now_ms();
        let max = ctx.settings.max_streams_per_user.saturating_add(1);
        if streams::claim(&ctx.redis, core.user, core.slot, t, t + LEASE.as_millis() as i64, max)
            .await
            .is_ok()
        {
            core.renewed = Instant::now();
        }
    }
    Looked {
        core,
        events,
        over: false,
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

    /// A queued event is a few words (an item boxed: it was 296 bytes inline), and what a
    /// stream holds between wake-ups stays small: its body, its core and its timer.
    #[test]
    fn an_event_and_an_idle_stream_are_small() {
        let slot = std::mem::size_of::<(u64, Event)>();
        println!("event slot {slot} B, an item {} B", std::mem::size_of::<Hit>());
        assert!(slot <= 40, "{slot} B");
        let (radar, core, timer) = (
            std::mem::size_of::<Radar>(),
            std::mem::size_of::<Core>(),
            std::mem::size_of::<Sleep>(),
        );
        println!("stream {radar} B, its core {core} B, its timer {timer} B");
        assert!(radar + core + timer <= 512, "{radar} + {core} + {timer} B");
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
