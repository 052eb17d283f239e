//! Scenario 5: slow and oversized clients do not exhaust the server.
//!
//! Hundreds of connections send a request head one byte at a time (slowloris), other clients send
//! a 64 KiB header, a 200 KiB one and a hundred headers, while normal clients keep using the API.
//! The normal requests are all served; the slow connections are closed by the server (the client
//! request timeout of actix); heads past actix's limits (128 KiB, 96 headers) get 431; the server
//! is still ready afterwards.

use crate::Stores;
use crate::client::{Api, Counts, Log, around, ms, say};
use crate::infra::{Server, with};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const S: &str = "slow-clients";
const SLOW: usize = 400;
const ATTACK: Duration = Duration::from_secs(8);
const CENTRE: (f64, f64) = (35.6762, 139.6503);

pub async fn scenario(st: Stores) {
    let env = with(st.env(), &[("HEREABOUTS_MAX_CONNECTIONS", "2000")]);
    let server = Server::start(&st.scratch, &env).await;
    let api = Api::new(&server.base);
    let addr = server.base.trim_start_matches("http://").to_string();
    let u = api.register("normal").await;
    api.share(&u).await;
    api.checkin_ok(&u, around(CENTRE, 500.0)).await;
    let rss_before = server.rss_kib();
    let peak_rss = Arc::new(AtomicU64::new(rss_before));

    let t0 = Instant::now();
    let until = t0 + ATTACK;
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        let addr = addr.clone();
        slow.push(tokio::spawn(async move { slowloris(&addr, until).await }));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut big = Vec::new();
    for (what, pad, headers) in [
        ("64 KiB header", 64 * 1024, 1),
        ("200 KiB header", 200 * 1024, 1),
        ("100 headers", 16, 100),
    ] {
        for _ in 0..2 {
            let (addr, stop) = (addr.clone(), stop.clone());
            big.push(tokio::spawn(async move {
                let mut got = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    got.push(oversized(&addr, pad, headers).await);
                }
                (what, got)
            }));
        }
    }
    let log = Log::default();
    let mut normal = Vec::new();
    for _ in 0..4 {
        let (api, u, log, stop) = (api.clone(), u.clone(), log.clone(), stop.clone());
        normal.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                log.push(api.get("healthz", "/healthz", None).await);
                log.push(api.get("current", "/v1/checkins/current", Some(&u.token)).await);
                log.push(api.nearby(&u, 5_000).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    while Instant::now() < until {
        peak_rss.fetch_max(server.rss_kib(), Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::SeqCst);

    let mut closed: Vec<Duration> = Vec::new();
    let (mut got_408, mut still_open, mut not_connected) = (0, 0, 0);
    for t in slow {
        match t.await.expect("slow connection") {
            Slow::ClosedAfter(d, answered_408) => {
                closed.push(d);
                got_408 += usize::from(answered_408);
            }
            Slow::StillOpen => still_open += 1,
            Slow::NotConnected => not_connected += 1,
        }
    }
    closed.sort();
    let mut by_kind: std::collections::BTreeMap<&str, std::collections::BTreeMap<String, usize>> =
        std::collections::BTreeMap::new();
    let mut hung = 0;
    let mut big_64k_unanswered = 0;
    let mut past_limit_not_431 = 0;
    for t in big {
        let (what, got) = t.await.expect("oversized client");
        let by = by_kind.entry(what).or_default();
        for g in &got {
            *by.entry(g.clone()).or_default() += 1;
            hung += usize::from(g == "no answer in 10 s");
            if what == "64 KiB header" && !g.starts_with("HTTP ") {
                big_64k_unanswered += 1;
            }
            // a head past the limit is refused: 431, or the connection reset before it could be read
            if what != "64 KiB header" && g != "HTTP 431" && g != "closed" {
                past_limit_not_431 += 1;
            }
        }
    }
    let oversized_report: Vec<String> = by_kind.iter().map(|(what, by)| format!("{what}: {by:?}")).collect();
    for t in normal {
        t.await.expect("normal client");
    }
    let answers = log.all();
    let c = Counts::of(&answers);
    let mut latencies: Vec<Duration> = answers.iter().map(|a| a.elapsed()).collect();
    latencies.sort();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    let ready = api.get("readyz", "/readyz", None).await;
    let rss_after = server.rss_kib();

    say(
        S,
        format!(
            "{SLOW} slowloris connections (one header byte every 250 ms): closed by the server {} (after {}–{} ms, \
             {got_408} with a 408), still open after {} s {still_open}, not connected {not_connected}",
            closed.len(),
            closed.first().map_or(0, |d| ms(*d)),
            closed.last().map_or(0, |d| ms(*d)),
            ATTACK.as_secs()
        ),
    );
    say(S, format!("oversized heads: {}", oversized_report.join("; ")));
    say(
        S,
        format!(
            "normal requests meanwhile: {}; latency p50 {} ms, p99 {} ms, max {} ms",
            c.line(),
            pct(0.5).map_or(0, |d| ms(*d)),
            pct(0.99).map_or(0, |d| ms(*d)),
            latencies.last().map_or(0, |d| ms(*d))
        ),
    );
    say(
        S,
        format!(
            "server RSS {} MiB before, {} MiB at most during, {} MiB after; /readyz {:?}",
            rss_before / 1024,
            peak_rss.load(Ordering::SeqCst) / 1024,
            rss_after / 1024,
            ready.status
        ),
    );

    assert_eq!(c.other(&["200"]), 0, "normal requests not served: {}", c.line());
    assert!(c.sent > 0, "no normal request was made");
    assert_eq!(not_connected, 0, "slow connections that could not connect");
    assert_eq!(still_open, 0, "slow connections the server never closed");
    assert_eq!(hung, 0, "oversized requests left without an answer");
    assert_eq!(big_64k_unanswered, 0, "64 KiB headers not answered");
    assert_eq!(past_limit_not_431, 0, "heads past the limits not refused");
    assert!(ready.is(200), "the server is not ready after the attack");
}

enum Slow {
    /// The server closed the connection this long after it was opened (and answered 408 or not).
    ClosedAfter(Duration, bool),
    StillOpen,
    NotConnected,
}

/// Sends a request head one byte every 250 ms until the server closes the connection or `until`.
async fn slowloris(addr: &str, until: Instant) -> Slow {
    let start = Instant::now();
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return Slow::NotConnected;
    };
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .is_err()
    {
        return Slow::ClosedAfter(start.elapsed(), false);
    }
    let mut buf = [0u8; 1024];
    let mut answer = Vec::new();
    while Instant::now() < until {
        if s.write_all(b"a").await.is_err() {
            return Slow::ClosedAfter(start.elapsed(), answer.starts_with(b"HTTP/1.1 408"));
        }
        match tokio::time::timeout(Duration::from_millis(250), s.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Slow::ClosedAfter(start.elapsed(), answer.starts_with(b"HTTP/1.1 408"));
            }
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    Slow::StillOpen
}

/// One request whose head carries a header of `pad` bytes, or `headers` extra headers; what came
/// back: `HTTP <status>`, `closed` (reset before a status line) or no answer.
async fn oversized(addr: &str, pad: usize, headers: usize) -> String {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
        let mut head = String::from("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
        for i in 0..headers {
            head.push_str(&format!("X-Pad-{i}: {}\r\n", "a".repeat(pad)));
        }
        head.push_str("\r\n");
        // the server may answer and close before it has read everything: keep reading anyway
        let _ = s.write_all(head.as_bytes()).await;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        Ok::<_, String>(match text.split_whitespace().nth(1) {
            Some(status) if text.starts_with("HTTP/1.1") => format!("HTTP {status}"),
            _ => "closed".to_string(),
        })
    };
    match tokio::time::timeout(Duration::from_secs(10), attempt).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => e,
        Err(_) => "no answer in 10 s".to_string(),
    }
}
