//! Profiles: the fields of `PATCH /v1/me` (validation, normalisation, null clears),
//! `GET /v1/users/{id}` for the people one has a reason to see (404 for everyone else), and the
//! profile summary on connection and request items.

use crate::helpers::*;
use serde_json::{Value, json};

fn fields_of(v: &Value) -> Vec<String> {
    v["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|x| x["field"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn profile_fields_are_set_normalised_and_cleared() {
    let app = spawn_app().await;
    let u = app.register("ann").await;
    let me = app.get("/v1/me", u.t()).await.json();
    for f in ["headline", "company", "title", "avatar_url", "linkedin_url"] {
        assert!(me[f].is_null(), "{f} starts null: {me}");
    }
    let r = app
        .patch(
            "/v1/me",
            u.t(),
            json!({
                "headline": "  Maps at scale ",
                "company": "Acme, Inc.",
                "title": "CTO",
                "avatar_url": "https://cdn.example.com/ann.png",
                "linkedin_url": "http://LinkedIn.com/in/Ann-Lee-42/",
            }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["headline"], "Maps at scale");
    assert_eq!(v["company"], "Acme, Inc.");
    assert_eq!(v["title"], "CTO");
    assert_eq!(v["avatar_url"], "https://cdn.example.com/ann.png");
    assert_eq!(v["linkedin_url"], "https://www.linkedin.com/in/ann-lee-42");
    assert_eq!(v["display_name"], "ann");
    // absent leaves a field, null clears it
    let v = app
        .patch("/v1/me", u.t(), json!({"headline": null, "display_name": "Ann L."}))
        .await
        .json();
    assert!(v["headline"].is_null(), "{v}");
    assert_eq!(v["company"], "Acme, Inc.");
    assert_eq!(v["display_name"], "Ann L.");
    let v = app.get("/v1/me", u.t()).await.json();
    assert!(v["headline"].is_null());
    assert_eq!(v["linkedin_url"], "https://www.linkedin.com/in/ann-lee-42");
    let v = app
        .patch("/v1/me", u.t(), json!({"linkedin_url": null, "avatar_url": null}))
        .await
        .json();
    assert!(v["linkedin_url"].is_null() && v["avatar_url"].is_null(), "{v}");
    // in the export too
    app.patch("/v1/me", u.t(), json!({"title": "CEO"})).await;
    let e = app.get("/v1/me/export", u.t()).await.json();
    assert_eq!(e["profile"]["title"], "CEO");
    assert_eq!(e["profile"]["company"], "Acme, Inc.");
}

#[tokio::test]
async fn profile_fields_are_validated_by_name() {
    let app = spawn_app().await;
    let u = app.register("val").await;
    let ok = "x".repeat(100);
    let r = app
        .patch("/v1/me", u.t(), json!({"headline": ok, "company": ok, "title": ok}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let long = "x".repeat(101);
    for (field, value) in [
        ("headline", json!(long)),
        ("company", json!(long)),
        ("title", json!(long)),
        ("headline", json!("   ")),
        ("company", json!("\u{202E}evil")),
        ("title", json!("a\u{200B}b")),
        ("avatar_url", json!("http://cdn.example.com/a.png")),
        ("avatar_url", json!("javascript:alert(1)")),
        (
            "avatar_url",
            json!(format!("https://cdn.example.com/{}", "a".repeat(477))),
        ),
        ("linkedin_url", json!("https://example.com/in/ann")),
        ("linkedin_url", json!("https://www.linkedin.com/company/acme")),
    ] {
        let v = app
            .patch("/v1/me", u.t(), json!({ field: value }))
            .await
            .assert_problem(422, "validation_failed");
        assert_eq!(fields_of(&v), [field], "{field} = {value}: {v}");
    }
    let exactly_500 = format!("https://cdn.example.com/{}", "a".repeat(476));
    let r = app.patch("/v1/me", u.t(), json!({"avatar_url": exactly_500})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // every invalid field is named, and nothing is changed
    let v = app
        .patch(
            "/v1/me",
            u.t(),
            json!({"headline": "fine", "title": long, "avatar_url": "ftp://x.org/a"}),
        )
        .await
        .assert_problem(422, "validation_failed");
    let mut f = fields_of(&v);
    f.sort();
    assert_eq!(f, ["avatar_url", "title"]);
    assert_eq!(app.get("/v1/me", u.t()).await.json()["headline"], ok.as_str());
    // wrong types are unparseable
    app.patch("/v1/me", u.t(), json!({"headline": 5}))
        .await
        .assert_problem(400, "bad_request");
}

async fn event_with(app: &TestApp, organizer: &TestUser, attendees: &[&TestUser]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let r = app
        .post(
            "/v1/events",
            organizer.t(),
            json!({"name": "Social Shake-Up", "lat": 38.25, "lng": -85.76, "radius_m": 300,
                   "starts_at": fmt(now - time::Duration::hours(1)), "ends_at": fmt(now + time::Duration::hours(5))}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = r.json();
    let id = v["id"].as_str().expect("id").to_string();
    for a in attendees {
        let r = app
            .post(
                &format!("/v1/events/{id}/join"),
                a.t(),
                json!({"join_code": v["join_code"]}),
            )
            .await;
        assert_eq!(r.status, 204, "{}", r.text);
    }
    id
}

#[tokio::test]
async fn profiles_are_seen_only_with_a_reason() {
    let app = spawn_app().await;
    let a = app.register("alice").await;
    let b = app.register("bob").await;
    let c = app.register("carol").await;
    let d = app.register("dave").await;
    let e = app.register("erin").await;
    let f = app.register("fred").await;
    app.patch(
        "/v1/me",
        b.t(),
        json!({"headline": "Builds maps", "company": "Acme", "title": "CTO",
               "avatar_url": "https://cdn.example.com/b.png", "linkedin_url": "linkedin.com/in/bob"}),
    )
    .await;
    app.connect(&a, &b).await;
    let p = app.get(&format!("/v1/users/{}", b.id), a.t()).await;
    assert_eq!(p.status, 200, "{}", p.text);
    let p = p.json();
    assert_eq!(p["id"], b.id.as_str());
    assert_eq!(p["display_name"], "bob");
    assert_eq!(p["headline"], "Builds maps");
    assert_eq!(p["company"], "Acme");
    assert_eq!(p["title"], "CTO");
    assert_eq!(p["avatar_url"], "https://cdn.example.com/b.png");
    assert_eq!(p["linkedin_url"], "https://www.linkedin.com/in/bob");
    assert_eq!(p["connection"], "connected");
    assert!(p.get("email").is_none(), "no email in a profile: {p}");
    // a pending request, either way
    app.post("/v1/connections/requests", a.t(), json!({"to_user_id": c.id}))
        .await;
    let p = app.get(&format!("/v1/users/{}", c.id), a.t()).await.json();
    assert_eq!(p["connection"], "pending_outgoing", "{p}");
    let p = app.get(&format!("/v1/users/{}", a.id), c.t()).await.json();
    assert_eq!(p["connection"], "pending_incoming", "{p}");
    // a stranger, an unknown id
    app.get(&format!("/v1/users/{}", d.id), a.t())
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/users/{}", uuid::Uuid::new_v4()), a.t())
        .await
        .assert_problem(404, "not_found");
    app.get("/v1/users/not-a-uuid", a.t())
        .await
        .assert_problem(404, "not_found");
    // fellow attendees of an event both joined
    event_with(&app, &e, &[&f]).await;
    let p = app.get(&format!("/v1/users/{}", e.id), f.t()).await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.json()["connection"], "none");
    assert_eq!(app.get(&format!("/v1/users/{}", f.id), e.t()).await.status, 200);
    app.get(&format!("/v1/users/{}", f.id), a.t())
        .await
        .assert_problem(404, "not_found");
    // blocked pairs, either way (the block also ends the connection or request)
    app.put(&format!("/v1/blocks/{}", b.id), a.t()).await;
    app.get(&format!("/v1/users/{}", b.id), a.t())
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/users/{}", a.id), b.t())
        .await
        .assert_problem(404, "not_found");
    app.put(&format!("/v1/blocks/{}", e.id), f.t()).await;
    app.get(&format!("/v1/users/{}", f.id), e.t())
        .await
        .assert_problem(404, "not_found");
    app.get(&format!("/v1/users/{}", e.id), f.t())
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn connection_and_request_items_carry_the_profile_summary() {
    let app = spawn_app().await;
    let a = app.register("alma").await;
    let b = app.register("bert").await;
    let c = app.register("cora").await;
    for u in [&a, &b, &c] {
        let name = u.email.split('@').next().expect("name").to_string();
        let r = app
            .patch(
                "/v1/me",
                u.t(),
                json!({"headline": format!("{name} headline"), "company": format!("{name} co"),
                       "title": "Lead", "avatar_url": format!("https://cdn.example.com/{name}.png")}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    app.connect(&a, &b).await;
    let list = app.get("/v1/connections", a.t()).await.json();
    let item = &list["items"][0];
    assert_eq!(item["user_id"], b.id.as_str());
    assert_eq!(item["display_name"], "bert");
    assert_eq!(item["headline"], "bert headline");
    assert_eq!(item["company"], "bert co");
    assert_eq!(item["title"], "Lead");
    assert_eq!(item["avatar_url"], "https://cdn.example.com/bert.png");
    // requests: the other party, as a Profile
    let created = app
        .post("/v1/connections/requests", c.t(), json!({"to_user_id": a.id}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let created = created.json();
    assert_eq!(created["user"]["id"], a.id.as_str());
    assert_eq!(created["user"]["connection"], "pending_outgoing");
    let incoming = app
        .get("/v1/connections/requests?direction=incoming", a.t())
        .await
        .json();
    let item = &incoming["items"][0];
    assert_eq!(item["from_user_id"], c.id.as_str());
    assert_eq!(item["status"], "pending");
    assert_eq!(item["user"]["id"], c.id.as_str());
    assert_eq!(item["user"]["display_name"], "cora");
    assert_eq!(item["user"]["headline"], "cora headline");
    assert_eq!(item["user"]["company"], "cora co");
    assert_eq!(item["user"]["title"], "Lead");
    assert_eq!(item["user"]["avatar_url"], "https://cdn.example.com/cora.png");
    assert_eq!(item["user"]["connection"], "pending_incoming");
    assert_eq!(item["display_name"], "cora");
    let outgoing = app
        .get("/v1/connections/requests?direction=outgoing", c.t())
        .await
        .json();
    let item = &outgoing["items"][0];
    assert_eq!(item["user"]["id"], a.id.as_str());
    assert_eq!(item["user"]["headline"], "alma headline");
    assert_eq!(item["user"]["connection"], "pending_outgoing");
    // accepting answers the connection with the summary
    let id = item["id"].as_str().expect("id");
    let conn = app
        .post(&format!("/v1/connections/requests/{id}/accept"), a.t(), json!({}))
        .await
        .json();
    assert_eq!(conn["user_id"], c.id.as_str());
    assert_eq!(conn["company"], "cora co");
    // a changed profile shows at once
    app.patch("/v1/me", b.t(), json!({"company": null})).await;
    let list = app.get("/v1/connections", a.t()).await.json();
    let bert = list["items"]
        .as_array()
        .and_then(|i| i.iter().find(|x| x["user_id"] == b.id.as_str()))
        .expect("bert listed");
    assert!(bert["company"].is_null(), "{bert}");
}

#[tokio::test]
async fn nearby_items_carry_the_summary_and_follow_a_change() {
    use crate::checkins::{checkin, share};
    let app = spawn_app().await;
    let a = app.register("near").await;
    let b = app.register("by").await;
    app.connect(&a, &b).await;
    app.patch(
        "/v1/me",
        b.t(),
        json!({"headline": "Here now", "company": "Acme", "title": "CTO",
                                      "avatar_url": "https://cdn.example.com/by.png"}),
    )
    .await;
    for (u, lng) in [(&a, 13.405), (&b, 13.406)] {
        share(&app, u).await;
        checkin(&app, u, 52.52, lng).await;
    }
    let v = app.get("/v1/nearby", a.t()).await.json();
    let item = &v["items"][0];
    assert_eq!(item["user_id"], b.id.as_str(), "{v}");
    assert_eq!(item["display_name"], "by");
    assert_eq!(item["headline"], "Here now");
    assert_eq!(item["company"], "Acme");
    assert_eq!(item["title"], "CTO");
    assert_eq!(item["avatar_url"], "https://cdn.example.com/by.png");
    // a change is re-published to the live record at once
    app.patch("/v1/me", b.t(), json!({"company": null, "title": "CEO"}))
        .await;
    let v = app.get("/v1/nearby", a.t()).await.json();
    assert!(v["items"][0]["company"].is_null(), "{v}");
    assert_eq!(v["items"][0]["title"], "CEO");
}
