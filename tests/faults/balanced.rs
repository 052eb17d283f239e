//! Scenario: two API instances behind HAProxy (Debian's package, started here on a free
//! loopback port, `balance roundrobin`: each request goes to the next instance, keep-alive or
//! not), on one PostgreSQL and one Redis.
//!
//! Shown: the same user's check-ins, alternating between the instances, notify a connection
//! once per cooldown (one notification, one delivery); a per-user rate limit counts the
//! check-ins of both instances together (exactly the limit accepted, the rest 429); a radar
//! stream held on instance A gets the `enter` of a check-in made on instance B within 2 s.

use crate::Stores;
use crate::client::{Api, around, ms, say, wait_until};
use crate::infra::{Scratch, Server, free_port, with};
use crate::webhook::{Mode, Receiver};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const S: &str = "load-balanced";
const CENTRE: (f64, f64) = (51.5072, -0.1276);
const LIMIT: usize = 10;
const BURST: usize = 16;
const MOVES: usize = 8;

/// HAProxy in the foreground, stopped by its PID on drop.
pub struct Haproxy {
    pub base: String,
    child: Option<Child>,
}

/// Where Debian's haproxy is (`/usr/sbin` is not on every PATH).
pub fn haproxy_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join("haproxy")).find(|p| p.is_file())
}

impl Haproxy {
    pub async fn start(bin: &PathBuf, scratch: &Scratch, backends: &[&str]) -> Self {
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, b)| format!("    server api{i} {}\n", b.trim_start_matches("http://")))
            .collect();
        let cfg = format!(
            "global\n    maxconn 2000\n\
             defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
             frontend api\n    bind 127.0.0.1:{port}\n    default_backend instances\n\
             backend instances\n    balance roundrobin\n{servers}"
        );
        let path = scratch.dir.join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let log = std::fs::File::create(scratch.dir.join("haproxy.log")).expect("haproxy log");
        let child = Command::new(bin)
            .args(["-db", "-f", &path.display().to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("haproxy starts");
        std::fs::write(scratch.dir.join("haproxy.pid"), child.id().to_string()).expect("pid file");
        let h = Self {
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        };
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", h.base)).send().await
                && r.status() == 200
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "haproxy did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        h
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Check-ins an instance answered 201 (its `http_requests_total` for `POST /v1/checkins`).
async fn checkins_served(api: &Api) -> f64 {
    let Some(base) = api.metrics_base.as_deref() else {
        return 0.0;
    };
    let Ok(r) = api.http.get(format!("{base}/metrics")).send().await else {
        return 0.0;
    };
    r.text()
        .await
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/v1/checkins\"")
                && l.contains("method=\"POST\"")
                && l.contains("status=\"201\"")
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

pub async fn scenario(st: Stores) {
    let Some(bin) = haproxy_bin() else {
        say(
            S,
            "SKIPPED LOUDLY: haproxy not found (apt-get install haproxy; scripts/test installs it)",
        );
        return;
    };
    let hook = Receiver::start(Mode::Up).await;
    let limit = LIMIT.to_string();
    let env = with(
        st.env(),
        &[
            ("HEREABOUTS_RATE_CHECKINS_PER_USER_PER_MIN", limit.as_str()),
            ("HEREABOUTS_TRUST_FORWARDED_FOR", "false"),
        ],
    );
    let a = Server::start(&st.scratch, &env).await;
    let b = Server::start(&st.scratch, &env).await;
    let lb = Haproxy::start(&bin, &st.scratch, &[&a.base, &b.base]).await;
    let via_lb = Api::new(&lb.base);
    let on_a = Api::new(&a.base).with_metrics(&a.metrics_base);
    let on_b = Api::new(&b.base).with_metrics(&b.metrics_base);

    // once per cooldown, whichever instance takes the check-in
    let watcher = via_lb.register("watcher").await;
    via_lb.share(&watcher).await;
    via_lb.add_webhook(&watcher, &format!("{}/watcher", hook.url)).await;
    via_lb.checkin_ok(&watcher, CENTRE).await;
    let mover = via_lb.register("mover").await;
    via_lb.share(&mover).await;
    via_lb.connect(&mover, &watcher).await;
    let (a0, b0) = (checkins_served(&on_a).await, checkins_served(&on_b).await);
    let t_moves = Instant::now();
    let mut moves_ok = 0;
    for _ in 0..MOVES {
        if via_lb.checkin(&mover, around(CENTRE, 300.0), None).await.is(201) {
            moves_ok += 1;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let (a1, b1) = (checkins_served(&on_a).await, checkins_served(&on_b).await);
    // detection runs after the answer: give it time to have sent any second notification
    let first = wait_until(Duration::from_secs(5), || async { hook.notifications().0 >= 1 })
        .await
        .map(|_| t_moves.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (notified, twice) = hook.notifications();
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");
    let rows: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications WHERE user_id = $1 AND kind = 'connection_nearby'")
            .bind(watcher.id)
            .fetch_one(&db)
            .await
            .expect("notifications");

    // one rate limit across both instances
    let burster = via_lb.register("burster").await;
    via_lb.share(&burster).await;
    let mut statuses = std::collections::BTreeMap::new();
    for _ in 0..BURST {
        let r = via_lb.checkin(&burster, around(CENTRE, 300.0), None).await;
        *statuses.entry(r.status.unwrap_or(0)).or_insert(0usize) += 1;
    }
    let (a2, b2) = (checkins_served(&on_a).await, checkins_served(&on_b).await);

    // a stream on A sees a check-in made on B
    let arriving = via_lb.register("arriving").await;
    via_lb.share(&arriving).await;
    via_lb.connect(&arriving, &watcher).await;
    let mut radar = crate::sse::Radar::open(&on_a, &watcher, 5_000).await;
    let snapshot = radar.until("snapshot", Duration::from_secs(3)).await;
    let t_checkin = Instant::now();
    let made = on_b.checkin(&arriving, around(CENTRE, 500.0), None).await;
    let entered = radar
        .until_matching("enter", Duration::from_secs(2), |d| {
            d["user_id"].as_str() == Some(arriving.id.to_string().as_str())
        })
        .await
        .map(|_| t_checkin.elapsed());

    say(
        S,
        format!(
            "cooldown: {MOVES} check-ins of one user through HAProxy ({moves_ok} × 201; instance A took {}, B took {}): \
             {notified} notification(s) delivered to the connection (by {} ms after the first check-in), duplicates {twice}, \
             rows in notifications {rows}",
            a1 - a0,
            b1 - b0,
            first.map_or("—".into(), |d| ms(d).to_string())
        ),
    );
    say(
        S,
        format!(
            "rate limit {LIMIT}/min/user: {BURST} check-ins through HAProxy (A took {}, B took {} of the 201s): {statuses:?}",
            a2 - a1,
            b2 - b1
        ),
    );
    say(
        S,
        format!(
            "stream on A (snapshot {}), check-in on B ({:?}): enter after {} ms (bound 2,000 ms)",
            snapshot.is_some(),
            made.status,
            entered.map_or("—".into(), |d| ms(d).to_string())
        ),
    );

    assert_eq!(moves_ok, MOVES, "the mover's check-ins were not all accepted");
    assert!(
        a1 - a0 >= 1.0 && b1 - b0 >= 1.0,
        "the check-ins did not alternate between the instances"
    );
    assert_eq!(
        (notified, twice, rows),
        (1, 0, 1),
        "not exactly one notification per cooldown"
    );
    assert_eq!(
        statuses.get(&201).copied(),
        Some(LIMIT),
        "the limit is not shared: {statuses:?}"
    );
    assert_eq!(statuses.get(&429).copied(), Some(BURST - LIMIT), "{statuses:?}");
    assert!(
        a2 - a1 >= 1.0 && b2 - b1 >= 1.0,
        "the burst did not reach both instances"
    );
    assert!(snapshot.is_some(), "no snapshot on the stream");
    assert!(made.is(201), "the check-in on B: {made:?}");
    assert!(
        entered.is_some(),
        "the stream on A did not get the enter of a check-in on B within 2 s"
    );
}
