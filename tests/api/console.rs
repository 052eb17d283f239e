//! The operator's console: its files and headers at `/admin/`, and the admin API it added
//! (policy and zone effects, zone edits, audit filters, live figures).

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use serde_json::json;

async fn admin(app: &TestApp) -> TestUser {
    let u = app.register("root").await;
    app.make_admin(&u).await
}

fn actions(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_string())
        .collect()
}

fn nearby_ids(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["user_id"].as_str().expect("id").to_string())
        .collect()
}

#[tokio::test]
async fn console_is_served_with_a_strict_policy_types_and_caching() {
    let app = spawn_app_with(&[("HEREABOUTS_ADMIN_TILE_URL", "https://{s}.tiles.example/{z}/{x}/{y}.png")]).await;
    let r = app.get("/admin", None).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location").as_deref(), Some("/admin/"));

    let page = app.get("/admin/", None).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(page.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
    let csp = page.header("content-security-policy").expect("csp");
    for part in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: https://*.tiles.example",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(page.header("referrer-policy").as_deref(), Some("strict-origin"));
    assert_eq!(page.header("cache-control").as_deref(), Some("no-cache"));
    // no inline script or style in the page: every script is a file
    assert!(
        page.text
            .contains("<script type=\"module\" src=\"js/main.js\"></script>")
    );
    assert!(!page.text.contains("style=") && !page.text.contains("<style"));
    for tag in page.text.split("<script").skip(1) {
        assert!(
            tag.trim_start().starts_with("type=\"module\" src="),
            "inline script: {tag}"
        );
    }

    let js = app.get("/admin/js/main.js", None).await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(js.header("content-security-policy").is_some());
    let etag = js.header("etag").expect("etag");
    let again = app
        .client
        .get(format!("{}/admin/js/main.js", app.address))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(again.status(), 304);
    assert!(again.headers().get("content-security-policy").is_some());

    let css = app.get("/admin/console.css", None).await;
    assert_eq!(css.header("content-type").as_deref(), Some("text/css; charset=utf-8"));
    let leaflet = app.get("/admin/vendor/leaflet-1.9.4/leaflet-src.esm.js", None).await;
    assert_eq!(leaflet.status, 200);
    assert_eq!(
        leaflet.header("cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    let png = app.get("/admin/vendor/leaflet-1.9.4/images/layers.png", None).await;
    assert_eq!(png.header("content-type").as_deref(), Some("image/png"));

    let config = app.get("/admin/config.json", None).await;
    assert_eq!(config.status, 200);
    assert_eq!(config.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(config.json()["tile_url"], "https://{s}.tiles.example/{z}/{x}/{y}.png");

    for missing in [
        "/admin/nope.js",
        "/admin/js/..%2fapi.js",
        "/admin/js/",
        "/admin/.hidden",
    ] {
        let r = app.get(missing, None).await;
        assert_eq!(r.status, 404, "{missing}");
        assert!(r.header("content-security-policy").is_some(), "{missing}");
    }
    // dot segments are resolved before the request leaves (RFC 3986): never past the folder
    assert_eq!(app.get("/admin/%2e%2e/Cargo.toml", None).await.status, 404);
}

#[tokio::test]
async fn without_tiles_the_policy_allows_no_other_image_host() {
    let app = spawn_app_with(&[("HEREABOUTS_ADMIN_TILE_URL", "")]).await;
    assert_eq!(app.get("/admin/config.json", None).await.json()["tile_url"], "");
    let csp = app
        .get("/admin/", None)
        .await
        .header("content-security-policy")
        .expect("csp");
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    // by default: OpenStreetMap's tiles
    let app = spawn_app().await;
    let v = app.get("/admin/config.json", None).await.json();
    assert_eq!(v["tile_url"], "https://tile.openstreetmap.org/{z}/{x}/{y}.png");
    assert_eq!(v["tile_attribution"], "© OpenStreetMap contributors");
}

#[tokio::test]
async fn policy_and_zone_changes_report_their_effect_on_live_users() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let a = app.register("alice").await;
    let b = app.register("bruno").await;
    befriend(&app, &a, &b).await;
    for (u, lat) in [(&a, 48.8566), (&b, 48.8766)] {
        share(&app, u).await;
        checkin(&app, u, lat, 2.3522).await;
    }
    // a coarser minimum precision re-publishes both
    let r = app
        .patch("/v1/admin/policy", root.t(), json!({"min_precision": "approximate"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["min_precision"], "approximate");
    assert_eq!(v["effect"], json!({"republished": 2, "removed": 0}));
    // a change that cannot touch live users makes no pass
    let v = app
        .patch("/v1/admin/policy", root.t(), json!({"retention_days": 90}))
        .await
        .json();
    assert_eq!(v["effect"], serde_json::Value::Null);
    assert_eq!(v["retention_days"], 90);
    app.patch("/v1/admin/policy", root.t(), json!({"min_precision": "exact"}))
        .await;

    // a zone around a takes a out of b's nearby, and says so
    let square = |lat: f64, d: f64| {
        json!({"type": "Polygon", "coordinates": [[[2.3522 - d, lat - d], [2.3522 + d, lat - d],
            [2.3522 + d, lat + d], [2.3522 - d, lat + d], [2.3522 - d, lat - d]]]})
    };
    assert_eq!(
        nearby_ids(&app.get("/v1/nearby", b.t()).await.json()),
        vec![a.id.clone()]
    );
    let r = app
        .post(
            "/v1/admin/restricted-zones",
            root.t(),
            json!({"name": "Around a", "geometry": square(48.8566, 0.002)}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let z = r.json();
    assert_eq!(z["effect"], json!({"republished": 1, "removed": 1}));
    assert_eq!(z["name"], "Around a");
    let id = z["id"].as_str().expect("id").to_string();
    assert!(nearby_ids(&app.get("/v1/nearby", b.t()).await.json()).is_empty());

    // moved to b's side: a is back, b is out
    let r = app
        .request(
            reqwest::Method::PUT,
            &format!("/v1/admin/restricted-zones/{id}"),
            root.t(),
            Some(json!({"name": "Around b", "geometry": square(48.8766, 0.002)})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let z = r.json();
    assert_eq!(
        (z["name"].as_str(), z["id"].as_str()),
        (Some("Around b"), Some(id.as_str()))
    );
    assert_eq!(z["effect"], json!({"republished": 1, "removed": 1}));
    app.get("/v1/nearby", b.t()).await.assert_problem(409, "not_indexed");
    assert_eq!(
        nearby_ids(&app.get("/v1/nearby", a.t()).await.json()),
        Vec::<String>::new()
    );
    let list = app.get("/v1/admin/restricted-zones", root.t()).await.json();
    assert_eq!(list["items"][0]["name"], "Around b");
    // an edit is validated as a creation, and needs the zone to exist
    app.request(
        reqwest::Method::PUT,
        &format!("/v1/admin/restricted-zones/{id}"),
        root.t(),
        Some(json!({"name": " ", "geometry": {"type": "Point", "coordinates": [0.0, 0.0]}})),
    )
    .await
    .assert_problem(422, "validation_failed");
    app.request(
        reqwest::Method::PUT,
        &format!("/v1/admin/restricted-zones/{}", uuid::Uuid::new_v4()),
        root.t(),
        Some(json!({"name": "x", "geometry": square(1.0, 0.1)})),
    )
    .await
    .assert_problem(404, "not_found");

    // the kill switch removes everyone still in the index
    let v = app
        .patch("/v1/admin/policy", root.t(), json!({"location_sharing_enabled": false}))
        .await
        .json();
    assert_eq!(v["effect"]["removed"], 2);
    assert_eq!(v["effect"]["republished"], 0);
    let audit = app.get("/v1/admin/audit?action=zone.update", root.t()).await.json();
    assert_eq!(actions(&audit), vec!["zone.update"]);
    assert_eq!(audit["items"][0]["detail"]["name"], "Around b");
}

#[tokio::test]
async fn the_audit_log_filters_by_actor_target_action_and_time() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let second = app.register("second").await;
    let other = app.make_admin(&second).await;
    let u = app.register("target").await;
    let start = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    app.post(&format!("/v1/admin/users/{}/suspend", u.id), root.t(), json!({}))
        .await;
    app.get(&format!("/v1/admin/users/{}", u.id), other.t()).await;
    app.post(&format!("/v1/admin/users/{}/unsuspend", u.id), other.t(), json!({}))
        .await;
    let get = |q: String| {
        let app = &app;
        let t = root.token.clone();
        async move { app.get(&format!("/v1/admin/audit?{q}"), Some(&t)).await }
    };
    // reads of the log about u are entries about u too: leave them out here
    let changes =
        |v: &serde_json::Value| -> Vec<String> { actions(v).into_iter().filter(|a| a != "audit.read").collect() };

    let v = get(format!("actor_user_id={}", other.id)).await.json();
    assert_eq!(actions(&v), vec!["user.unsuspend", "user.read"]);
    let v = get(format!("action=user.suspend&target_user_id={}", u.id)).await.json();
    assert_eq!(actions(&v), vec!["user.suspend"]);
    assert_eq!(v["items"][0]["actor_user_id"], root.id.as_str());
    let v = get(format!("action=user.read&actor_user_id={}", root.id)).await.json();
    assert!(actions(&v).is_empty());
    // time window: everything since start, nothing before it
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
            .replace('+', "%2B")
    };
    let v = get(format!("since={}&target_user_id={}", fmt(start), u.id))
        .await
        .json();
    assert_eq!(changes(&v), vec!["user.unsuspend", "user.read", "user.suspend"]);
    let v = get(format!("until={}&target_user_id={}", fmt(start), u.id))
        .await
        .json();
    assert!(actions(&v).is_empty());
    // paging keeps the filter
    let v = get(format!("limit=1&actor_user_id={}", other.id)).await.json();
    assert_eq!(actions(&v), vec!["user.unsuspend"]);
    let next = v["next_cursor"].as_str().expect("a second page").to_string();
    let v = get(format!("limit=1&actor_user_id={}&cursor={next}", other.id))
        .await
        .json();
    assert_eq!(actions(&v), vec!["user.read"]);
    // the read itself is audited with its filter
    let v = get("action=audit.read&limit=1".into()).await.json();
    assert_eq!(v["items"][0]["detail"]["action"], "audit.read");
    // bad values name their field
    let r = get("since=yesterday".into()).await;
    assert_eq!(
        r.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "since"
    );
    let r = get(format!("action={}", "x".repeat(101))).await;
    assert_eq!(
        r.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "action"
    );
    get("actor_user_id=not-a-uuid".into())
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn live_figures_move_with_traffic_and_each_read_is_audited() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let user = app.register("plain").await;
    app.get("/v1/admin/stats", None)
        .await
        .assert_problem(401, "unauthorized");
    app.get("/v1/admin/stats", user.t())
        .await
        .assert_problem(403, "forbidden");
    let before = app.get("/v1/admin/stats", root.t()).await;
    assert_eq!(before.status, 200, "{}", before.text);
    let before = before.json();
    for key in [
        "at",
        "live_users",
        "checkins_total",
        "nearby_total",
        "push_queue_depth",
        "push_oldest_pending_age_s",
        "push_sent_total",
        "push_retried_total",
        "push_failed_total",
        "push_failed_last_hour",
    ] {
        assert!(before.get(key).is_some(), "{key} missing: {before}");
    }
    let a = app.register("alice").await;
    let b = app.register("bruno").await;
    befriend(&app, &a, &b).await;
    for u in [&a, &b] {
        share(&app, u).await;
        checkin(&app, u, 48.8566, 2.3522).await;
    }
    for _ in 0..3 {
        assert_eq!(app.get("/v1/nearby", a.t()).await.status, 200);
    }
    let after = app.get("/v1/admin/stats", root.t()).await.json();
    let n = |v: &serde_json::Value, k: &str| v[k].as_i64().unwrap_or(-1);
    assert_eq!(n(&after, "live_users") - n(&before, "live_users"), 2);
    assert_eq!(n(&after, "checkins_total") - n(&before, "checkins_total"), 2);
    assert_eq!(n(&after, "nearby_total") - n(&before, "nearby_total"), 3);
    assert_eq!(n(&after, "push_queue_depth"), 0);
    let audit = app.get("/v1/admin/audit?action=stats.read", root.t()).await.json();
    assert_eq!(actions(&audit).len(), 2, "each read is audited, refused ones are not");
    let _ = user;
}
