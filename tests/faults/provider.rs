//! Scenario 3: the push provider fails for a while — every other request answered 500, the others
//! left hanging past the worker's provider timeout — then recovers.
//!
//! Deliveries are retried with backoff and all arrive once it recovers, each exactly once; the
//! queue depth (`push_queue_depth` in `/metrics`) shows the backlog while the provider fails and
//! drains to 0.

use crate::Stores;
use crate::client::{Api, around, ms, say, wait_until};
use crate::infra::{Server, with};
use crate::webhook::{Mode, Receiver};
use std::time::{Duration, Instant};

const S: &str = "provider-outage";
const RECIPIENTS: usize = 6;
const DEVICES: usize = 2;
const ACTORS: usize = 6;
const CENTRE: (f64, f64) = (40.4168, -3.7038);
const FAILING_FOR: Duration = Duration::from_secs(5);

pub async fn scenario(st: Stores) {
    let hook = Receiver::start(Mode::Failing).await;
    let env = with(st.env(), &[("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "1000")]);
    let server = Server::start(&st.scratch, &env).await;
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

    // the provider is failing; everybody arrives near the recipients
    let t_fail = Instant::now();
    for a in &actors {
        api.checkin_ok(a, around(CENTRE, 1_000.0)).await;
    }
    let mut max_depth = 0.0f64;
    let mut scrapes = 0;
    while t_fail.elapsed() < FAILING_FOR {
        if let Some(d) = api.metric("push_queue_depth").await {
            max_depth = max_depth.max(d);
            scrapes += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (failed_500, hung, _, requests_failing) = hook.failures();
    let delivered_while_failing = hook.deliveries().0;
    hook.set_mode(Mode::Up);
    let t_up = Instant::now();
    say(
        S,
        format!(
            "provider failing for {} ms: {requests_failing} requests ({failed_500} answered 500, {hung} left hanging), \
             {delivered_while_failing} accepted; queue depth up to {max_depth} ({scrapes} scrapes)",
            ms(t_up - t_fail)
        ),
    );

    // recovery: everything arrives, the queue drains
    let all_arrived = wait_until(Duration::from_secs(30), || async { hook.deliveries().0 >= expected }).await;
    let drained = wait_until(Duration::from_secs(10), || async {
        api.metric("push_queue_depth").await == Some(0.0)
    })
    .await
    .map(|_| t_up.elapsed());
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby') GROUP BY status ORDER BY status")
            .fetch_all(&db)
            .await
            .expect("deliveries");
    let attempts: (Option<i64>, Option<i32>) = sqlx::query_as("SELECT sum(attempts), max(attempts) FROM deliveries WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby')")
        .fetch_one(&db)
        .await
        .expect("attempts");
    let retried = api.metric("push_retried_total").await.unwrap_or(0.0);
    let (deliveries, twice) = hook.deliveries();
    let (_, _, bad_signatures, requests) = hook.failures();

    say(
        S,
        format!(
            "after recovery: all {expected} deliveries arrived after {} ms, queue depth 0 after {} ms; \
             deliveries {statuses:?}",
            all_arrived.map_or("—".into(), |d| ms(d).to_string()),
            drained.map_or("—".into(), |d| ms(d).to_string()),
        ),
    );
    say(
        S,
        format!(
            "provider requests {requests}, retries scheduled {retried}, attempts per delivery up to {}, \
             total {}; accepted {deliveries}, duplicates {twice}, lost = {}",
            attempts.1.unwrap_or(0),
            attempts.0.unwrap_or(0),
            expected.saturating_sub(deliveries)
        ),
    );

    assert!(max_depth >= 1.0, "the queue depth never showed the backlog");
    assert!(all_arrived.is_some(), "not every delivery arrived: {statuses:?}");
    assert!(drained.is_some(), "the queue depth did not drain to 0");
    assert_eq!(deliveries, expected, "deliveries accepted by the provider");
    assert_eq!(twice, 0, "deliveries accepted twice");
    assert_eq!(
        statuses,
        vec![("delivered".to_string(), expected as i64)],
        "every delivery delivered"
    );
    assert!(retried >= 1.0, "nothing was retried");
    assert_eq!(bad_signatures, 0, "webhook signatures did not verify");
}
