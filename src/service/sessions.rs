//! Which access tokens no longer count, known to every instance within a second without a
//! round trip per request: each instance keeps the sessions that ended (and the suspended
//! accounts) in memory, applies its own changes at once and polls PostgreSQL for the others'
//! ([`POLL`]). A token names its session (`sid`, the refresh-token family).

use crate::store::{StoreResult, sessions};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// How often an instance reads the others' changes.
pub const POLL: Duration = Duration::from_millis(250);
/// How far back each poll reads (a transaction may commit a while after its `now()`).
const LOOKBACK: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Default)]
struct State {
    /// Ended sessions and when their tokens would have expired anyway.
    ended: HashMap<Uuid, OffsetDateTime>,
    suspended: HashSet<Uuid>,
    /// The database's clock at the last poll; `None` before the first.
    seen: Option<OffsetDateTime>,
}

/// The in-memory view, shared by the instance's workers.
#[derive(Debug, Clone, Default)]
pub struct Sessions(Arc<RwLock<State>>);

impl Sessions {
    /// True when the session ended.
    pub fn is_ended(&self, sid: Uuid) -> bool {
        self.0.read().map(|s| s.ended.contains_key(&sid)).unwrap_or(false)
    }

    /// True when the account is suspended.
    pub fn is_suspended(&self, user: Uuid) -> bool {
        self.0.read().map(|s| s.suspended.contains(&user)).unwrap_or(false)
    }

    /// Applies sessions this instance ended.
    pub fn ended(&self, families: &[Uuid], until: OffsetDateTime) {
        if let Ok(mut s) = self.0.write() {
            for f in families {
                s.ended.insert(*f, until);
            }
        }
    }

    /// Applies a suspension or its end made by this instance.
    pub fn set_suspended(&self, user: Uuid, suspended: bool) {
        if let Ok(mut s) = self.0.write() {
            if suspended {
                s.suspended.insert(user);
            } else {
                s.suspended.remove(&user);
            }
        }
    }

    /// Reads what every instance changed since the last poll (everything still relevant on
    /// the first) and forgets sessions whose tokens have expired anyway.
    pub async fn poll(&self, db: &PgPool) -> StoreResult<()> {
        let since = self.0.read().ok().and_then(|s| s.seen).map(|t| t - LOOKBACK);
        let (rows, now) = sessions::ended_since(db, since).await?;
        let suspended: HashSet<Uuid> = sessions::suspended(db).await?.into_iter().collect();
        if let Ok(mut s) = self.0.write() {
            s.ended.extend(rows);
            s.ended.retain(|_, until| *until > now);
            s.suspended = suspended;
            s.seen = Some(now);
        }
        Ok(())
    }
}
