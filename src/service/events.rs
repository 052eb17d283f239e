//! What the service layer announces to the layers above it without knowing them: an accepted,
//! indexed check-in. The composition root makes the channel and hands the receiving end to
//! arrival detection (`push::detect`); the check-in never waits for it. The live radar's
//! publisher ([`crate::service::radar`]) hears the same check-ins, and the users who left the
//! index or changed what others see ([`Checkins::changed`]), on a channel of its own.

use crate::domain::nearby::LiveRecord;
use crate::domain::policy::Precision;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;

/// Check-ins waiting for detection at most; past it new ones are dropped (and counted): a
/// notification may be missed under overload, a check-in never waits.
pub const QUEUE: usize = 10_000;

/// A check-in that was committed and indexed.
#[derive(Debug, Clone)]
pub struct Checkin {
    pub user: Uuid,
    pub record: LiveRecord,
    /// When it was announced (right after its commit): detection lag is measured from here.
    pub at: std::time::Instant,
}

/// Announced check-ins not yet handled, and a wake-up for whoever waits for none.
#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    settled: Notify,
}

/// What the live radar hears: a user's published point moved (`point`: where, and at which
/// precision), or the user left the index or changed what others may see (`point: None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moved {
    pub user: Uuid,
    pub point: Option<(f64, f64, Precision)>,
}

/// Changes waiting for the radar's publisher at most; past it they are dropped (streams still
/// re-read at their safety pace).
pub const RADAR_QUEUE: usize = 10_000;

/// The sending end: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Checkins {
    tx: Option<mpsc::Sender<Checkin>>,
    pending: Arc<Pending>,
    radar: Option<mpsc::Sender<Moved>>,
}

/// The receiving end, for the listener: it reports each check-in handled with [`Announced::done`].
pub struct Announced {
    pub rx: mpsc::Receiver<Checkin>,
    pending: Arc<Pending>,
}

impl Announced {
    /// One announced check-in was handled.
    pub fn done(&self) {
        if self.pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pending.settled.notify_waiters();
        }
    }
}

impl Checkins {
    /// A channel of [`QUEUE`] check-ins: the sender for [`crate::service::Ctx`], the receiver
    /// for the listener.
    pub fn channel() -> (Self, Announced) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let pending = Arc::new(Pending::default());
        (
            Self {
                tx: Some(tx),
                pending: pending.clone(),
                radar: None,
            },
            Announced { rx, pending },
        )
    }

    /// Announces to nobody (the CLI, tools).
    pub fn none() -> Self {
        Self {
            tx: None,
            pending: Arc::default(),
            radar: None,
        }
    }

    /// The same sender, also telling the live radar (a channel of [`RADAR_QUEUE`]) of every
    /// check-in and of [`Checkins::changed`] users.
    pub fn with_radar(mut self) -> (Self, mpsc::Receiver<Moved>) {
        let (tx, rx) = mpsc::channel(RADAR_QUEUE);
        self.radar = Some(tx);
        (self, rx)
    }

    /// Tells the radar that `user` changed what others see of them, or which users they see
    /// (a block, a connection, a share): `now`, their record as re-published (none: they left
    /// the index, or it did not change), so that the radars around its point look too.
    pub fn changed(&self, user: Uuid, now: Option<&LiveRecord>) {
        if let Some(radar) = &self.radar {
            let point = now.map(|r| (r.lat, r.lng, r.precision));
            let _ = radar.try_send(Moved { user, point });
        }
    }

    /// Announces a check-in; false when nobody listens or the queue is full.
    pub fn announce(&self, user: Uuid, record: LiveRecord) -> bool {
        if let Some(radar) = &self.radar {
            let point = Some((record.lat, record.lng, record.precision));
            let _ = radar.try_send(Moved { user, point });
        }
        let Some(tx) = &self.tx else { return false };
        self.pending.count.fetch_add(1, Ordering::AcqRel);
        if tx
            .try_send(Checkin {
                user,
                record,
                at: std::time::Instant::now(),
            })
            .is_ok()
        {
            return true;
        }
        if self.pending.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.pending.settled.notify_waiters();
        }
        false
    }

    /// Resolves once every check-in announced so far was handled (tests drive detection with it).
    pub async fn settled(&self) {
        loop {
            let wake = self.pending.settled.notified();
            if self.pending.count.load(Ordering::Acquire) == 0 {
                return;
            }
            wake.await;
        }
    }
}
