//! "Which of my connections are nearby": exclusions, rounding, ordering, limits, the nasty
//! places (antimeridian, poles, pentagons), both plans.

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use serde_json::json;

async fn sharing_user(app: &TestApp, name: &str, lat: f64, lng: f64) -> TestUser {
    let u = app.register(name).await;
    share(app, &u).await;
    checkin(app, &u, lat, lng).await;
    u
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["user_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn lists_connections_within_the_radius_nearest_first_with_rounded_distances() {
    let app = spawn_app().await;
    let me = sharing_user(&app, "me", 40.7128, -74.0060).await;
    let near = sharing_user(&app, "near", 40.7138, -74.0060).await; // ~111 m north
    let far = sharing_user(&app, "far", 40.7400, -74.0060).await; // ~3 km
    let out = sharing_user(&app, "out", 40.8128, -74.0060).await; // ~11 km
    let stranger = sharing_user(&app, "stranger", 40.7129, -74.0060).await;
    for u in [&near, &far, &out] {
        befriend(&app, &me, u).await;
    }
    let r = app.get("/v1/nearby?radius_m=5000", me.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["radius_m"], 5000);
    assert_eq!(
        ids(&v),
        vec![near.id.clone(), far.id.clone()],
        "nearest first, only within the radius, no strangers, not me"
    );
    let d0 = v["items"][0]["distance_m"].as_u64().expect("d");
    assert_eq!(d0 % 10, 0, "exact users are rounded to 10 m");
    assert!((100..=120).contains(&d0), "{d0}");
    assert_eq!(v["items"][0]["display_name"], "near");
    assert_eq!(v["items"][0]["precision"], "exact");
    assert!(v["items"][0]["last_seen_at"].is_string() && v["items"][0]["expires_at"].is_string());
    assert!(!ids(&v).contains(&stranger.id));
    // limit
    let v = app.get("/v1/nearby?radius_m=20000&limit=1", me.t()).await.json();
    assert_eq!(ids(&v), vec![near.id.clone()]);
    let v = app.get("/v1/nearby?radius_m=20000", me.t()).await.json();
    assert_eq!(ids(&v), vec![near.id, far.id, out.id]);
}

#[tokio::test]
async fn coarse_users_are_measured_to_their_published_point_and_rounded_coarsely() {
    let app = spawn_app().await;
    let me = sharing_user(&app, "me", 51.5074, -0.1278).await;
    let v = app.register("vague").await;
    share(&app, &v).await;
    app.patch("/v1/me/privacy", v.t(), json!({"precision": "city"})).await;
    let c = checkin(&app, &v, 51.5080, -0.1280).await;
    befriend(&app, &me, &v).await;
    let r = app.get("/v1/nearby?radius_m=200000", me.t()).await.json();
    let item = &r["items"][0];
    assert_eq!(item["precision"], "city");
    assert_eq!(item["h3_cell"], c["h3_cell"]);
    let d = item["distance_m"].as_u64().expect("d");
    assert_eq!(d % 1000, 0, "city precision rounds to 1 km: {d}");
    // the distance is to the res-5 centre, not to the raw point (which is ~50 m away)
    let centre = h3o::LatLng::from(c["h3_cell"].as_str().expect("c").parse::<h3o::CellIndex>().expect("h3"));
    let exact = hereabouts::domain::geo::distance_m(
        hereabouts::domain::geo::Coord::stored(51.5074, -0.1278),
        hereabouts::domain::geo::Coord::stored(centre.lat(), centre.lng()),
    );
    assert_eq!(d, ((exact / 1000.0).round() * 1000.0) as u64);
}

#[tokio::test]
async fn never_lists_hidden_blocked_paused_non_sharing_expired_or_removed_users() {
    let app = spawn_app().await;
    let me = sharing_user(&app, "me", 35.6762, 139.6503).await;
    let mut friends = vec![];
    for name in [
        "hider", "blocker", "pauser", "quitter", "expirer", "visible", "leaver", "blocked",
    ] {
        let u = sharing_user(&app, name, 35.6765, 139.6505).await;
        befriend(&app, &me, &u).await;
        friends.push(u);
    }
    let [hider, blocker, pauser, quitter, expirer, visible, leaver, blocked] = friends.try_into().expect("8");
    assert_eq!(ids(&app.get("/v1/nearby", me.t()).await.json()).len(), 8);
    app.patch("/v1/me/privacy", hider.t(), json!({"hidden_from": [me.id]}))
        .await;
    assert_eq!(app.put(&format!("/v1/blocks/{}", me.id), blocker.t()).await.status, 204);
    assert_eq!(app.put(&format!("/v1/blocks/{}", blocked.id), me.t()).await.status, 204);
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    app.patch("/v1/me/privacy", pauser.t(), json!({"paused_until": until}))
        .await;
    app.patch("/v1/me/privacy", quitter.t(), json!({"sharing": false}))
        .await;
    app.delete("/v1/checkins/current", leaver.t()).await;
    // a check-in that was recorded almost a TTL ago (it replaces nothing older: leave first)
    app.delete("/v1/checkins/current", expirer.t()).await;
    let r = app.post("/v1/checkins", expirer.t(), json!({"lat": 35.6765, "lng": 139.6505, "ttl_s": 60,
        "recorded_at": (time::OffsetDateTime::now_utc() - time::Duration::seconds(58)).format(&time::format_description::well_known::Rfc3339).expect("fmt")})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let v = app.get("/v1/nearby", me.t()).await.json();
    assert_eq!(ids(&v), vec![visible.id.clone()], "{v}");
    // hiding is one-way: the hider still sees me
    let v = app.get("/v1/nearby", hider.t()).await.json();
    assert!(ids(&v).contains(&me.id));
    // and nobody without a live check-in sees anyone
    app.get("/v1/nearby", leaver.t())
        .await
        .assert_problem(409, "no_active_checkin");
}

#[tokio::test]
async fn bad_parameters_are_422_or_400() {
    let app = spawn_app().await;
    let me = sharing_user(&app, "me", 0.0, 0.0).await;
    for q in ["radius_m=49", "radius_m=200001", "limit=0", "limit=501"] {
        app.get(&format!("/v1/nearby?{q}"), me.t())
            .await
            .assert_problem(422, "validation_failed");
    }
    for q in ["radius_m=far", "limit=1.5"] {
        app.get(&format!("/v1/nearby?{q}"), me.t())
            .await
            .assert_problem(400, "bad_request");
    }
    app.get("/v1/nearby", None).await.assert_problem(401, "unauthorized");
    assert_eq!(app.get("/v1/nearby?radius_m=50&limit=500", me.t()).await.status, 200);
    assert_eq!(app.get("/v1/nearby?radius_m=200000&limit=1", me.t()).await.status, 200);
}

#[tokio::test]
async fn works_across_the_antimeridian_at_the_poles_and_on_pentagons() {
    let app = spawn_app().await;
    let pentagon = h3o::LatLng::from(h3o::Resolution::Nine.pentagons().nth(3).expect("pentagon"));
    let places = [
        ("dateline", (0.0, 179.9995), (0.0, -179.9995)),
        ("north", (89.9995, 0.0), (89.9995, 180.0)),
        ("south", (-89.999, 45.0), (-89.999, -135.0)),
        (
            "pentagon",
            (pentagon.lat(), pentagon.lng()),
            (pentagon.lat() + 0.0005, pentagon.lng() + 0.0005),
        ),
    ];
    for (name, (alat, alng), (blat, blng)) in places {
        let a = sharing_user(&app, &format!("{name}-a"), alat, alng).await;
        let b = sharing_user(&app, &format!("{name}-b"), blat, blng).await;
        befriend(&app, &a, &b).await;
        let v = app.get("/v1/nearby?radius_m=1000", a.t()).await.json();
        assert_eq!(ids(&v), vec![b.id.clone()], "{name}: {v}");
        let d = v["items"][0]["distance_m"].as_u64().expect("d");
        assert!(d <= 1000, "{name}: {d}");
    }
}

#[tokio::test]
async fn both_plans_answer_and_are_counted_in_metrics() {
    let app = spawn_app().await;
    // a hall: 40 people in one res-9 cell, of whom the super-connector knows all and the
    // newcomer knows one
    let (lat, lng) = (1.3521, 103.8198);
    let hub = sharing_user(&app, "hub", lat, lng).await;
    let newcomer = sharing_user(&app, "newcomer", lat, lng).await;
    let mut hall = vec![];
    for i in 0..40 {
        let u = sharing_user(&app, &format!("h{i}"), lat + 0.00001 * f64::from(i % 5), lng).await;
        befriend(&app, &hub, &u).await;
        hall.push(u);
    }
    befriend(&app, &newcomer, &hall[0]).await;
    // the hub also knows 60 people far away: degree 100 > the hall's 42
    for i in 0..60 {
        let u = sharing_user(&app, &format!("f{i}"), -33.86, 151.2).await;
        befriend(&app, &hub, &u).await;
    }
    let v = app.get("/v1/nearby?radius_m=100&limit=500", hub.t()).await.json();
    assert_eq!(ids(&v).len(), 40, "{v}");
    let v = app.get("/v1/nearby?radius_m=100", newcomer.t()).await.json();
    assert_eq!(ids(&v), vec![hall[0].id.clone()]);
    let m = app.metrics().await;
    assert!(m.contains("nearby_queries_total{plan=\"cell_first\"} 1"), "{m}");
    assert!(m.contains("nearby_queries_total{plan=\"graph_first\"} 1"), "{m}");
    assert!(m.contains("nearby_candidates_count{plan=\"cell_first\"}"));
}

#[tokio::test]
async fn the_kill_switch_empties_nearby() {
    let app = spawn_app().await;
    let a = sharing_user(&app, "a", 10.0, 10.0).await;
    let b = sharing_user(&app, "b", 10.0001, 10.0).await;
    befriend(&app, &a, &b).await;
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()).len(), 1);
    sqlx::query("UPDATE policy SET location_sharing_enabled = false")
        .execute(&app.db)
        .await
        .expect("policy");
    app.ctx.controls.reload(&app.ctx.db).await.expect("reload");
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()).len(), 0);
    app.post("/v1/checkins", a.t(), json!({"lat": 10.0, "lng": 10.0}))
        .await
        .assert_problem(409, "sharing_disabled");
}
