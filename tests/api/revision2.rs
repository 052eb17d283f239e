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

#[tokio::test]
async fn a_coarse_connection_is_listed_whenever_the_circle_reaches_its_cell() {
    use crate::checkins::{befriend, checkin, share};
    let app = spawn_app().await;
    let (a, b, c) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cy").await,
    );
    befriend(&app, &a, &b).await;
    befriend(&app, &a, &c).await;
    for u in [&a, &b, &c] {
        share(&app, u).await;
    }
    for (u, p) in [(&b, "city"), (&c, "approximate")] {
        let r = app.patch("/v1/me/privacy", u.t(), json!({"precision": p})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    checkin(&app, &a, 48.8566, 2.3522).await;
    // bob, at city precision, 3 km north: his res-5 cell's centre may be 8 km off, but the
    // circle of 5 km reaches the cell, so he is listed with an honest range
    let (lat, lng) = north(48.8566, 2.3522, 3_000.0);
    checkin(&app, &b, lat, lng).await;
    let (lat, lng) = north(48.8566, 2.3522, 1_500.0);
    checkin(&app, &c, lat, lng).await;
    let v = app.get("/v1/nearby?radius_m=5000", a.t()).await.json();
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{v}");
    for it in items {
        let d = it["distance_m"].as_u64().expect("distance");
        let range = it["distance_range_m"].as_array().expect("range");
        let (lo, hi) = (range[0].as_u64().expect("min"), range[1].as_u64().expect("max"));
        let (true_m, step) = if it["user_id"] == b.id {
            (3_000, 1_000)
        } else {
            (1_500, 100)
        };
        assert!(
            lo <= true_m && true_m <= hi,
            "{it}: the true distance lies in the range"
        );
        assert!(lo <= 5_000, "{it}");
        assert_eq!(lo % step, 0, "{it}: min rounded down to the precision's step");
        assert_eq!(hi % step, 0, "{it}: max rounded up to the precision's step");
        assert_eq!(d % step, 0, "{it}");
    }
    // sorted by distance_m
    let ds: Vec<u64> = items.iter().map(|i| i["distance_m"].as_u64().expect("d")).collect();
    assert!(ds.windows(2).all(|w| w[0] <= w[1]), "{ds:?}");
    // an exact user's range is their distance, twice
    let r = app.patch("/v1/me/privacy", c.t(), json!({"precision": "exact"})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    checkin(&app, &c, lat, lng).await;
    let v = app.get("/v1/nearby?radius_m=5000", a.t()).await.json();
    let it = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|i| i["user_id"] == c.id)
        .expect("cy listed")
        .clone();
    assert_eq!(
        it["distance_range_m"],
        json!([it["distance_m"], it["distance_m"]]),
        "{it}"
    );
    // far away, the cell is out of reach
    let r = app.patch("/v1/me/privacy", b.t(), json!({"precision": "city"})).await;
    assert_eq!(r.status, 200);
    let (lat, lng) = north(48.8566, 2.3522, 60_000.0);
    checkin(&app, &b, lat, lng).await;
    let v = app.get("/v1/nearby?radius_m=5000", a.t()).await.json();
    assert!(
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .all(|i| i["user_id"] != b.id),
        "{v}"
    );
}

/// Waits (at most 3 s) until `path` answers `status` for `token`; the status last seen.
async fn settles_to(app: &TestApp, path: &str, token: Option<&str>, status: u16) -> u16 {
    let mut last = 0;
    for _ in 0..60 {
        last = app.get(path, token).await.status.as_u16();
        if last == status {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last
}

async fn login(app: &TestApp, email: &str) -> serde_json::Value {
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn access_tokens_end_with_their_session() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    assert_eq!(app.get("/v1/me", ann.t()).await.status, 200);
    // logout of this session: its access token is refused at once on this instance
    let r = app
        .post("/v1/auth/logout", None, json!({"refresh_token": ann.refresh}))
        .await;
    assert_eq!(r.status, 204);
    app.get("/v1/me", ann.t()).await.assert_problem(401, "unauthorized");
    // two sessions, "log out everywhere" from one ends both
    let (s1, s2) = (login(&app, &ann.email).await, login(&app, &ann.email).await);
    let (t1, t2) = (
        s1["access_token"].as_str().expect("t").to_string(),
        s2["access_token"].as_str().expect("t").to_string(),
    );
    assert_eq!(app.post("/v1/auth/logout-all", Some(&t1), json!({})).await.status, 204);
    for t in [&t1, &t2] {
        app.get("/v1/me", Some(t)).await.assert_problem(401, "unauthorized");
    }
    let r = app
        .post("/v1/auth/refresh", None, json!({"refresh_token": s2["refresh_token"]}))
        .await;
    assert_eq!(r.status, 401, "the refresh tokens ended too: {}", r.text);
    // a password change: wrong current password 401; then every earlier session ends and the
    // answer is a new one
    let s3 = login(&app, &ann.email).await;
    let t3 = s3["access_token"].as_str().expect("t").to_string();
    app.post(
        "/v1/me/password",
        Some(&t3),
        json!({"current_password": "wrong wrong wrong", "new_password": "another horse battery"}),
    )
    .await
    .assert_problem(401, "unauthorized");
    app.post(
        "/v1/me/password",
        Some(&t3),
        json!({"current_password": "correct horse battery", "new_password": "short"}),
    )
    .await
    .assert_problem(422, "validation_failed");
    let r = app
        .post(
            "/v1/me/password",
            Some(&t3),
            json!({"current_password": "correct horse battery", "new_password": "another horse battery"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = r.json();
    assert!(
        fresh["refresh_token"].is_string() && fresh["user"]["id"] == ann.id.as_str(),
        "{fresh}"
    );
    app.get("/v1/me", Some(&t3)).await.assert_problem(401, "unauthorized");
    assert_eq!(app.get("/v1/me", fresh["access_token"].as_str()).await.status, 200);
    let old = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": ann.email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(old.status, 401);
    let new = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": ann.email, "password": "another horse battery"}),
        )
        .await;
    assert_eq!(new.status, 200);
}

#[tokio::test]
async fn a_session_ended_on_one_instance_is_refused_by_another_within_a_second() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let ann = app.register("ann").await;
    assert_eq!(second.get("/v1/me", ann.t()).await.status, 200);
    let r = app
        .post("/v1/auth/logout", None, json!({"refresh_token": ann.refresh}))
        .await;
    assert_eq!(r.status, 204);
    let started = std::time::Instant::now();
    assert_eq!(settles_to(&second, "/v1/me", ann.t(), 401).await, 401);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // suspension, from the first instance, reaches the second: 403 except reading oneself
    let bob = app.register("bob").await;
    let root = app.register("root").await;
    let admin = app.make_admin(&root).await;
    let r = app
        .post(&format!("/v1/admin/users/{}/suspend", bob.id), admin.t(), json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(settles_to(&second, "/v1/connections", bob.t(), 403).await, 403);
    second
        .get("/v1/connections", bob.t())
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(second.get("/v1/me", bob.t()).await.status, 200);
    assert_eq!(second.get("/v1/me/export", bob.t()).await.status, 200);
}

#[tokio::test]
async fn a_suspended_account_may_only_read_itself() {
    let app = spawn_app().await;
    let bob = app.register("bob").await;
    let root = app.register("root").await;
    let admin = app.make_admin(&root).await;
    let r = app
        .post(&format!("/v1/admin/users/{}/suspend", bob.id), admin.t(), json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get("/v1/me", bob.t()).await.status, 200);
    assert_eq!(app.get("/v1/me/export", bob.t()).await.status, 200);
    app.patch("/v1/me", bob.t(), json!({"display_name": "Robert"}))
        .await
        .assert_problem(403, "forbidden");
    app.post("/v1/connections/requests", bob.t(), json!({"to_user_id": root.id}))
        .await
        .assert_problem(403, "forbidden");
    app.post(
        "/v1/devices",
        bob.t(),
        json!({"platform": "ios", "token": "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.patch("/v1/me/privacy", bob.t(), json!({"sharing": true}))
        .await
        .assert_problem(403, "forbidden");
    // reinstated: the token works again
    let r = app
        .post(&format!("/v1/admin/users/{}/unsuspend", bob.id), admin.t(), json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(app.get("/v1/connections", bob.t()).await.status, 200);
}

#[tokio::test]
async fn erasure_wins_the_race_with_the_users_own_checkins() {
    use crate::checkins::{befriend, share};
    let app = spawn_app().await;
    for round in 0..3 {
        let ann = app.register(&format!("ann{round}")).await;
        let bob = app.register(&format!("bob{round}")).await;
        befriend(&app, &ann, &bob).await;
        share(&app, &ann).await;
        let mut tasks = vec![];
        for i in 0..20 {
            let (client, base, token) = (app.client.clone(), app.address.clone(), ann.token.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(i * 3)).await;
                client
                    .post(format!("{base}/v1/checkins"))
                    .bearer_auth(token)
                    .json(&json!({"lat": 48.85 + i as f64 * 1e-4, "lng": 2.35}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(10 + round * 15)).await;
        assert_eq!(app.delete("/v1/me", ann.t()).await.status, 204);
        for t in tasks {
            let status = t.await.expect("task");
            assert!([201, 401, 403].contains(&status), "a check-in answered {status}");
        }
        let traces = crate::admin::traces_of(&app, &ann.id).await;
        assert!(traces.is_empty(), "round {round}: {traces:?}");
        app.get("/v1/me", ann.t()).await.assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn audit_entries_about_an_erased_user_keep_a_pseudonym_and_no_email() {
    let app = spawn_app().await;
    let root = app.register("root").await;
    let admin = app.make_admin(&root).await;
    let ann = app.register("ann").await;
    assert_eq!(
        app.get(&format!("/v1/admin/users?email={}", ann.email), admin.t())
            .await
            .status,
        200
    );
    assert_eq!(
        app.get(&format!("/v1/admin/users/{}", ann.id), admin.t()).await.status,
        200
    );
    let r = app
        .post(&format!("/v1/admin/users/{}/suspend", ann.id), admin.t(), json!({}))
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        app.delete(&format!("/v1/admin/users/{}", ann.id), admin.t())
            .await
            .status,
        204
    );
    let log = app.get("/v1/admin/audit?limit=500", admin.t()).await.json();
    let text = log.to_string();
    assert!(!text.contains(&ann.email), "{log}");
    assert!(!text.contains(&ann.id), "{log}");
    let refs: std::collections::HashSet<String> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["target_ref"].as_str().map(str::to_string))
        .collect();
    let about: Vec<_> = log["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["target_ref"].is_string())
        .collect();
    assert!(
        about.len() >= 3,
        "the detail read, the suspension and the erasure: {log}"
    );
    assert_eq!(refs.len(), 1, "one pseudonym for all of the user's entries: {refs:?}");
    assert!(about.iter().all(|e| e["target_user_id"].is_null()));
}

#[tokio::test]
async fn emails_compare_by_one_rule_everywhere() {
    let app = spawn_app().await;
    let alice = app.register("alice").await;
    let login = |email: &'static str| {
        let app = &app;
        async move {
            app.post(
                "/v1/auth/login",
                None,
                json!({"email": email, "password": "correct horse battery"}),
            )
            .await
            .status
            .as_u16()
        }
    };
    // NFKC folds full-width letters: the same account
    assert_eq!(login("ＡＬＩＣＥ@example.com").await, 200);
    assert_eq!(login("  Alice@Example.COM ").await, 200);
    // a dotted capital I lower-cases to i + U+0307 by Unicode: another email, not alice's
    assert_eq!(login("alİce@example.com").await, 401);
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "ａｌｉｃｅ@example.com", "password": "correct horse battery", "display_name": "x"}),
        )
        .await;
    r.assert_problem(409, "email_taken");
    // a request by email finds her by the same rule
    let bob = app.register("bob").await;
    let r = app
        .post(
            "/v1/connections/requests",
            bob.t(),
            json!({"email": "ALICE@example.com"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["to_user_id"], alice.id.as_str());
}

#[tokio::test]
async fn wrong_passwords_from_elsewhere_do_not_lock_the_owner_out() {
    let app = spawn_app_with(&[
        ("HEREABOUTS_TRUST_FORWARDED_FOR", "true"),
        ("HEREABOUTS_RATE_LOGIN_PER_EMAIL_PER_MIN", "5"),
    ])
    .await;
    let ann = app.register("ann").await;
    let attempt = |ip: &'static str, password: &'static str| {
        let app = &app;
        let email = ann.email.clone();
        async move {
            app.client
                .post(format!("{}/v1/auth/login", app.address))
                .header("x-forwarded-for", ip)
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .expect("login")
                .status()
                .as_u16()
        }
    };
    for _ in 0..5 {
        assert_eq!(attempt("203.0.113.7", "wrong password!").await, 401);
    }
    assert_eq!(
        attempt("203.0.113.7", "wrong password!").await,
        429,
        "the attacker is slowed down"
    );
    // the owner, from their own client, still gets in
    assert_eq!(attempt("198.51.100.20", "correct horse battery").await, 200);
    // and the same email typed otherwise counts in the same bucket
    let r = app
        .client
        .post(format!("{}/v1/auth/login", app.address))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": "ANN@EXAMPLE.COM", "password": "correct horse battery"}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status().as_u16(), 429);
}
