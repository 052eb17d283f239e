//! What the service layer announces to the layers above it without knowing them: an accepted,
//! indexed check-in. The composition root makes the channel and hands the receiving end to
//! arrival detection (`push::detect`); the check-in never waits for it.

use crate::domain::nearby::LiveRecord;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Check-ins waiting for detection at most; past it new ones are dropped (and counted): a
/// notification may be missed under overload, a check-in never waits.
pub const QUEUE: usize = 10_000;

/// A check-in that was committed and indexed.
#[derive(Debug, Clone)]
pub struct Checkin {
    pub user: Uuid,
    pub record: LiveRecord,
}

/// The sending end: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct Checkins(Option<mpsc::Sender<Checkin>>);

impl Checkins {
    /// A channel of [`QUEUE`] check-ins: the sender for [`crate::service::Ctx`], the receiver
    /// for the listener.
    pub fn channel() -> (Self, mpsc::Receiver<Checkin>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (Self(Some(tx)), rx)
    }

    /// Announces to nobody (the CLI, tools).
    pub fn none() -> Self {
        Self(None)
    }

    /// Announces a check-in; false when nobody listens or the queue is full.
    pub fn announce(&self, user: Uuid, record: LiveRecord) -> bool {
        self.0
            .as_ref()
            .is_some_and(|tx| tx.try_send(Checkin { user, record }).is_ok())
    }
}
