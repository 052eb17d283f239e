//! Latency recording, percentiles, and the load driver shared by the HTTP phases and the
//! store-level runs: `concurrency` tokio tasks, each running one operation after the other
//! (closed loop), optionally paced to a global rate, until the duration or the request budget
//! is used up.

use indicatif::ProgressBar;
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one operation did: which kind it was (index into the phase's kind names) and its outcome
/// (`Err` holds a short label: an HTTP status or `io`, `timeout`…).
pub type Outcome = (usize, Result<(), String>);

/// The nearest-rank percentile (`p` in [0, 100]) of sorted values; 0 for none.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0 * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Latencies (µs) and errors of one kind of operation.
#[derive(Debug, Default, Clone)]
pub struct Recorder {
    pub ok_us: Vec<u32>,
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    pub fn record(&mut self, elapsed: Duration, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ok_us.push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)),
            Err(label) => *self.errors.entry(label).or_default() += 1,
        }
    }

    pub fn merge(&mut self, other: Recorder) {
        self.ok_us.extend(other.ok_us);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    /// Summary over `elapsed` seconds.
    pub fn stats(mut self, elapsed_s: f64) -> Stats {
        self.ok_us.sort_unstable();
        let ok = self.ok_us.len() as u64;
        let errors: u64 = self.errors.values().sum();
        let ms = |us: u32| f64::from(us) / 1_000.0;
        let mean_ms = if ok == 0 {
            0.0
        } else {
            self.ok_us.iter().map(|&x| f64::from(x)).sum::<f64>() / ok as f64 / 1_000.0
        };
        let elapsed_s = elapsed_s.max(1e-9);
        Stats {
            requests: ok + errors,
            ok,
            errors: self.errors,
            elapsed_s,
            throughput: ok as f64 / elapsed_s,
            p50_ms: ms(percentile(&self.ok_us, 50.0)),
            p95_ms: ms(percentile(&self.ok_us, 95.0)),
            p99_ms: ms(percentile(&self.ok_us, 99.0)),
            max_ms: ms(self.ok_us.last().copied().unwrap_or(0)),
            mean_ms,
        }
    }
}

/// The figures of one run of one kind of operation. `throughput` counts successful operations.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Stats {
    pub requests: u64,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Stats {
    /// `404:3 io:1`, or `-`.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".into();
        }
        self.errors
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// How to drive one run.
#[derive(Debug, Clone)]
pub struct Load {
    pub concurrency: usize,
    pub duration: Duration,
    pub max_requests: u64,
    /// Global rate (operations per second) to pace the starts to; `None`: as fast as possible.
    pub rate: Option<f64>,
    /// Measure latency from the scheduled start (includes queueing when behind schedule; avoids
    /// coordinated omission) instead of from the actual start. Only meaningful with `rate`.
    pub from_schedule: bool,
}

/// The result of a run: stats per kind and for all kinds together.
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    pub concurrency: usize,
    pub target_rate: Option<f64>,
    pub total: Stats,
    pub by_kind: BTreeMap<String, Stats>,
}

/// Runs `op(sequence_number)` under `load`; `kinds` names the kinds `op` reports.
pub async fn drive<F, Fut>(load: &Load, kinds: &[&str], pb: &ProgressBar, op: F) -> RunStats
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + load.duration;
    let kinds_n = kinds.len().max(1);
    let mut tasks = Vec::with_capacity(load.concurrency);
    for _ in 0..load.concurrency.max(1) {
        let (op, next, done) = (op.clone(), next.clone(), done.clone());
        let (rate, from_schedule, max) = (load.rate, load.from_schedule, load.max_requests);
        tasks.push(tokio::spawn(async move {
            let mut recs = vec![Recorder::default(); kinds_n];
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= max {
                    break;
                }
                let mut begin = Instant::now();
                if let Some(r) = rate.filter(|r| *r > 0.0) {
                    let at = start + Duration::from_secs_f64(i as f64 / r);
                    if at >= deadline {
                        break;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    begin = if from_schedule { at } else { Instant::now() };
                } else if begin >= deadline {
                    break;
                }
                let (kind, outcome) = op(i).await;
                let elapsed = begin.elapsed();
                recs[kind.min(kinds_n - 1)].record(elapsed, outcome);
                done.fetch_add(1, Ordering::Relaxed);
                if Instant::now() >= deadline {
                    break;
                }
            }
            recs
        }));
    }
    let ticker = {
        let (pb, done) = (pb.clone(), done.clone());
        let total_ms = load.duration.as_millis() as u64;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(250)).await;
                let el = start.elapsed();
                pb.set_position((el.as_millis() as u64).min(total_ms));
                let n = done.load(Ordering::Relaxed);
                pb.set_message(format!("{n} ops, {:.0}/s", n as f64 / el.as_secs_f64().max(1e-3)));
            }
        })
    };
    let mut merged = vec![Recorder::default(); kinds_n];
    for t in tasks {
        if let Ok(recs) = t.await {
            for (m, r) in merged.iter_mut().zip(recs) {
                m.merge(r);
            }
        }
    }
    ticker.abort();
    let elapsed = start.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let mut total = Recorder::default();
    let mut by_kind = BTreeMap::new();
    for (name, rec) in kinds.iter().zip(merged) {
        total.merge(rec.clone());
        by_kind.insert((*name).to_string(), rec.stats(elapsed));
    }
    RunStats {
        concurrency: load.concurrency,
        target_rate: load.rate,
        total: total.stats(elapsed),
        by_kind,
    }
}

/// Climbs `levels` of concurrency while throughput still rises by at least `min_gain` (0.05 =
/// 5 %); returns every level run (the last one is where it stopped rising).
pub fn keep_climbing(history: &[f64], min_gain: f64) -> bool {
    match history {
        [] | [_] => true,
        [.., prev, last] => *last >= *prev * (1.0 + min_gain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 95.0), 95);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        let w = [10, 20, 30, 40];
        assert_eq!(percentile(&w, 50.0), 20);
        assert_eq!(percentile(&w, 51.0), 30);
        assert_eq!(percentile(&w, 99.0), 40);
    }

    #[test]
    fn recorder_summarises() {
        let mut r = Recorder::default();
        for ms in 1..=1_000u64 {
            r.record(Duration::from_micros(ms * 1_000), Ok(()));
        }
        r.record(Duration::from_millis(1), Err("503".into()));
        r.record(Duration::from_millis(1), Err("503".into()));
        let mut other = Recorder::default();
        other.record(Duration::from_millis(1), Err("io".into()));
        r.merge(other);
        let s = r.stats(2.0);
        assert_eq!(s.ok, 1_000);
        assert_eq!(s.requests, 1_003);
        assert_eq!(s.throughput, 500.0);
        assert_eq!(s.p50_ms, 500.0);
        assert_eq!(s.p99_ms, 990.0);
        assert_eq!(s.max_ms, 1_000.0);
        assert!((s.mean_ms - 500.5).abs() < 1e-9);
        assert_eq!(s.errors_text(), "503:2 io:1");
    }

    #[test]
    fn climbing_stops_below_five_percent() {
        assert!(keep_climbing(&[], 0.05));
        assert!(keep_climbing(&[100.0], 0.05));
        assert!(keep_climbing(&[100.0, 180.0], 0.05));
        assert!(!keep_climbing(&[100.0, 180.0, 185.0], 0.05));
        assert!(!keep_climbing(&[100.0, 90.0], 0.05));
    }

    #[tokio::test]
    async fn the_driver_respects_budget_and_rate() {
        let pb = ProgressBar::hidden();
        let load = Load {
            concurrency: 4,
            duration: Duration::from_secs(5),
            max_requests: 50,
            rate: None,
            from_schedule: false,
        };
        let r = drive(&load, &["even", "odd"], &pb, |i| async move {
            ((i % 2) as usize, if i % 10 == 0 { Err("x".into()) } else { Ok(()) })
        })
        .await;
        assert_eq!(r.total.requests, 50);
        assert_eq!(r.by_kind["even"].errors["x"], 5);
        assert_eq!(r.by_kind["odd"].ok, 25);
        let paced = Load {
            concurrency: 2,
            duration: Duration::from_millis(500),
            max_requests: 1_000,
            rate: Some(100.0),
            from_schedule: true,
        };
        let r = drive(&paced, &["op"], &pb, |_| async { (0, Ok(())) }).await;
        assert!((40..=55).contains(&r.total.requests), "{}", r.total.requests);
    }
}
