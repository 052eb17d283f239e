//! Scenario 2: PostgreSQL is restarted (`pg_ctl -m fast stop`, then `start`) while users check
//! in, connect and get notified.
//!
//! Requests that need PostgreSQL during the outage get 503 problem+json with `Retry-After`
//! within the store timeout (+ a margin); the pool reconnects by itself. Then what the clients
//! saw accepted is compared with what the database holds: every check-in answered 201 (or a later
//! one) is the user's live row, every connection accepted exists, every notification a recipient
//! listed still exists and was delivered; the webhook stand-in received each delivery and each
//! notification exactly once, and no pair was notified twice; no user is left in two cells by a
//! check-in whose commit failed.

use crate::Stores;
use crate::client::{Api, Counts, Log, User, around, ms, say, wait_until};
use crate::infra::Server;
use crate::webhook::{Mode, Receiver};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const S: &str = "postgres-restart";
const RECIPIENTS: usize = 4;
const ACTORS: usize = 12;
const LATE: usize = 4;
const CENTRE: (f64, f64) = (48.8566, 2.3522);
/// About 55 km south: outside every notify radius.
const FAR: (f64, f64) = (48.36, 2.3522);
const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(1_500);

/// Per user: every check-in attempt (client id, status or `None` without an answer), in order.
type Attempts = Arc<Mutex<Vec<Vec<(String, Option<u16>)>>>>;

pub async fn scenario(st: Stores) {
    // a provider that takes a while: sends are in flight when PostgreSQL goes away
    let hook = Receiver::start(Mode::Slow(Duration::from_millis(400))).await;
    let server = Server::start(&st.scratch, &st.env()).await;
    let api = Api::new(&server.base);

    let mut recipients = Vec::new();
    for k in 0..RECIPIENTS {
        let r = api.register(&format!("recipient{k}")).await;
        api.share(&r).await;
        api.add_webhook(&r, &format!("{}/r{k}", hook.url)).await;
        api.checkin_ok(&r, around(CENTRE, 300.0)).await;
        recipients.push(r);
    }
    let mut actors = Vec::new();
    for i in 0..ACTORS + LATE {
        let a = api.register(&format!("actor{i}")).await;
        api.share(&a).await;
        if i < ACTORS {
            for r in &recipients {
                api.connect(&a, r).await;
            }
        }
        api.checkin_ok(&a, around(FAR, 1_000.0)).await;
        actors.push(a);
    }

    let log = Log::default();
    let stop = Arc::new(AtomicBool::new(false));
    let attempts: Attempts = Arc::new(Mutex::new(vec![Vec::new(); ACTORS + LATE]));
    let accepted_pairs: Arc<Mutex<Vec<(Uuid, Uuid)>>> = Arc::default();
    let seen_notifications: Arc<Mutex<HashSet<String>>> = Arc::default();
    let t0 = Instant::now();
    let mut tasks = Vec::new();

    // actors: far away, then (one every 300 ms) arriving near the recipients and moving there;
    // the late ones first connect with every recipient (who accepts), retrying what gets 503
    for (i, a) in actors.iter().cloned().enumerate() {
        let (api, log, stop, attempts) = (api.clone(), log.clone(), stop.clone(), attempts.clone());
        let (recipients, accepted_pairs) = (recipients.clone(), accepted_pairs.clone());
        tasks.push(tokio::spawn(async move {
            if i >= ACTORS {
                for r in &recipients {
                    if connect_under_load(&api, &log, &stop, &a, r).await {
                        accepted_pairs.lock().expect("pairs").push((a.id, r.id));
                    }
                }
            }
            let arrive = t0 + Duration::from_millis(300 * i as u64);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let at = if Instant::now() >= arrive {
                    around(CENTRE, 1_000.0)
                } else {
                    around(FAR, 1_000.0)
                };
                n += 1;
                let cid = format!("a{i}-{n}");
                let ans = api.checkin(&a, at, Some(&cid)).await;
                attempts.lock().expect("attempts")[i].push((cid, ans.status));
                log.push(ans);
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }));
    }
    // recipients: list their notifications (what they saw must never vanish) and who is nearby
    for r in recipients.iter().cloned() {
        let (api, log, stop, seen) = (api.clone(), log.clone(), stop.clone(), seen_notifications.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let ans = api
                    .get("notifications", "/v1/notifications?limit=200", Some(&r.token))
                    .await;
                if ans.is(200) {
                    let mut seen = seen.lock().expect("seen");
                    for n in ans.body["items"].as_array().into_iter().flatten() {
                        if let Some(id) = n["id"].as_str() {
                            seen.insert(id.to_string());
                        }
                    }
                }
                log.push(ans);
                log.push(api.nearby(&r, 5_000).await);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_stop = Instant::now();
    st.pg.stop_fast().await;
    let t_down = Instant::now();
    say(S, format!("PostgreSQL stopped (fast) in {} ms", ms(t_down - t_stop)));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_restart = Instant::now();
    st.pg.start_again().await;
    let t_up = Instant::now();
    say(
        S,
        format!("PostgreSQL started again; down for {} ms", ms(t_up - t_down)),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }

    // let the last arrival detections and the worker finish
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let drained = wait_until(Duration::from_secs(30), || async {
        let n: Option<(i64,)> =
            sqlx::query_as("SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')")
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
        n.is_some_and(|(n,)| n == 0)
    })
    .await;
    let ready = api.get("readyz", "/readyz", None).await;

    // what the clients got
    let answers = log.all();
    let c = Counts::of(&answers);
    let transport: Vec<_> = answers.iter().filter(|a| a.status.is_none()).collect();
    let improper: Vec<_> = answers.iter().filter(|a| a.is(503) && !a.is_proper_503()).collect();
    let slow: Vec<_> = answers
        .iter()
        .filter(|a| a.end > t_stop && a.start < t_up && a.elapsed() > STORE_TIMEOUT + MARGIN)
        .collect();
    let checkins_down: Vec<_> = answers
        .iter()
        .filter(|a| a.what == "checkin" && a.start > t_down && a.end < t_restart)
        .collect();
    let checkins_down_not_503 = checkins_down.iter().filter(|a| !a.is(503)).count();
    let nearby_down = Counts::of(
        answers
            .iter()
            .filter(|a| a.what == "nearby" && a.start > t_down && a.end < t_restart),
    );
    let after_201 = answers.iter().filter(|a| a.start > t_up && a.is(201)).count();

    // check-ins: the live row is the last accepted attempt or a later one
    let rows: Vec<(Uuid, Option<String>)> = sqlx::query_as("SELECT user_id, client_id FROM live_locations")
        .fetch_all(&db)
        .await
        .expect("live rows");
    let in_db: HashMap<Uuid, Option<String>> = rows.into_iter().collect();
    let (mut lost_checkins, mut answered_503_but_committed, mut accepted_checkins) = (0, 0, 0);
    for (a, tries) in actors.iter().zip(attempts.lock().expect("attempts").iter()) {
        accepted_checkins += tries.iter().filter(|(_, s)| *s == Some(201)).count();
        let Some(last_ok) = tries.iter().rposition(|(_, s)| *s == Some(201)) else {
            continue;
        };
        let row = in_db.get(&a.id).cloned().flatten();
        match tries.iter().position(|(cid, _)| Some(cid) == row.as_ref()) {
            Some(j) if j == last_ok => {}
            Some(j) if j > last_ok => answered_503_but_committed += 1,
            _ => lost_checkins += 1,
        }
    }

    // connections accepted under load
    let conns: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT user_id, peer_id FROM connections")
        .fetch_all(&db)
        .await
        .expect("connections");
    let conns: HashSet<(Uuid, Uuid)> = conns.into_iter().collect();
    let pairs = accepted_pairs.lock().expect("pairs").clone();
    let lost_connections = pairs
        .iter()
        .filter(|(a, b)| !conns.contains(&(*a, *b)) || !conns.contains(&(*b, *a)))
        .count();

    // notifications: none lost, none twice
    let all_notes: Vec<(Uuid, Uuid, Uuid, String)> =
        sqlx::query_as("SELECT id, user_id, actor_user_id, kind FROM notifications")
            .fetch_all(&db)
            .await
            .expect("notifications");
    let note_ids: HashSet<String> = all_notes.iter().map(|(id, _, _, _)| id.to_string()).collect();
    // arrivals: what the scenario counts (connecting notifies too)
    let notes: Vec<(Uuid, Uuid, Uuid)> = all_notes
        .iter()
        .filter(|n| n.3 == "connection_nearby")
        .map(|(id, u, a, _)| (*id, *u, *a))
        .collect();
    let mut per_pair: HashMap<(Uuid, Uuid), usize> = HashMap::new();
    for (_, u, a) in &notes {
        *per_pair.entry((*u, *a)).or_default() += 1;
    }
    let pair_twice = per_pair.values().filter(|n| **n > 1).count();
    let expected_pairs = ACTORS * RECIPIENTS + pairs.len();
    let seen = seen_notifications.lock().expect("seen").clone();
    let vanished = seen.difference(&note_ids).count();
    let statuses: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM deliveries
              WHERE notification_id IN (SELECT id FROM notifications WHERE kind = 'connection_nearby')
              GROUP BY status ORDER BY status",
    )
    .fetch_all(&db)
    .await
    .expect("deliveries");
    let delivered_rows = statuses.iter().find(|(s, _)| s == "delivered").map_or(0, |(_, n)| *n) as usize;
    let (hook_deliveries, hook_delivery_twice) = hook.deliveries();
    let (hook_notes, hook_note_twice) = hook.notifications();
    let (_, _, bad_signatures, _) = hook.failures();
    let sent_while_down = hook.accepted_between(t_stop, t_up);
    let memberships = crate::redis_restart::cell_memberships(&st.redis.url()).await;
    let twice_in_cells = memberships.values().filter(|n| **n > 1).count();

    say(S, format!("all requests: {}", c.line()));
    say(
        S,
        format!(
            "check-ins: {}",
            Counts::of(answers.iter().filter(|a| a.what == "checkin")).line()
        ),
    );
    say(
        S,
        format!(
            "during the outage: {} check-ins, {} of them 503 problem+json with Retry-After; nearby (Redis only) {}; \
             slowest 503 {} ms (store timeout {} ms); transport errors {}; 500s {}",
            checkins_down.len(),
            checkins_down.len() - checkins_down_not_503,
            nearby_down.line(),
            ms(c.max_503),
            ms(STORE_TIMEOUT),
            transport.len(),
            c.n("500")
        ),
    );
    say(
        S,
        format!(
            "pool reconnected: {after_201} check-ins answered 201 after the restart; /readyz {:?}",
            ready.status
        ),
    );
    say(
        S,
        format!(
            "accepted: {accepted_checkins} check-ins, {} connections under load, {} notifications ({} listed by \
             recipients); deliveries {statuses:?}",
            pairs.len(),
            notes.len(),
            seen.len()
        ),
    );
    say(
        S,
        format!(
            "webhook: {hook_deliveries} deliveries ({sent_while_down} sent while PostgreSQL was down), {hook_notes} \
             notifications, duplicates {}; pairs notified {} of {expected_pairs}, twice {pair_twice}; \
             (user, resolution) in two cells {twice_in_cells}",
            hook_delivery_twice + hook_note_twice,
            per_pair.len()
        ),
    );
    say(
        S,
        format!(
            "lost = {} (check-ins {lost_checkins}, connections {lost_connections}, notifications {vanished}); \
             check-ins answered 503 but committed: {answered_503_but_committed}",
            lost_checkins + lost_connections + vanished
        ),
    );

    assert!(
        transport.is_empty(),
        "requests without an HTTP answer: {:?}",
        &transport[..transport.len().min(3)]
    );
    assert_eq!(c.other(&["200", "201", "503"]), 0, "unexpected statuses: {}", c.line());
    assert!(
        improper.is_empty(),
        "503s not as the contract says: {:?}",
        &improper[..improper.len().min(3)]
    );
    assert!(
        slow.is_empty(),
        "answers slower than the store timeout + margin: {:?}",
        &slow[..slow.len().min(3)]
    );
    assert!(!checkins_down.is_empty(), "no check-in was made during the outage");
    assert_eq!(
        checkins_down_not_503,
        0,
        "check-ins during the outage that were not 503: {}",
        Counts::of(checkins_down.iter().copied()).line()
    );
    assert!(after_201 > 0 && ready.is(200), "the pool did not reconnect");
    assert!(drained.is_some(), "the outbox did not drain: {statuses:?}");
    assert_eq!(lost_checkins, 0, "accepted check-ins lost");
    assert_eq!(lost_connections, 0, "accepted connections lost");
    assert_eq!(vanished, 0, "notifications a recipient saw are gone");
    assert_eq!(pair_twice, 0, "a pair was notified twice");
    assert_eq!(per_pair.len(), expected_pairs, "arrivals not notified");
    assert_eq!(delivered_rows, notes.len(), "deliveries not delivered: {statuses:?}");
    assert_eq!(
        hook_deliveries,
        notes.len(),
        "the webhook did not receive every delivery"
    );
    assert_eq!(
        hook_notes,
        notes.len(),
        "the webhook did not receive every notification"
    );
    assert_eq!(
        hook_delivery_twice + hook_note_twice,
        0,
        "duplicate deliveries at the webhook"
    );
    assert_eq!(bad_signatures, 0, "webhook signatures did not verify");
    assert_eq!(twice_in_cells, 0, "users in two cells of one resolution");
}

/// `a` asks `r` and `r` accepts, each retried while it answers 503 (until the load stops);
/// true when the accept was answered 200.
async fn connect_under_load(api: &Api, log: &Log, stop: &AtomicBool, a: &User, r: &User) -> bool {
    let mut request_id = None;
    while request_id.is_none() && !stop.load(Ordering::SeqCst) {
        let ans = api
            .post(
                "request",
                "/v1/connections/requests",
                Some(&a.token),
                json!({"to_user_id": r.id}),
            )
            .await;
        if ans.is(201) {
            request_id = Some(ans.str("id"));
        }
        log.push(ans);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let Some(id) = request_id else { return false };
    while !stop.load(Ordering::SeqCst) {
        let ans = api
            .post(
                "accept",
                &format!("/v1/connections/requests/{id}/accept"),
                Some(&r.token),
                json!({}),
            )
            .await;
        let done = ans.is(200);
        log.push(ans);
        if done {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    false
}
