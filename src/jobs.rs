//! Background jobs of the server process and the gauges read at scrape time.
//!
//! - controls: re-read the policy and zones every `refresh_interval` (changes reach every
//!   instance within seconds);
//! - index watchdog: when Redis has come back empty, rebuild the live index from PostgreSQL;
//! - purge: delete expired live rows, idempotency records and refresh tokens every minute;
//! - push worker: delivers notifications (unless `push_worker_enabled` is off; see `crate::push`).

use crate::service::live;
use crate::startup::AppState;
use crate::store::{index, live as live_store, users};
use std::future::Future;
use std::time::Duration;

fn every<F, Fut>(period: Duration, state: AppState, job: F) -> tokio::task::JoinHandle<()>
where
    F: Fn(AppState) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            job(state.clone()).await;
        }
    })
}

/// Rebuilds the live index when its ready marker is gone; returns how many users were indexed.
pub async fn check_index(state: &AppState) -> Option<u64> {
    match index::is_ready(&state.redis).await {
        Ok(true) | Err(_) => None,
        Ok(false) => {
            if !index::try_lock_rebuild(&state.redis, 60).await.unwrap_or(false) {
                return None;
            }
            let started = std::time::Instant::now();
            let result = live::rebuild_index(state).await;
            let _ = index::unlock_rebuild(&state.redis).await;
            match result {
                Ok(n) => {
                    tracing::info!(
                        users = n,
                        ms = started.elapsed().as_millis() as u64,
                        "live index rebuilt from PostgreSQL"
                    );
                    state
                        .metrics
                        .count("index_rebuilds_total", "live index rebuilds from PostgreSQL", &[], 1.0);
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

/// Starts the periodic jobs; their handles are aborted when the server stops.
pub fn spawn_all(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let period = state.settings.refresh_interval;
    let mut jobs = vec![
        every(period, state.clone(), |s| async move {
            if let Err(e) = s.controls.reload(&s.db).await {
                tracing::debug!(error = %e, "policy refresh skipped");
            }
            check_index(&s).await;
        }),
        every(Duration::from_secs(60), state.clone(), |s| async move {
            match live_store::purge_expired(&s.db).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "purged expired live locations"),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "purge skipped"),
            }
            let _ = users::purge_refresh_tokens(&s.db).await;
        }),
    ];
    if state.settings.push.worker_enabled {
        jobs.extend(crate::push::spawn_worker(state));
    }
    jobs
}

/// Gauges for `/metrics`: (name, help, labels, value).
pub async fn gauges(state: &AppState) -> Vec<(&'static str, &'static str, String, f64)> {
    let pool = &state.db;
    let mut gauges = vec![
        (
            "db_pool_connections",
            "PostgreSQL pool connections",
            "state=\"open\"".into(),
            pool.size() as f64,
        ),
        (
            "db_pool_connections",
            "PostgreSQL pool connections",
            "state=\"idle\"".into(),
            pool.num_idle() as f64,
        ),
        (
            "http_requests_in_flight_capacity",
            "configured cap on concurrent requests",
            String::new(),
            state.settings.max_concurrent_requests as f64,
        ),
    ];
    gauges.extend(crate::push::gauges(state).await);
    gauges
}
