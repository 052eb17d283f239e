//! The authorisation matrix: for every endpoint that takes an id or returns personal data, a
//! second user, an anonymous caller and (on admin paths) a non-admin are tried against the first
//! user's resources. They get 401/403/404 and learn nothing: the body is the same whether the
//! resource exists or not.

use crate::checkins::{checkin, share};
use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn another_user_cannot_reach_or_probe_my_resources() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let other = app.register("other").await;
    let third = app.register("third").await;
    share(&app, &owner).await;
    checkin(&app, &owner, 45.0, 7.0).await;
    // owner has a pending request from third, and a device
    let req = app
        .post("/v1/connections/requests", third.t(), json!({"to_user_id": owner.id}))
        .await
        .json();
    let req_id = req["id"].as_str().expect("request id").to_string();
    let dev = app
        .post(
            "/v1/devices",
            owner.t(),
            json!({"platform": "android", "token": "fcm-token-owner-0001-abcdefghijklmnopqrstuvwxyz"}),
        )
        .await;
    assert_eq!(dev.status, 201, "{}", dev.text);
    let dev_id = dev.json()["id"].as_str().expect("device id").to_string();
    let missing = uuid::Uuid::new_v4().to_string();

    // (method, path with the real id, same path with an id that does not exist)
    let probes: Vec<(Method, String, String)> = vec![
        (
            Method::POST,
            format!("/v1/connections/requests/{req_id}/accept"),
            format!("/v1/connections/requests/{missing}/accept"),
        ),
        (
            Method::POST,
            format!("/v1/connections/requests/{req_id}/decline"),
            format!("/v1/connections/requests/{missing}/decline"),
        ),
        (
            Method::DELETE,
            format!("/v1/devices/{dev_id}"),
            format!("/v1/devices/{missing}"),
        ),
        (
            Method::DELETE,
            format!("/v1/connections/{}", owner.id),
            format!("/v1/connections/{missing}"),
        ),
    ];
    for (m, real, fake) in &probes {
        let body = (*m == Method::POST).then(|| json!({}));
        let a = app.request(m.clone(), real, other.t(), body.clone()).await;
        let b = app.request(m.clone(), fake, other.t(), body.clone()).await;
        a.assert_problem(404, "not_found");
        assert_eq!(a.text, b.text, "{m} {real}: a second user learns nothing");
        app.request(m.clone(), real, None, body)
            .await
            .assert_problem(401, "unauthorized");
    }
    // nothing changed for the owner
    let incoming = app
        .get("/v1/connections/requests?direction=incoming", owner.t())
        .await
        .json();
    assert_eq!(incoming["items"].as_array().map(Vec::len), Some(1));
    let devices = app.get("/v1/devices", owner.t()).await.json();
    assert_eq!(
        devices["items"]
            .as_array()
            .map(Vec::len)
            .or_else(|| devices.as_array().map(Vec::len)),
        Some(1)
    );

    // personal-data reads answer only for the caller: anonymous is 401, another user sees their own
    for path in [
        "/v1/me",
        "/v1/me/privacy",
        "/v1/me/export",
        "/v1/checkins/current",
        "/v1/connections",
        "/v1/connections/requests?direction=incoming",
        "/v1/blocks",
        "/v1/devices",
        "/v1/notifications",
        "/v1/nearby",
    ] {
        app.get(path, None).await.assert_problem(401, "unauthorized");
        let r = app.get(path, other.t()).await;
        assert!(
            !r.text.contains(&owner.id) && !r.text.contains(&owner.email),
            "{path} leaks the owner: {}",
            r.text
        );
    }

    // admin paths: a non-admin gets the same 403 whether the target exists or not
    for (m, tail) in [
        (Method::GET, ""),
        (Method::GET, "/export"),
        (Method::POST, "/suspend"),
        (Method::POST, "/unsuspend"),
        (Method::DELETE, "/location"),
        (Method::DELETE, ""),
    ] {
        let body = (m == Method::POST).then(|| json!({}));
        let a = app
            .request(
                m.clone(),
                &format!("/v1/admin/users/{}{tail}", owner.id),
                other.t(),
                body.clone(),
            )
            .await;
        let b = app
            .request(
                m.clone(),
                &format!("/v1/admin/users/{missing}{tail}"),
                other.t(),
                body.clone(),
            )
            .await;
        a.assert_problem(403, "forbidden");
        assert_eq!(a.text, b.text);
        app.request(m, &format!("/v1/admin/users/{}{tail}", owner.id), None, body)
            .await
            .assert_problem(401, "unauthorized");
    }
    assert_eq!(app.get("/v1/me", owner.t()).await.status, 200, "the owner is untouched");
    assert_eq!(app.get("/v1/checkins/current", owner.t()).await.status, 200);
}
