//! Administration: policy, zones, users, export, erasure, the audit log.

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use serde_json::json;

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["user_id"].as_str().expect("id").to_string())
        .collect()
}

async fn pair(app: &TestApp) -> (TestUser, TestUser) {
    let a = app.register("alice").await;
    let b = app.register("bruno").await;
    befriend(app, &a, &b).await;
    for (u, lat) in [(&a, 48.8566), (&b, 48.8570)] {
        share(app, u).await;
        checkin(app, u, lat, 2.3522).await;
    }
    (a, b)
}

async fn admin(app: &TestApp) -> TestUser {
    let u = app.register("root").await;
    app.make_admin(&u).await
}

#[tokio::test]
async fn admin_paths_need_an_admin() {
    let app = spawn_app().await;
    let user = app.register("plain").await;
    let id = user.id.clone();
    let paths = [
        ("GET", "/v1/admin/policy".to_string()),
        ("PATCH", "/v1/admin/policy".into()),
        ("POST", "/v1/admin/restricted-zones".into()),
        ("GET", "/v1/admin/restricted-zones".into()),
        ("DELETE", format!("/v1/admin/restricted-zones/{id}")),
        ("GET", "/v1/admin/users?email=a".into()),
        ("GET", format!("/v1/admin/users/{id}")),
        ("POST", format!("/v1/admin/users/{id}/suspend")),
        ("POST", format!("/v1/admin/users/{id}/unsuspend")),
        ("DELETE", format!("/v1/admin/users/{id}/location")),
        ("GET", format!("/v1/admin/users/{id}/export")),
        ("DELETE", format!("/v1/admin/users/{id}")),
        ("GET", "/v1/admin/audit".into()),
        ("PUT", format!("/v1/admin/restricted-zones/{id}")),
        ("GET", "/v1/admin/stats".into()),
    ];
    for (m, p) in &paths {
        let method = reqwest::Method::from_bytes(m.as_bytes()).expect("method");
        let body = (*m != "GET" && *m != "DELETE").then(|| json!({}));
        app.request(method.clone(), p, None, body.clone())
            .await
            .assert_problem(401, "unauthorized");
        app.request(method, p, user.t(), body)
            .await
            .assert_problem(403, "forbidden");
    }
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
        .fetch_one(&app.db)
        .await
        .expect("count");
    assert_eq!(n, 0, "refused calls change nothing");
}

#[tokio::test]
async fn the_kill_switch_empties_the_index_and_forgets() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()), vec![b.id.clone()]);
    let r = app
        .patch("/v1/admin/policy", root.t(), json!({"location_sharing_enabled": false}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["location_sharing_enabled"], false);
    let keys = app
        .ctx
        .redis
        .scan_keys(&format!("{}:rec:*", app.prefix))
        .await
        .expect("scan");
    assert!(keys.is_empty(), "the live index is empty: {keys:?}");
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()), Vec::<String>::new());
    app.post("/v1/checkins", a.t(), json!({"lat": 1.0, "lng": 1.0}))
        .await
        .assert_problem(409, "sharing_disabled");
    app.patch("/v1/admin/policy", root.t(), json!({"location_sharing_enabled": true}))
        .await;
    // Revision 2: check-ins made before the switch are ended; users appear again only with a
    // new check-in
    app.get("/v1/checkins/current", b.t())
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/nearby", a.t())
        .await
        .assert_problem(409, "no_active_checkin");
    for u in [&a, &b] {
        let r = app
            .post("/v1/checkins", u.t(), json!({"lat": 52.52, "lng": 13.405}))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()), vec![b.id.clone()]);
}

#[tokio::test]
async fn min_precision_republishes_live_users_and_max_ttl_shortens_them() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    let r = app
        .patch(
            "/v1/admin/policy",
            root.t(),
            json!({"min_precision": "city", "max_ttl_s": 600}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = app.get("/v1/nearby?radius_m=50000", a.t()).await.json();
    assert_eq!(v["items"][0]["user_id"], b.id.as_str());
    assert_eq!(v["items"][0]["precision"], "city");
    let cell: h3o::CellIndex = v["items"][0]["h3_cell"].as_str().expect("c").parse().expect("h3");
    assert_eq!(cell.resolution(), h3o::Resolution::Five);
    let cur = app.get("/v1/checkins/current", b.t()).await.json();
    assert_eq!(cur["precision"], "city");
    let exp = time::OffsetDateTime::parse(
        cur["expires_at"].as_str().expect("t"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("t");
    assert!(
        exp <= time::OffsetDateTime::now_utc() + time::Duration::seconds(605),
        "shortened to the new max TTL"
    );
    for bad in [
        json!({"max_ttl_s": 10}),
        json!({"retention_days": 0}),
        json!({"notification_cooldown_s": -1}),
    ] {
        app.patch("/v1/admin/policy", root.t(), bad)
            .await
            .assert_problem(422, "validation_failed");
    }
    app.patch("/v1/admin/policy", root.t(), json!({"min_precision": "street"}))
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn a_new_zone_takes_live_users_out_and_deleting_it_brings_them_back() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    let zone = json!({"name": "Île de la Cité", "geometry": {"type": "MultiPolygon", "coordinates": [
        [[[2.33, 48.85], [2.36, 48.85], [2.36, 48.86], [2.33, 48.86], [2.33, 48.85]]]]}});
    let r = app.post("/v1/admin/restricted-zones", root.t(), zone).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let zone_id = r.json()["id"].as_str().expect("id").to_string();
    // both stand inside the zone: both leave the index, and a is told so (Revision 2)
    app.get("/v1/nearby", a.t()).await.assert_problem(409, "not_indexed");
    let cur = app.get("/v1/checkins/current", b.t()).await.json();
    assert_eq!(cur["indexed"], false);
    assert_eq!(cur["reason"], "restricted_zone");
    let list = app.get("/v1/admin/restricted-zones", root.t()).await.json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        app.delete(&format!("/v1/admin/restricted-zones/{zone_id}"), root.t())
            .await
            .status,
        204
    );
    // a moves back into the index as well, so ask from a's side
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()), vec![b.id.clone()]);
    app.delete(&format!("/v1/admin/restricted-zones/{zone_id}"), root.t())
        .await
        .assert_problem(404, "not_found");
    for geometry in [
        json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]}),
        json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]]}),
        json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]]}),
        json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [0.0, 95.0], [1.0, 1.0], [0.0, 0.0]]]}),
        json!({"type": "LineString", "coordinates": [[0.0, 0.0], [1.0, 1.0]]}),
    ] {
        app.post(
            "/v1/admin/restricted-zones",
            root.t(),
            json!({"name": "bad", "geometry": geometry}),
        )
        .await
        .assert_problem(422, "validation_failed");
    }
}

#[tokio::test]
async fn suspension_locks_a_user_out_and_hides_them() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    assert_eq!(
        app.post(&format!("/v1/admin/users/{}/suspend", b.id), root.t(), json!({}))
            .await
            .status,
        204
    );
    assert_eq!(ids(&app.get("/v1/nearby", a.t()).await.json()), Vec::<String>::new());
    app.post(
        "/v1/auth/login",
        None,
        json!({"email": b.email, "password": "correct horse battery"}),
    )
    .await
    .assert_problem(403, "forbidden");
    app.post("/v1/auth/refresh", None, json!({"refresh_token": b.refresh}))
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/checkins", b.t(), json!({"lat": 1.0, "lng": 1.0}))
        .await
        .assert_problem(403, "forbidden");
    let hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b.email.as_bytes()));
    let m = app
        .post("/v1/contacts/match", a.t(), json!({"email_sha256": [hash]}))
        .await
        .json();
    assert_eq!(
        m["matches"].as_array().map(Vec::len),
        Some(0),
        "suspended users are invisible to contact matching"
    );
    let u = app.get(&format!("/v1/admin/users/{}", b.id), root.t()).await.json();
    assert_eq!(u["suspended"], true);
    assert_eq!(u["has_live_location"], false);
    assert_eq!(
        app.post(&format!("/v1/admin/users/{}/unsuspend", b.id), root.t(), json!({}))
            .await
            .status,
        204
    );
    let r = app
        .post(
            "/v1/auth/login",
            None,
            json!({"email": b.email, "password": "correct horse battery"}),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn user_search_detail_and_purge() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (_a, b) = pair(&app).await;
    for n in 0..5 {
        app.register(&format!("bulk{n}")).await;
    }
    let v = app.get("/v1/admin/users?email=BULK&limit=3", root.t()).await.json();
    assert_eq!(v["items"].as_array().map(Vec::len), Some(3));
    let cursor = v["next_cursor"].as_str().expect("more").to_string();
    let v2 = app
        .get(&format!("/v1/admin/users?email=bulk&limit=3&cursor={cursor}"), root.t())
        .await
        .json();
    assert_eq!(v2["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(v2["next_cursor"], serde_json::Value::Null);
    let v = app.get("/v1/admin/users?email=bru", root.t()).await.json();
    assert_eq!(v["items"][0]["id"], b.id.as_str());
    assert_eq!(v["items"][0]["sharing"], true);
    assert_eq!(v["items"][0]["has_live_location"], true);
    assert_eq!(
        app.delete(&format!("/v1/admin/users/{}/location", b.id), root.t())
            .await
            .status,
        204
    );
    app.get("/v1/checkins/current", b.t())
        .await
        .assert_problem(404, "not_found");
    let missing = uuid::Uuid::new_v4();
    app.get(&format!("/v1/admin/users/{missing}"), root.t())
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/admin/users?email=%_", root.t()).await;
}

#[tokio::test]
async fn export_holds_everything_about_the_user() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    let c = app.register("carla").await;
    let d = app.register("dora").await;
    app.post("/v1/connections/requests", a.t(), json!({"to_user_id": c.id}))
        .await;
    app.post("/v1/connections/requests", d.t(), json!({"to_user_id": a.id}))
        .await;
    app.put(&format!("/v1/blocks/{}", root.id), a.t()).await;
    app.patch("/v1/me/privacy", a.t(), json!({"hidden_from": [b.id]})).await;
    let e = app.get("/v1/me/export", a.t()).await;
    assert_eq!(e.status, 200, "{}", e.text);
    let e = e.json();
    assert_eq!(e["profile"]["email"], a.email.as_str());
    assert_eq!(e["privacy"]["sharing"], true);
    assert_eq!(e["privacy"]["hidden_from"][0], b.id.as_str());
    assert_eq!(e["consent_history"].as_array().map(Vec::len), Some(1));
    assert_eq!(e["connections"][0]["user_id"], b.id.as_str());
    assert_eq!(e["connection_requests"]["outgoing"][0]["to_user_id"], c.id.as_str());
    assert_eq!(e["connection_requests"]["incoming"][0]["from_user_id"], d.id.as_str());
    assert_eq!(e["blocks"][0]["user_id"], root.id.as_str());
    assert_eq!(e["live_location"]["lat"], 48.8566);
    assert!(e["refresh_sessions"].as_array().is_some_and(|s| !s.is_empty()));
    let via_admin = app
        .get(&format!("/v1/admin/users/{}/export", a.id), root.t())
        .await
        .json();
    assert_eq!(via_admin["profile"], e["profile"]);
    assert_eq!(via_admin["connections"], e["connections"]);
}

/// Every table of the database and every key (name and value) under the test's prefix.
pub async fn traces_of(app: &TestApp, id: &str) -> Vec<String> {
    let mut found = vec![];
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&app.db)
    .await
    .expect("tables");
    for (t,) in tables {
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM \"{t}\" x WHERE x::text LIKE '%' || $1 || '%'"
        ))
        .bind(id)
        .fetch_one(&app.db)
        .await
        .expect("scan");
        if n > 0 {
            found.push(format!("postgres table {t}: {n} rows"));
        }
    }
    let raw = uuid::Uuid::parse_str(id).expect("uuid");
    let redis = &app.ctx.redis;
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for key in redis.scan_keys(&format!("{}:*", app.prefix)).await.expect("scan") {
        let shown = String::from_utf8_lossy(&key).into_owned();
        // a key names the user by the id's text or by its 16 bytes (the index's record keys)
        if has(&key, id.as_bytes()) || has(&key, raw.as_bytes()) {
            found.push(format!("redis key {shown}"));
            continue;
        }
        let kind: String = redis.run(redis::cmd("TYPE").arg(&key)).await.expect("type");
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis.run(redis::cmd("GET").arg(&key)).await.expect("get")],
            "set" => redis.run(redis::cmd("SMEMBERS").arg(&key)).await.expect("smembers"),
            "zset" => redis
                .run(redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1))
                .await
                .expect("zrange"),
            _ => vec![],
        };
        if values.iter().any(|v| v == raw.as_bytes() || has(v, id.as_bytes())) {
            found.push(format!("redis value in {shown}"));
        }
    }
    found
}

#[tokio::test]
async fn erasure_leaves_no_trace_in_either_store() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let (a, b) = pair(&app).await;
    let c = app.register("cleo").await;
    app.post("/v1/connections/requests", c.t(), json!({"to_user_id": b.id}))
        .await;
    app.put(&format!("/v1/blocks/{}", b.id), root.t()).await;
    app.get(&format!("/v1/admin/users/{}", b.id), root.t()).await;
    assert!(!traces_of(&app, &b.id).await.is_empty(), "the scan finds a live user");
    assert_eq!(
        app.delete(&format!("/v1/admin/users/{}", b.id), root.t()).await.status,
        204
    );
    let left = traces_of(&app, &b.id).await;
    assert!(left.is_empty(), "erased user still found: {left:?}");
    assert_eq!(
        ids(&app.get("/v1/nearby", a.t()).await.json()),
        Vec::<String>::new(),
        "connections see them vanish"
    );
    // and by the user's own hand
    assert_eq!(app.delete("/v1/me", a.t()).await.status, 204);
    let left = traces_of(&app, &a.id).await;
    assert!(left.is_empty(), "self-erased user still found: {left:?}");
    app.delete(&format!("/v1/admin/users/{}", b.id), root.t())
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn every_admin_call_is_audited_newest_first() {
    let app = spawn_app().await;
    let root = admin(&app).await;
    let u = app.register("target").await;
    app.get("/v1/admin/policy", root.t()).await;
    app.patch("/v1/admin/policy", root.t(), json!({"retention_days": 60}))
        .await;
    app.get(&format!("/v1/admin/users/{}", u.id), root.t()).await;
    let export = app.get(&format!("/v1/admin/users/{}/export", u.id), root.t()).await;
    assert_eq!(export.status, 200, "{}", export.text);
    assert_eq!(
        export.json()["live_location"],
        serde_json::Value::Null,
        "no live location: null"
    );
    app.post(&format!("/v1/admin/users/{}/suspend", u.id), root.t(), json!({}))
        .await;
    app.get("/v1/admin/users?email=t", root.t()).await;
    let v = app.get("/v1/admin/audit?limit=3", root.t()).await.json();
    let actions: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["audit.read", "user.search", "user.suspend"]);
    let next = v["next_cursor"].as_str().expect("more");
    let v = app
        .get(&format!("/v1/admin/audit?limit=10&cursor={next}"), root.t())
        .await
        .json();
    let actions: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        vec!["user.export", "user.read", "policy.update", "policy.read"]
    );
    let v = app
        .get(&format!("/v1/admin/audit?target_user_id={}", u.id), root.t())
        .await
        .json();
    let actions: Vec<&str> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(actions, vec!["audit.read", "user.suspend", "user.export", "user.read"]);
    assert!(v["items"][0]["actor_user_id"] == root.id.as_str());
    // the export's entry says what was read (sections and how many items), not the data
    let export = &v["items"][2]["detail"];
    assert_eq!(export["format"], "hereabouts-export/1", "{export}");
    assert_eq!(export["sections"]["profile"], 1, "{export}");
    assert!(export["sections"]["connections"].is_number(), "{export}");
    let detail = app.get("/v1/admin/audit?limit=50", root.t()).await.text;
    assert!(!detail.contains("48.85"), "no coordinates in the audit log");
}
