//! The live radar's fan-out: what makes a stream ([`super::stream`]) look again.
//!
//! - [`publish`] hears every check-in (and every user who left the index or changed what others
//!   see) from [`super::events`], after commit, and publishes them in batches: one message per
//!   region channel touched and one on the ids channel per batch ([`crate::store::radar`]).
//! - [`listen`] holds this instance's subscription: the ids channel, and the region channels that
//!   its streams' circles reach, subscribed while a stream needs them.
//! - [`Hub`] is this instance's registry of streams: per region, the streams whose circle may
//!   reach it; per user, the streams that show that user (or are theirs). A message wakes only
//!   the streams it may change: a region's streams whose circle (widened by the point's
//!   precision) holds the published point, and the streams that show a user who changed. Work
//!   per check-in is bounded by the streams it may affect, not by all of them.
//!
//! A message also tells each stream it wakes which users it named ([`Woken`]): the stream reads
//! only those users (and re-reads its whole answer when its owner changed, when its subscription
//! was just made, or when too many were named). Streams also re-read fully at a slow safety pace
//! ([`super::stream`]), which covers what is not announced (a zone, expiry) and messages lost
//! while Redis was away.

use super::Ctx;
use super::events::Moved;
use crate::domain::geo::Coord;
use crate::domain::geo::within_m;
use crate::domain::policy::Precision;
use crate::store::radar::{self as channels, Change, REGION};
use crate::store::redis::{Lane, Redis};
use h3o::CellIndex;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most changes published as one batch.
const MAX_BATCH: usize = 1_024;
/// How often the listener re-subscribes after a failure (or a reconnect).
const RESYNC: Duration = Duration::from_secs(2);
/// How far a published point may lie from a point of its cell: the cell's circumradius, with
/// room (resolution 9, 7, 5), plus the rounding of exact distances.
fn slack_m(precision: u8) -> f64 {
    match precision {
        0 => 20.0,
        1 => 2_500.0,
        _ => 15_000.0,
    }
}
/// The widest slack: region subscriptions reach this far beyond a stream's radius.
const MAX_SLACK_M: f64 = 15_000.0;

fn precision_code(p: Precision) -> u8 {
    match p {
        Precision::Exact => 0,
        Precision::Approximate => 1,
        Precision::City => 2,
    }
}

/// Users a stream is told of before it reads; past it, it reads its whole answer again. (At
/// 64, an eighth of the radar bench's full reads came from streams in the busiest cities told
/// of more; reading 128 named users costs one SMISMEMBER of 128, far less than a full read.)
const MAX_NAMED: usize = 128;

/// What woke a stream since it last looked: the users named by the messages that may change
/// it, or `full` when only a full read can tell (its owner changed, its subscription was just
/// made, too many users were named).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Woken {
    pub full: bool,
    pub users: Vec<Uuid>,
}

impl Woken {
    fn name(&mut self, owner: Uuid, user: Uuid) {
        if self.full {
            return;
        }
        if user == owner || self.users.len() >= MAX_NAMED {
            self.full = true;
            self.users = vec![];
        } else if !self.users.contains(&user) {
            self.users.push(user);
        }
    }
}

/// What the listener must change in the instance's subscription.
#[derive(Debug)]
pub enum Cmd {
    Subscribe(Vec<String>),
    Unsubscribe(Vec<String>),
}

struct Follower {
    owner: Uuid,
    centre: Option<Coord>,
    radius_m: f64,
    /// The users followed, sorted (the regions followed follow from the circle: [`regions`]).
    users: Vec<Uuid>,
    woken: Woken,
    /// Something woke the stream since it last looked.
    signalled: bool,
    /// Who to wake: the stream's body, as it last waited.
    waker: Option<Waker>,
}

impl Follower {
    /// Marks the stream woken; the waker to wake once the hub is unlocked.
    fn signal(&mut self) -> Option<Waker> {
        self.signalled = true;
        self.waker.take()
    }
}

#[derive(Default)]
struct State {
    next: u64,
    /// Boxed: the table grows by doubling, and an entry is a pointer, not a stream's state.
    streams: HashMap<u64, Box<Follower>>,
    regions: HashMap<String, HashSet<u64>>,
    users: HashMap<Uuid, Ids>,
}

/// The streams that follow one user: most users are followed by one stream (their own, or
/// the one that shows them), kept inline (`smallvec`, back inline when one is left).
struct Ids(smallvec::SmallVec<[u64; 1]>);

impl Ids {
    fn one(id: u64) -> Self {
        Self(smallvec::smallvec![id])
    }

    fn insert(&mut self, id: u64) {
        if !self.0.contains(&id) {
            self.0.push(id);
        }
    }

    /// Removes `id`; whether none is left.
    fn remove(&mut self, id: u64) -> bool {
        self.0.retain(|x| *x != id);
        self.0.shrink_to_fit();
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().copied()
    }
}

/// This instance's streams, by region and by user.
pub struct Hub {
    redis: Redis,
    ids: String,
    state: Mutex<State>,
    cmds: mpsc::UnboundedSender<Cmd>,
}

/// A stream's place in the hub; it leaves when dropped.
pub struct Registration {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

impl Registration {
    /// Follows the circle of `radius_m` around `centre` (none: not checked in) and the users
    /// shown (the owner always).
    pub fn follow(&self, centre: Option<Coord>, radius_m: f64, shown: impl Iterator<Item = Uuid>) {
        self.hub.follow(self.id, centre, radius_m, shown.collect());
    }

    /// What woke the stream since the last call (and forgets it, the wake-up with it).
    pub fn take(&self) -> Woken {
        let mut state = self.hub.lock();
        state
            .streams
            .get_mut(&self.id)
            .map(|f| {
                f.signalled = false;
                std::mem::take(&mut f.woken)
            })
            .unwrap_or_default()
    }

    /// Ready once a message may have changed what the stream shows (since the last [`take`]
    /// or ready poll); until then `cx` is woken when one comes.
    ///
    /// [`take`]: Self::take
    pub fn poll_woken(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.hub.lock();
        let Some(f) = state.streams.get_mut(&self.id) else {
            return Poll::Pending;
        };
        if std::mem::take(&mut f.signalled) {
            return Poll::Ready(());
        }
        if !f.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            f.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// The region cells a circle of `reach_m` around `centre` may touch (a generous grid disk:
/// H3 cells vary in size over the globe).
fn regions_for(centre: Coord, reach_m: f64) -> Vec<CellIndex> {
    let Some(cell) = channels::region_of(centre.lat(), centre.lng()) else {
        return vec![];
    };
    let edge = REGION.edge_length_m();
    let k = ((reach_m + 2.0 * edge) / (0.7 * edge * 3f64.sqrt()))
        .ceil()
        .clamp(1.0, 8.0) as u32;
    cell.grid_disk::<Vec<_>>(k)
}

/// The regions a stream follows (sorted): those its circle, widened by the widest slack, may
/// touch; none without a centre.
fn regions(centre: Option<Coord>, radius_m: f64) -> Vec<CellIndex> {
    let mut regions = centre
        .map(|c| regions_for(c, radius_m + MAX_SLACK_M))
        .unwrap_or_default();
    regions.sort_unstable();
    regions.dedup();
    regions
}

impl Hub {
    /// A hub and the commands its [`listen`]er must apply.
    pub fn new(redis: Redis) -> (Arc<Self>, mpsc::UnboundedReceiver<Cmd>) {
        let (cmds, rx) = mpsc::unbounded_channel();
        let ids = channels::ids_channel(&redis);
        (
            Arc::new(Self {
                redis,
                ids,
                state: Mutex::default(),
                cmds,
            }),
            rx,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every channel this instance needs now: the ids channel and its streams' regions.
    pub fn channels(&self) -> Vec<String> {
        let state = self.lock();
        std::iter::once(self.ids.clone())
            .chain(state.regions.keys().cloned())
            .collect()
    }

    /// Streams registered here.
    pub fn streams(&self) -> usize {
        self.lock().streams.len()
    }

    /// Registers a stream of `owner` (it follows nothing until [`Registration::follow`]).
    pub fn register(self: &Arc<Self>, owner: Uuid) -> Registration {
        let mut state = self.lock();
        state.next += 1;
        let id = state.next;
        state.streams.insert(
            id,
            Box::new(Follower {
                owner,
                centre: None,
                radius_m: 0.0,
                users: vec![],
                woken: Woken::default(),
                signalled: false,
                waker: None,
            }),
        );
        drop(state);
        Registration { hub: self.clone(), id }
    }

    fn follow(&self, id: u64, centre: Option<Coord>, radius_m: f64, mut users: Vec<Uuid>) {
        let mut state = self.lock();
        let Some(f) = state.streams.get(&id) else { return };
        users.push(f.owner);
        users.sort_unstable();
        users.dedup();
        users.shrink_to_fit();
        let (new_regions, old_regions) = (regions(centre, radius_m), regions(f.centre, f.radius_m));
        let old_users = f.users.clone();
        let (mut subscribe, mut unsubscribe) = (vec![], vec![]);
        for r in old_regions.iter().filter(|r| new_regions.binary_search(r).is_err()) {
            let r = channels::region_channel(&self.redis, *r);
            if let Some(set) = state.regions.get_mut(&r) {
                set.remove(&id);
                if set.is_empty() {
                    state.regions.remove(&r);
                    unsubscribe.push(r);
                }
            }
        }
        for r in new_regions.iter().filter(|r| old_regions.binary_search(r).is_err()) {
            let r = channels::region_channel(&self.redis, *r);
            let set = state.regions.entry(r.clone()).or_default();
            if set.is_empty() {
                subscribe.push(r);
            }
            set.insert(id);
        }
        for u in old_users.iter().filter(|u| users.binary_search(u).is_err()) {
            if state.users.get_mut(u).is_some_and(|ids| ids.remove(id)) {
                state.users.remove(u);
            }
        }
        for u in users.iter().filter(|u| old_users.binary_search(u).is_err()) {
            match state.users.get_mut(u) {
                Some(ids) => ids.insert(id),
                None => {
                    state.users.insert(*u, Ids::one(id));
                }
            }
        }
        if let Some(f) = state.streams.get_mut(&id) {
            f.centre = centre;
            f.radius_m = radius_m;
            f.users = users;
        }
        drop(state);
        if !unsubscribe.is_empty() {
            let _ = self.cmds.send(Cmd::Unsubscribe(unsubscribe));
        }
        if !subscribe.is_empty() {
            let _ = self.cmds.send(Cmd::Subscribe(subscribe));
        }
    }

    fn unregister(&self, id: u64) {
        self.follow(id, None, 0.0, vec![]);
        let mut state = self.lock();
        if let Some(f) = state.streams.remove(&id) {
            for u in f.users {
                if state.users.get_mut(&u).is_some_and(|ids| ids.remove(id)) {
                    state.users.remove(&u);
                }
            }
        }
    }

    /// Wakes the streams that follow any of `channels`, once their subscription is in place: a
    /// change published between a stream's read and its subscription would otherwise wait for
    /// the safety re-read.
    pub fn subscribed(&self, channels: &[String]) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut woken: HashSet<u64> = HashSet::new();
        for c in channels {
            if let Some(ids) = state.regions.get(c) {
                woken.extend(ids.iter().copied());
            }
        }
        let wakers: Vec<Waker> = woken
            .into_iter()
            .filter_map(|id| {
                let f = state.streams.get_mut(&id)?;
                f.woken.full = true;
                f.woken.users = vec![];
                f.signal()
            })
            .collect();
        drop(guard);
        wakers.into_iter().for_each(Waker::wake);
    }

    /// Wakes the streams a message may change, telling each which users it named.
    pub fn dispatch(&self, channel: &str, payload: &[u8]) {
        let changes = channels::decode(payload);
        let mut guard = self.lock();
        let state = &mut *guard;
        let mut named: Vec<(u64, Uuid)> = vec![];
        if channel == self.ids {
            for c in &changes {
                if let Some(ids) = state.users.get(&c.user) {
                    named.extend(ids.iter().map(|id| (id, c.user)));
                }
            }
        } else if let Some(ids) = state.regions.get(channel) {
            for id in ids {
                let Some(f) = state.streams.get(id) else { continue };
                let Some(centre) = f.centre else { continue };
                let near = changes.iter().filter(|c| match c.point {
                    Some((lat, lng, p)) => {
                        let (point, reach) = (Coord::stored(lat, lng), f.radius_m + slack_m(p));
                        within_m(centre, point, reach)
                    }
                    None => false,
                });
                named.extend(near.map(|c| (*id, c.user)));
            }
        }
        let mut wakers: Vec<Waker> = vec![];
        for (id, user) in named {
            if let Some(f) = state.streams.get_mut(&id) {
                f.woken.name(f.owner, user);
                wakers.extend(f.signal());
            }
        }
        drop(guard);
        wakers.into_iter().for_each(Waker::wake);
    }
}

/// The messages of one batch of changes: one per region touched, one with every user's id.
fn messages_for(redis: &Redis, batch: &[Moved]) -> Vec<(String, Vec<u8>)> {
    let mut regions: BTreeMap<CellIndex, Vec<Change>> = BTreeMap::new();
    let mut ids: Vec<Change> = Vec::with_capacity(batch.len());
    for m in batch {
        if let Some((lat, lng, p)) = m.point
            && let Some(cell) = channels::region_of(lat, lng)
        {
            regions.entry(cell).or_default().push(Change {
                user: m.user,
                point: Some((lat, lng, precision_code(p))),
            });
        }
        ids.push(Change {
            user: m.user,
            point: None,
        });
    }
    ids.sort_unstable_by_key(|c| c.user);
    ids.dedup_by_key(|c| c.user);
    regions
        .into_iter()
        .map(|(cell, changes)| (channels::region_channel(redis, cell), channels::encode(&changes)))
        .chain(std::iter::once((channels::ids_channel(redis), channels::encode(&ids))))
        .collect()
}

/// Publishes the changes announced on `moved`, as they come, in batches (whatever queued while
/// the previous batch was being published), until `shutdown`.
pub async fn publish(ctx: Ctx, mut moved: mpsc::Receiver<Moved>, shutdown: CancellationToken) {
    loop {
        let first = tokio::select! {
            () = shutdown.cancelled() => return,
            m = moved.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match moved.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let messages = messages_for(&ctx.redis, &batch);
        ctx.metrics.radar_published.inc_by(batch.len() as u64);
        // on the check-ins' connection: the news waits behind no query's script
        if let Err(e) = channels::publish(&ctx.redis.lane(Lane::Writes), messages).await {
            tracing::debug!(error = %e, changes = batch.len(), "radar changes not published; streams re-read at their safety pace");
        }
    }
}

/// Holds this instance's subscription for `hub` until `shutdown`: connects (again after a
/// failure), subscribes to what the hub needs, applies its commands, and dispatches messages.
pub async fn listen(ctx: Ctx, hub: Arc<Hub>, mut cmds: mpsc::UnboundedReceiver<Cmd>, shutdown: CancellationToken) {
    let t = ctx.redis.timeout();
    loop {
        let (pushes_tx, mut pushes) = mpsc::unbounded_channel();
        let mut sub = match channels::subscriber(&ctx.redis, pushes_tx).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "radar subscription not connected yet; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RESYNC) => continue,
                }
            }
        };
        let mut dirty = true;
        let mut tick = tokio::time::interval(RESYNC);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if dirty {
                let all = hub.channels();
                match sub.subscribe(&all, t).await {
                    Ok(()) => {
                        dirty = false;
                        hub.subscribed(&all);
                    }
                    Err(e) => tracing::debug!(error = %e, "radar subscription failed; retrying"),
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                Some(cmd) = cmds.recv() => {
                    let done = match &cmd {
                        Cmd::Subscribe(c) => sub.subscribe(c, t).await,
                        Cmd::Unsubscribe(c) => sub.unsubscribe(c, t).await,
                    };
                    match (&cmd, done) {
                        (_, Err(_)) => dirty = true,
                        (Cmd::Subscribe(c), Ok(())) => hub.subscribed(c),
                        (Cmd::Unsubscribe(_), Ok(())) => {}
                    }
                }
                push = pushes.recv() => match push {
                    Some(p) => match channels::message(&p) {
                        Some((channel, payload)) => hub.dispatch(&channel, &payload),
                        None if p.kind == redis::PushKind::Disconnection => dirty = true,
                        None => {}
                    },
                    // the connection is gone for good: make a new one
                    None => break,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> (Arc<Hub>, mpsc::UnboundedReceiver<Cmd>) {
        Hub::new(Redis::new(
            vec!["redis://127.0.0.1:1".into()],
            "t".into(),
            Duration::from_millis(10),
        ))
    }

    fn woken(r: &Registration) -> bool {
        r.poll_woken(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[test]
    fn the_streams_of_a_user_are_kept_inline_while_one() {
        let mut ids = Ids::one(1);
        ids.insert(1);
        assert_eq!((ids.iter().collect::<Vec<_>>(), ids.0.spilled()), (vec![1], false));
        ids.insert(2);
        ids.insert(3);
        assert_eq!(ids.iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(!ids.remove(2) && !ids.remove(7));
        assert!(!ids.remove(1));
        assert_eq!((ids.iter().collect::<Vec<_>>(), ids.0.spilled()), (vec![3], false));
        assert!(!ids.remove(4) && ids.remove(3), "the last one gone");
    }

    #[tokio::test]
    async fn a_message_wakes_the_streams_it_may_change_and_no_other() {
        let (hub, mut cmds) = hub();
        let paris = Coord::stored(48.8566, 2.3522);
        let (ann, bob, cy) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let a = hub.register(ann);
        a.follow(Some(paris), 5_000.0, [bob].into_iter());
        let far = hub.register(cy);
        far.follow(Some(Coord::stored(40.4168, -3.7038)), 5_000.0, std::iter::empty());
        for _ in 0..2 {
            let Some(Cmd::Subscribe(regions)) = cmds.recv().await else {
                panic!("each subscribes to its regions")
            };
            assert!(!regions.is_empty());
        }
        let near_paris = Moved {
            user: Uuid::new_v4(),
            point: Some((48.86, 2.35, Precision::Exact)),
        };
        let far_from_everyone = Moved {
            user: Uuid::new_v4(),
            point: Some((48.86, 2.9, Precision::Exact)),
        };
        for (ch, payload) in messages_for(&hub.redis, &[far_from_everyone]) {
            hub.dispatch(&ch, &payload);
        }
        assert!(!woken(&a) && !woken(&far), "40 km away wakes no 5 km radar");
        for (ch, payload) in messages_for(&hub.redis, &[near_paris]) {
            hub.dispatch(&ch, &payload);
        }
        assert!(woken(&a) && !woken(&far));
        assert_eq!(
            a.take(),
            Woken {
                full: false,
                users: vec![near_paris.user]
            },
            "the stream is told whom the message named"
        );
        assert_eq!(a.take(), Woken::default(), "once");
        // bob, shown by ann's radar, leaves: only ann's radar hears it
        for (ch, payload) in messages_for(&hub.redis, &[Moved { user: bob, point: None }]) {
            hub.dispatch(&ch, &payload);
        }
        assert!(woken(&a) && !woken(&far));
        assert_eq!(a.take().users, vec![bob]);
        // ann herself moved: only a full read can tell
        for (ch, payload) in messages_for(
            &hub.redis,
            &[Moved {
                user: ann,
                point: Some((48.85, 2.35, Precision::Exact)),
            }],
        ) {
            hub.dispatch(&ch, &payload);
        }
        assert!(a.take().full);
        // past MAX_NAMED users, a full read too
        let many: Vec<Moved> = (0..=MAX_NAMED)
            .map(|_| Moved {
                user: Uuid::new_v4(),
                point: Some((48.86, 2.35, Precision::Exact)),
            })
            .collect();
        for (ch, payload) in messages_for(&hub.redis, &many) {
            hub.dispatch(&ch, &payload);
        }
        assert_eq!(
            a.take(),
            Woken {
                full: true,
                users: vec![]
            }
        );
        // a stream that goes gives its regions back
        drop(far);
        assert!(matches!(cmds.recv().await, Some(Cmd::Unsubscribe(_))));
        assert_eq!(hub.streams(), 1);
    }
}
