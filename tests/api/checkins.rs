//! Privacy settings and check-ins: opt-in, validation, precision, policy, zones, idempotency,
//! ordering, the index rebuilt after Redis loses it.

use crate::helpers::*;
use serde_json::json;
use std::time::Duration;

/// Opts in to sharing, at `exact` precision (new accounts start at `approximate`; these tests
/// measure distances to points).
pub async fn share(app: &TestApp, u: &TestUser) {
    let r = app
        .patch("/v1/me/privacy", u.t(), json!({"sharing": true, "precision": "exact"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

pub async fn checkin(app: &TestApp, u: &TestUser, lat: f64, lng: f64) -> serde_json::Value {
    let r = app.post("/v1/checkins", u.t(), json!({"lat": lat, "lng": lng})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

pub async fn befriend(app: &TestApp, a: &TestUser, b: &TestUser) {
    let r = app
        .post("/v1/connections/requests", a.t(), json!({"to_user_id": b.id}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].as_str().expect("id").to_string();
    let r = app
        .post(&format!("/v1/connections/requests/{id}/accept"), b.t(), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // connected silently: the tests that use this are about other notifications
    app.forget_connection_notes(a, b).await;
}

/// Deletes this test's Redis keys (what a restart without persistence does to them).
pub async fn flush_redis(app: &TestApp) {
    let mut keys = app
        .ctx
        .redis
        .scan_keys(&format!("{}:*", app.prefix))
        .await
        .expect("scan");
    // the index's ready marker goes last, as when Redis loses everything at once: a watchdog
    // that saw it gone earlier would rebuild while the loop still deleted what it rebuilt
    keys.sort_by_key(|k| k.windows(13).any(|w| w == b":index:ready:"));
    for k in keys {
        let _: () = app.ctx.redis.run(redis::cmd("DEL").arg(&k)).await.expect("del");
    }
}

#[tokio::test]
async fn sharing_is_off_for_new_accounts() {
    let app = spawn_app().await;
    let u = app.register("ann").await;
    let p = app.get("/v1/me/privacy", u.t()).await.json();
    assert_eq!(p["sharing"], false);
    assert_eq!(p["precision"], "approximate", "Revision 2: privacy by default");
    assert_eq!(p["default_ttl_s"], 14400);
    assert_eq!(p["notify_radius_m"], 5000);
    assert_eq!(p["paused_until"], serde_json::Value::Null);
    let r = app
        .post("/v1/checkins", u.t(), json!({"lat": 51.5, "lng": -0.12}))
        .await;
    r.assert_problem(409, "sharing_disabled");
}

#[tokio::test]
async fn a_checkin_is_published_read_back_and_left() {
    let app = spawn_app().await;
    let u = app.register("bob").await;
    share(&app, &u).await;
    let c = checkin(&app, &u, 51.5074, -0.1278).await;
    assert_eq!(c["indexed"], true);
    assert_eq!(c["reason"], serde_json::Value::Null);
    assert_eq!(c["precision"], "exact");
    let cell: h3o::CellIndex = c["h3_cell"].as_str().expect("cell").parse().expect("h3");
    assert_eq!(cell.resolution(), h3o::Resolution::Nine);
    let cur = app.get("/v1/checkins/current", u.t()).await;
    assert_eq!(cur.status, 200);
    assert_eq!(cur.json()["id"], c["id"]);
    assert_eq!(app.delete("/v1/checkins/current", u.t()).await.status, 204);
    app.get("/v1/checkins/current", u.t())
        .await
        .assert_problem(404, "not_found");
    let keys = app
        .ctx
        .redis
        .scan_keys(&format!("{}:rec:*", app.prefix))
        .await
        .expect("scan");
    assert!(keys.is_empty(), "leaving removes the index record: {keys:?}");
}

#[tokio::test]
async fn checkins_are_validated() {
    let app = spawn_app().await;
    let u = app.register("cat").await;
    share(&app, &u).await;
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).expect("fmt");
    app.post("/v1/checkins", u.t(), json!({"lat": 91.0, "lng": 0.0}))
        .await
        .assert_problem(422, "invalid_coordinates");
    app.post("/v1/checkins", u.t(), json!({"lat": 0.0, "lng": -180.5}))
        .await
        .assert_problem(422, "invalid_coordinates");
    for body in [
        json!({"lat": 1.0, "lng": 1.0, "accuracy_m": -1.0}),
        json!({"lat": 1.0, "lng": 1.0, "ttl_s": 59}),
        json!({"lat": 1.0, "lng": 1.0, "recorded_at": fmt(now + time::Duration::minutes(6))}),
        json!({"lat": 1.0, "lng": 1.0, "ttl_s": 600, "recorded_at": fmt(now - time::Duration::minutes(11))}),
        json!({"lat": 1.0, "lng": 1.0, "client_id": ""}),
    ] {
        app.post("/v1/checkins", u.t(), body.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
    for body in [
        json!({"lat": "north", "lng": 1.0}),
        json!({"lng": 1.0}),
        json!({"lat": 1.0, "lng": 1.0, "recorded_at": "yesterday"}),
    ] {
        app.post("/v1/checkins", u.t(), body)
            .await
            .assert_problem(400, "bad_request");
    }
    // boundaries are accepted: the poles, the antimeridian, 5 minutes ahead, ttl 60
    for (lat, lng) in [(90.0, 180.0), (-90.0, -180.0), (0.0, 180.0)] {
        checkin(&app, &u, lat, lng).await;
    }
    let r = app
        .post(
            "/v1/checkins",
            u.t(),
            json!({"lat": 1.0, "lng": 1.0, "ttl_s": 60, "recorded_at": fmt(now + time::Duration::minutes(4))}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // ttl is capped by the policy (24 h by default)
    let r = app
        .post(
            "/v1/checkins",
            u.t(),
            json!({"lat": 1.0, "lng": 1.0, "ttl_s": 9_999_999}),
        )
        .await;
    let exp = time::OffsetDateTime::parse(
        r.json()["expires_at"].as_str().expect("t"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("t");
    assert!(exp <= time::OffsetDateTime::now_utc() + time::Duration::seconds(86_400 + 5));
}

#[tokio::test]
async fn precision_and_the_policy_minimum_decide_what_is_published() {
    let app = spawn_app().await;
    let u = app.register("dan").await;
    share(&app, &u).await;
    let (lat, lng) = (48.8566, 2.3522);
    app.patch("/v1/me/privacy", u.t(), json!({"precision": "approximate"}))
        .await;
    let c = checkin(&app, &u, lat, lng).await;
    let cell: h3o::CellIndex = c["h3_cell"].as_str().expect("cell").parse().expect("h3");
    assert_eq!(cell.resolution(), h3o::Resolution::Seven);
    let centre = h3o::LatLng::from(cell);
    assert!(
        (c["published_lat"].as_f64().expect("lat") - centre.lat()).abs() < 1e-9,
        "published = cell centre"
    );
    assert_eq!(c["lat"].as_f64(), Some(lat), "the owner still sees the raw point");
    // the operator requires city precision: the live entry is coarsened at once on the next sync
    sqlx::query("UPDATE policy SET min_precision = 'city'")
        .execute(&app.db)
        .await
        .expect("policy");
    app.ctx.controls.reload(&app.ctx.db).await.expect("reload");
    let c = checkin(&app, &u, lat, lng).await;
    assert_eq!(c["precision"], "city");
    let cell: h3o::CellIndex = c["h3_cell"].as_str().expect("cell").parse().expect("h3");
    assert_eq!(cell.resolution(), h3o::Resolution::Five);
}

#[tokio::test]
async fn client_id_makes_a_checkin_idempotent() {
    let app = spawn_app().await;
    let u = app.register("eve").await;
    share(&app, &u).await;
    let body = json!({"lat": 35.68, "lng": 139.69, "client_id": "tap-1"});
    let a = app.post("/v1/checkins", u.t(), body.clone()).await;
    let b = app.post("/v1/checkins", u.t(), body).await;
    assert_eq!(a.status, 201);
    assert_eq!(b.status, 201);
    assert_eq!(a.json(), b.json(), "the same client_id returns the first result");
    // Revision 2: the key is bound to its request; another position under it is refused
    app.post(
        "/v1/checkins",
        u.t(),
        json!({"lat": 35.0, "lng": 139.0, "client_id": "tap-1"}),
    )
    .await
    .assert_problem(409, "idempotency_conflict");
    let cur = app.get("/v1/checkins/current", u.t()).await.json();
    assert_eq!(cur["lat"].as_f64(), Some(35.68), "and does nothing again");
}

#[tokio::test]
async fn an_older_checkin_does_not_replace_the_live_one() {
    let app = spawn_app().await;
    let u = app.register("fay").await;
    share(&app, &u).await;
    let fmt = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).expect("fmt");
    let now = time::OffsetDateTime::now_utc();
    let new = app
        .post(
            "/v1/checkins",
            u.t(),
            json!({"lat": 10.0, "lng": 10.0, "recorded_at": fmt(now)}),
        )
        .await;
    assert_eq!(new.status, 201);
    let old = app
        .post(
            "/v1/checkins",
            u.t(),
            json!({"lat": 20.0, "lng": 20.0, "recorded_at": fmt(now - time::Duration::minutes(2))}),
        )
        .await;
    assert_eq!(old.status, 200, "{}", old.text);
    assert_eq!(old.json()["id"], new.json()["id"]);
    assert_eq!(
        app.get("/v1/checkins/current", u.t()).await.json()["lat"].as_f64(),
        Some(10.0)
    );
}

#[tokio::test]
async fn sharing_changes_are_recorded_and_pausing_leaves_the_index() {
    let app = spawn_app().await;
    let u = app.register("gus").await;
    share(&app, &u).await;
    checkin(&app, &u, 1.0, 1.0).await;
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    let p = app.patch("/v1/me/privacy", u.t(), json!({"paused_until": until})).await;
    assert_eq!(p.status, 200, "{}", p.text);
    app.get("/v1/checkins/current", u.t())
        .await
        .assert_problem(404, "not_found");
    app.post("/v1/checkins", u.t(), json!({"lat": 1.0, "lng": 1.0}))
        .await
        .assert_problem(409, "sharing_disabled");
    let p = app.patch("/v1/me/privacy", u.t(), json!({"paused_until": null})).await;
    assert_eq!(p.json()["paused_until"], serde_json::Value::Null);
    checkin(&app, &u, 1.0, 1.0).await;
    app.patch("/v1/me/privacy", u.t(), json!({"sharing": false})).await;
    app.get("/v1/checkins/current", u.t())
        .await
        .assert_problem(404, "not_found");
    let events: Vec<(bool,)> = sqlx::query_as("SELECT sharing FROM consent_events ORDER BY id")
        .fetch_all(&app.db)
        .await
        .expect("events");
    assert_eq!(
        events,
        vec![(true,), (false,)],
        "each change of sharing is recorded with its time"
    );
}

#[tokio::test]
async fn privacy_patch_is_validated() {
    let app = spawn_app().await;
    let u = app.register("hank").await;
    for body in [
        json!({"default_ttl_s": 30}),
        json!({"default_ttl_s": 90_000}),
        json!({"notify_radius_m": 10}),
    ] {
        app.patch("/v1/me/privacy", u.t(), body)
            .await
            .assert_problem(422, "validation_failed");
    }
    for body in [
        json!({"precision": "street"}),
        json!({"sharing": "yes"}),
        json!({"paused_until": "soon"}),
    ] {
        app.patch("/v1/me/privacy", u.t(), body)
            .await
            .assert_problem(400, "bad_request");
    }
}

#[tokio::test]
async fn a_point_in_a_restricted_multipolygon_is_accepted_but_not_indexed() {
    let app = spawn_app().await;
    let u = app.register("ida").await;
    share(&app, &u).await;
    let geometry = json!({"type": "MultiPolygon", "coordinates": [
        [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]],
        [[[-1.0, 51.0], [0.5, 51.0], [0.5, 52.0], [-1.0, 52.0], [-1.0, 51.0]]]
    ]});
    sqlx::query("INSERT INTO restricted_zones (id, name, geometry) VALUES ($1, 'two', $2)")
        .bind(uuid::Uuid::new_v4())
        .bind(&geometry)
        .execute(&app.db)
        .await
        .expect("zone");
    app.ctx.controls.reload(&app.ctx.db).await.expect("reload");
    let r = app
        .post("/v1/checkins", u.t(), json!({"lat": 51.5074, "lng": -0.1278}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["indexed"], false);
    assert_eq!(r.json()["reason"], "restricted_zone");
    let keys = app
        .ctx
        .redis
        .scan_keys(&format!("{}:rec:*", app.prefix))
        .await
        .expect("scan");
    assert!(keys.is_empty(), "not in the index");
    let r = app.post("/v1/checkins", u.t(), json!({"lat": 40.0, "lng": -3.7})).await;
    assert_eq!(r.json()["indexed"], true);
}

#[tokio::test]
async fn the_index_is_rebuilt_after_redis_loses_it() {
    let app = spawn_app().await;
    let a = app.register("jo").await;
    let b = app.register("kim").await;
    befriend(&app, &a, &b).await;
    share(&app, &a).await;
    share(&app, &b).await;
    checkin(&app, &a, 52.52, 13.405).await;
    checkin(&app, &b, 52.521, 13.406).await;
    let before = app.get("/v1/nearby", a.t()).await.json();
    assert_eq!(before["items"].as_array().map(Vec::len), Some(1));
    flush_redis(&app).await;
    let started = std::time::Instant::now();
    loop {
        let r = app.get("/v1/nearby", a.t()).await;
        if r.status == 200 && r.json()["items"].as_array().map(Vec::len) == Some(1) {
            assert_eq!(r.json()["items"][0]["user_id"], b.id.as_str());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "not rebuilt: {}", r.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("visible again after {:?}", started.elapsed());
}

#[tokio::test]
async fn checkins_are_rate_limited_per_user() {
    let app = spawn_app_with(&[("HEREABOUTS_RATE_CHECKINS_PER_USER_PER_MIN", "3")]).await;
    let u = app.register("lou").await;
    share(&app, &u).await;
    for _ in 0..3 {
        checkin(&app, &u, 1.0, 1.0).await;
    }
    let r = app.post("/v1/checkins", u.t(), json!({"lat": 1.0, "lng": 1.0})).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn contact_matching_honours_discoverable_by_email() {
    let app = spawn_app().await;
    let a = app.register("max").await;
    let b = app.register("ned").await;
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b.email.as_bytes()));
    let found = app
        .post("/v1/contacts/match", a.t(), json!({"email_sha256": [hash]}))
        .await
        .json();
    assert_eq!(found["matches"].as_array().map(Vec::len), Some(1));
    app.patch("/v1/me/privacy", b.t(), json!({"discoverable_by_email": false}))
        .await;
    let found = app
        .post("/v1/contacts/match", a.t(), json!({"email_sha256": [hash]}))
        .await
        .json();
    assert_eq!(found["matches"].as_array().map(Vec::len), Some(0));
}
