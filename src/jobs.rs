//! Background jobs of the server process, each stopped by the shared shutdown token:
//!
//! - controls: re-read the policy and zones every `refresh_interval` (changes reach every
//!   instance within seconds), and resume a re-publishing pass that an instance left unfinished;
//! - index watchdog: when Redis has come back empty, rebuild the live index from PostgreSQL;
//! - index reconciliation ([`reconcile`]): a paced walk of PostgreSQL's live rows repairing what
//!   the index lost or holds stale, and, on Redis Cluster, slot-range markers that notice a
//!   failover or an emptied master and repair at once;
//! - sessions: read the sessions other instances ended and the suspended accounts (4× a second);
//! - purge: delete expired live rows, idempotency records, refresh tokens and session
//!   revocations every minute.

use crate::service::sessions;
use crate::service::{Ctx, live};
use crate::store::{index, live as live_store, sessions as session_store, users};
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod reconcile;

/// Runs `job` every `period` until `shutdown`; a run under way finishes first.
fn every<F, Fut>(tasks: &TaskTracker, shutdown: &CancellationToken, period: Duration, ctx: Ctx, job: F)
where
    F: Fn(Ctx) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let shutdown = shutdown.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => job(ctx.clone()).await,
            }
        }
    });
}

/// Rebuilds the live index when its ready marker is gone; returns how many users were indexed.
pub async fn check_index(ctx: &Ctx) -> Option<u64> {
    match index::is_ready(&ctx.redis).await {
        Ok(true) | Err(_) => None,
        Ok(false) => {
            if !index::try_lock_rebuild(&ctx.redis, 60).await.unwrap_or(false) {
                return None;
            }
            let started = std::time::Instant::now();
            let result = live::rebuild_index(ctx).await;
            let _ = index::unlock_rebuild(&ctx.redis).await;
            match result {
                Ok(n) => {
                    tracing::info!(
                        users = n,
                        ms = started.elapsed().as_millis() as u64,
                        "live index rebuilt from PostgreSQL"
                    );
                    ctx.metrics.index_rebuilds.inc();
                    Some(n)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "live index rebuild failed; will retry");
                    None
                }
            }
        }
    }
}

/// Starts the periodic jobs on `tasks`; they end when `shutdown` is cancelled.
pub fn spawn_all(ctx: &Ctx, tasks: &TaskTracker, shutdown: &CancellationToken) {
    let period = ctx.settings.refresh_interval;
    every(tasks, shutdown, period, ctx.clone(), |c| async move {
        if let Err(e) = c.controls.reload(&c.db).await {
            tracing::debug!(error = %e, "policy refresh skipped");
        }
        check_index(&c).await;
        if let Err(e) = live::run_republish(&c, None).await {
            tracing::warn!(error = %e, "re-publishing live users failed; will resume");
        }
    });
    every(tasks, shutdown, period, ctx.clone(), |c| async move {
        reconcile::watch_ranges(&c).await;
    });
    if !ctx.settings.reconcile_interval.is_zero() {
        every(
            tasks,
            shutdown,
            ctx.settings.reconcile_interval,
            ctx.clone(),
            |c| async move {
                reconcile::paced_page(&c).await;
            },
        );
    }
    every(tasks, shutdown, sessions::POLL, ctx.clone(), |c| async move {
        if let Err(e) = c.sessions.poll(&c.db).await {
            tracing::debug!(error = %e, "session poll skipped");
        }
    });
    every(tasks, shutdown, Duration::from_secs(60), ctx.clone(), |c| async move {
        match live_store::purge_expired(&c.db).await {
            Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired live locations"),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "purge skipped"),
        }
        let _ = users::purge_refresh_tokens(&c.db).await;
        let _ = session_store::purge(&c.db).await;
    });
}
