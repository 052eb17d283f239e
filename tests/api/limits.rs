//! Resource limits: body sizes, list sizes, `limit` caps, the request deadline and the cap on
//! concurrent requests per instance.

use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn bodies_lists_and_limits_are_capped() {
    let app = spawn_app().await;
    let u = app.register("capped").await;
    // 64 KiB by default
    let big = json!({"display_name": "x".repeat(70 * 1024)});
    app.patch("/v1/me", u.t(), big)
        .await
        .assert_problem(413, "payload_too_large");
    // contact matching takes up to 1,000 hashes (its own 128 KiB limit), not 1,001
    let hash = "ab".repeat(32);
    let ok = app
        .post(
            "/v1/contacts/match",
            u.t(),
            json!({"email_sha256": vec![hash.clone(); 1000]}),
        )
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    app.post("/v1/contacts/match", u.t(), json!({"email_sha256": vec![hash; 1001]}))
        .await
        .assert_problem(422, "validation_failed");
    // hidden_from holds at most 1,000 users
    let many: Vec<String> = (0..1001).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    app.patch("/v1/me/privacy", u.t(), json!({"hidden_from": many}))
        .await
        .assert_problem(422, "validation_failed");
    // list limits are capped at 500
    for path in [
        "/v1/connections?limit=501",
        "/v1/blocks?limit=501",
        "/v1/notifications?limit=501",
        "/v1/nearby?limit=501",
    ] {
        let r = app.get(path, u.t()).await;
        assert_eq!(r.status, 422, "{path}: {}", r.text);
    }
}

#[tokio::test]
async fn the_request_deadline_answers_503_not_a_hang() {
    // argon2 with 64 MiB and 8 passes takes far longer than the 50 ms deadline
    let app = spawn_app_with(&[
        ("HEREABOUTS_REQUEST_TIMEOUT_MS", "100"),
        ("HEREABOUTS_ARGON2_MEMORY_KIB", "65536"),
        ("HEREABOUTS_ARGON2_ITERATIONS", "8"),
    ])
    .await;
    let started = std::time::Instant::now();
    let r = app
        .post(
            "/v1/auth/register",
            None,
            json!({"email": "slow@example.com", "password": "correct horse battery", "display_name": "S"}),
        )
        .await;
    r.assert_problem(503, "unavailable");
    assert!(r.header("retry-after").is_some());
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[tokio::test]
async fn concurrent_requests_past_the_cap_get_503() {
    let app = spawn_app_with(&[
        ("HEREABOUTS_MAX_CONCURRENT_REQUESTS", "1"),
        ("HEREABOUTS_ARGON2_MEMORY_KIB", "32768"),
        ("HEREABOUTS_ARGON2_ITERATIONS", "4"),
        ("HEREABOUTS_WORKERS", "2"),
    ])
    .await;
    let reqs = (0..6).map(|i| {
        app.post(
            "/v1/auth/register",
            None,
            json!({"email": format!("c{i}@example.com"), "password": "correct horse battery", "display_name": "C"}),
        )
    });
    let results = futures_util::future::join_all(reqs).await;
    let statuses: Vec<u16> = results.iter().map(|r| r.status.as_u16()).collect();
    assert!(statuses.contains(&201), "{statuses:?}");
    assert!(statuses.contains(&503), "{statuses:?}");
    for r in results.iter().filter(|r| r.status == 503) {
        r.assert_problem(503, "unavailable");
    }
}
