//! Repairing a partial loss of the live index. A whole loss (Redis back empty) is noticed by
//! `index:ready` and rebuilt ([`super::live::rebuild_index`]); a partial one is not: on Redis
//! Cluster a promoted replica may lack the last writes of its shard (replication is
//! asynchronous), so some records or memberships are missing, older than PostgreSQL's rows, or
//! still there after their user left. Two ways find them:
//!
//! - a paced walk of PostgreSQL's live rows in user-id order ([`check_page`]): one page is one
//!   query for the rows, one for their settings, and one Redis round trip probing each user's
//!   record and cell scores; only the users whose entry differs from what their row says are
//!   then repaired;
//! - per-slot-range markers (`crate::store::reconcile`) that notice a failover or an emptied
//!   master at once: then a whole walk runs unpaced, and the records of that shard are swept for
//!   users who should not be there ([`sweep_records`]).
//!
//! A repair ([`repair`]) locks the users' privacy and live rows in user-id order, as a check-in
//! batch does, and probes Redis again under those locks: a check-in, a move or a leave of those
//! users waits until the repair is written, so a repair never puts back an older cell over a
//! newer one, nor a record over a leave.

use super::Ctx;
use super::live::{published_of, record_for};
use crate::domain::nearby::LiveRecord;
use crate::store::live::{self as live_store, LiveRow};
use crate::store::privacy::{self, PrivacyRecord};
use crate::store::reconcile::{self as probe_store, Held};
use crate::store::{StoreResult, index};
use std::collections::HashMap;
use time::OffsetDateTime;
use uuid::Uuid;

/// What one page or pass found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Users compared.
    pub checked: u64,
    /// Entries put back, corrected or taken out.
    pub repaired: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Self) {
        self.checked += o.checked;
        self.repaired += o.repaired;
    }
}

/// The record a user's row and settings call for in the index (`None`: not indexed).
fn expected(ctx: &Ctx, row: &LiveRow, privacy: Option<&PrivacyRecord>, now: OffsetDateTime) -> Option<LiveRecord> {
    let p = privacy?;
    let sharing = ctx.controls.get().policy.location_sharing_enabled;
    (row.indexed && row.expires_at > now && sharing && p.is_sharing(now)).then(|| record_for(row, p))
}

/// True when the index holds exactly `want` for a user: its record, and its expiry as score in
/// each of its cells; or nothing readable when `want` is `None`.
fn matches(want: Option<&LiveRecord>, held: &Held) -> bool {
    match want {
        Some(w) => {
            held.record.as_ref() == Some(w)
                && held
                    .scores
                    .iter()
                    .all(|s| *s == Some(crate::store::index::member_score(w)))
        }
        None => !held.record_present,
    }
}

/// Compares one page of live rows after `after` with the index and repairs what differs: the
/// last user of the page and what was found; `None` past the end.
pub async fn check_page(ctx: &Ctx, after: Option<Uuid>, limit: u32) -> StoreResult<Option<(Uuid, Tally)>> {
    let rows = live_store::live_page(&ctx.db, after, i64::from(limit), false).await?;
    let Some(last) = rows.last().map(|r| r.user_id) else {
        return Ok(None);
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    let privacies: HashMap<Uuid, PrivacyRecord> = privacy::get_many(&ctx.db, &ids)
        .await?
        .into_iter()
        .map(|p| (p.user_id, p))
        .collect();
    let t = OffsetDateTime::now_utc();
    let wants: Vec<Option<LiveRecord>> = rows
        .iter()
        .map(|r| expected(ctx, r, privacies.get(&r.user_id), t))
        .collect();
    let probes: Vec<(Uuid, Option<_>)> = rows
        .iter()
        .zip(&wants)
        .map(|(r, w)| (r.user_id, w.as_ref().map(|_| published_of(r))))
        .collect();
    let held = probe_store::probe(&ctx.redis, &probes).await?;
    let suspects: Vec<Uuid> = rows
        .iter()
        .zip(wants.iter().zip(&held))
        .filter(|(_, (w, h))| !matches(w.as_ref(), h))
        .map(|(r, _)| r.user_id)
        .collect();
    let repaired = if suspects.is_empty() {
        0
    } else {
        repair(ctx, &suspects).await?
    };
    Ok(Some((
        last,
        Tally {
            checked: rows.len() as u64,
            repaired,
        },
    )))
}

/// Brings these users' index entries in line with PostgreSQL, under their row locks: puts back
/// a missing or stale record and memberships, drops the memberships of the point a stale record
/// held, takes out an entry whose user has no live, indexed, shared row. How many were repaired.
pub async fn repair(ctx: &Ctx, users: &[Uuid]) -> StoreResult<u64> {
    let mut users = users.to_vec();
    users.sort();
    users.dedup();
    let mut tx = ctx.db.begin().await?;
    // the order of a check-in batch: privacy rows, then live rows, each in user-id order
    let privacies: HashMap<Uuid, PrivacyRecord> = privacy::get_many_for_update(&mut tx, &users)
        .await?
        .into_iter()
        .map(|p| (p.user_id, p))
        .collect();
    let rows: HashMap<Uuid, LiveRow> = live_store::get_many_for_update(&mut tx, &users)
        .await?
        .into_iter()
        .map(|r| (r.user_id, r))
        .collect();
    let t = OffsetDateTime::now_utc();
    let wants: Vec<Option<LiveRecord>> = users
        .iter()
        .map(|u| rows.get(u).and_then(|r| expected(ctx, r, privacies.get(u), t)))
        .collect();
    let probes: Vec<(Uuid, Option<_>)> = users
        .iter()
        .zip(&wants)
        .map(|(u, w)| (*u, w.as_ref().map(LiveRecord::published)))
        .collect();
    let held = probe_store::probe(&ctx.redis, &probes).await?;
    let (mut publish, mut unpublish, mut moves) = (vec![], vec![], vec![]);
    for ((u, want), h) in users.iter().zip(wants).zip(held) {
        if matches(want.as_ref(), &h) {
            continue;
        }
        let old = h.record.as_ref().map(LiveRecord::published);
        match want {
            Some(w) => {
                if let Some(o) = old.filter(|o| *o != w.published()) {
                    moves.push((*u, o, w.published()));
                }
                publish.push((*u, w));
            }
            None => unpublish.push((*u, old)),
        }
    }
    index::apply(&ctx.redis, &unpublish, &publish, &moves).await?;
    tx.commit().await?;
    let n = (publish.len() + unpublish.len()) as u64;
    ctx.metrics.index_repaired.inc_by(n);
    Ok(n)
}

/// A whole walk, unpaced (after a slot range was found lost).
pub async fn full_pass(ctx: &Ctx, page: u32) -> StoreResult<Tally> {
    let mut after = None;
    let mut tally = Tally::default();
    while let Some((last, t)) = check_page(ctx, after, page).await? {
        after = Some(last);
        tally += t;
    }
    ctx.metrics.index_checked.inc_by(tally.checked);
    Ok(tally)
}

/// Sweeps the records held by the master that serves `slot`: every user with a record there is
/// checked against PostgreSQL (a record whose user left while the replica lagged is taken out).
pub async fn sweep_records(ctx: &Ctx, slot: u16, page: u32) -> StoreResult<Tally> {
    let mut cursor = 0u64;
    let mut tally = Tally::default();
    // bounded: a SCAN visits every key once in a number of calls bounded by the keyspace
    for _ in 0..1_000_000u32 {
        let (next, users) = probe_store::scan_records(&ctx.redis, slot, cursor, page).await?;
        for chunk in users.chunks(page.max(1) as usize) {
            tally.checked += chunk.len() as u64;
            tally.repaired += repair(ctx, chunk).await?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(tally)
}
