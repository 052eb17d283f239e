//! Notifications of Revision 2, black-box: connection requests and acceptances, quiet hours in
//! the recipient's time zone, the failure reason shown to the owner, the development log
//! provider, and Web Push against a push-service stand-in that verifies VAPID and decrypts.
//!
//! The worker is driven by the test (`deliver`); nothing asserts on elapsed time.

use crate::helpers::*;
use crate::standins::{self, Providers, Reply};
use hereabouts::push::worker::Worker;
use serde_json::{Value, json};

async fn deliver(app: &TestApp) -> usize {
    app.worker
        .get_or_init(|| Worker::new(app.ctx.clone()).expect("worker"))
        .deliver_due()
        .await
}

async fn notes(app: &TestApp, u: &TestUser) -> Vec<Value> {
    let r = app.get("/v1/notifications", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

async fn webhook_device(app: &TestApp, p: &Providers, u: &TestUser) {
    let url = format!("{}/hook/{}", p.webhook.url, u.id);
    let r = app
        .post("/v1/devices", u.t(), json!({"platform": "webhook", "token": url}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn ask(app: &TestApp, from: &TestUser, to: &TestUser) -> Resp {
    app.post("/v1/connections/requests", from.t(), json!({"to_user_id": to.id}))
        .await
}

#[tokio::test]
async fn a_request_and_its_acceptance_notify_the_other_side_with_the_request() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    webhook_device(&app, &p, &bea).await;
    let r = ask(&app, &ann, &bea).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let request = r.json()["id"].clone();

    // bea hears of it at once in her list, and on her device
    let items = notes(&app, &bea).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["kind"], "connection_request");
    assert_eq!(items[0]["request_id"], request);
    assert_eq!(items[0]["actor_user_id"], ann.id.as_str());
    assert_eq!(items[0]["actor_display_name"], "ann");
    assert!(items[0]["read_at"].is_null());
    assert!(notes(&app, &ann).await.is_empty(), "the asker is told nothing");
    deliver(&app).await;
    let hits = p.webhook.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].body["kind"], "connection_request");
    assert_eq!(hits[0].body["request_id"], request);
    assert_eq!(hits[0].body["body"], "ann wants to connect");
    assert_eq!(notes(&app, &bea).await[0]["delivery"], "delivered");

    // bea accepts: ann is told, naming her request
    let r = app
        .post(
            &format!("/v1/connections/requests/{}/accept", request.as_str().expect("id")),
            bea.t(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let items = notes(&app, &ann).await;
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["kind"], "connection_accepted");
    assert_eq!(items[0]["request_id"], request);
    assert_eq!(items[0]["actor_user_id"], bea.id.as_str());
    assert_eq!(items[0]["delivery"], "no_device");

    // asking back connects at once, and the first asker hears it as an acceptance
    let cy = app.register("cy").await;
    let r = ask(&app, &cy, &ann).await;
    let first = r.json()["id"].clone();
    assert_eq!(ask(&app, &ann, &cy).await.status, 200);
    let items = notes(&app, &cy).await;
    assert_eq!(items[0]["kind"], "connection_accepted", "{items:?}");
    assert_eq!(items[0]["request_id"], first);

    // only the kind asked for, by unread
    let r = app.get("/v1/notifications?unread=true", ann.t()).await.json();
    assert_eq!(r["items"].as_array().map(Vec::len), Some(2), "{r}");
}

#[tokio::test]
async fn a_request_answered_before_its_push_is_not_pushed() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    webhook_device(&app, &p, &bea).await;
    let request = ask(&app, &ann, &bea).await.json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = app
        .post(
            &format!("/v1/connections/requests/{request}/decline"),
            bea.t(),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 204);
    deliver(&app).await;
    assert!(p.webhook.hits().is_empty(), "a declined request is not pushed");
    let items = notes(&app, &bea).await;
    assert_eq!(items[0]["delivery"], "failed");
    let why = items[0]["delivery_error"].as_str().expect("a reason");
    assert!(why.starts_with("withdrawn"), "{why}");
}

/// A quiet-hours window around now (UTC), as `HH:MM`.
fn window_around_now() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let at = |d: time::Duration| {
        let t = now + d;
        format!("{:02}:{:02}", t.hour(), t.minute())
    };
    (at(time::Duration::hours(-1)), at(time::Duration::hours(2)))
}

#[tokio::test]
async fn quiet_hours_hold_pushes_which_the_list_shows_at_once() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    webhook_device(&app, &p, &bea).await;

    // defaults, and what is refused
    let privacy = app.get("/v1/me/privacy", bea.t()).await.json();
    assert_eq!(privacy["time_zone"], "UTC");
    assert!(privacy["quiet_hours"].is_null());
    let r = app
        .patch("/v1/me/privacy", bea.t(), json!({"time_zone": "Mars/Olympus_Mons"}))
        .await;
    assert_eq!(
        r.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "time_zone"
    );
    let r = app
        .patch(
            "/v1/me/privacy",
            bea.t(),
            json!({"quiet_hours": {"from": "25:00", "to": "7:00"}}),
        )
        .await;
    let v = r.assert_problem(422, "validation_failed");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["quiet_hours.from", "quiet_hours.to"]);
    let r = app
        .patch("/v1/me/privacy", bea.t(), json!({"quiet_hours": {"from": "22:00"}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // a zone by its canonical name, a window around now (in UTC, for a test that runs at any hour)
    let (from, to) = window_around_now();
    let r = app
        .patch(
            "/v1/me/privacy",
            bea.t(),
            json!({"time_zone": "etc/utc", "quiet_hours": {"from": from, "to": to}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["time_zone"], "Etc/UTC");
    assert_eq!(r.json()["quiet_hours"], json!({"from": from, "to": to}));

    ask(&app, &ann, &bea).await;
    deliver(&app).await;
    assert!(p.webhook.hits().is_empty(), "nothing is sent in quiet hours");
    let items = notes(&app, &bea).await;
    assert_eq!(items.len(), 1, "the list shows it at once");
    assert_eq!(items[0]["delivery"], "held");
    let until: (time::OffsetDateTime,) = sqlx::query_as("SELECT next_attempt_at FROM deliveries")
        .fetch_one(&app.db)
        .await
        .expect("delivery");
    let expected_end = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    assert!(
        (until.0 - expected_end).abs() < time::Duration::minutes(2),
        "held until the end: {}",
        until.0
    );
    // a second pass of the worker before the end sends nothing either
    deliver(&app).await;
    assert!(p.webhook.hits().is_empty());

    // the hours end (here: bea moves them away from now): what was held goes out
    let r = app
        .patch(
            "/v1/me/privacy",
            bea.t(),
            json!({"time_zone": "Asia/Kolkata", "quiet_hours": null}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    deliver(&app).await;
    let hits = p.webhook.hits();
    assert_eq!(hits.len(), 1, "released at the end");
    assert_eq!(hits[0].body["kind"], "connection_request");
    assert_eq!(notes(&app, &bea).await[0]["delivery"], "delivered");
}

#[tokio::test]
async fn a_failed_delivery_tells_its_owner_why() {
    let p = Providers::start().await;
    // the retry is made due by the test itself: with the stand-ins' 100–200 ms backoff, a pass
    // of the worker slower than that (a loaded machine) made it within the first pass
    let app = p
        .app(&[
            ("HEREABOUTS_PUSH_BACKOFF_BASE_MS", "600000"),
            ("HEREABOUTS_PUSH_BACKOFF_MAX_MS", "600000"),
        ])
        .await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    webhook_device(&app, &p, &bea).await;
    p.webhook
        .script([Reply::Status(500, json!({})), Reply::Status(400, json!({}))]);
    ask(&app, &ann, &bea).await;
    deliver(&app).await;
    let items = notes(&app, &bea).await;
    assert_eq!(items[0]["delivery"], "pending");
    assert_eq!(items[0]["delivery_error"], "webhook 500", "a retry says why it waits");
    sqlx::query("UPDATE deliveries SET next_attempt_at = now()")
        .execute(&app.db)
        .await
        .expect("due now");
    deliver(&app).await;
    let items = notes(&app, &bea).await;
    assert_eq!(items[0]["delivery"], "failed");
    assert_eq!(items[0]["delivery_error"], "webhook 400");
    // no address, no token in what the owner reads
    assert!(!items[0].to_string().contains(&p.webhook.url));
}

#[tokio::test]
async fn the_development_log_provider_delivers_without_sending() {
    let p = Providers::start().await;
    let app = p.app(&[("HEREABOUTS_PUSH_DEV_LOG", "true")]).await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let r = app
        .post("/v1/devices", bea.t(), json!({"platform": "ios", "token": token}))
        .await;
    assert_eq!(r.status, 201);
    webhook_device(&app, &p, &bea).await;
    ask(&app, &ann, &bea).await;
    assert_eq!(deliver(&app).await, 2);
    assert!(
        p.apns.hits().is_empty() && p.webhook.hits().is_empty(),
        "logged, not sent"
    );
    assert_eq!(notes(&app, &bea).await[0]["delivery"], "delivered");
}

#[tokio::test]
async fn web_push_is_encrypted_for_the_browser_and_signed_with_vapid() {
    let p = Providers::start().await;
    let app = p.app(&[]).await;
    let (service, browser) = standins::webpush().await;
    let (ann, bea) = (app.register("ann").await, app.register("bea").await);
    let r = app.get("/v1/push/vapid-public-key", bea.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = r.json()["key"].as_str().expect("key").to_string();
    assert_eq!(key.len(), 87, "65 bytes, base64url: {key}");
    assert_eq!(app.get("/v1/push/vapid-public-key", None).await.status, 401);
    *browser.application_server_key.lock().expect("lock") = key;

    let auth = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(browser.auth)
    };
    let subscription = json!({"endpoint": format!("{}/wpush/v2/bea", service.url),
                              "keys": {"p256dh": browser.p256dh(), "auth": auth}});
    // what is refused: no subscription, bad keys
    let r = app.post("/v1/devices", bea.t(), json!({"platform": "web"})).await;
    assert_eq!(
        r.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "subscription"
    );
    let mut bad = subscription.clone();
    bad["keys"]["auth"] = json!("dG9vLXNob3J0");
    let r = app
        .post("/v1/devices", bea.t(), json!({"platform": "web", "subscription": bad}))
        .await;
    assert_eq!(
        r.assert_problem(422, "validation_failed")["errors"][0]["field"],
        "subscription.keys.auth"
    );
    let r = app
        .post(
            "/v1/devices",
            bea.t(),
            json!({"platform": "web", "subscription": subscription}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["platform"], "web");

    ask(&app, &ann, &bea).await;
    deliver(&app).await;
    assert!(service.problems().is_empty(), "{:?}", service.problems());
    let hits = service.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].path, "/wpush/v2/bea");
    // the push service saw only ciphertext; the browser reads the message
    assert_eq!(hits[0].body["kind"], "connection_request");
    assert_eq!(hits[0].body["title"], "Connection request");
    assert_eq!(hits[0].body["body"], "ann wants to connect");
    assert_eq!(notes(&app, &bea).await[0]["delivery"], "delivered");

    // a subscription the push service no longer knows deactivates the device
    service.script([Reply::Status(410, json!({}))]);
    let cy = app.register("cy").await;
    ask(&app, &cy, &bea).await;
    deliver(&app).await;
    let devices = app.get("/v1/devices", bea.t()).await.json();
    assert_eq!(devices["items"][0]["active"], false, "{devices}");
    let items = notes(&app, &bea).await;
    assert_eq!(items[0]["delivery"], "failed");
    assert!(items[0]["delivery_error"].as_str().expect("why").contains("410"));
}
