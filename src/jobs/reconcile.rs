//! The index's repair jobs (see [`crate::service::reconcile`]):
//!
//! - paced: one page of `HEREABOUTS_RECONCILE_PAGE` live users every
//!   `HEREABOUTS_RECONCILE_INTERVAL_MS`, one instance at a time (a lock for the interval) and
//!   resuming where the last page of any instance stopped (a cursor in Redis);
//! - ranges (Redis Cluster only), every `HEREABOUTS_REFRESH_INTERVAL_MS`: when a slot range's
//!   marker is gone or names another master, a whole unpaced walk and a sweep of that shard's
//!   records, then the range is marked again under its new master.

use crate::service::Ctx;
use crate::service::reconcile::{self, Tally};
use crate::store::reconcile::{self as store, RANGES, RangeState};
use std::sync::OnceLock;

/// The hash tags of the ranges' markers (computed once).
fn tags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| (0..RANGES).map(store::range_tag).collect())
}

/// One paced page; what it found (`None`: another instance had the turn, or Redis or
/// PostgreSQL did not answer).
pub async fn paced_page(ctx: &Ctx) -> Option<Tally> {
    let interval = ctx.settings.reconcile_interval.as_millis() as u64;
    if !store::try_lock(&ctx.redis, "reconcile", interval.saturating_sub(interval / 10))
        .await
        .unwrap_or(false)
    {
        return None;
    }
    let after = store::cursor(&ctx.redis).await.ok()?;
    match reconcile::check_page(ctx, after, ctx.settings.reconcile_page).await {
        Ok(found) => {
            let (next, tally) = found.map_or((None, Tally::default()), |(last, t)| (coarse_after(last, after), t));
            let _ = store::set_cursor(&ctx.redis, next).await;
            ctx.metrics.index_checked.inc_by(tally.checked);
            if tally.repaired > 0 {
                tracing::info!(
                    checked = tally.checked,
                    repaired = tally.repaired,
                    "live index entries repaired by the paced reconciliation"
                );
            }
            Some(tally)
        }
        Err(e) => {
            tracing::debug!(error = %e, "index reconciliation page skipped");
            None
        }
    }
}

/// Where the next page starts: `last` cut to its first 6 bytes, so that no user id is kept in
/// Redis (erasure leaves none); a page may then re-check a few users, never skip one. Past
/// `after` always (when a whole page shared those 6 bytes, the walk moves to the next prefix);
/// `None` at the end of the id space.
fn coarse_after(last: uuid::Uuid, after: Option<uuid::Uuid>) -> Option<uuid::Uuid> {
    // the cursor is exclusive: just before the first id of a prefix, so its ids are read again
    let before = |p: u64| (u128::from(p) << 80).checked_sub(1).map(uuid::Uuid::from_u128);
    let p = (last.as_u128() >> 80) as u64;
    match before(p) {
        Some(next) if after.is_none_or(|a| next > a) => Some(next),
        // the whole page under one prefix: past it
        _ if p + 1 < 1 << 48 => before(p + 1),
        _ => None,
    }
}

/// Checks the slot ranges' markers; when some were lost, repairs and marks them again. What the
/// repair found, or `None` when nothing was lost (or on a single Redis).
pub async fn watch_ranges(ctx: &Ctx) -> Option<Tally> {
    if !ctx.redis.is_cluster() {
        return None;
    }
    let ranges = match store::ranges(&ctx.redis, tags()).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(error = %e, "slot range markers not read");
            return None;
        }
    };
    let lost: Vec<RangeState> = ranges.into_iter().filter(RangeState::lost).collect();
    if lost.is_empty() || !store::try_lock(&ctx.redis, "repairing", 60_000).await.unwrap_or(false) {
        return None;
    }
    let started = std::time::Instant::now();
    let result = repair_ranges(ctx, &lost).await;
    let _ = store::unlock(&ctx.redis, "repairing").await;
    match result {
        Ok(tally) => {
            ctx.metrics.index_range_losses.inc_by(lost.len() as u64);
            tracing::warn!(
                ranges = lost.len(),
                checked = tally.checked,
                repaired = tally.repaired,
                ms = started.elapsed().as_millis() as u64,
                "slot ranges of the live index were emptied or failed over: reconciled with PostgreSQL"
            );
            Some(tally)
        }
        Err(e) => {
            tracing::warn!(error = %e, "repair of lost slot ranges failed; will retry");
            None
        }
    }
}

async fn repair_ranges(ctx: &Ctx, lost: &[RangeState]) -> crate::store::StoreResult<Tally> {
    let page = ctx.settings.reconcile_page.max(1_000);
    let mut tally = reconcile::full_pass(ctx, page).await?;
    // one sweep per master that serves a lost range
    let mut seen = std::collections::HashSet::new();
    for r in lost.iter().filter(|r| seen.insert(r.master.clone())) {
        tally += reconcile::sweep_records(ctx, r.slot, page).await?;
    }
    store::mark(&ctx.redis, lost).await?;
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::coarse_after;
    use uuid::Uuid;

    #[test]
    fn the_cursor_keeps_no_user_id_and_never_skips_one() {
        let last = Uuid::parse_str("0123456789ab4def8123456789abcdef").expect("uuid");
        let next = coarse_after(last, None).expect("more");
        assert_ne!(next, last);
        // the ids sharing last's first 6 bytes come after the cursor again (re-checked, not skipped)
        assert!(next < Uuid::parse_str("0123456789ab00000000000000000000").expect("uuid"));
        assert!(Uuid::parse_str("0123456789aa00000000000000000000").expect("uuid") <= next);
        // a page all under one prefix: the walk moves past it
        let again = coarse_after(last, Some(next)).expect("more");
        assert!(again > next && again >= Uuid::parse_str("0123456789abffffffffffffffffffff").expect("uuid"));
        assert_eq!(coarse_after(Uuid::max(), Some(Uuid::max())), None);
    }
}
