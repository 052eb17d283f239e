//! Operations endpoints and the error model.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn healthz_and_readyz_answer_200_when_stores_are_up() {
    let app = spawn_app().await;
    let r = app.get("/healthz", None).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("x-request-id").is_some(),
        "every response carries a request id"
    );
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["redis"], "ok");
}

#[tokio::test]
async fn readyz_is_503_quickly_when_redis_is_down() {
    // port 1 is closed on loopback
    let app = spawn_app_with(&[
        ("HEREABOUTS_REDIS_URL", "redis://127.0.0.1:1"),
        ("HEREABOUTS_STORE_TIMEOUT_MS", "500"),
    ])
    .await;
    let t = std::time::Instant::now();
    let r = app.get("/readyz", None).await;
    let v = r.assert_problem(503, "unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(v["detail"].as_str().unwrap_or("").contains("redis"), "{v}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "a down store must not hang the request"
    );
}

#[tokio::test]
async fn readyz_is_503_when_postgres_is_down() {
    let db = create_database().await;
    let prefix = format!("hbt:{}", uuid::Uuid::new_v4().simple());
    let mut s = test_settings(&db, &prefix, &[("HEREABOUTS_STORE_TIMEOUT_MS", "500")]);
    s.migrate_on_start = false;
    s.database_url = secrecy::SecretString::from("postgres://postgres@127.0.0.1:1/nothing".to_string());
    let app = hereabouts::startup::Application::build(s)
        .await
        .expect("builds while postgres is down");
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .expect("answer");
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    let body: serde_json::Value = r.json().await.expect("json");
    assert!(body["detail"].as_str().unwrap_or("").contains("postgres"), "{body}");
}

#[tokio::test]
async fn unknown_path_is_404_problem() {
    let app = spawn_app().await;
    app.get("/no/such/path", None).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn metrics_expose_request_counts_latency_and_pool_gauges() {
    let app = spawn_app().await;
    app.get("/healthz", None).await;
    app.get("/no/such", None).await;
    // not on the API listener: metrics are not public
    app.get("/metrics", None).await.assert_problem(404, "not_found");
    let r = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .expect("metrics listener");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    let t = r.text().await.expect("text");
    assert!(
        t.contains("http_requests_total{route=\"/healthz\",method=\"GET\",status=\"200\"} 1"),
        "{t}"
    );
    assert!(t.contains("status=\"404\""), "{t}");
    assert!(
        t.lines()
            .any(|l| l.starts_with("http_request_duration_seconds_bucket{") && l.contains("route=\"/healthz\"")),
        "{t}"
    );
    assert!(t.contains("db_pool_connections{state=\"idle\"}"), "{t}");
}

#[tokio::test]
async fn openapi_is_served_and_matches_the_code() {
    let app = spawn_app().await;
    let r = app.get("/openapi.yaml", None).await;
    assert_eq!(r.status, 200);
    let generated = hereabouts::http::openapi::render_yaml().expect("render");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml")).expect("openapi.yaml");
    assert_eq!(
        committed, generated,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
    assert_eq!(r.text, committed);
    assert!(committed.contains("openapi: 3.1"));
}

#[tokio::test]
async fn migrations_apply_to_a_fresh_database_and_rerun_cleanly() {
    let name = create_database().await;
    let url = {
        let s = test_settings(&name, "x", &[]);
        s.database_url().to_string()
    };
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    hereabouts::service::migrate(&pool).await.expect("first run");
    hereabouts::service::migrate(&pool)
        .await
        .expect("second run is a no-op");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM policy")
        .fetch_one(&pool)
        .await
        .expect("policy");
    assert_eq!(n, 1, "the default policy row exists");
    pool.close().await;
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_db_url())
        .await
        .expect("admin");
    sqlx::Executor::execute(&mut conn, format!("DROP DATABASE \"{name}\" WITH (FORCE)").as_str())
        .await
        .expect("drop");
}

#[tokio::test]
async fn config_errors_name_the_setting() {
    let bin = env!("CARGO_BIN_EXE_hereabouts");
    let out = std::process::Command::new(bin)
        .arg("serve")
        .env_clear()
        .env("HEREABOUTS_DATABASE_URL", "postgres://x@127.0.0.1/db")
        .env("HEREABOUTS_JWT_SECRET", "short")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HEREABOUTS_JWT_SECRET"), "{err}");
    assert!(!err.contains("short"), "secrets are never printed: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
    let out = std::process::Command::new(bin)
        .arg("serve")
        .env_clear()
        .env("HEREABOUTS_JWT_SECRET", "0123456789abcdef0123456789abcdef")
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEREABOUTS_DATABASE_URL"));
}

#[tokio::test]
async fn broken_json_is_400_and_big_bodies_413_problems() {
    let app = spawn_app().await;
    // /healthz does not take a body; use an endpoint that does once they exist: the JSON config is
    // global, so any JSON route shows it. Until then, check the fallback on a POST.
    let r = app
        .post_raw("/v1/auth/login", None, "application/json", b"{not json".to_vec())
        .await;
    r.assert_problem(400, "bad_request");
    let big = format!("{{\"email\":\"{}\",\"password\":\"x\"}}", "a".repeat(70 * 1024));
    let r = app
        .post_raw("/v1/auth/login", None, "application/json", big.into_bytes())
        .await;
    r.assert_problem(413, "payload_too_large");
    let r = app
        .post("/v1/auth/login", None, json!({"email": 5, "password": []}))
        .await;
    r.assert_problem(400, "bad_request");
}

#[tokio::test]
async fn other_methods_on_known_paths_are_405_with_allow() {
    let app = spawn_app().await;
    let r = app.request(reqwest::Method::PUT, "/v1/nearby", None, None).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET"));
    let r = app
        .request(
            reqwest::Method::PATCH,
            &format!("/v1/admin/users/{}", uuid::Uuid::new_v4()),
            None,
            None,
        )
        .await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("GET, DELETE"));
    app.get("/v1/nearbyx", None).await.assert_problem(404, "not_found");
}
