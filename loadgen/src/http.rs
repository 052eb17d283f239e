//! The phases through the real HTTP API (reqwest, keep-alive connections, one tokio task per
//! concurrent client):
//!
//! 1. check-ins at a target rate (paced starts, at most `--checkin-concurrency` in flight);
//! 2. nearby at increasing concurrency until throughput rises by less than 5 %;
//! 3. nearby paced at 70 % of the peak throughput, latency measured from the scheduled start
//!    (so queueing counts: no coordinated omission) — the figure the p99 target is about;
//! 4. mixed: 90 % nearby, 10 % check-ins, at the peak concurrency.
//!
//! Callers are live users drawn at random (so ~10 % hall members and a few super-connectors, as in
//! the world); check-ins move live users outside the hall by up to 200 m around their seeded point.

use super::cpu::{Meter, PerOp, per_op};
use super::stats::{Load, Outcome, RunStats, drive, keep_climbing};
use super::world::{World, offset};
use super::{Args, Budget, mix, say, timed_bar};
use anyhow::Context;
use hereabouts::config::Settings;
use hereabouts::domain::account::Role;
use hereabouts::service::Ctx;
use hereabouts::service::auth::TokenKeys;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Tokens minted per pool at most.
const POOL: usize = 20_000;

/// One phase's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub name: String,
    pub run: RunStats,
    /// CPU per request: loadgen, server (with --server-pid), Redis, PostgreSQL backends of the server.
    pub cpu: PerOp,
}

/// Every HTTP phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct HttpReport {
    pub phases: Vec<Phase>,
    /// Nearby ramp: the peak throughput and the concurrency it was reached at.
    pub nearby_peak_rps: f64,
    pub nearby_peak_concurrency: usize,
    /// Check-in → arrival detection decided, during the check-in phase (from the server's
    /// `push_detect_lag_seconds` histogram, scraped before and after; `None` without
    /// --metrics-url or when the listener does not answer).
    pub detect_lag: Option<DetectLag>,
    /// The same during the mixed phase: check-ins at a rate the machine sustains beside nearby.
    pub detect_lag_mixed: Option<DetectLag>,
    pub skipped: Vec<String>,
}

/// Quantiles of the detection lag, as the upper bounds of the histogram's buckets they fall in.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DetectLag {
    pub decided: u64,
    pub p50_ms_at_most: f64,
    pub p99_ms_at_most: f64,
}

/// The cumulative buckets (upper bound in seconds, count) of one histogram in OpenMetrics text.
pub fn histogram_buckets(text: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    text.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, count.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// The lag between two scrapes of the histogram.
pub fn detect_lag(before: &[(f64, u64)], after: &[(f64, u64)]) -> Option<DetectLag> {
    let delta: Vec<(f64, u64)> = after
        .iter()
        .map(|(le, n)| {
            let was = before.iter().find(|(b, _)| b == le).map_or(0, |(_, c)| *c);
            (*le, n.saturating_sub(was))
        })
        .collect();
    let total = delta.last()?.1;
    if total == 0 {
        return None;
    }
    let at = |q: f64| {
        delta
            .iter()
            .find(|(_, c)| *c as f64 >= q * total as f64)
            .map_or(f64::INFINITY, |(le, _)| le * 1_000.0)
    };
    Some(DetectLag {
        decided: total,
        p50_ms_at_most: at(0.5),
        p99_ms_at_most: at(0.99),
    })
}

/// The detection lag since the scrape `before`, said and returned.
async fn lag_since(http: &reqwest::Client, url: Option<&str>, before: Option<String>) -> Option<DetectLag> {
    const LAG: &str = "push_detect_lag_seconds";
    let after = scrape(http, url).await?;
    let lag = detect_lag(&histogram_buckets(&before?, LAG), &histogram_buckets(&after, LAG))?;
    say(format!(
        "arrival detection: {} decided, p50 ≤ {} ms, p99 ≤ {} ms after the commit",
        lag.decided, lag.p50_ms_at_most, lag.p99_ms_at_most
    ));
    Some(lag)
}

/// The server's metrics text, or `None` when there is no listener to ask.
pub(crate) async fn scrape(http: &reqwest::Client, url: Option<&str>) -> Option<String> {
    let r = http.get(url?).send().await.ok()?;
    r.text().await.ok()
}

struct Client {
    http: reqwest::Client,
    nearby_url: String,
    checkin_url: String,
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else {
        "io".into()
    }
}

async fn get_nearby(c: &Client, token: &str) -> Result<(), String> {
    match c.http.get(&c.nearby_url).bearer_auth(token).send().await {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(_) if status.is_success() => Ok(()),
                Ok(_) => Err(status.as_u16().to_string()),
                Err(e) => Err(classify(&e)),
            }
        }
        Err(e) => Err(classify(&e)),
    }
}

async fn post_checkin(c: &Client, token: &str, lat: f64, lng: f64, client_id: String) -> Result<(), String> {
    let body = serde_json::json!({"lat": lat, "lng": lng, "accuracy_m": 12.0, "client_id": client_id});
    match c.http.post(&c.checkin_url).bearer_auth(token).json(&body).send().await {
        Ok(resp) => {
            let status = resp.status();
            match resp.bytes().await {
                Ok(_) if status.is_success() => Ok(()),
                Ok(_) => Err(status.as_u16().to_string()),
                Err(e) => Err(classify(&e)),
            }
        }
        Err(e) => Err(classify(&e)),
    }
}

/// Tokens of (up to `POOL`) live users, evenly spread.
fn nearby_pool(world: &World, keys: &TokenKeys) -> anyhow::Result<Vec<String>> {
    let live = world.live_users();
    let step = (live / POOL).max(1);
    (0..live)
        .step_by(step)
        .map(|k| {
            keys.issue(
                world.ids[world.spot_owner[k] as usize],
                Role::User,
                uuid::Uuid::new_v4(),
            )
        })
        .collect()
}

/// Tokens and seeded points of live users outside the hall.
fn checkin_pool(world: &World, keys: &TokenKeys) -> anyhow::Result<Vec<(String, f64, f64)>> {
    let live = world.live_users();
    let step = (live / POOL).max(1);
    (0..live)
        .step_by(step)
        .filter(|&k| !world.people[world.spot_owner[k] as usize].in_hall)
        .map(|k| {
            let s = world.spots[k];
            Ok((
                keys.issue(
                    world.ids[world.spot_owner[k] as usize],
                    Role::User,
                    uuid::Uuid::new_v4(),
                )?,
                s.raw.lat(),
                s.raw.lng(),
            ))
        })
        .collect()
}

/// What the HTTP phases measure: this tool, the server, Redis, and the server's PostgreSQL
/// backends.
pub fn server_meter(args: &Args, state: &Ctx) -> Meter {
    Meter {
        server_pid: args.server_pid,
        redis: Some(state.redis.clone()),
        pg: Some((state.db.clone(), vec!["hereabouts".to_string()])),
    }
}

/// The client of the HTTP phases: keep-alive connections, no proxy, bounded waits.
pub fn api_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1_024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
}

/// Runs the phases within the budget.
pub async fn run_phases(
    settings: &Settings,
    args: &Args,
    world: &World,
    state: &Ctx,
    budget: &Budget,
) -> anyhow::Result<HttpReport> {
    let keys = TokenKeys::from_settings(settings)?;
    let meter = server_meter(args, state);
    let base = args.base_url.trim_end_matches('/').to_string();
    let http = api_client()?;
    // preflight: the server answers, and accepts tokens minted with these settings
    let ready = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .with_context(|| format!("no HTTP server answers at {base}"))?;
    if !ready.status().is_success() {
        anyhow::bail!("{base}/readyz answered {}: the server is not ready", ready.status());
    }
    let me_token = keys.issue(
        world.ids[world.spot_owner[0] as usize],
        Role::User,
        uuid::Uuid::new_v4(),
    )?;
    let me = http.get(format!("{base}/v1/me")).bearer_auth(&me_token).send().await?;
    if me.status().as_u16() == 401 {
        anyhow::bail!(
            "the server refuses tokens minted with this process's HEREABOUTS_JWT_* settings: start both with the same settings"
        );
    }
    let client = Arc::new(Client {
        http: http.clone(),
        nearby_url: format!(
            "{base}/v1/nearby?radius_m={}&limit={}",
            args.radius_m as i64, args.limit
        ),
        checkin_url: format!("{base}/v1/checkins"),
    });
    let nearby_tokens = Arc::new(nearby_pool(world, &keys)?);
    let checkin_users = Arc::new(checkin_pool(world, &keys)?);
    if nearby_tokens.is_empty() || checkin_users.is_empty() {
        anyhow::bail!("the world has no live users to drive the API with");
    }
    let run_id = format!(
        "{:x}",
        mix(time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64 ^ u64::from(std::process::id()))
    );
    let mut rep = HttpReport::default();
    let step = Duration::from_secs_f64(args.step_secs);
    let phase = Duration::from_secs_f64(args.phase_secs);

    let nearby_op = {
        let (client, tokens) = (client.clone(), nearby_tokens.clone());
        move |i: u64| {
            let (client, tokens) = (client.clone(), tokens.clone());
            async move {
                let t = &tokens[(mix(i) % tokens.len() as u64) as usize];
                (0usize, get_nearby(&client, t).await) as Outcome
            }
        }
    };
    let checkin_of = {
        let (client, users, run_id) = (client.clone(), checkin_users.clone(), run_id.clone());
        move |i: u64, kind: usize| {
            let (client, users, run_id) = (client.clone(), users.clone(), run_id.clone());
            async move {
                let h = mix(i ^ 0xC4EC);
                let (t, lat, lng) = &users[(h % users.len() as u64) as usize];
                let east = ((h >> 20) % 401) as f64 - 200.0;
                let north = ((h >> 40) % 401) as f64 - 200.0;
                let p = offset(hereabouts::domain::geo::Coord::stored(*lat, *lng), east, north);
                (
                    kind,
                    post_checkin(&client, t, p.lat(), p.lng(), format!("lg-{run_id}-{i}")).await,
                ) as Outcome
            }
        }
    };

    // warm-up (not reported): connections, caches
    let warm = Load {
        concurrency: 8,
        duration: Duration::from_secs(2),
        max_requests: args.max_requests,
        rate: None,
        from_schedule: false,
    };
    drive(
        &warm,
        &["nearby"],
        &timed_bar(warm.duration, "http warm-up"),
        nearby_op.clone(),
    )
    .await;

    // 1. check-ins at a target rate
    if budget.allows(phase) {
        let load = Load {
            concurrency: args.checkin_concurrency,
            duration: phase,
            max_requests: args.max_requests,
            rate: Some(args.checkin_rate),
            from_schedule: false,
        };
        let op = checkin_of.clone();
        let lag_before = scrape(&http, args.metrics_url.as_deref()).await;
        let before = meter.sample().await;
        let run = drive(
            &load,
            &["checkin"],
            &timed_bar(phase, &format!("http check-ins @{}/s", args.checkin_rate)),
            move |i| op(i, 0),
        )
        .await;
        say(format!(
            "check-ins: {:.0}/s achieved of {:.0}/s offered, p99 {:.1} ms, errors {}",
            run.total.throughput,
            args.checkin_rate,
            run.total.p99_ms,
            run.total.errors_text()
        ));
        let cpu = per_op(&before, &meter.sample().await, run.total.requests);
        // detections still under way finish within their bound (2 s)
        tokio::time::sleep(Duration::from_secs(2)).await;
        rep.detect_lag = lag_since(&http, args.metrics_url.as_deref(), lag_before).await;
        rep.phases.push(Phase {
            name: "checkins".into(),
            run,
            cpu,
        });
    } else {
        rep.skipped.push("checkins: time budget".into());
    }

    // 2. nearby ramp
    let mut history = Vec::new();
    for &c in &args.concurrency {
        if !budget.allows(step) {
            rep.skipped.push(format!("nearby c={c}: time budget"));
            break;
        }
        let load = Load {
            concurrency: c,
            duration: step,
            max_requests: args.max_requests,
            rate: None,
            from_schedule: false,
        };
        let before = meter.sample().await;
        let run = drive(
            &load,
            &["nearby"],
            &timed_bar(step, &format!("http nearby c={c}")),
            nearby_op.clone(),
        )
        .await;
        say(format!(
            "nearby c={c}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, errors {}",
            run.total.throughput,
            run.total.p50_ms,
            run.total.p99_ms,
            run.total.errors_text()
        ));
        history.push(run.total.throughput);
        if run.total.throughput > rep.nearby_peak_rps {
            rep.nearby_peak_rps = run.total.throughput;
            rep.nearby_peak_concurrency = c;
        }
        let cpu = per_op(&before, &meter.sample().await, run.total.requests);
        rep.phases.push(Phase {
            name: format!("nearby c={c}"),
            run,
            cpu,
        });
        if !keep_climbing(&history, 0.05) {
            break;
        }
    }

    // 3. nearby at 70 % of the peak, paced, latency from the schedule
    if rep.nearby_peak_rps > 0.0 && budget.allows(phase) {
        let rate = 0.7 * rep.nearby_peak_rps;
        let load = Load {
            concurrency: (rep.nearby_peak_concurrency * 4).max(32),
            duration: phase,
            max_requests: args.max_requests,
            rate: Some(rate),
            from_schedule: true,
        };
        let before = meter.sample().await;
        let run = drive(
            &load,
            &["nearby"],
            &timed_bar(phase, &format!("http nearby @{rate:.0}/s")),
            nearby_op.clone(),
        )
        .await;
        say(format!(
            "nearby at 70 % of peak ({rate:.0}/s): p50 {:.2} ms, p99 {:.2} ms, errors {}",
            run.total.p50_ms,
            run.total.p99_ms,
            run.total.errors_text()
        ));
        let cpu = per_op(&before, &meter.sample().await, run.total.requests);
        rep.phases.push(Phase {
            name: "nearby @70% peak".into(),
            run,
            cpu,
        });
    } else {
        rep.skipped.push("nearby @70%: no peak or time budget".into());
    }

    // 4. mixed 90/10 at the peak concurrency
    if budget.allows(phase) {
        let load = Load {
            concurrency: rep.nearby_peak_concurrency.max(1),
            duration: phase,
            max_requests: args.max_requests,
            rate: None,
            from_schedule: false,
        };
        let (nearby, checkin) = (nearby_op.clone(), checkin_of.clone());
        let lag_before = scrape(&http, args.metrics_url.as_deref()).await;
        let before = meter.sample().await;
        let run = drive(
            &load,
            &["nearby", "checkin"],
            &timed_bar(phase, "http mixed 90/10"),
            move |i| {
                let n = nearby.clone();
                let c = checkin.clone();
                async move { if i % 10 == 9 { c(i, 1).await } else { n(i).await } }
            },
        )
        .await;
        say(format!(
            "mixed 90/10: {:.0}/s, p99 {:.2} ms, errors {}",
            run.total.throughput,
            run.total.p99_ms,
            run.total.errors_text()
        ));
        let cpu = per_op(&before, &meter.sample().await, run.total.requests);
        tokio::time::sleep(Duration::from_secs(2)).await;
        rep.detect_lag_mixed = lag_since(&http, args.metrics_url.as_deref(), lag_before).await;
        rep.phases.push(Phase {
            name: "mixed 90/10".into(),
            run,
            cpu,
        });
    } else {
        rep.skipped.push("mixed: time budget".into());
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_lag_from_two_scrapes() {
        let a = "push_detect_lag_seconds_bucket{le=\"0.01\"} 5\npush_detect_lag_seconds_bucket{le=\"0.1\"} 5\npush_detect_lag_seconds_bucket{le=\"1.0\"} 5\npush_detect_lag_seconds_bucket{le=\"+Inf\"} 5\n";
        let b = "push_detect_lag_seconds_bucket{le=\"0.01\"} 55\npush_detect_lag_seconds_bucket{le=\"0.1\"} 104\npush_detect_lag_seconds_bucket{le=\"1.0\"} 105\npush_detect_lag_seconds_bucket{le=\"+Inf\"} 105\n# EOF\n";
        let buckets = |t| histogram_buckets(t, "push_detect_lag_seconds");
        let lag = detect_lag(&buckets(a), &buckets(b)).expect("lag");
        assert_eq!(lag.decided, 100);
        assert_eq!(lag.p50_ms_at_most, 10.0);
        assert_eq!(lag.p99_ms_at_most, 100.0);
        assert_eq!(detect_lag(&buckets(a), &buckets(a)), None);
    }
}
