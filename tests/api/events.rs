//! Events (conference mode): creation and its validation, join codes (hidden from attendees,
//! a wrong one answers 404), leaving, deleting, the people inside the venue now (who shares,
//! hides, blocks), `not_at_event`, paging, export and erasure.

use crate::checkins::{checkin, share};
use crate::helpers::*;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const VENUE: (f64, f64) = (52.52, 13.405);
/// About 55 m north of the venue's point.
const INSIDE: (f64, f64) = (52.5205, 13.405);
/// About 1.1 km north.
const OUTSIDE: (f64, f64) = (52.53, 13.405);

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

fn body(starts: Duration, ends: Duration) -> Value {
    let now = OffsetDateTime::now_utc();
    json!({"name": "Social Shake-Up", "lat": VENUE.0, "lng": VENUE.1, "radius_m": 200,
           "starts_at": at(now + starts), "ends_at": at(now + ends)})
}

/// An event running now, organised by `o`: (id, join code).
async fn running(app: &TestApp, o: &TestUser) -> (String, String) {
    let r = app
        .post("/v1/events", o.t(), body(Duration::hours(-1), Duration::hours(3)))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    (
        v["id"].as_str().expect("id").to_string(),
        v["join_code"].as_str().expect("code").to_string(),
    )
}

async fn join(app: &TestApp, u: &TestUser, id: &str, code: &str) {
    let r = app
        .post(&format!("/v1/events/{id}/join"), u.t(), json!({"join_code": code}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn here(app: &TestApp, u: &TestUser, p: (f64, f64)) {
    share(app, u).await;
    checkin(app, u, p.0, p.1).await;
}

fn ids(v: &Value) -> Vec<String> {
    let mut ids: Vec<String> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["user_id"].as_str().expect("user_id").to_string())
        .collect();
    ids.sort();
    ids
}

fn sorted(users: &[&TestUser]) -> Vec<String> {
    let mut ids: Vec<String> = users.iter().map(|u| u.id.clone()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn events_are_validated() {
    let app = spawn_app().await;
    let o = app.register("org").await;
    let h = Duration::hours;
    let with = |key: &str, value: Value| {
        let mut b = body(h(0), h(1));
        b[key] = value;
        b
    };
    for (field, code, b) in [
        ("radius_m", "validation_failed", with("radius_m", json!(49))),
        ("radius_m", "validation_failed", with("radius_m", json!(5001))),
        ("ends_at", "validation_failed", body(h(1), h(1))),
        ("ends_at", "validation_failed", body(h(2), h(1))),
        (
            "ends_at",
            "validation_failed",
            body(h(0), Duration::days(14) + Duration::seconds(1)),
        ),
        ("name", "validation_failed", with("name", json!("  "))),
        ("name", "validation_failed", with("name", json!("x".repeat(101)))),
        ("lat", "validation_failed", with("lat", json!(90.5))),
    ] {
        let v = app.post("/v1/events", o.t(), b).await.assert_problem(422, code);
        assert!(
            v["errors"]
                .as_array()
                .is_some_and(|e| e.iter().any(|x| x["field"] == field)),
            "{field}: {v}"
        );
    }
    for radius in [50, 5000] {
        let mut b = body(h(0), Duration::days(14));
        b["radius_m"] = json!(radius);
        let r = app.post("/v1/events", o.t(), b).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        assert_eq!(v["radius_m"], radius);
        assert_eq!(v["organizer_id"], o.id.as_str());
        assert_eq!(v["name"], "Social Shake-Up");
        assert_eq!(v["lat"], VENUE.0);
        let code = v["join_code"].as_str().expect("the organiser sees the code");
        assert!(code.len() >= 6, "{code}");
        for f in ["id", "starts_at", "ends_at", "created_at"] {
            assert!(v[f].is_string(), "{f}: {v}");
        }
    }
    app.post("/v1/events", None, body(h(0), h(1)))
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/events", o.t(), json!({"name": "x"}))
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn join_codes_leaving_and_deleting() {
    let app = spawn_app().await;
    let o = app.register("organiser").await;
    let b = app.register("bea").await;
    let c = app.register("cid").await;
    let (id, code) = running(&app, &o).await;
    let (other, _) = running(&app, &o).await;
    assert_ne!(code, running(&app, &o).await.1, "codes are random");
    let path = format!("/v1/events/{id}");
    app.get(&path, b.t()).await.assert_problem(404, "not_found");
    // a wrong code answers as an unknown event
    let wrong = app
        .post(&format!("{path}/join"), b.t(), json!({"join_code": "WRONGCODE"}))
        .await
        .assert_problem(404, "not_found");
    let unknown = app
        .post(
            &format!("/v1/events/{}/join", uuid::Uuid::new_v4()),
            b.t(),
            json!({"join_code": code}),
        )
        .await
        .assert_problem(404, "not_found");
    assert_eq!(wrong["detail"], unknown["detail"]);
    app.post(&format!("/v1/events/{other}/join"), b.t(), json!({"join_code": code}))
        .await
        .assert_problem(404, "not_found");
    join(&app, &b, &id, &code).await;
    join(&app, &b, &id, &code.to_lowercase()).await;
    // attendees see the event, never its code
    let v = app.get(&path, b.t()).await;
    assert_eq!(v.status, 200, "{}", v.text);
    let v = v.json();
    assert_eq!(v["id"], id.as_str());
    assert!(v.get("join_code").is_none() || v["join_code"].is_null(), "{v}");
    assert!(!v.to_string().contains(&code), "{v}");
    let mine = app.get("/v1/events", b.t()).await.json();
    assert_eq!(mine["items"].as_array().map(Vec::len), Some(1), "{mine}");
    assert!(!mine.to_string().contains(&code));
    assert!(mine["next_cursor"].is_null());
    let v = app.get(&path, o.t()).await.json();
    assert_eq!(v["join_code"], code.as_str());
    let theirs = app.get("/v1/events?limit=2", o.t()).await.json();
    assert_eq!(theirs["items"].as_array().map(Vec::len), Some(2));
    assert!(theirs["next_cursor"].is_string());
    // only the organiser deletes
    app.delete(&path, b.t()).await.assert_problem(404, "not_found");
    app.delete(&path, c.t()).await.assert_problem(404, "not_found");
    // leaving
    assert_eq!(app.delete(&format!("{path}/attendance"), b.t()).await.status, 204);
    app.get(&path, b.t()).await.assert_problem(404, "not_found");
    app.delete(&format!("{path}/attendance"), b.t())
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.get("/v1/events", b.t()).await.json()["items"], json!([]));
    join(&app, &b, &id, &code).await;
    assert_eq!(app.delete(&path, o.t()).await.status, 204);
    app.get(&path, b.t()).await.assert_problem(404, "not_found");
    app.get(&path, o.t()).await.assert_problem(404, "not_found");
    app.delete(&path, o.t()).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn people_are_attendees_inside_the_venue_who_share_and_do_not_hide_or_block() {
    let app = spawn_app().await;
    let o = app.register("host").await;
    let a = app.register("ada").await;
    let b = app.register("ben").await;
    let c = app.register("cat").await;
    let d = app.register("dan").await;
    let e = app.register("eve").await;
    let f = app.register("fay").await;
    let g = app.register("gus").await;
    let stranger = app.register("stranger").await;
    let (id, code) = running(&app, &o).await;
    for u in [&a, &b, &c, &d, &e, &f, &g] {
        join(&app, u, &id, &code).await;
    }
    app.patch(
        "/v1/me",
        b.t(),
        json!({"headline": "Ben's headline", "company": "Acme, Inc.", "title": "CTO",
                                      "avatar_url": "https://cdn.example.com/ben.png"}),
    )
    .await;
    app.connect(&a, &b).await;
    app.post("/v1/connections/requests", c.t(), json!({"to_user_id": a.id}))
        .await;
    for u in [&o, &a, &b, &c, &e, &f, &g, &stranger] {
        here(&app, u, INSIDE).await;
    }
    here(&app, &d, OUTSIDE).await;
    // f hides from a; g is blocked by a; e blocks a
    app.patch("/v1/me/privacy", f.t(), json!({"hidden_from": [a.id]})).await;
    app.put(&format!("/v1/blocks/{}", g.id), a.t()).await;
    app.put(&format!("/v1/blocks/{}", a.id), e.t()).await;
    let people = format!("/v1/events/{id}/people");
    let r = app.get(&people, a.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(ids(&v), sorted(&[&o, &b, &c]), "{v}");
    let ben = v["items"]
        .as_array()
        .and_then(|i| i.iter().find(|x| x["user_id"] == b.id.as_str()))
        .expect("ben");
    assert_eq!(ben["display_name"], "ben");
    assert_eq!(ben["headline"], "Ben's headline");
    assert_eq!(ben["company"], "Acme, Inc.");
    assert_eq!(ben["title"], "CTO");
    assert_eq!(ben["avatar_url"], "https://cdn.example.com/ben.png");
    assert_eq!(ben["connection"], "connected");
    assert!(ben["since"].is_string());
    let cat = v["items"]
        .as_array()
        .and_then(|i| i.iter().find(|x| x["user_id"] == c.id.as_str()))
        .expect("cat");
    assert_eq!(cat["connection"], "pending_incoming");
    // no distance, no cell, no point
    let text = v.to_string();
    for leak in ["distance", "h3_cell", "cell", "lat", "lng", "52.52"] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    // the others see whom they may
    assert_eq!(
        ids(&app.get(&people, b.t()).await.json()),
        sorted(&[&o, &a, &c, &e, &f, &g])
    );
    assert_eq!(
        ids(&app.get(&people, f.t()).await.json()),
        sorted(&[&o, &b, &c, &e, &g, &a])
    );
    let seen_by_e = ids(&app.get(&people, e.t()).await.json());
    assert!(!seen_by_e.contains(&a.id), "a blocked by e is not listed for e");
    let seen_by_g = ids(&app.get(&people, g.t()).await.json());
    assert!(!seen_by_g.contains(&a.id), "g blocked by a does not see a");
    // sharing off, or a pause: gone
    app.patch("/v1/me/privacy", b.t(), json!({"sharing": false})).await;
    app.patch(
        "/v1/me/privacy",
        c.t(),
        json!({"paused_until": at(OffsetDateTime::now_utc() + Duration::hours(1))}),
    )
    .await;
    assert_eq!(ids(&app.get(&people, a.t()).await.json()), sorted(&[&o]));
    // a non-attendee: 404, even inside the venue
    app.get(&people, stranger.t()).await.assert_problem(404, "not_found");
}

#[tokio::test]
async fn only_an_attendee_inside_the_venue_during_the_event_sees_people() {
    let app = spawn_app().await;
    let o = app.register("ozzy").await;
    let a = app.register("abe").await;
    let (id, code) = running(&app, &o).await;
    join(&app, &a, &id, &code).await;
    let people = format!("/v1/events/{id}/people");
    // no check-in
    app.get(&people, a.t()).await.assert_problem(409, "not_at_event");
    // outside the venue
    here(&app, &a, OUTSIDE).await;
    app.get(&people, a.t()).await.assert_problem(409, "not_at_event");
    here(&app, &a, INSIDE).await;
    let r = app.get(&people, a.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // after leaving the index
    assert_eq!(app.delete("/v1/checkins/current", a.t()).await.status, 204);
    app.get(&people, a.t()).await.assert_problem(409, "not_at_event");
    // an event that has not started, and one that has ended
    here(&app, &a, INSIDE).await;
    for (s, e) in [
        (Duration::hours(2), Duration::hours(4)),
        (Duration::hours(-4), Duration::hours(-2)),
    ] {
        let r = app.post("/v1/events", o.t(), body(s, e)).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let v = r.json();
        let later = v["id"].as_str().expect("id");
        join(&app, &a, later, v["join_code"].as_str().expect("code")).await;
        app.get(&format!("/v1/events/{later}/people"), a.t())
            .await
            .assert_problem(409, "not_at_event");
    }
    // no longer an attendee: no such event for the caller
    app.delete(&format!("/v1/events/{id}/attendance"), a.t()).await;
    app.get(&people, a.t()).await.assert_problem(404, "not_found");
    app.get(&format!("/v1/events/{}/people", uuid::Uuid::new_v4()), a.t())
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn people_page_without_repeats() {
    let app = spawn_app().await;
    let o = app.register("pager").await;
    let (id, code) = running(&app, &o).await;
    here(&app, &o, INSIDE).await;
    let mut all = vec![];
    for i in 0..5 {
        let u = app.register(&format!("guest{i}")).await;
        join(&app, &u, &id, &code).await;
        here(&app, &u, INSIDE).await;
        all.push(u);
    }
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("/v1/events/{id}/people?limit=2&cursor={c}"),
            None => format!("/v1/events/{id}/people?limit=2"),
        };
        let v = app.get(&q, o.t()).await.json();
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|i| i["user_id"].as_str().expect("id").to_string()));
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    seen.sort();
    let refs: Vec<&TestUser> = all.iter().collect();
    assert_eq!(seen, sorted(&refs));
    app.get(&format!("/v1/events/{id}/people?limit=0"), o.t())
        .await
        .assert_problem(422, "validation_failed");
    app.get(&format!("/v1/events/{id}/people?cursor=nonsense"), o.t())
        .await
        .assert_problem(400, "bad_request");
}

#[tokio::test]
async fn export_and_erasure_include_events() {
    let app = spawn_app().await;
    let o = app.register("exporter").await;
    let a = app.register("attender").await;
    let (id, code) = running(&app, &o).await;
    let (theirs, their_code) = running(&app, &a).await;
    join(&app, &a, &id, &code).await;
    join(&app, &o, &theirs, &their_code).await;
    let e = app.get("/v1/me/export", o.t()).await.json();
    assert_eq!(e["events_organised"][0]["id"], id.as_str(), "{e}");
    assert_eq!(e["events_organised"][0]["join_code"], code.as_str());
    let attended: Vec<&str> = e["event_attendance"]
        .as_array()
        .expect("attendance")
        .iter()
        .filter_map(|x| x["event_id"].as_str())
        .collect();
    assert!(
        attended.contains(&id.as_str()) && attended.contains(&theirs.as_str()),
        "{e}"
    );
    // erasing the organiser deletes the events they organised, with every attendance
    assert_eq!(app.delete("/v1/me", o.t()).await.status, 204);
    let traces = crate::admin::traces_of(&app, &o.id).await;
    assert!(traces.is_empty(), "{traces:?}");
    app.get(&format!("/v1/events/{id}"), a.t())
        .await
        .assert_problem(404, "not_found");
    let left = app.get("/v1/events", a.t()).await.json();
    assert_eq!(ids_of_events(&left), vec![theirs.clone()]);
}

fn ids_of_events(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["id"].as_str().map(str::to_string))
        .collect()
}
