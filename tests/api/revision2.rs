//! Revision 2's changed behaviour (`../shared/API.md`, "Changed behaviour"), one test a point.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn a_block_is_silent_to_the_blocked() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    assert_eq!(app.put(&format!("/v1/blocks/{}", bob.id), ann.t()).await.status, 204);
    // bob, blocked, asks ann: the answer is the one for a user who does not exist
    let by_id = app
        .post("/v1/connections/requests", bob.t(), json!({"to_user_id": ann.id}))
        .await
        .assert_problem(404, "not_found");
    let unknown = app
        .post(
            "/v1/connections/requests",
            bob.t(),
            json!({"to_user_id": uuid::Uuid::new_v4()}),
        )
        .await
        .assert_problem(404, "not_found");
    assert_eq!(by_id["detail"], unknown["detail"]);
    app.post("/v1/connections/requests", bob.t(), json!({"email": ann.email}))
        .await
        .assert_problem(404, "not_found");
    // the blocker still learns why
    app.post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await
        .assert_problem(409, "blocked");
}

#[tokio::test]
async fn requests_by_email_respect_discoverable_by_email() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let r = app
        .patch("/v1/me/privacy", bob.t(), json!({"discoverable_by_email": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hidden = app
        .post("/v1/connections/requests", ann.t(), json!({"email": bob.email}))
        .await
        .assert_problem(404, "not_found");
    let unknown = app
        .post(
            "/v1/connections/requests",
            ann.t(),
            json!({"email": "nobody@example.com"}),
        )
        .await
        .assert_problem(404, "not_found");
    assert_eq!(hidden, unknown, "a hidden email answers as an unknown one");
    // by id it still works
    let r = app
        .post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_pause_in_the_past_is_shown_as_none() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let r = app
        .patch(
            "/v1/me/privacy",
            ann.t(),
            json!({"sharing": true, "paused_until": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["paused_until"], serde_json::Value::Null);
    assert_eq!(
        app.get("/v1/me/privacy", ann.t()).await.json()["paused_until"],
        serde_json::Value::Null
    );
    // and the account shares: a check-in is taken
    let r = app
        .post("/v1/checkins", ann.t(), json!({"lat": 48.85, "lng": 2.35}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_device_of_an_erased_account_is_refused_with_401() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    assert_eq!(app.delete("/v1/me", ann.t()).await.status, 204);
    app.post(
        "/v1/devices",
        ann.t(),
        json!({"platform": "ios", "token": "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"}),
    )
    .await
    .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn admins_cannot_suspend_or_erase_themselves() {
    let app = spawn_app().await;
    let u = app.register("root").await;
    let admin = app.make_admin(&u).await;
    app.post(&format!("/v1/admin/users/{}/suspend", admin.id), admin.t(), json!({}))
        .await
        .assert_problem(409, "self_action");
    app.delete(&format!("/v1/admin/users/{}", admin.id), admin.t())
        .await
        .assert_problem(409, "self_action");
    // still an admin, still in
    assert_eq!(app.get("/v1/admin/policy", admin.t()).await.status, 200);
}

#[tokio::test]
async fn nearby_says_plainly_when_the_callers_checkin_is_not_indexed() {
    let app = spawn_app().await;
    let u = app.register("ida").await;
    let r = app.patch("/v1/me/privacy", u.t(), json!({"sharing": true})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let square =
        json!({"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 49.0], [2.0, 48.0]]]});
    sqlx::query("INSERT INTO restricted_zones (id, name, geometry) VALUES ($1, 'square', $2)")
        .bind(uuid::Uuid::new_v4())
        .bind(&square)
        .execute(&app.db)
        .await
        .expect("zone");
    app.ctx.controls.reload(&app.ctx.db).await.expect("reload");
    let r = app.post("/v1/checkins", u.t(), json!({"lat": 48.5, "lng": 2.5})).await;
    assert_eq!(r.json()["indexed"], false, "{}", r.text);
    app.get("/v1/nearby", u.t()).await.assert_problem(409, "not_indexed");
}

/// A point `m` metres due north of (lat, lng), by WGS84 geodesic.
fn north(lat: f64, lng: f64, m: f64) -> (f64, f64) {
    use geo::{Destination, Geodesic, Point};
    let p = Geodesic.destination(Point::new(lng, lat), 0.0, m);
    (p.y(), p.x())
}

#[tokio::test]
async fn radius_probing_reveals_no_more_than_the_rounded_distance() {
    use crate::checkins::{befriend, checkin, share};
    let app = spawn_app().await;
    let (a, b) = (app.register("ann").await, app.register("bob").await);
    befriend(&app, &a, &b).await;
    for u in [&a, &b] {
        share(&app, u).await;
        let r = app.patch("/v1/me/privacy", u.t(), json!({"precision": "exact"})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    checkin(&app, &a, 48.85, 2.35).await;
    let (lat, lng) = north(48.85, 2.35, 1_004.0);
    checkin(&app, &b, lat, lng).await;
    // 1,004 m rounds to 1,000: listed at radius 1,000, although 4 m beyond it
    let listed = |radius: u32| {
        let app = &app;
        let a = &a;
        async move {
            let v = app.get(&format!("/v1/nearby?radius_m={radius}"), a.t()).await.json();
            v["items"].as_array().expect("items").len()
        }
    };
    assert_eq!(listed(1_000).await, 1);
    assert_eq!(listed(999).await, 0);
    // every radius from 995 to 1,005 answers alike: only the rounded 1,000 m shows
    for r in 1_000..=1_005 {
        assert_eq!(listed(r).await, 1, "radius {r}");
    }
    for r in 995..1_000 {
        assert_eq!(listed(r).await, 0, "radius {r}");
    }
}

#[tokio::test]
async fn nearby_is_rate_limited_per_user() {
    use crate::checkins::{checkin, share};
    let app = spawn_app_with(&[("HEREABOUTS_RATE_NEARBY_PER_USER_PER_MIN", "3")]).await;
    let a = app.register("ann").await;
    share(&app, &a).await;
    checkin(&app, &a, 48.85, 2.35).await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/nearby", a.t()).await.status, 200);
    }
    let r = app.get("/v1/nearby", a.t()).await;
    r.assert_problem(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn a_client_id_is_bound_to_its_request() {
    use crate::checkins::share;
    let app = spawn_app().await;
    let a = app.register("ann").await;
    share(&app, &a).await;
    let first = json!({"lat": 48.85, "lng": 2.35, "client_id": "phone-1"});
    let r = app.post("/v1/checkins", a.t(), first.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json()["id"].clone();
    // a true retry answers the first answer
    let again = app.post("/v1/checkins", a.t(), first).await;
    assert_eq!(again.status, 201);
    assert_eq!(again.json()["id"], id);
    // the same key with another position is refused, and nothing changes
    app.post(
        "/v1/checkins",
        a.t(),
        json!({"lat": 40.0, "lng": -3.7, "client_id": "phone-1"}),
    )
    .await
    .assert_problem(409, "idempotency_conflict");
    assert_eq!(app.get("/v1/checkins/current", a.t()).await.json()["id"], id);
}

#[tokio::test]
async fn erasure_takes_the_erased_id_out_of_other_users_hidden_lists() {
    let app = spawn_app().await;
    let (a, b) = (app.register("ann").await, app.register("bob").await);
    let r = app.patch("/v1/me/privacy", a.t(), json!({"hidden_from": [b.id]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(app.delete("/v1/me", b.t()).await.status, 204);
    let p = app.get("/v1/me/privacy", a.t()).await.json();
    assert_eq!(p["hidden_from"], json!([]), "{p}");
}

#[tokio::test]
async fn names_are_visible_text() {
    let app = spawn_app().await;
    let a = app.register("ann").await;
    for bad in ["\u{202E}nna", "a\u{200B}nn", "\u{FEFF}", " \u{200D} "] {
        let r = app.patch("/v1/me", a.t(), json!({"display_name": bad})).await;
        let p = r.assert_problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "display_name", "{bad:?}");
    }
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "rlo@example.com", "password": "correct horse battery", "display_name": "\u{202E}x"}),
        )
        .await;
    r.assert_problem(422, "validation_failed");
    assert_eq!(app.get("/v1/me", a.t()).await.json()["display_name"], "ann");
}

#[tokio::test]
async fn new_accounts_start_at_approximate() {
    let app = spawn_app().await;
    let a = app.register("ann").await;
    let p = app.get("/v1/me/privacy", a.t()).await.json();
    assert_eq!(p["precision"], "approximate");
    assert_eq!(p["sharing"], false);
    let r = app.patch("/v1/me/privacy", a.t(), json!({"sharing": true})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = app
        .post("/v1/checkins", a.t(), json!({"lat": 48.85, "lng": 2.35}))
        .await
        .json();
    assert_eq!(c["precision"], "approximate");
    let cell: h3o::CellIndex = c["h3_cell"].as_str().expect("cell").parse().expect("h3");
    assert_eq!(cell.resolution(), h3o::Resolution::Seven);
}
