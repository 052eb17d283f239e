//! Scenario 1: Redis is SIGKILLed and restarted empty while check-ins and nearby queries run.
//!
//! During the outage every request answers within the store timeout (+ a margin) with a 503
//! problem+json carrying `Retry-After`: no hang, no 500. After Redis returns, every user whose
//! check-in was answered 201 is visible again in nearby within 5 s (the index rebuilt from
//! PostgreSQL), at the cell of their last accepted check-in; PostgreSQL holds exactly the last
//! accepted check-in of every user; and in the cell sets of the prefix every user is a member of
//! exactly one cell per indexed resolution (none in two).

use crate::Stores;
use crate::client::{Api, Counts, Log, User, around, ms, say, wait_until};
use crate::infra::Server;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const S: &str = "redis-restart";
const USERS: usize = 16;
const CENTRE: (f64, f64) = (52.52, 13.405);
const STORE_TIMEOUT: Duration = Duration::from_millis(500);
/// What "within the configured timeout" allows on top of it (scheduling on a busy 2-core box).
const MARGIN: Duration = Duration::from_millis(1_500);
const VISIBLE_WITHIN: Duration = Duration::from_secs(5);

/// (check-in id, cell) of each user's last check-in answered 201.
type Accepted = Arc<Mutex<Vec<(String, String)>>>;

pub async fn scenario(mut st: Stores) {
    let server = Server::start(&st.scratch, &st.env()).await;
    let api = Api::new(&server.base).with_metrics(&server.metrics_base);
    let hub = api.register("hub").await;
    api.share(&hub).await;
    api.checkin_ok(&hub, CENTRE).await;
    let mut users = Vec::new();
    let mut first = Vec::new();
    for i in 0..USERS {
        let u = api.register(&format!("user{i}")).await;
        api.share(&u).await;
        api.connect(&u, &hub).await;
        let c = api.checkin_ok(&u, around(CENTRE, 2_000.0)).await;
        first.push((
            c["id"].as_str().unwrap_or_default().to_string(),
            c["h3_cell"].as_str().unwrap_or_default().to_string(),
        ));
        users.push(u);
    }
    let accepted: Accepted = Arc::new(Mutex::new(first));
    let log = Log::default();
    let stop = Arc::new(AtomicBool::new(false));

    // load: every user moves around (a new cell almost every time) and asks who is nearby
    let mut tasks = Vec::new();
    for (i, u) in users.iter().cloned().enumerate() {
        let (api, log, stop, accepted) = (api.clone(), log.clone(), stop.clone(), accepted.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                let a = api.checkin(&u, around(CENTRE, 2_000.0), None).await;
                if a.is(201) {
                    accepted.lock().expect("accepted")[i] = (a.str("id"), a.str("h3_cell"));
                }
                log.push(a);
                log.push(api.nearby(&u, 5_000).await);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let t_kill = Instant::now();
    st.redis.kill();
    say(S, "Redis SIGKILLed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t_restart = Instant::now();
    st.redis.start_again().await;
    let t_up = Instant::now();
    say(S, format!("Redis restarted empty after {} ms down", ms(t_up - t_kill)));

    // how long until the hub sees all its connections again, while the load goes on
    let all_visible = {
        let (api, hub) = (api.clone(), hub.clone());
        let ids: HashSet<Uuid> = users.iter().map(|u| u.id).collect();
        tokio::spawn(async move {
            wait_until(Duration::from_secs(10), || async {
                visible(&api, &hub)
                    .await
                    .is_some_and(|v| ids.iter().all(|id| v.contains_key(id)))
            })
            .await
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.expect("load task");
    }
    let all_visible = all_visible.await.expect("poller");

    // after the load: every user at the cell of their last accepted check-in, within 5 s of Redis
    let expected: HashMap<Uuid, String> = users
        .iter()
        .zip(accepted.lock().expect("accepted").iter())
        .map(|(u, (_, cell))| (u.id, cell.clone()))
        .collect();
    let left = VISIBLE_WITHIN.saturating_sub(t_up.elapsed());
    let exact = wait_until(left, || async {
        visible(&api, &hub)
            .await
            .is_some_and(|v| expected.iter().all(|(id, cell)| v.get(id) == Some(cell)))
    })
    .await
    .map(|_| t_up.elapsed());
    let seen = visible(&api, &hub).await.unwrap_or_default();
    let stale: Vec<String> = users
        .iter()
        .filter(|u| seen.get(&u.id) != expected.get(&u.id))
        .map(|u| {
            format!(
                "{}: nearby shows {:?}, last accepted {:?}",
                u.name,
                seen.get(&u.id),
                expected.get(&u.id)
            )
        })
        .collect();

    // what the clients got
    let answers = log.all();
    let c = Counts::of(&answers);
    let transport: Vec<&crate::client::Answer> = answers.iter().filter(|a| a.status.is_none()).collect();
    let improper: Vec<&crate::client::Answer> = answers.iter().filter(|a| a.is(503) && !a.is_proper_503()).collect();
    let slow: Vec<&crate::client::Answer> = answers
        .iter()
        .filter(|a| a.end > t_kill && a.start < t_up && a.elapsed() > STORE_TIMEOUT + MARGIN)
        .collect();
    let inside: Vec<&crate::client::Answer> = answers
        .iter()
        .filter(|a| a.start > t_kill + Duration::from_millis(50) && a.end < t_restart)
        .collect();
    let inside_not_503 = inside.iter().filter(|a| !a.is(503)).count();
    let checkins = Counts::of(answers.iter().filter(|a| a.what == "checkin"));
    let nearby = Counts::of(answers.iter().filter(|a| a.what == "nearby"));

    // what PostgreSQL holds: the last accepted check-in of every user
    let db = sqlx::PgPool::connect(&st.pg.url())
        .await
        .expect("connect to the private PostgreSQL");
    let rows: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT user_id, checkin_id FROM live_locations")
        .fetch_all(&db)
        .await
        .expect("live rows");
    let in_db: HashMap<Uuid, String> = rows.into_iter().map(|(u, c)| (u, c.to_string())).collect();
    let lost = users
        .iter()
        .zip(accepted.lock().expect("accepted").iter())
        .filter(|(u, (id, _))| in_db.get(&u.id) != Some(id))
        .count();

    // the cell sets: each live user in exactly one cell per resolution
    let memberships = cell_memberships(&st.redis.url()).await;
    let mut everyone: Vec<&User> = users.iter().collect();
    everyone.push(&hub);
    let mut twice = 0;
    let mut missing = 0;
    for u in &everyone {
        for res in [3u8, 5, 7, 9] {
            match memberships.get(&(u.id, res)).copied().unwrap_or(0) {
                0 => missing += 1,
                1 => {}
                _ => twice += 1,
            }
        }
    }
    let rebuilds = api.metric("index_rebuilds_total").await.unwrap_or(0.0);

    say(S, format!("all requests: {}", c.line()));
    say(S, format!("check-ins: {}", checkins.line()));
    say(S, format!("nearby: {}", nearby.line()));
    say(
        S,
        format!(
            "during the outage: {} requests, {} of them 503 problem+json with Retry-After; slowest 503 {} ms \
             (store timeout {} ms); transport errors {}; 500s {}",
            inside.len(),
            inside.len() - inside_not_503,
            ms(c.max_503),
            ms(STORE_TIMEOUT),
            transport.len(),
            c.n("500")
        ),
    );
    say(
        S,
        format!(
            "after Redis returned: index rebuilds {rebuilds}, all {USERS} users visible again after {} ms, \
             at their last accepted cells after {} ms (limit {} ms)",
            all_visible.map_or("—".to_string(), |d| ms(d).to_string()),
            exact.map_or("—".to_string(), |d| ms(d).to_string()),
            ms(VISIBLE_WITHIN)
        ),
    );
    say(
        S,
        format!(
            "lost = {lost} (accepted check-ins not in PostgreSQL); users in two cells = {twice}; missing memberships = {missing}"
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
    assert!(!inside.is_empty(), "no request was made during the outage");
    assert_eq!(
        inside_not_503,
        0,
        "requests during the outage that were not 503: {}",
        Counts::of(inside.iter().copied()).line()
    );
    assert!(
        all_visible.is_some_and(|d| d <= VISIBLE_WITHIN),
        "not all users visible again within 5 s"
    );
    assert!(
        exact.is_some(),
        "nearby does not show the last accepted cells within 5 s: {stale:?}"
    );
    assert_eq!(lost, 0, "accepted check-ins missing from PostgreSQL");
    assert_eq!(twice, 0, "users in two cells of one resolution");
    assert_eq!(missing, 0, "live users missing from the cell sets");
    assert!(rebuilds >= 1.0, "the index was not rebuilt");
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

/// (user, resolution) → how many cells of that resolution list the user, from every
/// `hbf:cell:*` sorted set.
pub async fn cell_memberships(url: &str) -> HashMap<(Uuid, u8), usize> {
    let client = redis::Client::open(url).expect("redis url");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to the private Redis");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("hbf:cell:*")
            .arg("COUNT")
            .arg(1_000)
            .query_async(&mut con)
            .await
            .expect("scan");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out: HashMap<(Uuid, u8), usize> = HashMap::new();
    for key in keys {
        let cell: h3o::CellIndex = key
            .rsplit(':')
            .next()
            .and_then(|c| c.parse().ok())
            .expect("a cell key ends with an H3 index");
        let members: Vec<Vec<u8>> = redis::cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut con)
            .await
            .expect("zrange");
        for m in members {
            let user = Uuid::from_slice(&m).expect("a member is 16 id bytes");
            *out.entry((user, u8::from(cell.resolution()))).or_default() += 1;
        }
    }
    out
}
