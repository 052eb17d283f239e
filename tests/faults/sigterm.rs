//! Scenario 4: SIGTERM while requests are in flight and the push worker holds claimed deliveries.
//!
//! Some check-ins are held in the server at the moment of the signal (their users' privacy rows
//! are locked by the test, so they wait inside their transaction); others run in loops, each on
//! one kept-alive connection opened before the signal. Every request in flight at the signal
//! completes with an HTTP answer, the held check-ins with 201; a request that arrives on an idle
//! connection just as the server drains is closed unread, and the database shows that nothing of
//! it was done. The process exits 0 within the grace period; the worker hands back its claims (no
//! delivery left `sending`). The same again with an idle server, then a restart delivers
//! everything that was handed back.

use crate::Stores;
use crate::client::{Answer, Api, Counts, Log, around, ms, say, wait_until};
use crate::infra::{Server, with};
use crate::webhook::{Mode, Receiver};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const S: &str = "sigterm";
const CENTRE: (f64, f64) = (45.4642, 9.19);
const RECIPIENTS: usize = 4;
const ACTORS: usize = 4;
const MOVERS: usize = 8;
const HELD: usize = 6;
const GRACE: Duration = Duration::from_secs(10);
/// How close to the signal a request must have been sent to be closed unread by the drain.
const RACE_WINDOW: Duration = Duration::from_millis(100);

pub async fn scenario(st: Stores) {
    // a provider so slow that the worker is still sending when the signal comes
    let hook = Receiver::start(Mode::Slow(Duration::from_secs(120))).await;
    let env = with(
        st.env(),
        &[
            ("HEREABOUTS_STORE_TIMEOUT_MS", "3000"),
            ("HEREABOUTS_SHUTDOWN_GRACE_S", "10"),
            ("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "60000"),
            ("HEREABOUTS_PUSH_LEASE_S", "120"),
        ],
    );
    let mut server = Server::start(&st.scratch, &env).await;
    let api = Api::new(&server.base);
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");

    let mut recipients = Vec::new();
    for k in 0..RECIPIENTS {
        let r = api.register(&format!("recipient{k}")).await;
        api.share(&r).await;
        api.add_webhook(&r, &format!("{}/r{k}", hook.url)).await;
        api.checkin_ok(&r, around(CENTRE, 300.0)).await;
        recipients.push(r);
    }
    for i in 0..ACTORS {
        let a = api.register(&format!("actor{i}")).await;
        api.share(&a).await;
        for r in &recipients {
            api.connect(&a, r).await;
        }
        api.checkin_ok(&a, around(CENTRE, 1_000.0)).await;
    }
    let expected = RECIPIENTS * ACTORS;
    let sending = || async {
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM deliveries WHERE status = 'sending' AND notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby')")
            .fetch_one(&db)
            .await
            .map(|(n,)| n as usize)
            .unwrap_or(0)
    };
    let total = || async {
        sqlx::query_as::<_, (i64,)>("SELECT count(*) FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby')")
            .fetch_one(&db)
            .await
            .map(|(n,)| n as usize)
            .unwrap_or(0)
    };
    let claimed = wait_until(Duration::from_secs(10), || async {
        total().await == expected && sending().await > 0
    })
    .await;
    assert!(claimed.is_some(), "the worker did not claim deliveries");

    let mut movers = Vec::new();
    let mut held = Vec::new();
    for i in 0..MOVERS + HELD {
        let u = api.register(&format!("user{i}")).await;
        api.share(&u).await;
        api.checkin_ok(&u, around(CENTRE, 2_000.0)).await;
        if i < MOVERS {
            movers.push(u);
        } else {
            held.push(u);
        }
    }

    // load on kept-alive connections, one per loop, opened before the signal
    let log = Log::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    let addr = server.base.trim_start_matches("http://").to_string();
    // client ids of check-ins that got no answer: the database tells whether they were done
    let unanswered: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    for u in movers {
        let (log, stop, unanswered) = (log.clone(), stop.clone(), unanswered.clone());
        let mut conn = KeepAlive::connect(&addr).await;
        loops.push(tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let a = match n % 3 {
                    0 => {
                        let (lat, lng) = around(CENTRE, 2_000.0);
                        let cid = format!("{}-{n}", u.name);
                        let body = serde_json::json!({"lat": lat, "lng": lng, "client_id": cid});
                        let a = conn
                            .request("checkin", "POST", "/v1/checkins", &u.token, Some(&body))
                            .await;
                        if a.status.is_none() {
                            unanswered.lock().expect("unanswered").push(cid);
                        }
                        a
                    }
                    1 => {
                        conn.request("current", "GET", "/v1/checkins/current", &u.token, None)
                            .await
                    }
                    _ => {
                        conn.request("nearby", "GET", "/v1/nearby?radius_m=5000", &u.token, None)
                            .await
                    }
                };
                let broken = a.status.is_none();
                log.push(a);
                if broken {
                    break;
                }
                n += 1;
            }
        }));
    }

    // check-ins held inside the server: their privacy rows are locked here
    let ids: Vec<Uuid> = held.iter().map(|u| u.id).collect();
    let mut lock = db.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM privacy_settings WHERE user_id = ANY($1) FOR UPDATE")
        .bind(&ids)
        .execute(&mut *lock)
        .await
        .expect("lock the privacy rows");
    let mut held_tasks = Vec::new();
    for u in held {
        let api = own_client(&server.base);
        held_tasks.push(tokio::spawn(async move {
            api.checkin(&u, around(CENTRE, 2_000.0), None).await
        }));
    }
    let waiting = wait_until(Duration::from_secs(10), || async {
        sqlx::query_as::<_, (i64,)>(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hereabouts' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db)
        .await
        // check-ins are written in batches: the held ones wait in one transaction or a few
        .is_ok_and(|(n,)| n >= 1)
    })
    .await;
    assert!(waiting.is_some(), "the held check-ins did not reach the server");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let held_by_worker = sending().await;
    // the loops send nothing new from now on; what they have in flight must complete
    stop.store(true, Ordering::SeqCst);
    let t_sig = Instant::now();
    server.sigterm();
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock.rollback().await.expect("release the locks");
    let mut held_answers: Vec<Answer> = Vec::new();
    for t in held_tasks {
        held_answers.push(t.await.expect("held check-in"));
    }
    for t in loops {
        t.await.expect("load loop");
    }
    let status = server.wait_exit(GRACE + Duration::from_secs(10)).await;
    let exit_after = t_sig.elapsed();
    let left_sending = sending().await;
    let released = server.log_count("released claimed deliveries");

    let answers = log.all();
    let before: Vec<&Answer> = answers.iter().filter(|a| a.start < t_sig).collect();
    let in_flight = before.iter().filter(|a| a.end > t_sig).count() + held_answers.len();
    // A request that reaches an idle kept-alive connection as the server starts draining is not
    // read: the connection is closed without a byte of answer (actix's graceful drain). Such a
    // request was never in flight — nothing of it was done, a client may send it again. Anything
    // else without an answer is a failure.
    let (unread, failed): (Vec<&Answer>, Vec<&Answer>) = before
        .iter()
        .copied()
        .filter(|a| a.status.is_none())
        .partition(|a| a.error.starts_with("connection closed after 0 bytes") && t_sig - a.start < RACE_WINDOW);
    let unanswered = unanswered.lock().expect("unanswered").clone();
    let (done_anyway,): (i64,) = sqlx::query_as("SELECT count(*) FROM checkin_requests WHERE client_id = ANY($1)")
        .bind(&unanswered)
        .fetch_one(&db)
        .await
        .expect("checkin_requests");
    let after = answers.iter().filter(|a| a.start >= t_sig).count();
    let held_counts = Counts::of(&held_answers);
    say(
        S,
        format!(
            "under load: {} ({} in flight at SIGTERM, {HELD} of them held in a transaction: {}); sent after \
             SIGTERM {after}; in flight and failed {}; not read, closed by the drain as they arrived {} \
             (check-ins among them done anyway: {done_anyway})",
            Counts::of(before.iter().copied()).line(),
            in_flight,
            held_counts.line(),
            failed.len(),
            unread.len()
        ),
    );
    say(
        S,
        format!(
            "exit status {:?} {} ms after SIGTERM (grace {} s); deliveries the worker held {held_by_worker}, \
             released (log lines) {released}, left 'sending' {left_sending}",
            status.and_then(|s| s.code()),
            ms(exit_after),
            GRACE.as_secs()
        ),
    );
    assert!(
        failed.is_empty(),
        "requests in flight at SIGTERM failed: {:?}",
        failed
            .iter()
            .map(|a| format!(
                "{} started {} µs before SIGTERM, failed {} µs after it: {}",
                a.what,
                (t_sig - a.start).as_micros(),
                a.end.saturating_duration_since(t_sig).as_micros(),
                a.error
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(done_anyway, 0, "check-ins closed without an answer were done");
    assert_eq!(held_counts.n("201"), HELD, "held check-ins: {}", held_counts.line());
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}");
    assert!(exit_after <= GRACE, "exited after {} ms", ms(exit_after));
    assert_eq!(left_sending, 0, "deliveries left 'sending'");

    // the same with an idle server: the restarted worker claims them again, then SIGTERM
    let mut idle = Server::start(&st.scratch, &env).await;
    let reclaimed = wait_until(Duration::from_secs(10), || async { sending().await > 0 }).await;
    let held_by_worker = sending().await;
    assert!(
        reclaimed.is_some(),
        "the restarted worker did not claim the released deliveries"
    );
    let t_sig = Instant::now();
    idle.sigterm();
    let status = idle.wait_exit(GRACE + Duration::from_secs(10)).await;
    let exit_after = t_sig.elapsed();
    let left_sending = sending().await;
    let released = idle.log_count("released claimed deliveries");
    say(
        S,
        format!(
            "idle: the worker held {held_by_worker} deliveries; exit status {:?} {} ms after SIGTERM; released \
             (log lines) {released}, left 'sending' {left_sending}",
            status.and_then(|s| s.code()),
            ms(exit_after)
        ),
    );
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}");
    assert!(exit_after <= GRACE, "exited after {} ms", ms(exit_after));
    assert_eq!(left_sending, 0, "deliveries left 'sending' by the idle server");

    // nothing was lost: a restart with the provider up delivers everything handed back
    hook.set_mode(Mode::Up);
    let env_up = with(env, &[("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "1000")]);
    let _third = Server::start(&st.scratch, &env_up).await;
    let all = wait_until(Duration::from_secs(20), || async { hook.deliveries().0 >= expected }).await;
    let (delivered, twice) = hook.deliveries();
    say(
        S,
        format!(
            "after a restart with the provider up: {delivered} of {expected} delivered in {} ms, duplicates {twice}, \
             lost = {}",
            all.map_or("—".into(), |d| ms(d).to_string()),
            expected.saturating_sub(delivered)
        ),
    );
    assert_eq!(
        delivered, expected,
        "released deliveries were not delivered after the restart"
    );
    assert_eq!(twice, 0, "deliveries accepted twice");
}

/// One HTTP/1.1 connection kept alive for a loop of requests. No other connection is opened, so
/// a request that fails on it was sent on a connection the server had accepted.
struct KeepAlive {
    stream: TcpStream,
    host: String,
}

impl KeepAlive {
    async fn connect(addr: &str) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.expect("connect to the server"),
            host: addr.to_string(),
        }
    }

    /// One request and its whole answer (`status: None` when the connection failed).
    async fn request(
        &mut self,
        what: &'static str,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let start = Instant::now();
        let mut a = Answer {
            what,
            start,
            end: start,
            status: None,
            content_type: String::new(),
            retry_after: None,
            body: serde_json::Value::Null,
            error: String::new(),
        };
        match tokio::time::timeout(Duration::from_secs(30), self.exchange(method, path, token, body)).await {
            Ok(Ok((status, body))) => {
                a.status = Some(status);
                a.body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            }
            Ok(Err(e)) => a.error = e,
            Err(_) => a.error = "no answer within 30 s".into(),
        }
        a.end = Instant::now();
        a
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Vec<u8>), String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err(format!("connection closed after {} bytes of the answer", buf.len())),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("no status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match self.stream.read(&mut chunk).await {
                Ok(0) => return Err("connection closed in the body".into()),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok((status, buf[head_end..head_end + length].to_vec()))
    }
}

/// An API client with a connection of its own.
fn own_client(base: &str) -> Api {
    Api::with_client(
        base,
        reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
    )
}
