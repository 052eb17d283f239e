//! The live radar under load: `--radar-streams` streams (`GET /v1/nearby/stream`) held open by
//! distinct live users outside the hall, while live users check in at `--radar-checkin-rate` for
//! `--radar-secs`. Reported:
//!
//! - latency from the start of a check-in request to each `enter`/`move`/`leave` event naming
//!   that user on any stream (p50/p99/max; events whose user has no check-in in the last 5 s
//!   are not counted); and, as `attributable`, from the later of that user's and the stream
//!   owner's last check-in (when the owner moves, every user shown moves with the centre: those
//!   events follow the owner's check-in, whatever the user did, and the first figure measures
//!   them from an unrelated check-in up to 5 s older);
//! - the server's resident memory per open stream (VmRSS of `--server-pid` after every stream
//!   sent its snapshot, minus before the first opened, over the streams);
//! - check-ins achieved and refused, and their own latency (request to response, p50/p99: the
//!   part of an event's latency spent before the server announced the check-in);
//! - the server's radar reads during the check-ins (`--metrics-url`): full re-reads and reads of
//!   the users a message named, per check-in.

use super::world::{World, offset};
use super::{Args, mix, say};
use anyhow::Context;
use hereabouts::config::Settings;
use hereabouts::domain::account::Role;
use hereabouts::service::auth::TokenKeys;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What the radar phase measured.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RadarReport {
    pub streams_requested: usize,
    pub streams_open: usize,
    pub checkin_rate_offered: f64,
    pub checkins_ok: u64,
    pub checkins_failed: u64,
    pub checkin_rate_achieved: f64,
    pub events: usize,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub attributable_events: usize,
    pub attributable_p50_ms: f64,
    pub attributable_p99_ms: f64,
    pub checkin_p50_ms: f64,
    pub checkin_p99_ms: f64,
    /// Full re-reads of nearby by the streams during the check-ins.
    pub full_reads: Option<f64>,
    /// Reads of only the users a message named, during the check-ins.
    pub partial_reads: Option<f64>,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_open_kib: Option<u64>,
    pub server_kib_per_stream: Option<f64>,
}

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// When each user last started a check-in.
type Sent = Arc<Mutex<HashMap<Uuid, Instant>>>;

/// Reads one stream until `stop`, recording the latency of each event about a user who checked in.
#[allow(clippy::too_many_arguments)]
async fn watch(
    mut resp: reqwest::Response,
    owner: Uuid,
    sent: Sent,
    latencies: Arc<Mutex<Vec<u32>>>,
    attributable: Arc<Mutex<Vec<u32>>>,
    snapshots: Arc<AtomicUsize>,
    stop: Instant,
) {
    let mut buf = String::new();
    while Instant::now() < stop {
        let left = stop.saturating_duration_since(Instant::now());
        let chunk = match tokio::time::timeout(left, resp.chunk()).await {
            Ok(Ok(Some(c))) => c,
            _ => return,
        };
        let now = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event = "";
            let mut data = "";
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    event = v.trim();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data = v.trim();
                }
            }
            match event {
                "snapshot" => {
                    snapshots.fetch_add(1, Ordering::Relaxed);
                }
                "enter" | "move" | "leave" => {
                    let user = serde_json::from_str::<serde_json::Value>(data)
                        .ok()
                        .and_then(|v| v["user_id"].as_str().and_then(|s| s.parse::<Uuid>().ok()));
                    let Some(user) = user else { continue };
                    let (at, own) = sent
                        .lock()
                        .map(|m| (m.get(&user).copied(), m.get(&owner).copied()))
                        .unwrap_or_default();
                    let micros = |at: Instant| {
                        let d = now.saturating_duration_since(at);
                        (d < Duration::from_secs(5)).then(|| d.as_micros().min(u128::from(u32::MAX)) as u32)
                    };
                    if let Some(us) = at.and_then(micros)
                        && let Ok(mut l) = latencies.lock()
                    {
                        l.push(us);
                    }
                    let cause = match (at, own) {
                        (Some(a), Some(o)) => Some(a.max(o)),
                        (a, o) => a.or(o),
                    };
                    if let Some(us) = cause.and_then(micros)
                        && let Ok(mut l) = attributable.lock()
                    {
                        l.push(us);
                    }
                }
                _ => {}
            }
        }
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1_000.0
}

/// Runs the radar phase.
pub async fn run(settings: &Settings, args: &Args, world: &World) -> anyhow::Result<RadarReport> {
    let keys = TokenKeys::from_settings(settings)?;
    let base = args.base_url.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(4_096)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    // live users outside the hall, each once: the first hold streams, all of them check in
    let mut seen = std::collections::HashSet::new();
    let mut users: Vec<(Uuid, String, f64, f64)> = vec![];
    for k in 0..world.live_users() {
        let owner = world.spot_owner[k] as usize;
        if world.people[owner].in_hall || !seen.insert(owner) {
            continue;
        }
        let s = world.spots[k];
        let id = world.ids[owner];
        users.push((
            id,
            keys.issue(id, Role::User, Uuid::new_v4())?,
            s.raw.lat(),
            s.raw.lng(),
        ));
    }
    // spread the streams over the world (the spots are grouped by city)
    let n = args.radar_streams.min(users.len());
    let stride = (users.len() / n.max(1)).max(1);
    let owners: Vec<(Uuid, String)> = (0..n)
        .map(|i| users[(i * stride) % users.len()].clone())
        .map(|u| (u.0, u.1))
        .collect();
    let users = Arc::new(users);
    let mut rep = RadarReport {
        streams_requested: n,
        checkin_rate_offered: args.radar_checkin_rate,
        ..Default::default()
    };
    rep.server_rss_before_kib = args.server_pid.and_then(rss_kib);

    let sent: Sent = Arc::default();
    let latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let attributable: Arc<Mutex<Vec<u32>>> = Arc::default();
    let snapshots = Arc::new(AtomicUsize::new(0));
    let duration = Duration::from_secs_f64(args.radar_secs);
    let open_by = Instant::now() + Duration::from_secs(60);
    let stop = open_by + duration + Duration::from_secs(5);
    let url = format!("{base}/v1/nearby/stream?radius_m={}", args.radius_m as i64);
    // open the streams, 32 at a time
    let opened = Arc::new(AtomicUsize::new(0));
    let mut handles = vec![];
    for chunk in owners.chunks(32) {
        let mut batch = vec![];
        for (owner, token) in chunk {
            let (http, url, token, owner) = (http.clone(), url.clone(), token.clone(), *owner);
            batch.push(tokio::spawn(async move {
                http.get(&url)
                    .bearer_auth(token)
                    .header("accept", "text/event-stream")
                    .send()
                    .await
                    .map(|r| (owner, r))
            }));
        }
        for b in batch {
            if let Ok(Ok((owner, resp))) = b.await
                && resp.status().is_success()
            {
                opened.fetch_add(1, Ordering::Relaxed);
                handles.push(tokio::spawn(watch(
                    resp,
                    owner,
                    sent.clone(),
                    latencies.clone(),
                    attributable.clone(),
                    snapshots.clone(),
                    stop,
                )));
            }
        }
    }
    rep.streams_open = opened.load(Ordering::Relaxed);
    while snapshots.load(Ordering::Relaxed) < rep.streams_open && Instant::now() < open_by {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    rep.server_rss_open_kib = args.server_pid.and_then(rss_kib);
    if let (Some(a), Some(b)) = (rep.server_rss_before_kib, rep.server_rss_open_kib) {
        rep.server_kib_per_stream = Some(b.saturating_sub(a) as f64 / rep.streams_open.max(1) as f64);
    }
    say(format!(
        "radar: {} of {n} streams open, server RSS {:?} → {:?} KiB",
        rep.streams_open, rep.server_rss_before_kib, rep.server_rss_open_kib
    ));

    // check-ins at the offered rate, at most 256 in flight
    let counters = |text: Option<String>| {
        let text = text?;
        let get = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse::<f64>().ok()))
                .unwrap_or(0.0)
        };
        Some((get("radar_reads_total "), get("radar_partial_reads_total ")))
    };
    let reads_before = counters(super::http::scrape(&http, args.metrics_url.as_deref()).await);
    let checkin_latencies: Arc<Mutex<Vec<u32>>> = Arc::default();
    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let interval = Duration::from_secs_f64(1.0 / args.radar_checkin_rate.max(1.0));
    let started = Instant::now();
    let checkin_url = format!("{base}/v1/checkins");
    let run_id = format!("{:x}", mix(u64::from(std::process::id()) ^ 0x5ad));
    let mut i: u64 = 0;
    while started.elapsed() < duration {
        let due = started + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        let h = mix(i ^ 0x7ada);
        let (user, token, lat, lng) = users[(h % users.len() as u64) as usize].clone();
        let east = ((h >> 20) % 401) as f64 - 200.0;
        let north = ((h >> 40) % 401) as f64 - 200.0;
        let p = offset(hereabouts::domain::geo::Coord::stored(lat, lng), east, north);
        let (http, url, sent, ok, failed, took) = (
            http.clone(),
            checkin_url.clone(),
            sent.clone(),
            ok.clone(),
            failed.clone(),
            checkin_latencies.clone(),
        );
        let body = serde_json::json!({"lat": p.lat(), "lng": p.lng(), "client_id": format!("rd-{run_id}-{i}")});
        tokio::spawn(async move {
            let at = Instant::now();
            if let Ok(mut m) = sent.lock() {
                m.insert(user, at);
            }
            match http.post(&url).bearer_auth(token).json(&body).send().await {
                Ok(r) if r.status().is_success() => {
                    if let Ok(mut t) = took.lock() {
                        t.push(at.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
                    }
                    ok.fetch_add(1, Ordering::Relaxed)
                }
                _ => failed.fetch_add(1, Ordering::Relaxed),
            };
            drop(permit);
        });
        i += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    // let the last events arrive
    tokio::time::sleep(Duration::from_secs(3)).await;
    if let (Some(a), Some(b)) = (
        reads_before,
        counters(super::http::scrape(&http, args.metrics_url.as_deref()).await),
    ) {
        rep.full_reads = Some(b.0 - a.0);
        rep.partial_reads = Some(b.1 - a.1);
    }
    let mut t = checkin_latencies.lock().map(|l| l.clone()).unwrap_or_default();
    t.sort_unstable();
    rep.checkin_p50_ms = pct(&t, 0.50);
    rep.checkin_p99_ms = pct(&t, 0.99);
    for h in handles {
        h.abort();
    }
    rep.checkins_ok = ok.load(Ordering::Relaxed);
    rep.checkins_failed = failed.load(Ordering::Relaxed);
    rep.checkin_rate_achieved = rep.checkins_ok as f64 / elapsed.max(1e-9);
    let mut l = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    rep.events = l.len();
    rep.latency_p50_ms = pct(&l, 0.50);
    rep.latency_p99_ms = pct(&l, 0.99);
    rep.latency_max_ms = pct(&l, 1.0);
    let mut l = attributable.lock().map(|l| l.clone()).unwrap_or_default();
    l.sort_unstable();
    rep.attributable_events = l.len();
    rep.attributable_p50_ms = pct(&l, 0.50);
    rep.attributable_p99_ms = pct(&l, 0.99);
    say(format!(
        "radar: {} check-ins/s achieved of {:.0} offered ({} refused), {} events, check-in → event p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} KiB per open stream",
        rep.checkin_rate_achieved.round(),
        rep.checkin_rate_offered,
        rep.checkins_failed,
        rep.events,
        rep.latency_p50_ms,
        rep.latency_p99_ms,
        rep.latency_max_ms,
        rep.server_kib_per_stream.map_or("?".to_string(), |k| format!("{k:.1}")),
    ));
    say(format!(
        "radar: {} events from the later of the user's and the stream owner's check-in: p50 {:.1} ms, p99 {:.1} ms; check-in request p50 {:.1} ms, p99 {:.1} ms; stream reads during the check-ins: {} full, {} of named users only",
        rep.attributable_events,
        rep.attributable_p50_ms,
        rep.attributable_p99_ms,
        rep.checkin_p50_ms,
        rep.checkin_p99_ms,
        rep.full_reads.map_or("?".into(), |n| n.to_string()),
        rep.partial_reads.map_or("?".into(), |n| n.to_string()),
    ));
    let path = args.out_dir.join(format!("radar-{}.json", world.people.len()));
    std::fs::create_dir_all(&args.out_dir).ok();
    std::fs::write(&path, serde_json::to_vec_pretty(&rep)?).with_context(|| format!("writing {}", path.display()))?;
    println!("radar report: {}", path.display());
    Ok(rep)
}
