//! Scenario: a Redis Cluster master (3 masters, 3 replicas) is SIGKILLed under check-in and
//! nearby load, and its replica — made to lag first, as asynchronous replication allows — is
//! promoted without the master's last writes.
//!
//! To make the loss certain rather than a matter of luck, the replica is stopped (SIGSTOP) and
//! the master is written 32 MiB of filler under a hash tag of its own slots, so that what it
//! accepts next waits in its replication buffer (past the kernel's socket buffers); meanwhile
//! the load goes on, and one user whose record lives on that master leaves. Then the master is
//! killed and the replica resumed and promoted: its shard lacks those moves and that leave.
//!
//! Counted: the requests that failed (503 problem+json, no 500, no hang) and for how long; the
//! slot ranges found lost and the entries repaired. Shown: every user whose check-in was
//! answered 201 is at the cell of their last accepted check-in, and the user who left is not
//! listed, within 10 s of the promotion (lost for good: 0); no entry was "repaired" before the
//! failover (the reconciliation never overwrites a correct entry under churn); and a record
//! deleted behind the server's back is put back by the paced reconciliation.

use crate::Stores;
use crate::client::{Api, Counts, Log, User, around, ms, say, wait_until};
use crate::cluster::{Cluster, NODE_TIMEOUT_MS, cli};
use crate::infra::{Server, with};
use hereabouts::store::reconcile::{key_slot, slot_of};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A user's record key under this suite's prefix (`store::index::record_key`'s format: the
/// prefix, then the user's 16 bytes in the hash tag).
fn record_key(user: Uuid) -> Vec<u8> {
    let mut key = b"hbf:rec:{".to_vec();
    key.extend_from_slice(user.as_bytes());
    key.push(b'}');
    key
}

/// The slot of a user's record.
fn record_slot(user: Uuid) -> u16 {
    key_slot(&record_key(user))
}

const S: &str = "cluster-failover";
const USERS: usize = 18;
const CENTRE: (f64, f64) = (48.8566, 2.3522);
const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(1_500);
const CORRECT_WITHIN: Duration = Duration::from_secs(10);

pub async fn scenario(st: Stores) {
    let mut cluster = Cluster::start(&st.bins, &st.scratch).await;
    let url = cluster.url();
    let env = with(
        st.env(),
        &[
            ("HEREABOUTS_REDIS_URL", url.as_str()),
            ("HEREABOUTS_RECONCILE_INTERVAL_MS", "100"),
            ("HEREABOUTS_RECONCILE_PAGE", "500"),
        ],
    );
    let server = Server::start(&st.scratch, &env).await;
    let api = Api::new(&server.base).with_metrics(&server.metrics_base);
    // the first marking of the 16 slot ranges (an empty cluster has none)
    let marked = wait_until(Duration::from_secs(10), || async {
        api.metric("index_slot_range_losses_total").await.unwrap_or(0.0) >= 16.0
    })
    .await;
    assert!(marked.is_some(), "the slot ranges were never marked");

    let hub = api.register("hub").await;
    api.share(&hub).await;
    api.checkin_ok(&hub, CENTRE).await;
    let mut users = Vec::new();
    for i in 0..USERS {
        let u = api.register(&format!("user{i}")).await;
        api.share(&u).await;
        api.connect(&u, &hub).await;
        api.checkin_ok(&u, around(CENTRE, 2_000.0)).await;
        users.push(u);
    }
    // the victim: the master holding the first user's record; that user will leave
    let topo = cluster.topology();
    let leaver = users.remove(0);
    let victim = topo
        .iter()
        .find(|n| n.master && n.serves(record_slot(leaver.id)))
        .expect("a master serves the leaver's record")
        .clone();
    let replica = topo
        .iter()
        .find(|n| !n.master && n.of == victim.id)
        .expect("the victim has a replica")
        .clone();
    let on_victim = users.iter().filter(|u| victim.serves(record_slot(u.id))).count();
    say(
        S,
        format!(
            "3 masters + 3 replicas; victim master :{} (slots {:?}) holds the records of {on_victim} of {} moving users (they stop just before the kill) and of the leaver",
            victim.port,
            victim.slots,
            users.len()
        ),
    );

    let accepted: Arc<Mutex<HashMap<Uuid, String>>> = Arc::new(Mutex::new(HashMap::new()));
    for u in &users {
        let a = api.get("current", "/v1/checkins/current", Some(&u.token)).await;
        accepted.lock().expect("accepted").insert(u.id, a.str("h3_cell"));
    }
    let log = Log::default();
    let stop = Arc::new(AtomicBool::new(false));
    // the users whose records live on the victim stop just before the kill: their last accepted
    // check-in is one the replica lacks, and nothing but the repair brings it back
    let freeze = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for u in users.iter().cloned() {
        let (api, log, stop, accepted) = (api.clone(), log.clone(), stop.clone(), accepted.clone());
        let (freeze, frozen) = (freeze.clone(), victim.serves(record_slot(u.id)));
        tasks.push(tokio::spawn(async move {
            while !(stop.load(Ordering::SeqCst) || frozen && freeze.load(Ordering::SeqCst)) {
                let a = api.checkin(&u, around(CENTRE, 2_000.0), None).await;
                if a.is(201) {
                    accepted.lock().expect("accepted").insert(u.id, a.str("h3_cell"));
                }
                log.push(a);
                log.push(api.nearby(&u, 5_000).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let repaired_before = api.metric("index_reconcile_repaired_total").await.unwrap_or(-1.0);
    let checked_before = api.metric("index_reconcile_checked_total").await.unwrap_or(0.0);
    let losses_before = api.metric("index_slot_range_losses_total").await.unwrap_or(0.0);

    // the replica lags: stopped, and its master's buffers filled
    cluster.signal(replica.port, "STOP");
    let tag = (0u32..)
        .map(|n| format!("f{n}"))
        .find(|t| victim.serves(slot_of(t)))
        .unwrap_or_default();
    let filler = vec![b'x'; 1 << 20];
    let mut direct = redis::Client::open(format!("redis://127.0.0.1:{}", victim.port))
        .expect("victim url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the victim master");
    for i in 0..32 {
        let _: () = redis::cmd("SET")
            .arg(format!("filler:{{{tag}}}:{i}"))
            .arg(&filler)
            .query_async(&mut direct)
            .await
            .expect("filler written");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let left = api
        .call(
            "leave",
            reqwest::Method::DELETE,
            "/v1/checkins/current",
            Some(&leaver.token),
            None,
        )
        .await;
    assert!(left.is(204), "the leaver's DELETE: {left:?}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    freeze.store(true, Ordering::SeqCst);
    // a request under way when the flag was set is answered before the kill
    tokio::time::sleep(Duration::from_millis(150)).await;
    let t_kill = Instant::now();
    cluster.kill(victim.port);
    cluster.signal(replica.port, "CONT");
    say(S, "victim master SIGKILLed; its lagging replica resumed");
    // how soon the repair shows the frozen users at their last accepted cells and the leaver gone
    let repaired_at = {
        let (api, hub, accepted) = (api.clone(), hub.clone(), accepted.clone());
        let frozen: Vec<Uuid> = users
            .iter()
            .filter(|u| victim.serves(record_slot(u.id)))
            .map(|u| u.id)
            .collect();
        let leaver = leaver.id;
        tokio::spawn(async move {
            let want: HashMap<Uuid, String> = {
                let a = accepted.lock().expect("accepted");
                frozen.iter().filter_map(|id| Some((*id, a.get(id)?.clone()))).collect()
            };
            wait_until(Duration::from_secs(20), || async {
                visible(&api, &hub)
                    .await
                    .is_some_and(|v| !v.contains_key(&leaver) && want.iter().all(|(id, cell)| v.get(id) == Some(cell)))
            })
            .await
            .map(|_| Instant::now())
        })
    };
    let promoted = wait_until(Duration::from_secs(20), || async {
        cli(replica.port, &["role"]).starts_with("master")
    })
    .await;
    let t_promoted = Instant::now();
    assert!(promoted.is_some(), "the replica was not promoted");
    say(
        S,
        format!(
            "replica :{} promoted {} ms after the kill (node timeout {NODE_TIMEOUT_MS} ms)",
            replica.port,
            ms(t_promoted - t_kill)
        ),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }

    // after the load: everyone at their last accepted cell, the leaver gone
    let expected: HashMap<Uuid, String> = accepted.lock().expect("accepted").clone();
    let correct = wait_until(CORRECT_WITHIN.saturating_sub(t_promoted.elapsed()), || async {
        visible(&api, &hub)
            .await
            .is_some_and(|v| !v.contains_key(&leaver.id) && expected.iter().all(|(id, cell)| v.get(id) == Some(cell)))
    })
    .await
    .map(|_| t_promoted.elapsed());
    let repaired_at = repaired_at.await.expect("poller");
    let seen = visible(&api, &hub).await.unwrap_or_default();
    let lost: Vec<String> = users
        .iter()
        .filter(|u| seen.get(&u.id) != expected.get(&u.id))
        .map(|u| {
            format!(
                "{}: shown {:?}, accepted {:?}",
                u.name,
                seen.get(&u.id),
                expected.get(&u.id)
            )
        })
        .collect();
    let leaver_shown = seen.contains_key(&leaver.id);
    let repaired = api.metric("index_reconcile_repaired_total").await.unwrap_or(0.0) - repaired_before;
    let checked = api.metric("index_reconcile_checked_total").await.unwrap_or(0.0) - checked_before;
    let losses = api.metric("index_slot_range_losses_total").await.unwrap_or(0.0) - losses_before;

    // what the clients got
    let answers = log.all();
    let c = Counts::of(&answers);
    let failed: Vec<&crate::client::Answer> = answers
        .iter()
        .filter(|a| !matches!(a.status, Some(200 | 201)))
        .collect();
    let window = match (failed.iter().map(|a| a.start).min(), failed.iter().map(|a| a.end).max()) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let improper = failed.iter().filter(|a| !a.is_proper_503()).count();
    let slow = answers
        .iter()
        .filter(|a| a.is(503) && a.elapsed() > STORE_TIMEOUT + MARGIN)
        .count();
    let checkins = Counts::of(answers.iter().filter(|a| a.what == "checkin"));
    let nearby = Counts::of(answers.iter().filter(|a| a.what == "nearby"));

    // a silent loss the markers cannot see: the paced walk puts it back
    let quiet = users.last().expect("a user").clone();
    let nodes: Vec<String> = cluster
        .topology()
        .iter()
        .filter(|n| !n.failed)
        .map(|n| format!("redis://127.0.0.1:{}", n.port))
        .collect();
    let cc = redis::cluster::ClusterClient::new(nodes).expect("cluster client");
    let mut con = cc.get_async_connection().await.expect("cluster connection");
    let _: i64 = redis::cmd("DEL")
        .arg(record_key(quiet.id))
        .query_async(&mut con)
        .await
        .expect("DEL a record");
    let t_del = Instant::now();
    let gone = wait_until(Duration::from_secs(2), || async {
        visible(&api, &hub).await.is_some_and(|v| !v.contains_key(&quiet.id))
    })
    .await;
    let back = wait_until(Duration::from_secs(10), || async {
        visible(&api, &hub)
            .await
            .is_some_and(|v| v.get(&quiet.id) == expected.get(&quiet.id))
    })
    .await
    .map(|_| t_del.elapsed());

    say(S, format!("all requests: {}", c.line()));
    say(S, format!("check-ins: {}", checkins.line()));
    say(S, format!("nearby: {}", nearby.line()));
    say(
        S,
        format!(
            "failed: {} requests (all 503 problem+json with Retry-After: {}), from the first to the last {} ms; \
             slowest 503 {} ms; over the bound {slow}; 500s {}",
            failed.len(),
            improper == 0,
            ms(window),
            ms(c.max_503),
            c.n("500")
        ),
    );
    say(
        S,
        format!(
            "repair: {losses} slot ranges found failed over; {repaired} entries repaired ({checked} checks); \
             repaired before the failover {repaired_before}; correct (all {} at their last accepted cells, \
             the leaver gone) {} ms after the promotion (bound {} ms)",
            users.len(),
            correct.map_or("—".to_string(), |d| ms(d).to_string()),
            ms(CORRECT_WITHIN)
        ),
    );
    say(
        S,
        format!(
            "the {on_victim} users stopped before the kill at their last accepted cells and the leaver gone {} ms after the promotion",
            repaired_at.map_or("—".to_string(), |t| ms(t.saturating_duration_since(t_promoted))
                .to_string())
        ),
    );
    say(
        S,
        format!(
            "lost for good = {} (accepted check-ins not shown); leaver still shown = {leaver_shown}; \
             a record deleted behind the server's back: gone {}, back after {} ms (paced walk, 100 ms a page)",
            lost.len(),
            gone.is_some(),
            back.map_or("—".to_string(), |d| ms(d).to_string())
        ),
    );

    assert_eq!(c.n("transport-error"), 0, "requests without an HTTP answer");
    assert_eq!(c.other(&["200", "201", "503"]), 0, "unexpected statuses: {}", c.line());
    assert_eq!(improper, 0, "failures that were not 503 problem+json with Retry-After");
    assert_eq!(slow, 0, "503s slower than the store timeout + margin");
    assert_eq!(repaired_before, 0.0, "entries 'repaired' while nothing was lost");
    assert!(losses >= 1.0, "the failover was not noticed by the slot range markers");
    assert!(
        repaired >= 1.0,
        "the promoted replica lost nothing: the scenario did not make a loss"
    );
    assert!(
        correct.is_some(),
        "not repaired within 10 s: {lost:?}, leaver shown {leaver_shown}"
    );
    assert!(repaired_at.is_some(), "the users the replica lost were not repaired");
    assert!(
        back.is_some(),
        "the paced reconciliation did not put a deleted record back"
    );
}

/// The hub's nearby list: user → cell (`None` when the query failed).
async fn visible(api: &Api, hub: &User) -> Option<HashMap<Uuid, String>> {
    let a = api.nearby(hub, 5_000).await;
    if !a.is(200) {
        return None;
    }
    Some(
        a.body["items"]
            .as_array()?
            .iter()
            .filter_map(|i| Some((i["user_id"].as_str()?.parse().ok()?, i["h3_cell"].as_str()?.to_string())))
            .collect(),
    )
}
