//! Travel plans: validation edges, owner-only access, overlaps (near misses, locals, the
//! exclusions of nearby), one `trip_overlap` notification per pair of trips, the calendar feed
//! and import, home base in the privacy settings, export and erasure.

use crate::helpers::{TestApp, TestUser, spawn_app};
use reqwest::Method;
use serde_json::{Value, json};
use time::{Date, Duration, OffsetDateTime};

// Paris, Versailles (about 17 km from Paris), Lyon (about 390 km)
const PARIS: (f64, f64) = (48.8566, 2.3522);
const VERSAILLES: (f64, f64) = (48.8049, 2.1204);
const LYON: (f64, f64) = (45.7640, 4.8357);

/// `YYYY-MM-DD` of today (UTC) plus `days`.
pub fn day(days: i64) -> String {
    let d: Date = OffsetDateTime::now_utc().date() + Duration::days(days);
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// Creates a trip for `u` and returns it.
pub async fn trip(app: &TestApp, u: &TestUser, at: (f64, f64), from: i64, to: i64, extra: Value) -> Value {
    let mut body = json!({"name": "trip", "lat": at.0, "lng": at.1, "starts_on": day(from), "ends_on": day(to)});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = app.post("/v1/trips", u.t(), body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn field(v: &Value) -> String {
    v["errors"][0]["field"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn trips_are_validated_as_the_contract_says() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let t = trip(&app, &a, PARIS, 3, 5, json!({})).await;
    assert_eq!(t["visibility"], "connections");
    assert_eq!(t["starts_on"], day(3));
    assert_eq!(t["ends_on"], day(5));
    assert_eq!(t["lat"], PARIS.0);
    let cell: h3o::CellIndex = t["h3_cell"].as_str().expect("cell").parse().expect("an H3 cell");
    assert_eq!(cell.resolution(), h3o::Resolution::Five);
    assert!(t["id"].is_string() && t["created_at"].is_string());
    // a trip that started before today but has not ended is fine; so are 90 days
    trip(&app, &a, PARIS, -3, 0, json!({})).await;
    trip(&app, &a, PARIS, 1, 91, json!({})).await;
    let post = |body: Value| {
        let app = &app;
        let a = &a;
        async move { app.post("/v1/trips", a.t(), body).await }
    };
    let base = |from: i64, to: i64| json!({"lat": PARIS.0, "lng": PARIS.1, "starts_on": day(from), "ends_on": day(to)});
    let v = post(base(5, 4)).await.assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "ends_on");
    let v = post(base(1, 92)).await.assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "ends_on", "longer than 90 days");
    let v = post(base(-5, -1)).await.assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "ends_on", "ended");
    let v = post(base(731 + 1, 735)).await.assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "starts_on", "more than 2 years ahead");
    let v = post(json!({"lat": 91.0, "lng": 0.0, "starts_on": day(1), "ends_on": day(2)}))
        .await
        .assert_problem(422, "invalid_coordinates");
    assert_eq!(field(&v), "lat");
    let v = post(json!({"lat": 1.0, "lng": 2.0, "starts_on": "tomorrow", "ends_on": day(2)}))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "starts_on");
    let mut bad = base(1, 2);
    bad["visibility"] = json!("everyone");
    post(bad).await.assert_problem(400, "bad_request");
    app.post("/v1/trips", None, base(1, 2))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn trips_are_their_owners_only() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    app.connect(&a, &b).await;
    let late = trip(&app, &a, PARIS, 20, 22, json!({})).await;
    let early = trip(&app, &a, LYON, 2, 4, json!({"visibility": "nobody"})).await;
    let r = app.get("/v1/trips", a.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let ids: Vec<&Value> = v["items"].as_array().expect("items").iter().map(|t| &t["id"]).collect();
    assert_eq!(ids, vec![&early["id"], &late["id"]], "by starts_on");
    assert_eq!(v["next_cursor"], Value::Null);
    let page = app.get("/v1/trips?limit=1", a.t()).await.json();
    assert_eq!(page["items"][0]["id"], early["id"]);
    let next = page["next_cursor"].as_str().expect("cursor");
    let page = app.get(&format!("/v1/trips?limit=1&cursor={next}"), a.t()).await.json();
    assert_eq!(page["items"][0]["id"], late["id"]);
    assert_eq!(app.get("/v1/trips", b.t()).await.json()["items"], json!([]));
    let path = format!("/v1/trips/{}", late["id"].as_str().expect("id"));
    app.get(&path, b.t()).await.assert_problem(404, "not_found");
    app.patch(&path, b.t(), json!({"name": "mine"}))
        .await
        .assert_problem(404, "not_found");
    app.delete(&path, b.t()).await.assert_problem(404, "not_found");
    app.get(&format!("{path}/overlaps"), b.t())
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/trips/not-a-uuid", a.t())
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.get(&path, a.t()).await.json()["id"], late["id"]);
    // a patch is validated as a creation, and keeps what it does not name
    let v = app
        .patch(&path, a.t(), json!({"ends_on": day(19)}))
        .await
        .assert_problem(422, "validation_failed");
    assert_eq!(field(&v), "ends_on");
    let r = app
        .patch(
            &path,
            a.t(),
            json!({"name": null, "ends_on": day(25), "visibility": "nobody"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let t = r.json();
    assert_eq!(
        (t["name"].clone(), t["ends_on"].clone(), t["visibility"].clone()),
        (Value::Null, json!(day(25)), json!("nobody"))
    );
    assert_eq!(t["starts_on"], day(20));
    assert_eq!(app.delete(&path, a.t()).await.status, 204);
    app.get(&path, a.t()).await.assert_problem(404, "not_found");
}

async fn overlaps(app: &TestApp, u: &TestUser, t: &Value, q: &str) -> Vec<Value> {
    let r = app
        .get(
            &format!("/v1/trips/{}/overlaps?{q}", t["id"].as_str().expect("id")),
            u.t(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

fn names(items: &[Value]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|i| {
            (
                i["display_name"].as_str().unwrap_or_default().to_string(),
                i["kind"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn overlaps_list_connections_there_then_with_the_exclusions_of_nearby() {
    let app = spawn_app().await;
    let me = app.register("me").await;
    let mine = trip(&app, &me, PARIS, 10, 14, json!({})).await;
    let mut users = std::collections::HashMap::new();
    for n in [
        "same",
        "miss",
        "versailles",
        "lyon",
        "local",
        "shy_local",
        "stranger",
        "secret",
        "blocked",
        "hider",
        "suspended",
    ] {
        let u = app.register(n).await;
        if n != "stranger" {
            app.connect(&me, &u).await;
        }
        users.insert(n, u);
    }
    let u = |n: &str| users.get(n).expect("user").clone();
    trip(&app, &u("same"), PARIS, 12, 16, json!({"name": "Offsite"})).await;
    trip(&app, &u("miss"), PARIS, 15, 17, json!({})).await;
    trip(&app, &u("versailles"), VERSAILLES, 8, 10, json!({})).await;
    trip(&app, &u("lyon"), LYON, 10, 14, json!({})).await;
    trip(&app, &u("stranger"), PARIS, 10, 14, json!({})).await;
    trip(&app, &u("secret"), PARIS, 10, 14, json!({"visibility": "nobody"})).await;
    trip(&app, &u("blocked"), PARIS, 10, 14, json!({})).await;
    trip(&app, &u("hider"), PARIS, 10, 14, json!({})).await;
    trip(&app, &u("suspended"), PARIS, 10, 14, json!({})).await;
    let home = |visible: bool| json!({"home": {"lat": PARIS.0 + 0.01, "lng": PARIS.1}, "home_visible": visible});
    assert_eq!(
        app.patch("/v1/me/privacy", u("local").t(), home(true)).await.status,
        200
    );
    assert_eq!(
        app.patch("/v1/me/privacy", u("shy_local").t(), home(false))
            .await
            .status,
        200
    );
    assert_eq!(
        app.put(&format!("/v1/blocks/{}", u("blocked").id), me.t()).await.status,
        204
    );
    let r = app
        .patch("/v1/me/privacy", u("hider").t(), json!({"hidden_from": [me.id]}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    sqlx::query("UPDATE users SET suspended = true WHERE id = $1")
        .bind(u("suspended").uuid())
        .execute(&app.db)
        .await
        .expect("suspend");

    let items = overlaps(&app, &me, &mine, "").await;
    let mut got = names(&items);
    // the local and the same-dates trip are both 0 days and (likely) 0 km away: either order
    got[..2].sort();
    assert_eq!(
        got,
        vec![
            ("local".to_string(), "home".to_string()),
            ("same".into(), "trip".into()),
            ("versailles".into(), "trip".into()),
            ("miss".into(), "trip".into()),
        ],
        "{items:#?}"
    );
    let by = |n: &str| items.iter().find(|i| i["display_name"] == n).expect("item").clone();
    let same = by("same");
    assert_eq!(same["gap_days"], 0);
    assert_eq!(
        (same["overlap_from"].clone(), same["overlap_to"].clone()),
        (json!(day(12)), json!(day(14)))
    );
    assert_eq!(same["distance_km"], 0);
    assert_eq!(same["trip"]["name"], "Offsite");
    assert_eq!(same["trip"]["starts_on"], day(12));
    assert_eq!(same["trip"]["h3_cell"], mine["h3_cell"]);
    assert!(same["trip"].get("lat").is_none(), "others learn the cell only");
    assert!(same.get("headline").is_some() && same.get("company").is_some());
    let versailles = by("versailles");
    assert_eq!(versailles["gap_days"], 0, "ends on the day the trip starts");
    assert!(
        (5..=40).contains(&versailles["distance_km"].as_i64().expect("km")),
        "{versailles}"
    );
    let miss = by("miss");
    assert_eq!(miss["gap_days"], 1);
    assert_eq!(
        (miss["overlap_from"].clone(), miss["overlap_to"].clone()),
        (json!(day(14)), json!(day(15))),
        "nearest pair"
    );
    let local = by("local");
    assert_eq!(local["trip"], Value::Null);
    assert_eq!(
        (local["overlap_from"].clone(), local["overlap_to"].clone()),
        (json!(day(10)), json!(day(14)))
    );

    let exact = overlaps(&app, &me, &mine, "tolerance_days=0").await;
    assert!(
        !names(&exact).contains(&("miss".into(), "trip".into())),
        "no near misses at 0"
    );
    let near = overlaps(&app, &me, &mine, "radius_km=5").await;
    assert!(!names(&near).contains(&("versailles".into(), "trip".into())));
    let wide = overlaps(&app, &me, &mine, "radius_km=500").await;
    assert!(names(&wide).contains(&("lyon".into(), "trip".into())));
    let path = format!("/v1/trips/{}/overlaps", mine["id"].as_str().expect("id"));
    for q in ["tolerance_days=8", "tolerance_days=-1", "radius_km=0", "radius_km=501"] {
        app.get(&format!("{path}?{q}"), me.t())
            .await
            .assert_problem(422, "validation_failed");
    }
    app.get(&format!("{path}?radius_km=abc"), me.t())
        .await
        .assert_problem(400, "bad_request");
}

async fn trip_notifications(app: &TestApp, u: &TestUser) -> Vec<Value> {
    let v = app.get("/v1/notifications", u.t()).await.json();
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|n| n["kind"] == "trip_overlap")
        .cloned()
        .collect()
}

#[tokio::test]
async fn both_owners_are_notified_once_per_pair_of_trips() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    let c = app.register("cleo").await;
    app.connect(&a, &b).await;
    let ta = trip(&app, &a, PARIS, 10, 14, json!({})).await;
    trip(&app, &c, PARIS, 10, 14, json!({})).await; // not a connection
    assert!(trip_notifications(&app, &a).await.is_empty());
    let tb = trip(&app, &b, VERSAILLES, 13, 20, json!({})).await;
    let na = trip_notifications(&app, &a).await;
    let nb = trip_notifications(&app, &b).await;
    assert_eq!((na.len(), nb.len()), (1, 1), "{na:?} {nb:?}");
    assert_eq!(na[0]["actor_user_id"], b.id.as_str());
    assert_eq!(na[0]["trip_id"], ta["id"], "the recipient's own trip");
    assert_eq!(nb[0]["trip_id"], tb["id"]);
    assert_eq!(
        (na[0]["overlap_from"].clone(), na[0]["overlap_to"].clone()),
        (json!(day(13)), json!(day(14)))
    );
    assert_eq!(na[0]["delivery"], "no_device");
    // the same pair again (a change of dates, a re-save) says nothing new
    let path = format!("/v1/trips/{}", tb["id"].as_str().expect("id"));
    assert_eq!(app.patch(&path, b.t(), json!({"starts_on": day(12)})).await.status, 200);
    assert_eq!(
        app.patch(&path, b.t(), json!({"lat": PARIS.0, "lng": PARIS.1}))
            .await
            .status,
        200
    );
    assert_eq!(trip_notifications(&app, &a).await.len(), 1);
    assert_eq!(trip_notifications(&app, &b).await.len(), 1);
    // a near miss is no overlap; a trip nobody sees tells nobody
    trip(&app, &b, PARIS, 15, 16, json!({})).await;
    trip(&app, &b, PARIS, 10, 11, json!({"visibility": "nobody"})).await;
    assert_eq!(trip_notifications(&app, &a).await.len(), 1);
    // another pair is another notification, each
    let moved = trip(&app, &b, LYON, 10, 11, json!({})).await;
    assert_eq!(trip_notifications(&app, &a).await.len(), 1, "Lyon is far");
    let path = format!("/v1/trips/{}", moved["id"].as_str().expect("id"));
    assert_eq!(
        app.patch(&path, b.t(), json!({"lat": PARIS.0, "lng": PARIS.1}))
            .await
            .status,
        200
    );
    assert_eq!(trip_notifications(&app, &a).await.len(), 2);
    assert_eq!(trip_notifications(&app, &b).await.len(), 2);
}

async fn get_anonymous(app: &TestApp, url: &str) -> (u16, String, String) {
    let r = app
        .client
        .get(format!("{}{url}", app.address))
        .send()
        .await
        .expect("sent");
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, r.text().await.expect("body"))
}

#[tokio::test]
async fn the_calendar_feed_is_secret_rotatable_and_needs_no_token() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    app.connect(&a, &b).await;
    trip(&app, &a, PARIS, 10, 14, json!({"name": "Paris offsite"})).await;
    trip(&app, &b, PARIS, 12, 13, json!({"name": "Salon"})).await;
    trip(&app, &b, LYON, 12, 13, json!({"name": "Far away"})).await;
    let r = app.post("/v1/trips/calendar-feed", a.t(), json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let url = r.json()["url"].as_str().expect("url").to_string();
    assert!(url.starts_with("/v1/calendar/") && url.ends_with(".ics"), "{url}");
    let (status, ct, body) = get_anonymous(&app, &url).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/calendar"), "{ct}");
    let cal: icalendar::Calendar = body.parse().expect("RFC 5545");
    use icalendar::Component;
    let events: Vec<_> = cal.events().collect();
    assert_eq!(events.len(), 2, "{body}");
    let own = events
        .iter()
        .find(|e| e.get_summary() == Some("Paris offsite"))
        .expect("own trip");
    let start = own.get_start().expect("DTSTART");
    assert!(matches!(start, icalendar::DatePerhapsTime::Date(_)), "all-day");
    assert_eq!(start.date_naive().to_string(), day(10));
    assert_eq!(
        own.get_end().expect("DTEND").date_naive().to_string(),
        day(15),
        "exclusive end"
    );
    let geo = own.property_value("GEO").expect("GEO");
    let (lat, lng) = geo.split_once(';').expect("lat;lng");
    let (lat, lng): (f64, f64) = (lat.parse().expect("lat"), lng.parse().expect("lng"));
    assert!(
        (lat - PARIS.0).abs() < 0.2 && (lng - PARIS.1).abs() < 0.2 && (lat, lng) != PARIS,
        "the cell centre"
    );
    assert!(
        events
            .iter()
            .any(|e| e.get_summary().is_some_and(|s| s.contains("Salon"))),
        "{body}"
    );
    // rotation: the old URL is gone
    let r = app.post("/v1/trips/calendar-feed", a.t(), json!({})).await;
    let url2 = r.json()["url"].as_str().expect("url").to_string();
    assert_ne!(url, url2);
    assert_eq!(get_anonymous(&app, &url).await.0, 404);
    assert_eq!(get_anonymous(&app, &url2).await.0, 200);
    assert_eq!(app.delete("/v1/trips/calendar-feed", a.t()).await.status, 204);
    assert_eq!(get_anonymous(&app, &url2).await.0, 404);
    assert_eq!(get_anonymous(&app, "/v1/calendar/nothing.ics").await.0, 404);
    app.post("/v1/trips/calendar-feed", None, json!({}))
        .await
        .assert_problem(401, "unauthorized");
    // only a hash of the secret is stored
    let secret = url2.trim_start_matches("/v1/calendar/").trim_end_matches(".ics");
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM calendar_feeds f WHERE f::text LIKE '%' || $1 || '%'")
        .bind(secret)
        .fetch_one(&app.db)
        .await
        .expect("scan");
    assert_eq!(n, 0);
}

fn ics(events: &[(&str, Option<&str>, &str, &str)]) -> Vec<u8> {
    let mut s = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//Trips//EN\r\n");
    for (uid, geo, start, end) in events {
        s.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nSUMMARY:Trip {uid}\r\n"
        ));
        if let Some(g) = geo {
            s.push_str(&format!("GEO:{g}\r\n"));
        }
        if !start.is_empty() {
            s.push_str(&format!("DTSTART{start}\r\n"));
        }
        if !end.is_empty() {
            s.push_str(&format!("DTEND{end}\r\n"));
        }
        s.push_str("END:VEVENT\r\n");
    }
    s.push_str("END:VCALENDAR\r\n");
    s.into_bytes()
}

fn compact(d: &str) -> String {
    d.replace('-', "")
}

#[tokio::test]
async fn import_makes_trips_from_events_with_geo_and_is_idempotent_by_uid() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let (d10, d12, d13, d20) = (
        compact(&day(10)),
        compact(&day(12)),
        compact(&day(13)),
        compact(&day(20)),
    );
    let (start, end) = (format!(";VALUE=DATE:{d10}"), format!(";VALUE=DATE:{d13}"));
    let flight = (format!(":{d20}T230000Z"), format!(":{d20}T235900Z"));
    let body = ics(&[
        ("hotel-1", Some("48.8566;2.3522"), &start, &end),
        ("flight-2", Some("45.764;4.8357"), &flight.0, &flight.1),
        ("no-geo", None, &start, &end),
        ("no-start", Some("48.8566;2.3522"), "", ""),
        (
            "past",
            Some("48.8566;2.3522"),
            ";VALUE=DATE:20200101",
            ";VALUE=DATE:20200102",
        ),
    ]);
    let r = app
        .post_raw("/v1/trips/import", a.t(), "text/calendar; charset=utf-8", body.clone())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let created = v["created"].as_array().expect("created");
    assert_eq!(created.len(), 2, "{v}");
    let hotel = created.iter().find(|t| t["name"] == "Trip hotel-1").expect("hotel");
    assert_eq!(
        (hotel["starts_on"].clone(), hotel["ends_on"].clone()),
        (json!(day(10)), json!(day(12))),
        "DTEND is exclusive"
    );
    assert_eq!(hotel["visibility"], "connections");
    let flight_trip = created.iter().find(|t| t["name"] == "Trip flight-2").expect("flight");
    assert_eq!(flight_trip["starts_on"], day(20));
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|s| s["uid"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(skipped, vec!["no-geo", "no-start", "past"]);
    assert!(v["skipped"][0]["reason"].is_string());
    assert_eq!(v["updated"], json!([]));
    // the same file again changes nothing but says "updated"; a changed event updates its trip
    let again = app
        .post_raw("/v1/trips/import", a.t(), "text/calendar", body)
        .await
        .json();
    assert_eq!(
        (
            again["created"].as_array().map(Vec::len),
            again["updated"].as_array().map(Vec::len)
        ),
        (Some(0), Some(2))
    );
    let moved = ics(&[("hotel-1", Some("45.764;4.8357"), &start, &format!(";VALUE=DATE:{d12}"))]);
    let v = app
        .post_raw("/v1/trips/import", a.t(), "text/calendar", moved)
        .await
        .json();
    assert_eq!(v["updated"][0]["id"], hotel["id"]);
    assert_eq!(v["updated"][0]["ends_on"], day(11));
    assert_ne!(v["updated"][0]["h3_cell"], hotel["h3_cell"]);
    assert_eq!(
        app.get("/v1/trips", a.t()).await.json()["items"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    // the edges of the body
    app.post_raw("/v1/trips/import", a.t(), "application/json", b"{}".to_vec())
        .await
        .assert_problem(415, "unsupported_media_type");
    app.post_raw("/v1/trips/import", a.t(), "text/calendar", vec![b'a'; 1024 * 1024 + 1])
        .await
        .assert_problem(413, "payload_too_large");
    app.post_raw("/v1/trips/import", a.t(), "text/calendar", b"not a calendar".to_vec())
        .await
        .assert_problem(400, "bad_request");
    app.post_raw("/v1/trips/import", None, "text/calendar", ics(&[]))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn home_base_shows_only_its_cell() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let v = app.get("/v1/me/privacy", a.t()).await.json();
    assert_eq!(
        (v["home"].clone(), v["home_visible"].clone()),
        (Value::Null, json!(false))
    );
    let r = app
        .patch(
            "/v1/me/privacy",
            a.t(),
            json!({"home": {"lat": PARIS.0, "lng": PARIS.1}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let cell: h3o::CellIndex = v["home"]["h3_cell"].as_str().expect("cell").parse().expect("H3");
    assert_eq!(cell.resolution(), h3o::Resolution::Five);
    assert_eq!(v["home"].as_object().map(|o| o.len()), Some(1), "the cell only: {v}");
    assert_eq!(v["home_visible"], false);
    let v = app
        .patch("/v1/me/privacy", a.t(), json!({"home_visible": true}))
        .await
        .json();
    assert_eq!(
        (v["home"]["h3_cell"].as_str(), v["home_visible"].clone()),
        (Some(cell.to_string().as_str()), json!(true))
    );
    let v = app.get("/v1/me/privacy", a.t()).await.json();
    assert_eq!(v["home"]["h3_cell"], cell.to_string());
    let v = app
        .patch("/v1/me/privacy", a.t(), json!({"home": {"lat": 0, "lng": 181}}))
        .await
        .assert_problem(422, "invalid_coordinates");
    assert_eq!(field(&v), "lng");
    let v = app.patch("/v1/me/privacy", a.t(), json!({"home": null})).await.json();
    assert_eq!(v["home"], Value::Null);
    assert_eq!(v["home_visible"], true);
}

#[tokio::test]
async fn export_and_erasure_include_trips_home_feed_and_shares() {
    let app = spawn_app().await;
    let a = app.register("ana").await;
    let b = app.register("ben").await;
    app.connect(&a, &b).await;
    trip(&app, &a, PARIS, 10, 14, json!({"name": "Paris"})).await;
    trip(&app, &b, PARIS, 11, 12, json!({})).await; // a trip_overlap pair
    app.patch("/v1/me/privacy", a.t(), json!({"home": {"lat": LYON.0, "lng": LYON.1}}))
        .await;
    assert_eq!(app.post("/v1/trips/calendar-feed", a.t(), json!({})).await.status, 201);
    let r = app
        .post("/v1/shares", a.t(), json!({"to_user_id": b.id, "duration_s": 600}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post("/v1/shares", b.t(), json!({"to_user_id": a.id, "duration_s": 600}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = app.get("/v1/me/export", a.t()).await.json();
    assert_eq!(v["trips"][0]["name"], "Paris");
    assert_eq!(v["trips"][0]["lat"], PARIS.0);
    assert_eq!(v["privacy"]["home_lat"], LYON.0);
    assert!(v["calendar_feed"]["secret_sha256"].is_string());
    assert_eq!(v["shares"]["given"][0]["to_user_id"], b.id.as_str());
    assert_eq!(v["shares"]["received"][0]["from_user_id"], b.id.as_str());
    assert!(
        v["notifications"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["kind"] == "trip_overlap"))
    );
    assert_eq!(app.delete("/v1/me", a.t()).await.status, 204);
    let left = crate::admin::traces_of(&app, &a.id).await;
    assert!(left.is_empty(), "erased user still found: {left:?}");
    assert!(
        trip_notifications(&app, &b).await.is_empty(),
        "notifications about them go with them"
    );
    assert_eq!(
        app.get("/v1/shares?direction=received", b.t()).await.json()["items"],
        json!([])
    );
}

/// Seeds a city with 10,000 visible trips and a user with 30,000 connections, and prints the
/// overlap query's plan and time (no assertion on time; `-- overlap_plan --nocapture` shows
/// them). Seeding by SQL takes a few seconds.
#[tokio::test]
async fn overlap_plan_on_a_crowded_city() {
    let app = spawn_app().await;
    let me = app.register("me").await;
    let mine = trip(&app, &me, PARIS, 10, 14, json!({})).await;
    let seed = std::time::Instant::now();
    // 40,000 users: 30,000 connections (a third of them with a trip in Paris, spread over a
    // year) and 10,000 strangers with a trip in Paris
    sqlx::query(
        "INSERT INTO users (id, email, email_sha256, display_name, password_hash)
         SELECT gen_random_uuid(), 'seed' || g || '@example.com', sha256(('seed' || g)::bytea), 'seed' || g, 'x'
         FROM generate_series(1, 40000) g",
    )
    .execute(&app.db)
    .await
    .expect("users");
    sqlx::query("INSERT INTO privacy_settings (user_id) SELECT id FROM users WHERE email LIKE 'seed%'")
        .execute(&app.db)
        .await
        .expect("privacy");
    sqlx::query(
        "INSERT INTO connections (user_id, peer_id)
         SELECT $1, id FROM (SELECT id FROM users WHERE email LIKE 'seed%' ORDER BY email LIMIT 30000) s
         UNION ALL SELECT id, $1 FROM (SELECT id FROM users WHERE email LIKE 'seed%' ORDER BY email LIMIT 30000) s",
    )
    .bind(me.uuid())
    .execute(&app.db)
    .await
    .expect("connections");
    let cell: h3o::CellIndex = mine["h3_cell"].as_str().expect("cell").parse().expect("cell");
    let c = h3o::LatLng::from(cell);
    sqlx::query(
        "INSERT INTO trips (id, user_id, lat, lng, h3_cell, centre, starts_on, ends_on)
         SELECT gen_random_uuid(), id, $1, $2, $3, point($2, $1), current_date + (n % 365)::int, current_date + (n % 365)::int + 3
         FROM (SELECT id, row_number() OVER (ORDER BY email) AS n FROM users WHERE email LIKE 'seed%') u
         WHERE n % 3 = 0 OR n > 30000",
    )
    .bind(c.lat())
    .bind(c.lng())
    .bind(cell.to_string())
    .execute(&app.db)
    .await
    .expect("trips");
    sqlx::query("ANALYZE").execute(&app.db).await.expect("analyze");
    println!("seeded in {:?}", seed.elapsed());
    let here = hereabouts::domain::trips::centre(cell);
    let boxes = hereabouts::domain::trips::search_boxes(here, 50.0);
    let today = OffsetDateTime::now_utc().date();
    let plan = hereabouts::store::trips::explain_candidates(
        &app.db,
        me.uuid(),
        today + Duration::days(9),
        today + Duration::days(15),
        &boxes,
    )
    .await
    .expect("explain");
    println!("{}", plan.join("\n"));
    let path = format!("/v1/trips/{}/overlaps", mine["id"].as_str().expect("id"));
    for _ in 0..3 {
        let t = std::time::Instant::now();
        let r = app.request(Method::GET, &path, me.t(), None).await;
        println!(
            "GET overlaps: {} items in {:?}",
            r.json()["items"].as_array().map(Vec::len).unwrap_or(0),
            t.elapsed()
        );
    }
}
