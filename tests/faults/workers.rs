//! Scenario: three push workers (`hereabouts worker`, separate processes) on one outbox while the
//! provider fails for 5 s (500s and answers that never come), then recovers. The API instance
//! runs no worker of its own. Each worker signs with its own webhook secret, so the receiver
//! tells who sent what.
//!
//! Shown: every delivery arrives exactly once (none twice, none lost), every row ends
//! `delivered`, and all three workers took part (`FOR UPDATE SKIP LOCKED` claims and leases).

use crate::Stores;
use crate::client::{Api, around, ms, say, wait_until};
use crate::infra::{Server, with};
use crate::webhook::{Mode, Receiver};
use std::time::{Duration, Instant};

const S: &str = "three-workers";
const WORKERS: usize = 3;
const RECIPIENTS: usize = 6;
const DEVICES: usize = 2;
const ACTORS: usize = 6;
const CENTRE: (f64, f64) = (45.4642, 9.19);
const FAILING_FOR: Duration = Duration::from_secs(5);

pub async fn scenario(st: Stores) {
    let hook = Receiver::start(Mode::Failing).await;
    let secrets: Vec<String> = (0..WORKERS)
        .map(|i| format!("faults-webhook-secret-worker-{i}-0123456789"))
        .collect();
    hook.add_senders(&secrets);
    let env = with(st.env(), &[("HEREABOUTS_PUSH_WORKER_ENABLED", "false")]);
    let server = Server::start(&st.scratch, &env).await;
    let mut workers = Vec::new();
    for secret in &secrets {
        let w_env = with(
            st.env(),
            &[
                ("HEREABOUTS_WEBHOOK_SECRET", secret.as_str()),
                ("HEREABOUTS_PUSH_BATCH_SIZE", "8"),
                ("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "1000"),
            ],
        );
        workers.push(Server::start_worker(&st.scratch, &w_env).await);
    }
    let api = Api::new(&server.base).with_metrics(&server.metrics_base);

    let mut recipients = Vec::new();
    for k in 0..RECIPIENTS {
        let r = api.register(&format!("recipient{k}")).await;
        api.share(&r).await;
        for d in 0..DEVICES {
            api.add_webhook(&r, &format!("{}/r{k}/d{d}", hook.url)).await;
        }
        api.checkin_ok(&r, around(CENTRE, 300.0)).await;
        recipients.push(r);
    }
    let mut actors = Vec::new();
    for i in 0..ACTORS {
        let a = api.register(&format!("actor{i}")).await;
        api.share(&a).await;
        for r in &recipients {
            api.connect(&a, r).await;
        }
        actors.push(a);
    }
    let expected = RECIPIENTS * ACTORS * DEVICES;

    let t_fail = Instant::now();
    for a in &actors {
        api.checkin_ok(a, around(CENTRE, 1_000.0)).await;
    }
    tokio::time::sleep(FAILING_FOR.saturating_sub(t_fail.elapsed())).await;
    let (failed_500, hung, _, requests_failing) = hook.failures();
    let during = hook.by_sender();
    hook.set_mode(Mode::Up);
    let t_up = Instant::now();

    let all = wait_until(Duration::from_secs(40), || async { hook.deliveries().0 >= expected }).await;
    // anything sent twice would come within a poll or two more
    tokio::time::sleep(Duration::from_millis(500)).await;
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM deliveries
              WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby')
              GROUP BY status ORDER BY status",
    )
    .fetch_all(&db)
    .await
    .expect("deliveries");
    let (deliveries, twice) = hook.deliveries();
    let (notifications, notified_twice) = hook.notifications();
    let (_, _, bad_signatures, requests) = hook.failures();
    let by_sender = hook.by_sender();

    say(
        S,
        format!(
            "provider failing for {} ms: {requests_failing} requests ({failed_500} answered 500, {hung} left hanging); \
             requests per worker while failing {:?}",
            ms(t_up - t_fail),
            during.iter().map(|(r, _)| *r).collect::<Vec<_>>()
        ),
    );
    say(
        S,
        format!(
            "after recovery: {deliveries} of {expected} deliveries accepted after {} ms, duplicates {twice}, lost = {}; \
             notifications {notifications} (each to its {DEVICES} devices: {notified_twice}); provider requests {requests}; \
             (requests, accepted) per worker {by_sender:?}; rows {statuses:?}",
            all.map_or("—".into(), |d| ms(d).to_string()),
            expected.saturating_sub(deliveries)
        ),
    );

    assert_eq!(bad_signatures, 0, "signatures that no worker's secret verifies");
    assert!(all.is_some(), "not every delivery arrived: {statuses:?}");
    assert_eq!(deliveries, expected, "deliveries accepted");
    assert_eq!(twice, 0, "deliveries accepted twice");
    assert_eq!(
        statuses,
        vec![("delivered".to_string(), expected as i64)],
        "every delivery delivered"
    );
    assert!(
        by_sender.iter().all(|(r, _)| *r >= 1),
        "a worker took no part: {by_sender:?}"
    );
    drop(workers);
}
