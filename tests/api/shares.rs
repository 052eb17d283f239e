//! Sharing exactly with one connection for a while: creation edges, both sides' lists, ending
//! by either side and at once by a block, hiding, a pause or sharing off.

use crate::helpers::{TestApp, TestUser, spawn_app};
use serde_json::{Value, json};

async fn share_with(app: &TestApp, from: &TestUser, to: &TestUser, duration_s: i64) -> Value {
    let r = app
        .post(
            "/v1/shares",
            from.t(),
            json!({"to_user_id": to.id, "duration_s": duration_s}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn listed(app: &TestApp, u: &TestUser, direction: &str) -> Vec<Value> {
    let r = app.get(&format!("/v1/shares?direction={direction}"), u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn a_share_goes_to_a_connection_for_a_bounded_while() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    let stranger = app.register("sam").await;
    app.connect(&a, &b).await;
    let s = share_with(&app, &a, &b, 3600).await;
    assert_eq!(
        (s["from_user_id"].as_str(), s["to_user_id"].as_str()),
        (Some(a.id.as_str()), Some(b.id.as_str()))
    );
    let expires = time::OffsetDateTime::parse(
        s["expires_at"].as_str().expect("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("rfc3339");
    let left = (expires - time::OffsetDateTime::now_utc()).whole_seconds();
    assert!((3590..=3600).contains(&left), "{left}");
    assert!(s["id"].is_string() && s["created_at"].is_string());
    assert_eq!(listed(&app, &a, "given").await[0]["id"], s["id"]);
    assert_eq!(listed(&app, &b, "received").await[0]["id"], s["id"]);
    assert!(listed(&app, &a, "received").await.is_empty());
    assert!(listed(&app, &b, "given").await.is_empty());
    // sharing again with the same person replaces the running share
    let again = share_with(&app, &a, &b, 300).await;
    assert_eq!(listed(&app, &a, "given").await.len(), 1);
    assert_eq!(listed(&app, &a, "given").await[0]["id"], again["id"]);
    for d in [299, 86_401, 0, -1] {
        app.post("/v1/shares", a.t(), json!({"to_user_id": b.id, "duration_s": d}))
            .await
            .assert_problem(422, "validation_failed");
    }
    for to in [stranger.id.clone(), a.id.clone(), uuid::Uuid::new_v4().to_string()] {
        app.post("/v1/shares", a.t(), json!({"to_user_id": to, "duration_s": 600}))
            .await
            .assert_problem(404, "not_found");
    }
    app.get("/v1/shares?direction=sideways", a.t())
        .await
        .assert_problem(400, "bad_request");
    app.post("/v1/shares", None, json!({"to_user_id": b.id, "duration_s": 600}))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn either_side_ends_a_share_and_nobody_else() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    let c = app.register("cleo").await;
    app.connect(&a, &b).await;
    app.connect(&a, &c).await;
    let s = share_with(&app, &a, &b, 600).await;
    let path = format!("/v1/shares/{}", s["id"].as_str().expect("id"));
    app.delete(&path, c.t()).await.assert_problem(404, "not_found");
    assert_eq!(app.delete(&path, b.t()).await.status, 204, "the recipient ends it");
    app.delete(&path, a.t()).await.assert_problem(404, "not_found");
    assert!(listed(&app, &a, "given").await.is_empty());
    let s = share_with(&app, &a, &b, 600).await;
    assert_eq!(
        app.delete(&format!("/v1/shares/{}", s["id"].as_str().expect("id")), a.t())
            .await
            .status,
        204,
        "the giver too"
    );
    assert!(listed(&app, &b, "received").await.is_empty());
}

#[tokio::test]
async fn a_block_hiding_a_pause_or_sharing_off_ends_shares_at_once() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    let c = app.register("cleo").await;
    app.connect(&a, &b).await;
    app.connect(&a, &c).await;
    let on = json!({"sharing": true});
    assert_eq!(app.patch("/v1/me/privacy", a.t(), on.clone()).await.status, 200);

    share_with(&app, &a, &b, 600).await;
    share_with(&app, &a, &c, 600).await;
    let r = app.patch("/v1/me/privacy", a.t(), json!({"hidden_from": [c.id]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let given = listed(&app, &a, "given").await;
    assert_eq!(given.len(), 1, "hiding from cleo ends hers: {given:?}");
    assert_eq!(given[0]["to_user_id"], b.id.as_str());
    app.patch("/v1/me/privacy", a.t(), json!({"hidden_from": []})).await;

    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    share_with(&app, &a, &c, 600).await;
    app.patch("/v1/me/privacy", a.t(), json!({"paused_until": until})).await;
    assert!(listed(&app, &a, "given").await.is_empty(), "a pause ends them all");
    app.patch("/v1/me/privacy", a.t(), json!({"paused_until": null})).await;

    share_with(&app, &a, &b, 600).await;
    app.patch("/v1/me/privacy", a.t(), json!({"sharing": false})).await;
    assert!(listed(&app, &a, "given").await.is_empty(), "sharing off ends them all");
    app.patch("/v1/me/privacy", a.t(), on).await;

    share_with(&app, &a, &b, 600).await;
    share_with(&app, &b, &a, 600).await;
    assert_eq!(app.put(&format!("/v1/blocks/{}", a.id), b.t()).await.status, 204);
    assert!(listed(&app, &a, "given").await.is_empty(), "a block ends both ways");
    assert!(listed(&app, &a, "received").await.is_empty());
}

async fn seen(app: &TestApp, viewer: &TestUser, who: &TestUser) -> Option<Value> {
    let r = app.get("/v1/nearby?radius_m=20000", viewer.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["user_id"] == who.id.as_str())
        .cloned()
}

#[tokio::test]
async fn a_share_makes_an_approximate_user_exact_for_the_recipient_only() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    let c = app.register("cleo").await;
    app.connect(&a, &b).await;
    app.connect(&a, &c).await;
    // ana stays approximate (the default); ben and cleo share exactly, 1 to 2 km away
    let r = app.patch("/v1/me/privacy", a.t(), json!({"sharing": true})).await;
    assert_eq!(r.json()["precision"], "approximate");
    crate::checkins::share(&app, &b).await;
    crate::checkins::share(&app, &c).await;
    crate::checkins::checkin(&app, &a, 48.8566, 2.3522).await;
    crate::checkins::checkin(&app, &b, 48.8666, 2.3522).await;
    crate::checkins::checkin(&app, &c, 48.8466, 2.3522).await;
    let before = seen(&app, &b, &a).await.expect("ben sees ana");
    assert_eq!(before["precision"], "approximate");
    let s = share_with(&app, &a, &b, 600).await;
    let exact = seen(&app, &b, &a).await.expect("ben still sees ana");
    assert_eq!(exact["precision"], "exact", "{exact}");
    let d = exact["distance_m"].as_i64().expect("distance");
    assert!((1_100..=1_120).contains(&d), "the true distance, rounded to 10 m: {d}");
    assert_eq!(exact["distance_range_m"], json!([d, d]));
    let cell: h3o::CellIndex = exact["h3_cell"].as_str().expect("cell").parse().expect("H3");
    assert_eq!(cell.resolution(), h3o::Resolution::Nine);
    let other = seen(&app, &c, &a).await.expect("cleo sees ana");
    assert_eq!(other["precision"], "approximate", "only the recipient sees more");
    // ended by the giver: approximate again at once
    assert_eq!(
        app.delete(&format!("/v1/shares/{}", s["id"].as_str().expect("id")), a.t())
            .await
            .status,
        204
    );
    assert_eq!(seen(&app, &b, &a).await.expect("listed")["precision"], "approximate");
    // a pause ends it (and ana leaves nearby); back from the pause she is approximate
    share_with(&app, &a, &b, 600).await;
    let until = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format");
    app.patch("/v1/me/privacy", a.t(), json!({"paused_until": until})).await;
    assert!(seen(&app, &b, &a).await.is_none());
    app.patch("/v1/me/privacy", a.t(), json!({"paused_until": null})).await;
    crate::checkins::checkin(&app, &a, 48.8566, 2.3522).await;
    assert_eq!(seen(&app, &b, &a).await.expect("listed")["precision"], "approximate");
    // the policy's minimum precision still wins
    share_with(&app, &a, &b, 600).await;
    assert_eq!(seen(&app, &b, &a).await.expect("listed")["precision"], "exact");
    sqlx::query("UPDATE policy SET min_precision = 'approximate'")
        .execute(&app.db)
        .await
        .expect("policy");
    app.ctx.load_controls().await;
    // the server's own instance reloads on its own schedule; the service rule is what is checked
    let records = vec![(
        a.uuid(),
        hereabouts::domain::nearby::LiveRecord {
            checkin_id: uuid::Uuid::nil(),
            lat: 0.0,
            lng: 0.0,
            precision: hereabouts::domain::policy::Precision::Approximate,
            cell: String::new(),
            recorded_at: 0,
            expires_at_ms: 0,
            display_name: String::new(),
            hidden_from: vec![],
            own: (0.0, 0.0),
            profile: Default::default(),
        },
    )];
    let out = hereabouts::service::shares::exact_for_recipient(&app.ctx, b.uuid(), vec![a.uuid()], records)
        .await
        .expect("answer");
    assert_eq!(out[0].1.precision, hereabouts::domain::policy::Precision::Approximate);
}

#[tokio::test]
async fn a_share_survives_redis_losing_everything() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    app.connect(&a, &b).await;
    app.patch("/v1/me/privacy", a.t(), json!({"sharing": true})).await;
    crate::checkins::share(&app, &b).await;
    crate::checkins::checkin(&app, &a, 48.8566, 2.3522).await;
    crate::checkins::checkin(&app, &b, 48.8666, 2.3522).await;
    share_with(&app, &a, &b, 600).await;
    assert_eq!(seen(&app, &b, &a).await.expect("listed")["precision"], "exact");
    crate::checkins::flush_redis(&app).await;
    // the watchdog rebuilds the index from PostgreSQL, the shares' sets with it (the paced
    // reconciliation may put ana back first, at her published precision: less, never more)
    let started = std::time::Instant::now();
    loop {
        let item = seen(&app, &b, &a).await;
        if item.as_ref().is_some_and(|i| i["precision"] == "exact") {
            break;
        }
        if let Some(i) = &item {
            assert_eq!(i["precision"], "approximate", "never more than the share: {i}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the share did not come back with the index: {item:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
