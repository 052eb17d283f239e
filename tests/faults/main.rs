//! The fault suite: the real server binary against private PostgreSQL and Redis instances that
//! the suite kills and restarts under load, a push provider that fails for a while, SIGTERM
//! during load, and slow or oversized clients; and scale-out: a Redis Cluster master killed and
//! its lagging replica promoted, two instances behind HAProxy, three push workers on one outbox. Loopback only; each scenario is bounded in time
//! and prints what it counted (run with `--nocapture` to see it).
//!
//! The scenarios run one at a time (a lock), whatever `--test-threads` says: they measure
//! latencies on a small machine. The whole suite is skipped, and passes, only when the
//! PostgreSQL or Redis binaries are absent.

mod balanced;
mod client;
mod cluster;
mod failover;
mod infra;
mod pg_restart;
mod provider;
mod redis_restart;
mod sigterm;
mod slowloris;
mod sse;
mod webhook;
mod workers;

use std::sync::Mutex;
use std::time::Instant;

static SERIAL: Mutex<()> = Mutex::new(());

/// The private stores of one scenario (dropped, i.e. stopped and removed, after its server).
pub struct Stores {
    pub pg: infra::Postgres,
    pub redis: infra::Redis,
    pub scratch: infra::Scratch,
    pub bins: infra::Bins,
}

impl Stores {
    pub async fn start(bins: infra::Bins) -> Self {
        let scratch = infra::Scratch::new(&bins);
        let pg = infra::Postgres::start(&bins, &scratch).await;
        let redis = infra::Redis::start(&bins, &scratch).await;
        Self {
            pg,
            redis,
            scratch,
            bins,
        }
    }

    /// The settings every scenario starts from.
    pub fn env(&self) -> Vec<(String, String)> {
        infra::base_env(&self.pg, &self.redis)
    }
}

/// Runs one scenario on a runtime of its own, after the previous one finished.
fn run<F, Fut>(name: &str, scenario: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // never skipped: scripts/test installs what is missing before it runs this suite
    let bins = infra::find_bins().unwrap_or_else(|why| {
        panic!(
            "[faults] {name}: {why}; the fault suite needs the PostgreSQL server binaries (initdb, pg_ctl) \
             and redis-server (scripts/test installs them)"
        )
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    rt.block_on(async move {
        let stores = Stores::start(bins).await;
        scenario(stores).await;
    });
    rt.shutdown_background();
    client::say(name, format!("passed in {:.1} s", started.elapsed().as_secs_f64()));
}

#[test]
fn redis_killed_and_restarted_empty_under_load() {
    run("redis-restart", redis_restart::scenario);
}

#[test]
fn postgres_restarted_under_load() {
    run("postgres-restart", pg_restart::scenario);
}

#[test]
fn push_provider_failing_for_a_while() {
    run("provider-outage", provider::scenario);
}

#[test]
fn sigterm_during_load() {
    run("sigterm", sigterm::scenario);
}

#[test]
fn slowloris_and_oversized_headers() {
    run("slow-clients", slowloris::scenario);
}

#[test]
fn redis_cluster_master_killed_under_load_replica_promoted() {
    run("cluster-failover", failover::scenario);
}

#[test]
fn two_instances_behind_haproxy() {
    run("load-balanced", balanced::scenario);
}

#[test]
fn three_push_workers_through_a_provider_outage() {
    run("three-workers", workers::scenario);
}
