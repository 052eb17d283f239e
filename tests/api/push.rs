//! Push notifications, black-box: devices, arrival detection and its rules, the outbox and the
//! worker (retries, give-up, unregistered tokens, several workers, a worker dying or stopping),
//! against local stand-ins of APNs, FCM and a webhook receiver (see `standins`).
//!
//! Nothing here asserts on elapsed time: every wait polls with a deadline.

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use crate::standins::{self, Providers, Reply};
use hereabouts::push::worker::Worker;
use hereabouts::startup::Application;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// A connection's live point in London, and points at known distances from it.
const L: (f64, f64) = (51.5074, -0.1278);
/// About 500 m north of `L`.
const NORTH_500: (f64, f64) = (51.5119, -0.1278);
/// Far away (Paris, over 300 km).
const PARIS: (f64, f64) = (48.8566, 2.3522);

/// Bound on the waits left: for a worker of its own to reach a stand-in (the tests of workers).
const DEADLINE: Duration = Duration::from_secs(10);

/// Polls `check` until it holds; panics with `what` after the deadline.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Moves a point `north_m` metres north and `east_m` east (good enough at these distances).
fn offset(p: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
    let lat = p.0 + north_m / 111_200.0;
    let lng = p.1 + east_m / (111_200.0 * p.0.to_radians().cos());
    (lat, lng)
}

fn ios_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

fn fcm_token() -> String {
    format!(
        "fcm:{}-{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

async fn add_device(app: &TestApp, u: &TestUser, body: Value) -> Value {
    let r = app.post("/v1/devices", u.t(), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn notifications(app: &TestApp, u: &TestUser) -> Vec<Value> {
    let r = app.get("/v1/notifications?limit=500", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

async fn devices(app: &TestApp, u: &TestUser) -> Vec<Value> {
    let r = app.get("/v1/devices", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

async fn set_privacy(app: &TestApp, u: &TestUser, body: Value) {
    let r = app.patch("/v1/me/privacy", u.t(), body).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A user who shares and is live at `at`.
async fn live_user(app: &TestApp, name: &str, at: (f64, f64)) -> TestUser {
    let u = app.register(name).await;
    share(app, &u).await;
    checkin(app, &u, at.0, at.1).await;
    u
}

/// Runs what the check-ins so far set off: their arrival detections, then a worker over every
/// delivery due (directly, as a process's worker would).
async fn deliver(app: &TestApp) -> usize {
    app.ctx.checkins.settled().await;
    app.worker
        .get_or_init(|| Worker::new(app.ctx.clone()).expect("worker"))
        .deliver_due()
        .await
}

/// Drives detection (and, unless `state` is `pending`, delivery) until `u` has `n` notifications,
/// all in delivery state `state` (retries wait for their backoff: at most 50 rounds of 100 ms).
async fn wait_notified(app: &TestApp, u: &TestUser, n: usize, state: &str) -> Vec<Value> {
    for _ in 0..50 {
        if state == "pending" {
            // detection only: a pending delivery is what the test is about
            app.ctx.checkins.settled().await;
        } else {
            deliver(app).await;
        }
        let items = notifications(app, u).await;
        if items.len() == n && items.iter().all(|i| i["delivery"] == state) {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} does not have {n} notification(s) {state}: {:?}",
        u.email,
        notifications(app, u).await
    )
}

async fn metrics(app: &TestApp) -> String {
    app.metrics().await
}

/// The value of one metric series in Prometheus text (0 when absent).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// Asserts that a pushed document carries nothing of a place: no key naming one, no number or
/// text that could be a coordinate of the test area (London, lat 51.5, lng -0.13).
fn assert_no_location(v: &Value) {
    fn walk(v: &Value, doc: &Value) {
        match v {
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                assert!(
                    !(51.0..52.0).contains(&x) && !(-0.2..-0.05).contains(&x),
                    "a coordinate? {doc}"
                );
            }
            Value::String(s) => {
                let is_time = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok();
                assert!(
                    is_time || (!s.contains("51.5") && !s.contains("-0.1")),
                    "a coordinate? {doc}"
                );
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, doc)),
            Value::Object(map) => {
                for (k, item) in map {
                    let k = k.to_ascii_lowercase();
                    for word in ["lat", "lng", "lon", "cell", "h3", "point", "coord", "geo"] {
                        assert!(!k.contains(word), "a location field {k:?}: {doc}");
                    }
                    walk(item, doc);
                }
            }
            _ => {}
        }
    }
    walk(v, v);
}

async fn delivery_rows(app: &TestApp) -> Vec<(String, i32, Option<String>)> {
    sqlx::query_as("SELECT status, attempts, last_error FROM deliveries ORDER BY created_at")
        .fetch_all(&app.db)
        .await
        .expect("deliveries")
}

#[tokio::test]
async fn arrival_notifies_once_without_coordinates_and_moving_inside_does_not_renotify() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let bea = live_user(&app, "bea", L).await;
    let token = ios_token();
    add_device(&app, &bea, json!({"platform": "ios", "token": token})).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;

    // ann arrives within bea's 5 km: bea is notified, once
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    let items = wait_notified(&app, &bea, 1, "delivered").await;
    let n = &items[0];
    assert_eq!(n["kind"], "connection_nearby");
    assert_eq!(n["actor_user_id"], ann.id.as_str());
    assert_eq!(n["actor_display_name"], "ann");
    let d = n["distance_m"].as_i64().expect("distance");
    assert!((480..=520).contains(&d), "{d}");
    assert_eq!(d % 10, 0, "rounded like nearby");
    assert!(n["created_at"].is_string() && n["id"].is_string());
    assert!(
        notifications(&app, &ann).await.is_empty(),
        "the arriving user is not notified"
    );

    let hits = p.apns.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, format!("/3/device/{token}"));
    assert_eq!(hits[0].body["aps"]["alert"]["body"], format!("ann is nearby — {d} m"));
    for secret in ["51.5", "-0.12", "lat", "lng", "h3"] {
        assert!(
            !hits[0].raw.contains(secret),
            "the push carries no location: {}",
            hits[0].raw
        );
    }
    assert!(p.apns.problems().is_empty(), "{:?}", p.apns.problems());

    // moving around inside the area, leaving and coming back within the cooldown: nothing new.
    // Each stage brings ann into the small area of a fresh witness, whose notification shows that
    // the detection of that check-in ran.
    let stops = [offset(L, 0.0, 1_000.0), PARIS, offset(L, -1_000.0, 0.0)];
    let mut witnesses = vec![];
    for (i, stop) in stops.iter().enumerate() {
        let witness_at = if *stop == PARIS {
            offset(PARIS, 40.0, 0.0)
        } else {
            offset(*stop, 40.0, 0.0)
        };
        let w = live_user(&app, &format!("witness{i}"), witness_at).await;
        set_privacy(&app, &w, json!({"notify_radius_m": 100})).await;
        befriend(&app, &ann, &w).await;
        checkin(&app, &ann, stop.0, stop.1).await;
        wait_notified(&app, &w, 1, "no_device").await;
        witnesses.push(w);
    }
    assert_eq!(notifications(&app, &bea).await.len(), 1, "no new notification for bea");
    assert_eq!(p.apns.hits().len(), 1);
}

#[tokio::test]
async fn leaving_and_coming_back_after_the_cooldown_notifies_again() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    sqlx::query("UPDATE policy SET notification_cooldown_s = 1")
        .execute(&app.db)
        .await
        .expect("policy");
    // the instance's own refresh brings the policy (a reload here could be overtaken by one
    // that read the row before the update)
    eventually("the policy reached the instance", || async {
        app.ctx.controls.get().policy.notification_cooldown_s == 1
    })
    .await;
    let bea = live_user(&app, "bea", L).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "no_device").await;
    checkin(&app, &ann, PARIS.0, PARIS.1).await;
    // let the cooldown pass (a wait, not an assertion on time)
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 2, "no_device").await;
}

#[tokio::test]
async fn nobody_is_notified_who_could_not_see_the_arrival_in_nearby() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;

    let control = live_user(&app, "control", L).await;
    befriend(&app, &ann, &control).await;

    let quiet = live_user(&app, "quiet", L).await; // notify_nearby off
    befriend(&app, &ann, &quiet).await;
    set_privacy(&app, &quiet, json!({"notify_nearby": false})).await;

    let hidden = live_user(&app, "hidden", L).await; // ann hides from them
    befriend(&app, &ann, &hidden).await;

    let blocker = live_user(&app, "blocker", L).await; // blocked ann
    befriend(&app, &ann, &blocker).await;
    assert_eq!(
        app.put(&format!("/v1/blocks/{}", ann.id), blocker.t()).await.status,
        204
    );

    let blocked = live_user(&app, "blocked", L).await; // blocked by ann
    befriend(&app, &ann, &blocked).await;

    let stranger = live_user(&app, "stranger", L).await; // not connected

    let offline = app.register("offline").await; // connected, sharing, no live check-in
    share(&app, &offline).await;
    befriend(&app, &ann, &offline).await;

    let left = live_user(&app, "left", L).await; // left the index
    befriend(&app, &ann, &left).await;
    assert_eq!(app.delete("/v1/checkins/current", left.t()).await.status, 204);

    let paused = live_user(&app, "paused", L).await; // paused
    befriend(&app, &ann, &paused).await;
    set_privacy(&app, &paused, json!({"paused_until": "2099-01-01T00:00:00Z"})).await;

    let small = live_user(&app, "small", L).await; // radius 100 m, ann lands 500 m away
    befriend(&app, &ann, &small).await;
    set_privacy(&app, &small, json!({"notify_radius_m": 100})).await;

    let suspended = live_user(&app, "suspended", L).await;
    befriend(&app, &ann, &suspended).await;
    sqlx::query("UPDATE users SET suspended = true WHERE id = $1")
        .bind(suspended.uuid())
        .execute(&app.db)
        .await
        .expect("suspend");

    set_privacy(&app, &ann, json!({"hidden_from": [hidden.id]})).await;
    assert_eq!(
        app.put(&format!("/v1/blocks/{}", blocked.id), ann.t()).await.status,
        204
    );

    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &control, 1, "no_device").await;
    for u in [
        &quiet, &hidden, &blocker, &blocked, &stranger, &offline, &left, &paused, &small,
    ] {
        assert!(
            notifications(&app, u).await.is_empty(),
            "{} must not be notified",
            u.email
        );
    }
    // and the rule is the one of nearby: the control sees ann, the others do not
    let r = app.get("/v1/nearby", control.t()).await;
    assert_eq!(r.json()["items"][0]["user_id"], ann.id.as_str());
    // a suspended account may not read its list any more (403): the outbox says it
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM notifications WHERE user_id = $1")
        .bind(suspended.uuid())
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(n, 0, "the suspended user was not notified");
}

#[tokio::test]
async fn every_provider_delivers_with_valid_credentials_in_the_device_language() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let bea = live_user(&app, "bea", L).await;
    add_device(
        &app,
        &bea,
        json!({"platform": "ios", "token": ios_token(), "locale": "fr-FR"}),
    )
    .await;
    add_device(
        &app,
        &bea,
        json!({"platform": "android", "token": fcm_token(), "locale": "de"}),
    )
    .await;
    let hook = format!("{}/hooks/bea", p.webhook.url);
    add_device(&app, &bea, json!({"platform": "webhook", "token": hook})).await;

    for (i, name) in ["ann", "cid"].iter().enumerate() {
        let u = app.register(name).await;
        share(&app, &u).await;
        befriend(&app, &u, &bea).await;
        checkin(&app, &u, NORTH_500.0, NORTH_500.1).await;
        wait_notified(&app, &bea, i + 1, "delivered").await;
    }
    assert!(
        p.apns.hits().len() == 2 && p.fcm.hits().len() == 2 && p.webhook.hits().len() == 2,
        "each provider got both"
    );
    for s in [&p.apns, &p.fcm, &p.webhook] {
        assert!(s.problems().is_empty(), "{:?}", s.problems());
    }
    assert_eq!(p.fcm.token_calls(), 1, "the access token is cached");
    let apns = p.apns.hits();
    assert_eq!(
        apns[0].header("authorization"),
        apns[1].header("authorization"),
        "the provider token is reused"
    );
    assert!(
        apns[0].body["aps"]["alert"]["body"]
            .as_str()
            .expect("body")
            .contains("est à proximité")
    );
    let fcm = p.fcm.hits();
    assert!(
        fcm[0].body["message"]["notification"]["body"]
            .as_str()
            .expect("body")
            .contains("ist in der Nähe")
    );
    let wh = p.webhook.hits();
    assert_eq!(wh[0].path, "/hooks/bea");
    assert_eq!(wh[0].body["kind"], "connection_nearby");
    assert!(wh[0].body["body"].as_str().expect("body").contains("is nearby"));
    assert!(wh[0].header("x-hereabouts-delivery").is_some());
    for h in apns.iter().chain(&fcm).chain(&wh) {
        assert_no_location(&h.body);
    }
    let m = metrics(&app).await;
    assert_eq!(metric(&m, "push_sent_total{platform=\"ios\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "push_sent_total{platform=\"android\"}"), 2.0);
    assert_eq!(metric(&m, "push_sent_total{platform=\"webhook\"}"), 2.0);
    assert!(m.contains("push_queue_depth"), "{m}");
    assert!(m.contains("push_oldest_pending_age_seconds"), "{m}");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_delivered() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    p.apns.script([
        Reply::Status(500, json!({"reason": "InternalServerError"})),
        Reply::Status(503, json!({"reason": "ServiceUnavailable"})),
    ]);
    let bea = live_user(&app, "bea", L).await;
    add_device(&app, &bea, json!({"platform": "ios", "token": ios_token()})).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "delivered").await;
    let hits = p.apns.hits();
    assert_eq!(hits.len(), 3);
    // backoff base 200 ms doubling, jitter within the upper half: at least 100 ms, then 200 ms
    assert!(hits[1].at - hits[0].at >= Duration::from_millis(100));
    assert!(hits[2].at - hits[1].at >= Duration::from_millis(200));
    assert_eq!(
        hits[0].header("apns-id"),
        hits[2].header("apns-id"),
        "the same delivery"
    );
    let rows = delivery_rows(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("delivered", 3));
    let m = metrics(&app).await;
    assert_eq!(metric(&m, "push_retried_total{platform=\"ios\"}"), 2.0, "{m}");
    assert_eq!(metric(&m, "push_sent_total{platform=\"ios\"}"), 1.0, "{m}");
}

#[tokio::test]
async fn deliveries_give_up_after_the_attempt_limit() {
    let p = Providers::start().await;
    let app = p.app(&[("HEREABOUTS_PUSH_MAX_ATTEMPTS", "3")]).await;
    p.webhook.script((0..10).map(|_| Reply::Status(503, json!({}))));
    let bea = live_user(&app, "bea", L).await;
    add_device(
        &app,
        &bea,
        json!({"platform": "webhook", "token": format!("{}/h", p.webhook.url)}),
    )
    .await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "failed").await;
    assert_eq!(p.webhook.hits().len(), 3);
    let rows = delivery_rows(&app).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("failed", 3));
    assert!(rows[0].2.as_deref().unwrap_or("").contains("503"), "{:?}", rows[0].2);
    let m = metrics(&app).await;
    assert_eq!(
        metric(&m, "push_failed_total{platform=\"webhook\",reason=\"exhausted\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(metric(&m, "push_retried_total{platform=\"webhook\"}"), 2.0, "{m}");
    // the device stays active: the receiver was down, not gone
    assert_eq!(devices(&app, &bea).await[0]["active"], true);
}

#[tokio::test]
async fn gone_tokens_deactivate_their_devices() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    p.apns
        .script([Reply::Status(410, json!({"reason": "Unregistered", "timestamp": 0}))]);
    p.fcm.script([Reply::Status(404, standins::fcm_unregistered())]);
    p.webhook.script([Reply::Status(410, json!({}))]);
    let bea = live_user(&app, "bea", L).await;
    let token = ios_token();
    add_device(&app, &bea, json!({"platform": "ios", "token": token})).await;
    add_device(&app, &bea, json!({"platform": "android", "token": fcm_token()})).await;
    add_device(
        &app,
        &bea,
        json!({"platform": "webhook", "token": format!("{}/gone", p.webhook.url)}),
    )
    .await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "failed").await;
    assert!(
        devices(&app, &bea).await.iter().all(|d| d["active"] == false),
        "all three devices are deactivated"
    );
    let m = metrics(&app).await;
    assert_eq!(
        metric(&m, "push_failed_total{platform=\"ios\",reason=\"unregistered\"}"),
        1.0,
        "{m}"
    );

    // the next notification finds no active device
    let cid = app.register("cid").await;
    share(&app, &cid).await;
    befriend(&app, &cid, &bea).await;
    checkin(&app, &cid, NORTH_500.0, NORTH_500.1).await;
    deliver(&app).await;
    assert_eq!(
        notifications(&app, &bea).await.first().map(|n| n["delivery"].clone()),
        Some(json!("no_device")),
        "cid's notification has no device"
    );
    // registering the token again brings the device back
    let d = add_device(&app, &bea, json!({"platform": "ios", "token": token})).await;
    assert_eq!(d["active"], true);
}

#[tokio::test]
async fn two_workers_deliver_each_notification_exactly_once() {
    let p = Providers::start().await;
    let extra = [
        ("HEREABOUTS_PUSH_WORKER_ENABLED", "true"),
        ("HEREABOUTS_PUSH_BATCH_SIZE", "2"),
        ("HEREABOUTS_PUSH_POLL_INTERVAL_MS", "10"),
    ];
    let app = p.app(&extra).await;
    // a second instance on the same database and Redis prefix
    let mut settings = p.settings();
    for (k, v) in extra {
        settings.retain(|(a, _)| a != k);
        settings.push((k.into(), v.into()));
    }
    let refs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let second = Application::build(test_settings(&app.db_name, &app.prefix, &refs))
        .await
        .expect("second instance");
    let second_port = second.metrics_port().expect("a metrics listener");
    tokio::spawn(second.run_until_stopped());
    p.webhook.set_delay(Duration::from_millis(60));
    p.apns.set_delay(Duration::from_millis(60));

    let ann = app.register("ann").await;
    share(&app, &ann).await;
    let mut friends = vec![];
    for i in 0..8 {
        let b = live_user(&app, &format!("friend{i}"), offset(L, 0.0, 100.0 * f64::from(i))).await;
        befriend(&app, &ann, &b).await;
        add_device(&app, &b, json!({"platform": "ios", "token": ios_token()})).await;
        add_device(
            &app,
            &b,
            json!({"platform": "webhook", "token": format!("{}/f/{i}", p.webhook.url)}),
        )
        .await;
        friends.push(b);
    }
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    // the two instances' own workers deliver (the test does not)
    for b in &friends {
        eventually(&format!("{} is delivered", b.email), || async {
            notifications(&app, b).await.first().map(|n| n["delivery"].clone()) == Some(json!("delivered"))
        })
        .await;
    }
    eventually("all 16 sends arrived", || async {
        p.apns.hits().len() + p.webhook.hits().len() >= 16
    })
    .await;
    let ids: Vec<String> = p
        .apns
        .hits()
        .iter()
        .filter_map(|h| h.header("apns-id").map(str::to_string))
        .chain(
            p.webhook
                .hits()
                .iter()
                .filter_map(|h| h.header("x-hereabouts-delivery").map(str::to_string)),
        )
        .collect();
    assert_eq!(ids.len(), 16, "exactly one send per delivery");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 16, "no delivery sent twice");
    let rows = delivery_rows(&app).await;
    assert!(rows.iter().all(|r| r.0 == "delivered" && r.1 == 1), "{rows:?}");
    // both instances took part
    let sent =
        |m: &str| metric(m, "push_sent_total{platform=\"ios\"}") + metric(m, "push_sent_total{platform=\"webhook\"}");
    let first = sent(&metrics(&app).await);
    let other = sent(
        &app.client
            .get(format!("http://127.0.0.1:{second_port}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text"),
    );
    assert_eq!(first + other, 16.0);
    assert!(first > 0.0 && other > 0.0, "both workers delivered: {first} + {other}");
}

/// An app with a short lease (its workers are run by the test).
async fn app_without_worker(p: &Providers) -> TestApp {
    p.app(&[("HEREABOUTS_PUSH_LEASE_S", "1")]).await
}

/// bea with an iOS device, and ann arriving near her: one pending delivery.
async fn one_pending_delivery(app: &TestApp) -> TestUser {
    let bea = live_user(app, "bea", L).await;
    add_device(app, &bea, json!({"platform": "ios", "token": ios_token()})).await;
    let ann = app.register("ann").await;
    share(app, &ann).await;
    befriend(app, &ann, &bea).await;
    checkin(app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(app, &bea, 1, "pending").await;
    bea
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_does_not_lose_it() {
    let p = Providers::start().await;
    let app = app_without_worker(&p).await;
    let bea = one_pending_delivery(&app).await;
    p.apns.script([Reply::Hang]);
    let doomed = tokio::spawn(
        Worker::new(app.ctx.clone())
            .expect("worker")
            .run(std::future::pending()),
    );
    eventually("the first worker is mid-send", || async { p.apns.hits().len() == 1 }).await;
    doomed.abort(); // dies without releasing anything
    let _ = doomed.await;
    assert_eq!(
        delivery_rows(&app).await[0].0,
        "sending",
        "still leased to the dead worker"
    );

    let rescuer = tokio::spawn(
        Worker::new(app.ctx.clone())
            .expect("worker")
            .run(std::future::pending()),
    );
    wait_notified(&app, &bea, 1, "delivered").await;
    rescuer.abort();
    let hits = p.apns.hits();
    assert_eq!(hits.len(), 2, "sent again after the lease ran out");
    assert_eq!(hits[0].header("apns-id"), hits[1].header("apns-id"));
    let rows = delivery_rows(&app).await;
    assert_eq!((rows[0].0.as_str(), rows[0].1), ("delivered", 2));
}

#[tokio::test]
async fn a_stopping_worker_releases_what_it_claimed() {
    let p = Providers::start().await;
    let app = app_without_worker(&p).await;
    let bea = one_pending_delivery(&app).await;
    p.apns.script([Reply::Hang]);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::new(app.ctx.clone()).expect("worker").run(async {
        let _ = stopped.await;
    }));
    eventually("the worker is mid-send", || async { p.apns.hits().len() == 1 }).await;
    let _ = stop.send(());
    worker.await.expect("worker stops");
    let rows = delivery_rows(&app).await;
    assert_eq!(
        (rows[0].0.as_str(), rows[0].1),
        ("pending", 0),
        "handed back, attempt not counted"
    );
    let (lease,): (Option<time::OffsetDateTime>,) = sqlx::query_as("SELECT lease_until FROM deliveries")
        .fetch_one(&app.db)
        .await
        .expect("row");
    assert!(lease.is_none());
    assert_eq!(notifications(&app, &bea).await[0]["delivery"], "pending");
}

#[tokio::test]
async fn notifications_list_delivery_states_newest_first_in_pages() {
    let p = Providers::start().await;
    let app = app_without_worker(&p).await;
    let bea = live_user(&app, "bea", L).await;
    let mut actors = vec![];
    for (i, name) in ["ann", "cid", "dan"].iter().enumerate() {
        if i == 1 {
            add_device(&app, &bea, json!({"platform": "ios", "token": ios_token()})).await;
        }
        let u = app.register(name).await;
        share(&app, &u).await;
        befriend(&app, &u, &bea).await;
        checkin(&app, &u, NORTH_500.0, NORTH_500.1).await;
        // detection only: the deliveries stay pending
        app.ctx.checkins.settled().await;
        assert_eq!(
            notifications(&app, &bea).await.len(),
            i + 1,
            "the notification is written"
        );
        actors.push(u);
    }
    let r = app.get("/v1/notifications?limit=2", bea.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let page = r.json();
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["actor_display_name"], "dan");
    assert_eq!(items[0]["delivery"], "pending");
    assert_eq!(items[1]["actor_display_name"], "cid");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let r = app
        .get(&format!("/v1/notifications?limit=2&cursor={cursor}"), bea.t())
        .await;
    let page = r.json();
    assert_eq!(page["items"].as_array().expect("items").len(), 1);
    assert_eq!(page["items"][0]["actor_display_name"], "ann");
    assert_eq!(page["items"][0]["delivery"], "no_device");
    assert_eq!(page["next_cursor"], Value::Null);

    app.get("/v1/notifications?limit=0", bea.t())
        .await
        .assert_problem(422, "validation_failed");
    app.get("/v1/notifications?cursor=nope", bea.t())
        .await
        .assert_problem(400, "bad_request");
    app.get("/v1/notifications", None)
        .await
        .assert_problem(401, "unauthorized");
    let m = metrics(&app).await;
    assert_eq!(metric(&m, "push_queue_depth "), 2.0, "{m}");
}

#[tokio::test]
async fn devices_are_validated_idempotent_and_move_between_users() {
    let app = spawn_app_with(&[("HEREABOUTS_PUSH_MAX_DEVICES_PER_USER", "2")]).await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let token = ios_token();
    let first = add_device(&app, &ann, json!({"platform": "ios", "token": token})).await;
    assert_eq!(first["platform"], "ios");
    assert!(first["id"].is_string() && first["created_at"].is_string());
    assert!(first.get("token").is_none(), "tokens are not echoed");
    let again = add_device(&app, &ann, json!({"platform": "ios", "token": token.to_uppercase()})).await;
    assert_eq!(again["id"], first["id"], "re-registering is idempotent");
    assert_eq!(devices(&app, &ann).await.len(), 1);

    // the token moves to bob
    let moved = add_device(&app, &bob, json!({"platform": "ios", "token": token})).await;
    assert_ne!(moved["id"], first["id"]);
    assert!(devices(&app, &ann).await.is_empty());
    let id = moved["id"].as_str().expect("id");
    app.delete(&format!("/v1/devices/{id}"), ann.t())
        .await
        .assert_problem(404, "not_found");
    app.delete("/v1/devices/not-a-uuid", ann.t())
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.delete(&format!("/v1/devices/{id}"), bob.t()).await.status, 204);
    app.delete(&format!("/v1/devices/{id}"), bob.t())
        .await
        .assert_problem(404, "not_found");

    // validation
    let bad = |body: Value| {
        let app = &app;
        let ann = &ann;
        async move { app.post("/v1/devices", ann.t(), body).await }
    };
    bad(json!({"platform": "blackberry", "token": token}))
        .await
        .assert_problem(400, "bad_request");
    for body in [
        json!({"platform": "ios", "token": "not-hex"}),
        json!({"platform": "ios", "token": "ab"}),
        json!({"platform": "android", "token": "short"}),
        json!({"platform": "android", "token": "x".repeat(5_000)}),
        json!({"platform": "webhook", "token": "http://example.com/hook"}),
        json!({"platform": "webhook", "token": "https://127.0.0.1/hook"}),
        json!({"platform": "webhook", "token": "https://10.1.2.3/hook"}),
        json!({"platform": "webhook", "token": "https://169.254.169.254/latest"}),
        json!({"platform": "webhook", "token": "https://[::1]/hook"}),
        json!({"platform": "webhook", "token": "https://localhost/hook"}),
        json!({"platform": "webhook", "token": "https://user:pw@8.8.8.8/hook"}),
        json!({"platform": "webhook", "token": "not a url"}),
        json!({"platform": "ios", "token": ios_token(), "locale": "fr CA;"}),
    ] {
        let r = bad(body.clone()).await;
        let v = r.assert_problem(422, "validation_failed");
        assert!(v["errors"][0]["field"].is_string(), "{body}: {}", r.text);
    }
    app.post("/v1/devices", None, json!({"platform": "ios", "token": token}))
        .await
        .assert_problem(401, "unauthorized");

    // the per-user limit
    add_device(&app, &ann, json!({"platform": "ios", "token": ios_token()})).await;
    add_device(&app, &ann, json!({"platform": "android", "token": fcm_token()})).await;
    app.post("/v1/devices", ann.t(), json!({"platform": "ios", "token": ios_token()}))
        .await
        .assert_problem(409, "too_many_devices");
}

#[tokio::test]
async fn erasure_deletes_the_cooldown_keys_and_the_outbox() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let bea = live_user(&app, "bea", L).await;
    let cid = live_user(&app, "cid", L).await;
    add_device(&app, &bea, json!({"platform": "ios", "token": ios_token()})).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    befriend(&app, &ann, &cid).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "pending").await;
    wait_notified(&app, &cid, 1, "no_device").await;
    let cool = |who: String| {
        let app = &app;
        async move {
            app.ctx
                .redis
                .scan_keys(&format!("{}:cool:*", app.prefix))
                .await
                .expect("scan")
                .into_iter()
                .filter(|k| String::from_utf8_lossy(k).contains(&who))
                .count()
        }
    };
    assert_eq!(cool(ann.id.clone()).await, 2, "one key per pair");
    assert_eq!(cool(bea.id.clone()).await, 1);

    // the actor goes: the keys naming them go, and the notifications about them
    assert_eq!(app.delete("/v1/me", ann.t()).await.status, 204);
    assert_eq!(cool(ann.id.clone()).await, 0);
    assert!(notifications(&app, &bea).await.is_empty());
    assert!(notifications(&app, &cid).await.is_empty());
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM deliveries")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(left, 0);
    // a recipient goes: their devices go
    assert_eq!(app.delete("/v1/me", bea.t()).await.status, 204);
    let (devices_left,): (i64,) = sqlx::query_as("SELECT count(*) FROM devices")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(devices_left, 0);
}

#[tokio::test]
async fn the_daily_cap_bounds_notifications_per_user() {
    let p = Providers::start().await;
    let app = p.app(&[("HEREABOUTS_PUSH_DAILY_CAP", "1")]).await;
    let bea = live_user(&app, "bea", L).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "no_device").await;
    // cid arrives near bea (capped) and near a witness (not capped)
    let cid = app.register("cid").await;
    share(&app, &cid).await;
    befriend(&app, &cid, &bea).await;
    let witness = live_user(&app, "witness", offset(NORTH_500, 20.0, 0.0)).await;
    befriend(&app, &cid, &witness).await;
    checkin(&app, &cid, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &witness, 1, "no_device").await;
    assert_eq!(notifications(&app, &bea).await.len(), 1, "bea reached her cap");
}

#[tokio::test]
async fn notifications_follow_the_graph_and_keep_the_name_they_were_made_with() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let bea = live_user(&app, "bea", L).await;
    let ann = app.register("ann").await;
    share(&app, &ann).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    let items = wait_notified(&app, &bea, 1, "no_device").await;
    assert_eq!(items[0]["actor_display_name"], "ann");
    // a rename later does not rewrite what bea was told
    let r = app
        .patch("/v1/me", ann.t(), json!({"display_name": "Totally Someone Else"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(notifications(&app, &bea).await[0]["actor_display_name"], "ann");
    // a block, by either side, takes the notifications about each other out of both lists
    assert_eq!(app.put(&format!("/v1/blocks/{}", bea.id), ann.t()).await.status, 204);
    assert!(notifications(&app, &bea).await.is_empty());
    assert!(notifications(&app, &ann).await.is_empty());
}

#[tokio::test]
async fn notifications_are_read_by_id_or_up_to_one_and_muted_connections_notify_nobody() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let bea = live_user(&app, "bea", L).await;
    let (ann, cy) = (app.register("ann").await, app.register("cy").await);
    for u in [&ann, &cy] {
        share(&app, u).await;
        befriend(&app, u, &bea).await;
    }
    checkin(&app, &ann, NORTH_500.0, NORTH_500.1).await;
    wait_notified(&app, &bea, 1, "no_device").await;
    checkin(&app, &cy, NORTH_500.0, NORTH_500.1).await;
    let items = wait_notified(&app, &bea, 2, "no_device").await;
    assert!(items.iter().all(|i| i["read_at"].is_null()), "{items:?}");
    let (newest, oldest) = (
        items[0]["id"].as_str().expect("id"),
        items[1]["id"].as_str().expect("id"),
    );
    // by id
    let r = app
        .post("/v1/notifications/read", bea.t(), json!({"ids": [oldest]}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let v = app.get("/v1/notifications?unread=true", bea.t()).await.json();
    let ids: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, vec![newest]);
    let all = notifications(&app, &bea).await;
    assert!(all.iter().find(|i| i["id"] == oldest).expect("oldest")["read_at"].is_string());
    // up to the newest: everything
    let r = app
        .post("/v1/notifications/read", bea.t(), json!({"up_to": newest}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let v = app.get("/v1/notifications?unread=true", bea.t()).await.json();
    assert_eq!(v["items"], json!([]));
    // an empty body is refused
    app.post("/v1/notifications/read", bea.t(), json!({}))
        .await
        .assert_problem(422, "validation_failed");
    // mute: only connections; a muted connection's arrival notifies nobody
    let stranger = app.register("stranger").await;
    app.put(&format!("/v1/connections/{}/mute", stranger.id), bea.t())
        .await
        .assert_problem(404, "not_found");
    assert_eq!(
        app.put(&format!("/v1/connections/{}/mute", ann.id), bea.t())
            .await
            .status,
        204
    );
    assert_eq!(
        app.put(&format!("/v1/connections/{}/mute", ann.id), bea.t())
            .await
            .status,
        204
    );
    let eligible =
        hereabouts::store::outbox::eligible_pairs(&app.ctx.db, &[(ann.uuid(), bea.uuid()), (cy.uuid(), bea.uuid())], 0)
            .await
            .expect("rules");
    assert_eq!(eligible.len(), 1, "bea muted ann, not cy: {eligible:?}");
    assert_eq!(eligible[0].0, cy.uuid(), "cy is not muted");
    assert_eq!(
        app.delete(&format!("/v1/connections/{}/mute", ann.id), bea.t())
            .await
            .status,
        204
    );
    let eligible = hereabouts::store::outbox::eligible_pairs(&app.ctx.db, &[(ann.uuid(), bea.uuid())], 0)
        .await
        .expect("rules");
    assert_eq!(eligible.len(), 1, "unmuted");
}

/// A point whose resolution-5 cell's centre lies over 3 km away from it (a city-precision user
/// there is published far from their own point).
fn far_from_its_city_cell() -> (f64, f64) {
    (0..400)
        .map(|i| offset(PARIS, f64::from(i) * 250.0, 0.0))
        .find(|p| {
            let own = h3o::LatLng::new(p.0, p.1).expect("point");
            let centre = h3o::LatLng::from(own.to_cell(h3o::Resolution::Five));
            own.distance_m(centre) > 3_000.0
        })
        .expect("a point 3 km from its cell's centre within 100 km")
}

#[tokio::test]
async fn an_exact_share_decides_the_arrival_at_the_givers_own_point() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let at = far_from_its_city_cell();
    let near = offset(at, 300.0, 0.0);
    // bea and cleo are both live 300 m from ann's own point; ann shows only her city
    let bea = live_user(&app, "bea", near).await;
    let cleo = live_user(&app, "cleo", near).await;
    set_privacy(&app, &cleo, json!({"notify_radius_m": 10_000})).await;
    let ann = app.register("ann").await;
    set_privacy(&app, &ann, json!({"sharing": true, "precision": "city"})).await;
    befriend(&app, &ann, &bea).await;
    befriend(&app, &ann, &cleo).await;
    let r = app
        .post("/v1/shares", ann.t(), json!({"to_user_id": bea.id, "duration_s": 600}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    checkin(&app, &ann, at.0, at.1).await;
    let to_bea = wait_notified(&app, &bea, 1, "no_device").await;
    let d = to_bea[0]["distance_m"].as_i64().expect("distance");
    assert!((280..=320).contains(&d), "bea sees ann exactly, 300 m away: {d}");
    // what bea's nearby list shows is what the notification said
    let listed = app.get("/v1/nearby?radius_m=5000", bea.t()).await.json();
    let ann_there = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["user_id"] == ann.id.as_str())
        .cloned()
        .expect("bea lists ann");
    assert_eq!(ann_there["distance_m"].as_i64(), Some(d));
    // cleo, without a share and with a wider radius, hears of ann at her city's distance
    let to_cleo = wait_notified(&app, &cleo, 1, "no_device").await;
    let d = to_cleo[0]["distance_m"].as_i64().expect("distance");
    assert!(d > 2_000, "cleo learns only ann's city: {d}");
}

#[tokio::test]
async fn the_daily_cap_holds_when_several_arrivals_near_one_person_are_decided_together() {
    let p = Providers::start().await;
    let app = p.app(&[("HEREABOUTS_PUSH_DAILY_CAP", "2")]).await;
    let bea = app.register("bea").await;
    share(&app, &bea).await;
    let mut arrivals = vec![];
    for i in 0..3 {
        let a = app.register(&format!("ann{i}")).await;
        share(&app, &a).await;
        befriend(&app, &a, &bea).await;
        // checked in before bea is live: their own detections find nobody to tell
        checkin(&app, &a, NORTH_500.0, NORTH_500.1).await;
        arrivals.push(a);
    }
    // their detections done before bea is live (they read the index when they run)
    app.ctx.checkins.settled().await;
    checkin(&app, &bea, L.0, L.1).await;
    app.ctx.checkins.settled().await;
    assert!(notifications(&app, &bea).await.is_empty());
    // the three arrivals decided as one batch
    let mut batch = vec![];
    for a in &arrivals {
        let record = hereabouts::store::index::record(&app.ctx.redis, a.uuid())
            .await
            .expect("redis")
            .expect("live record");
        batch.push((a.uuid(), record));
    }
    let d = hereabouts::push::detect::detect(&app.ctx, &batch)
        .await
        .expect("detection");
    assert_eq!(d.notified.len(), 2, "{d:?}");
    assert_eq!(notifications(&app, &bea).await.len(), 2, "bea's cap is 2 a day");
}

#[tokio::test]
async fn a_city_precision_arrival_reaches_whoever_would_list_its_cell() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    // ann at the centre of her res-5 cell; bea 2 km beyond the cell's farthest corner: more than
    // bea's 5 km from ann's published point, but her circle reaches ann's cell
    let own = h3o::LatLng::new(PARIS.0, PARIS.1).expect("point");
    let cell = own.to_cell(h3o::Resolution::Five);
    let c = h3o::LatLng::from(cell);
    let v = cell
        .boundary()
        .iter()
        .copied()
        .max_by(|a, b| c.distance_m(*a).total_cmp(&c.distance_m(*b)))
        .expect("a vertex");
    let k = 2_000.0 / c.distance_m(v);
    let at = (v.lat() + (v.lat() - c.lat()) * k, v.lng() + (v.lng() - c.lng()) * k);
    let bea_at = h3o::LatLng::new(at.0, at.1).expect("point");
    assert!(bea_at.distance_m(c) > 6_000.0, "bea is beyond 5 km of the centre");
    let bea = live_user(&app, "bea", at).await;
    let ann = app.register("ann").await;
    set_privacy(&app, &ann, json!({"sharing": true, "precision": "city"})).await;
    befriend(&app, &ann, &bea).await;
    checkin(&app, &ann, c.lat(), c.lng()).await;
    let listed = app.get("/v1/nearby?radius_m=5000", bea.t()).await.json();
    assert!(
        listed["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|i| i["user_id"] == ann.id.as_str()),
        "bea's nearby lists ann: {listed}"
    );
    let to_bea = wait_notified(&app, &bea, 1, "no_device").await;
    assert_eq!(to_bea[0]["actor_user_id"], ann.id.as_str());
}
