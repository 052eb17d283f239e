//! What the service layer announces to the layers above it without knowing them: an accepted,
//! indexed check-in. The composition root makes the channel and hands the receiving end to
//! arrival detection (`push::detect`); the check-in never waits for it.

use crate::domain::nearby::LiveRecord;
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

/// The sending end: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Checkins {
    tx: Option<mpsc::Sender<Checkin>>,
    pending: Arc<Pending>,
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
            },
            Announced { rx, pending },
        )
    }

    /// Announces to nobody (the CLI, tools).
    pub fn none() -> Self {
        Self {
            tx: None,
            pending: Arc::default(),
        }
    }

    /// Announces a check-in; false when nobody listens or the queue is full.
    pub fn announce(&self, user: Uuid, record: LiveRecord) -> bool {
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
