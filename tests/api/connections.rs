//! The connection graph: requests, connections, blocks, contact matching, the adjacency cache.

use crate::helpers::*;
use hereabouts::store::graph;
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::time::Instant;
use uuid::Uuid;

/// The user ids of the caller's connections (first page of up to 500).
async fn connection_ids(app: &TestApp, u: &TestUser) -> Vec<String> {
    let r = app.get("/v1/connections?limit=500", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    ids(&r.json()["items"])
}

fn ids(items: &Value) -> Vec<String> {
    items
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["user_id"].as_str().expect("user_id").to_string())
        .collect()
}

async fn requests(app: &TestApp, u: &TestUser, direction: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/v1/connections/requests?direction={direction}"), u.t())
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"].as_array().expect("items").clone()
}

async fn post_empty(app: &TestApp, path: &str, u: &TestUser) -> Resp {
    app.request(Method::POST, path, u.t(), None).await
}

fn sha_hex(email: &str) -> String {
    hex::encode(Sha256::digest(email.trim().to_lowercase().as_bytes()))
}

async fn adjacency_set(app: &TestApp, u: Uuid) -> HashSet<Uuid> {
    graph::adjacency(&app.db, &app.ctx.redis, u)
        .await
        .expect("adjacency")
        .into_iter()
        .collect()
}

/// The raw members of a user's adjacency set in Redis (empty when the key does not exist).
async fn raw_members(app: &TestApp, u: Uuid) -> Vec<Vec<u8>> {
    let mut cmd = redis::cmd("SMEMBERS");
    cmd.arg(graph::adjacency_key(&app.ctx.redis, u));
    app.ctx.redis.run(&cmd).await.expect("smembers")
}

#[tokio::test]
async fn request_then_accept_connects_both_users() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;

    let r = app
        .post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let req = r.json();
    assert_eq!(req["from_user_id"], ann.id.as_str());
    assert_eq!(req["to_user_id"], bob.id.as_str());
    assert_eq!(req["status"], "pending");
    assert!(req["created_at"].as_str().expect("created_at").ends_with('Z'), "{req}");
    let id = req["id"].as_str().expect("id").to_string();

    // asking again while pending answers the same request
    let again = app
        .post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json()["id"], id.as_str());

    // Bob sees it as incoming, Ann as outgoing; the default direction is incoming
    assert_eq!(requests(&app, &bob, "incoming").await.len(), 1);
    assert_eq!(requests(&app, &ann, "outgoing").await[0]["id"], id.as_str());
    assert!(requests(&app, &ann, "incoming").await.is_empty());
    let r = app.get("/v1/connections/requests", bob.t()).await;
    assert_eq!(r.json()["items"][0]["id"], id.as_str());
    assert_eq!(r.json()["next_cursor"], Value::Null);

    let r = post_empty(&app, &format!("/v1/connections/requests/{id}/accept"), &bob).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(c["user_id"], ann.id.as_str());
    assert_eq!(c["display_name"], "ann");
    assert!(c["connected_at"].is_string());

    assert_eq!(connection_ids(&app, &ann).await, vec![bob.id.clone()]);
    assert_eq!(connection_ids(&app, &bob).await, vec![ann.id.clone()]);
    let r = app.get("/v1/connections", ann.t()).await;
    assert_eq!(r.json()["items"][0]["display_name"], "bob");
    assert_eq!(r.json()["next_cursor"], Value::Null);
    // the request is gone for both
    assert!(requests(&app, &bob, "incoming").await.is_empty());
    assert!(requests(&app, &ann, "outgoing").await.is_empty());

    // connected already, either way, by id or by email
    app.post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await
        .assert_problem(409, "already_connected");
    app.post("/v1/connections/requests", bob.t(), json!({"email": "ANN@example.com"}))
        .await
        .assert_problem(409, "already_connected");
}

#[tokio::test]
async fn mutual_requests_connect_at_once() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let r = app
        .post("/v1/connections/requests", ann.t(), json!({"email": "bob@example.com"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .post("/v1/connections/requests", bob.t(), json!({"to_user_id": ann.id}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["user_id"], ann.id.as_str());
    assert_eq!(r.json()["display_name"], "ann");
    assert_eq!(connection_ids(&app, &ann).await, vec![bob.id.clone()]);
    assert_eq!(connection_ids(&app, &bob).await, vec![ann.id.clone()]);
    assert!(requests(&app, &ann, "outgoing").await.is_empty());
    assert!(requests(&app, &bob, "incoming").await.is_empty());
}

#[tokio::test]
async fn only_the_addressee_may_accept_or_decline() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let eve = app.register("eve").await;
    let r = app
        .post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await;
    let id = r.json()["id"].as_str().expect("id").to_string();
    let nonexistent = Uuid::new_v4();

    let missing_accept = post_empty(&app, &format!("/v1/connections/requests/{nonexistent}/accept"), &eve).await;
    missing_accept.assert_problem(404, "not_found");
    let missing_decline = post_empty(&app, &format!("/v1/connections/requests/{nonexistent}/decline"), &eve).await;
    missing_decline.assert_problem(404, "not_found");
    // a third party, and the sender themself, get exactly what a nonexistent id gets
    for who in [&eve, &ann] {
        let r = post_empty(&app, &format!("/v1/connections/requests/{id}/accept"), who).await;
        r.assert_problem(404, "not_found");
        assert_eq!(r.text, missing_accept.text);
        let r = post_empty(&app, &format!("/v1/connections/requests/{id}/decline"), who).await;
        r.assert_problem(404, "not_found");
        assert_eq!(r.text, missing_decline.text);
    }
    assert!(connection_ids(&app, &eve).await.is_empty());
    assert!(connection_ids(&app, &ann).await.is_empty());
    // not-a-uuid ids are 404 too
    post_empty(&app, "/v1/connections/requests/nope/accept", &bob)
        .await
        .assert_problem(404, "not_found");

    // the addressee declines: gone for both, nobody connected
    let r = post_empty(&app, &format!("/v1/connections/requests/{id}/decline"), &bob).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(requests(&app, &ann, "outgoing").await.is_empty());
    assert!(requests(&app, &bob, "incoming").await.is_empty());
    post_empty(&app, &format!("/v1/connections/requests/{id}/accept"), &bob)
        .await
        .assert_problem(404, "not_found");
    assert!(connection_ids(&app, &bob).await.is_empty());
}

#[tokio::test]
async fn requests_validate_their_target_and_lists_their_parameters() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let sue = app.register("sue").await;
    let p = "/v1/connections/requests";

    app.post(p, ann.t(), json!({"to_user_id": ann.id}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(p, ann.t(), json!({"email": " Ann@Example.com "}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(p, ann.t(), json!({}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(p, ann.t(), json!({"to_user_id": sue.id, "email": "sue@example.com"}))
        .await
        .assert_problem(422, "validation_failed");
    app.post(p, ann.t(), json!({"to_user_id": Uuid::new_v4()}))
        .await
        .assert_problem(404, "not_found");
    app.post(p, ann.t(), json!({"email": "nobody@example.com"}))
        .await
        .assert_problem(404, "not_found");
    app.post(p, ann.t(), json!({"to_user_id": "not-a-uuid"}))
        .await
        .assert_problem(400, "bad_request");
    app.post(p, None, json!({"to_user_id": sue.id}))
        .await
        .assert_problem(401, "unauthorized");

    // a suspended user is as good as nonexistent
    sqlx::query("UPDATE users SET suspended = true WHERE id = $1")
        .bind(sue.uuid())
        .execute(&app.db)
        .await
        .expect("suspend");
    app.post(p, ann.t(), json!({"to_user_id": sue.id}))
        .await
        .assert_problem(404, "not_found");
    app.post(p, ann.t(), json!({"email": "sue@example.com"}))
        .await
        .assert_problem(404, "not_found");

    // list parameters
    app.get("/v1/connections/requests?direction=sideways", ann.t())
        .await
        .assert_problem(400, "bad_request");
    for path in ["/v1/connections", "/v1/blocks", "/v1/connections/requests"] {
        for limit in ["0", "501", "-1"] {
            app.get(&format!("{path}?limit={limit}"), ann.t())
                .await
                .assert_problem(422, "validation_failed");
        }
        app.get(&format!("{path}?limit=ten"), ann.t())
            .await
            .assert_problem(400, "bad_request");
        for cursor in ["garbage!", "AAAA", "x"] {
            app.get(&format!("{path}?cursor={cursor}"), ann.t())
                .await
                .assert_problem(400, "bad_request");
        }
        let r = app.get(&format!("{path}?limit=500"), ann.t()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        app.get(path, None).await.assert_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn blocks_work_in_both_directions() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let dan = app.register("dan").await;
    app.connect(&ann, &bob).await;
    // pending requests both ways around Ann: Ann -> Cat, Dan -> Ann
    let r = app
        .post("/v1/connections/requests", ann.t(), json!({"to_user_id": cat.id}))
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .post("/v1/connections/requests", dan.t(), json!({"to_user_id": ann.id}))
        .await;
    assert_eq!(r.status, 201);

    // Ann blocks Bob: the connection goes for both
    let r = app.put(&format!("/v1/blocks/{}", bob.id), ann.t()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(connection_ids(&app, &ann).await.is_empty());
    assert!(connection_ids(&app, &bob).await.is_empty());
    // idempotent
    assert_eq!(app.put(&format!("/v1/blocks/{}", bob.id), ann.t()).await.status, 204);
    // neither may ask the other; the blocker learns why, the blocked does not (Revision 2:
    // as for an unknown user)
    app.post("/v1/connections/requests", ann.t(), json!({"to_user_id": bob.id}))
        .await
        .assert_problem(409, "blocked");
    app.post("/v1/connections/requests", bob.t(), json!({"to_user_id": ann.id}))
        .await
        .assert_problem(404, "not_found");
    app.post("/v1/connections/requests", bob.t(), json!({"email": "ann@example.com"}))
        .await
        .assert_problem(404, "not_found");

    // Cat blocks Ann (the sender of a pending request), Ann blocks Dan (the sender of one to her)
    assert_eq!(app.put(&format!("/v1/blocks/{}", ann.id), cat.t()).await.status, 204);
    assert_eq!(app.put(&format!("/v1/blocks/{}", dan.id), ann.t()).await.status, 204);
    assert!(requests(&app, &ann, "outgoing").await.is_empty());
    assert!(requests(&app, &ann, "incoming").await.is_empty());
    assert!(requests(&app, &cat, "incoming").await.is_empty());
    assert!(requests(&app, &dan, "outgoing").await.is_empty());
    app.post("/v1/connections/requests", ann.t(), json!({"to_user_id": cat.id}))
        .await
        .assert_problem(404, "not_found");

    // the lists: each sees only their own blocks, newest first
    let r = app.get("/v1/blocks", ann.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(ids(&v["items"]), vec![dan.id.clone(), bob.id.clone()]);
    assert_eq!(v["items"][1]["display_name"], "bob");
    assert!(v["items"][1]["blocked_at"].is_string());
    assert_eq!(v["next_cursor"], Value::Null);
    let r = app.get("/v1/blocks?limit=1", ann.t()).await;
    let cursor = r.json()["next_cursor"].as_str().expect("more").to_string();
    let r = app.get(&format!("/v1/blocks?limit=1&cursor={cursor}"), ann.t()).await;
    assert_eq!(ids(&r.json()["items"]), vec![bob.id.clone()]);
    assert_eq!(r.json()["next_cursor"], Value::Null);
    assert!(ids(&app.get("/v1/blocks", bob.t()).await.json()["items"]).is_empty());
    assert_eq!(
        ids(&app.get("/v1/blocks", cat.t()).await.json()["items"]),
        vec![ann.id.clone()]
    );

    // oneself, unknown users
    app.put(&format!("/v1/blocks/{}", ann.id), ann.t())
        .await
        .assert_problem(422, "validation_failed");
    app.put(&format!("/v1/blocks/{}", Uuid::new_v4()), ann.t())
        .await
        .assert_problem(404, "not_found");
    app.put("/v1/blocks/not-a-uuid", ann.t())
        .await
        .assert_problem(404, "not_found");

    // unblocking: only the blocker's own block, once; it does not reconnect
    app.delete(&format!("/v1/blocks/{}", ann.id), bob.t())
        .await
        .assert_problem(404, "not_found");
    assert_eq!(app.delete(&format!("/v1/blocks/{}", bob.id), ann.t()).await.status, 204);
    app.delete(&format!("/v1/blocks/{}", bob.id), ann.t())
        .await
        .assert_problem(404, "not_found");
    assert!(connection_ids(&app, &ann).await.is_empty());
    app.connect(&bob, &ann).await;
    assert_eq!(connection_ids(&app, &ann).await, vec![bob.id.clone()]);
    // Cat's block of Ann still holds
    app.post("/v1/connections/requests", ann.t(), json!({"to_user_id": cat.id}))
        .await
        .assert_problem(404, "not_found");
}

#[tokio::test]
async fn removing_a_connection_removes_it_for_both() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    app.connect(&ann, &bob).await;
    app.connect(&ann, &cat).await;
    let r = app.delete(&format!("/v1/connections/{}", ann.id), bob.t()).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(connection_ids(&app, &ann).await, vec![cat.id.clone()]);
    assert!(connection_ids(&app, &bob).await.is_empty());
    for (who, other) in [(&ann, &bob), (&bob, &ann), (&bob, &cat)] {
        app.delete(&format!("/v1/connections/{}", other.id), who.t())
            .await
            .assert_problem(404, "not_found");
    }
    app.delete(&format!("/v1/connections/{}", Uuid::new_v4()), ann.t())
        .await
        .assert_problem(404, "not_found");
    // they may connect again
    app.connect(&bob, &ann).await;
    assert_eq!(connection_ids(&app, &bob).await, vec![ann.id.clone()]);
}

#[tokio::test]
async fn connection_pages_have_no_duplicates_or_gaps_while_the_list_changes() {
    let app = spawn_app().await;
    let owner = app.register("owner").await;
    let mut peers = Vec::new();
    for i in 0..25 {
        let p = app.register(&format!("peer{i:02}")).await;
        app.connect(&owner, &p).await;
        peers.push(p);
    }
    let initial: Vec<String> = connection_ids(&app, &owner).await;
    assert_eq!(initial.len(), 25);

    let mut seen: Vec<String> = Vec::new();
    let mut removed: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    let mut last_key: Option<(String, String)> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connections?limit=10&cursor={c}"),
            None => "/v1/connections?limit=10".to_string(),
        };
        let r = app.get(&path, owner.t()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= 10);
        for item in items {
            // strictly descending (connected_at, user_id) across all pages
            let key = (
                item["connected_at"].as_str().expect("at").to_string(),
                item["user_id"].as_str().expect("id").to_string(),
            );
            if let Some(prev) = &last_key {
                let (pt, ct) = (
                    time::OffsetDateTime::parse(&prev.0, &time::format_description::well_known::Rfc3339),
                    time::OffsetDateTime::parse(&key.0, &time::format_description::well_known::Rfc3339),
                );
                let (pt, ct) = (pt.expect("time"), ct.expect("time"));
                assert!(ct < pt || (ct == pt && key.1 < prev.1), "order: {prev:?} then {key:?}");
            }
            last_key = Some(key);
        }
        seen.extend(ids(&v["items"]));
        pages += 1;
        // change the list between pages: new connections arrive, one seen and one unseen go away
        match pages {
            1 => {
                for i in 0..3 {
                    let p = app.register(&format!("late{i}")).await;
                    app.connect(&p, &owner).await;
                }
                let seen_one = seen[3].clone();
                let unseen_one = initial[15].clone();
                for gone in [seen_one, unseen_one] {
                    let r = app.delete(&format!("/v1/connections/{gone}"), owner.t()).await;
                    assert_eq!(r.status, 204);
                    removed.insert(gone);
                }
            }
            2 => {
                let p = app.register("later").await;
                app.connect(&owner, &p).await;
                let r = app.delete(&format!("/v1/connections/{}", initial[24]), owner.t()).await;
                assert_eq!(r.status, 204);
                removed.insert(initial[24].clone());
            }
            _ => {}
        }
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no connection is listed twice: {seen:?}");
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for s in &seen {
        *counts.entry(s).or_default() += 1;
    }
    for id in initial.iter().filter(|id| !removed.contains(*id)) {
        assert_eq!(counts.get(id), Some(&1), "{id} existed throughout and must appear once");
    }
    // nothing but the owner's connections: the removed unseen ones are not listed
    assert!(!seen.contains(&initial[15]) && !seen.contains(&initial[24]));
    assert_eq!(connection_ids(&app, &owner).await.len(), 25 + 4 - 3);
}

#[tokio::test]
async fn contact_matching_returns_only_discoverable_unblocked_others() {
    let app = spawn_app().await;
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let dan = app.register("dan").await;
    let eve = app.register("eve").await;
    let fay = app.register("fay").await;
    let gil = app.register("gil").await;
    // Cat is not discoverable, Ann blocked Dan, Eve blocked Ann, Fay is suspended
    sqlx::query("UPDATE privacy_settings SET discoverable_by_email = false WHERE user_id = $1")
        .bind(cat.uuid())
        .execute(&app.db)
        .await
        .expect("privacy");
    assert_eq!(app.put(&format!("/v1/blocks/{}", dan.id), ann.t()).await.status, 204);
    assert_eq!(app.put(&format!("/v1/blocks/{}", ann.id), eve.t()).await.status, 204);
    sqlx::query("UPDATE users SET suspended = true WHERE id = $1")
        .bind(fay.uuid())
        .execute(&app.db)
        .await
        .expect("suspend");

    let gil_upper = sha_hex(" GIL@Example.com").to_uppercase();
    let hashes = vec![
        sha_hex("bob@example.com"),
        sha_hex("cat@example.com"),
        sha_hex("dan@example.com"),
        sha_hex("eve@example.com"),
        sha_hex("fay@example.com"),
        sha_hex("ann@example.com"),
        sha_hex("nobody@example.com"),
        sha_hex("bob@example.com"),
        gil_upper.clone(),
    ];
    let r = app
        .post("/v1/contacts/match", ann.t(), json!({"email_sha256": hashes}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let matches = r.json()["matches"].as_array().expect("matches").clone();
    let got: HashMap<String, (String, String)> = matches
        .iter()
        .map(|m| {
            (
                m["user_id"].as_str().expect("id").to_string(),
                (
                    m["email_sha256"].as_str().expect("hash").to_string(),
                    m["display_name"].as_str().expect("name").to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(matches.len(), 2, "{matches:?}");
    assert_eq!(got.get(&bob.id), Some(&(sha_hex("bob@example.com"), "bob".to_string())));
    assert_eq!(got.get(&gil.id), Some(&(gil_upper, "gil".to_string())));

    // the flag decides, and turning it back on finds Cat
    sqlx::query("UPDATE privacy_settings SET discoverable_by_email = true WHERE user_id = $1")
        .bind(cat.uuid())
        .execute(&app.db)
        .await
        .expect("privacy");
    let r = app
        .post(
            "/v1/contacts/match",
            bob.t(),
            json!({"email_sha256": [sha_hex("cat@example.com"), sha_hex("dan@example.com"), sha_hex("ann@example.com")]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let found: HashSet<String> = ids(&r.json()["matches"]).into_iter().collect();
    assert_eq!(found, HashSet::from([cat.id.clone(), dan.id.clone(), ann.id.clone()]));

    // empty, too many, malformed
    let r = app
        .post("/v1/contacts/match", ann.t(), json!({"email_sha256": []}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["matches"], json!([]));
    let many: Vec<String> = (0..1001).map(|i| sha_hex(&format!("u{i}@example.com"))).collect();
    app.post("/v1/contacts/match", ann.t(), json!({"email_sha256": many}))
        .await
        .assert_problem(422, "validation_failed");
    let thousand: Vec<String> = (0..1000).map(|i| sha_hex(&format!("u{i}@example.com"))).collect();
    let r = app
        .post("/v1/contacts/match", ann.t(), json!({"email_sha256": thousand}))
        .await;
    assert_eq!(r.status, 200, "1,000 hashes are allowed: {}", r.text);
    for bad in [
        "zz".repeat(32),
        "abcd".to_string(),
        format!("{}00", sha_hex("x@example.com")),
    ] {
        app.post("/v1/contacts/match", ann.t(), json!({"email_sha256": [bad]}))
            .await
            .assert_problem(422, "validation_failed");
    }
    app.post("/v1/contacts/match", ann.t(), json!({"email_sha256": "nope"}))
        .await
        .assert_problem(400, "bad_request");
    app.post("/v1/contacts/match", None, json!({"email_sha256": []}))
        .await
        .assert_problem(401, "unauthorized");
    let r = app.get("/v1/contacts/match", ann.t()).await;
    r.assert_problem(405, "method_not_allowed");
    assert_eq!(r.header("allow").as_deref(), Some("POST"));
}

#[tokio::test]
async fn adjacency_cache_is_rebuilt_after_a_flush_and_follows_changes() {
    let app = spawn_app().await;
    let (db, redis) = (&app.db, &app.ctx.redis);
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    let dan = app.register("dan").await;
    let loner = app.register("loner").await;
    app.connect(&ann, &bob).await;
    app.connect(&cat, &ann).await;

    assert_eq!(
        adjacency_set(&app, ann.uuid()).await,
        HashSet::from([bob.uuid(), cat.uuid()])
    );
    assert_eq!(graph::ensure_adjacency(db, redis, ann.uuid()).await.expect("degree"), 2);
    // an empty adjacency still exists as a key (the sentinel alone)
    assert_eq!(
        graph::ensure_adjacency(db, redis, loner.uuid()).await.expect("degree"),
        0
    );
    assert_eq!(raw_members(&app, loner.uuid()).await, vec![b"!".to_vec()]);

    // Redis loses everything: reads rebuild from PostgreSQL
    app.flush_redis().await;
    assert!(raw_members(&app, ann.uuid()).await.is_empty(), "flushed");
    assert_eq!(
        adjacency_set(&app, ann.uuid()).await,
        HashSet::from([bob.uuid(), cat.uuid()])
    );
    let members: HashSet<Vec<u8>> = raw_members(&app, ann.uuid()).await.into_iter().collect();
    assert_eq!(
        members,
        HashSet::from([
            b"!".to_vec(),
            bob.uuid().as_bytes().to_vec(),
            cat.uuid().as_bytes().to_vec()
        ])
    );
    let mut ttl = redis::cmd("TTL");
    ttl.arg(graph::adjacency_key(redis, ann.uuid()));
    let ttl: i64 = redis.run(&ttl).await.expect("ttl");
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    assert_eq!(graph::ensure_adjacency(db, redis, bob.uuid()).await.expect("degree"), 1);

    // changes after the rebuild reach the existing sets in place
    app.connect(&dan, &ann).await;
    assert_eq!(raw_members(&app, ann.uuid()).await.len(), 4, "updated, not dropped");
    assert_eq!(
        adjacency_set(&app, ann.uuid()).await,
        HashSet::from([bob.uuid(), cat.uuid(), dan.uuid()])
    );
    assert_eq!(adjacency_set(&app, dan.uuid()).await, HashSet::from([ann.uuid()]));
    let r = app.delete(&format!("/v1/connections/{}", ann.id), bob.t()).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        adjacency_set(&app, ann.uuid()).await,
        HashSet::from([cat.uuid(), dan.uuid()])
    );
    assert!(adjacency_set(&app, bob.uuid()).await.is_empty());
    assert_eq!(graph::ensure_adjacency(db, redis, bob.uuid()).await.expect("degree"), 0);
    assert_eq!(app.put(&format!("/v1/blocks/{}", cat.id), ann.t()).await.status, 204);
    assert_eq!(adjacency_set(&app, ann.uuid()).await, HashSet::from([dan.uuid()]));
    assert!(adjacency_set(&app, cat.uuid()).await.is_empty());

    // a change while a set is missing does not create a partial set; the next read is complete
    app.flush_redis().await;
    app.connect(&bob, &ann).await;
    assert!(raw_members(&app, ann.uuid()).await.is_empty());
    assert_eq!(
        adjacency_set(&app, ann.uuid()).await,
        HashSet::from([bob.uuid(), dan.uuid()])
    );
    assert_eq!(graph::ensure_adjacency(db, redis, ann.uuid()).await.expect("degree"), 2);
}

#[tokio::test]
async fn forget_user_removes_them_from_every_adjacency() {
    let app = spawn_app().await;
    let (db, redis) = (&app.db, &app.ctx.redis);
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let cat = app.register("cat").await;
    app.connect(&ann, &bob).await;
    app.connect(&ann, &cat).await;
    app.connect(&bob, &cat).await;
    for u in [&ann, &bob, &cat] {
        assert_eq!(graph::ensure_adjacency(db, redis, u.uuid()).await.expect("degree"), 2);
    }
    graph::forget_user(db, redis, ann.uuid()).await.expect("forget");
    assert_eq!(raw_members(&app, bob.uuid()).await.len(), 2, "sentinel and Cat");
    assert_eq!(adjacency_set(&app, bob.uuid()).await, HashSet::from([cat.uuid()]));
    assert_eq!(adjacency_set(&app, cat.uuid()).await, HashSet::from([bob.uuid()]));
    assert!(raw_members(&app, ann.uuid()).await.is_empty(), "own set deleted");
}

#[tokio::test]
async fn a_user_with_30000_connections_loads_and_pages_quickly() {
    const N: i64 = 30_000;
    let app = spawn_app().await;
    let (db, redis) = (&app.db, &app.ctx.redis);
    let hub = app.register("hub").await;
    let t = Instant::now();
    // 30,000 users with privacy rows and 60,000 connection rows in one statement; connection
    // times repeat (100 distinct values) so the id tie-break of the ordering is exercised
    let (n,): (i64,) = sqlx::query_as(
        "WITH src AS MATERIALIZED (
             SELECT gen_random_uuid() AS id, g,
                    now() - interval '1 day' - (g % 100) * interval '1 second' AS at
             FROM generate_series(1, $2::int) g
         ), u AS (
             INSERT INTO users (id, email, email_sha256, display_name, password_hash)
             SELECT id, 'bulk' || g || '@example.com',
                    sha256(convert_to('bulk' || g || '@example.com', 'UTF8')), 'Bulk ' || g, 'x'
             FROM src RETURNING id
         ), p AS (
             INSERT INTO privacy_settings (user_id) SELECT id FROM u
         ), c AS (
             INSERT INTO connections (user_id, peer_id, connected_at)
             SELECT $1, id, at FROM src UNION ALL SELECT id, $1, at FROM src
         )
         SELECT count(*) FROM u",
    )
    .bind(hub.uuid())
    .bind(N as i32)
    .fetch_one(db)
    .await
    .expect("bulk insert");
    assert_eq!(n, N);
    eprintln!("bulk insert of {N} users and {} edges: {:?}", 2 * N, t.elapsed());

    let t = Instant::now();
    let degree = graph::ensure_adjacency(db, redis, hub.uuid()).await.expect("rebuild");
    eprintln!("adjacency rebuild (1 query + 1 Redis call) of {N}: {:?}", t.elapsed());
    assert_eq!(degree, N as u64);
    let t = Instant::now();
    assert_eq!(
        graph::ensure_adjacency(db, redis, hub.uuid()).await.expect("scard"),
        N as u64
    );
    eprintln!("ensure_adjacency when cached (SCARD): {:?}", t.elapsed());
    let t = Instant::now();
    let adj = graph::adjacency(db, redis, hub.uuid()).await.expect("adjacency");
    eprintln!("adjacency load (SMEMBERS) of {N}: {:?}", t.elapsed());
    assert_eq!(adj.len(), N as usize);
    assert_eq!(adj.iter().collect::<HashSet<_>>().len(), N as usize);
    app.flush_redis().await;
    let t = Instant::now();
    let adj = graph::adjacency(db, redis, hub.uuid()).await.expect("adjacency");
    eprintln!("adjacency load with rebuild of {N}: {:?}", t.elapsed());
    assert_eq!(adj.len(), N as usize);

    // a change reaches the big set in place
    let newbie = app.register("newbie").await;
    app.connect(&newbie, &hub).await;
    assert_eq!(
        graph::ensure_adjacency(db, redis, hub.uuid()).await.expect("degree"),
        N as u64 + 1
    );

    // every page of 500 works; all connections exactly once
    let t = Instant::now();
    let mut seen: HashSet<String> = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/connections?limit=500&cursor={c}"),
            None => "/v1/connections?limit=500".to_string(),
        };
        let r = app.get(&path, hub.t()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        let page = ids(&v["items"]);
        assert!(page.len() <= 500);
        if pages == 0 {
            assert_eq!(page[0], newbie.id, "newest first");
        }
        for id in page {
            assert!(seen.insert(id), "listed twice");
        }
        pages += 1;
        cursor = v["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    eprintln!("{pages} pages of 500 connections: {:?}", t.elapsed());
    assert_eq!(seen.len(), N as usize + 1);

    // erasure of the hub reaches the cached sets of its peers, in batches
    let some: Vec<Uuid> = adj.iter().take(3).copied().collect();
    for p in &some {
        assert_eq!(graph::ensure_adjacency(db, redis, *p).await.expect("degree"), 1);
    }
    let t = Instant::now();
    graph::forget_user(db, redis, hub.uuid()).await.expect("forget");
    eprintln!("forget_user with {} connections: {:?}", N + 1, t.elapsed());
    for p in &some {
        assert_eq!(raw_members(&app, *p).await, vec![b"!".to_vec()]);
    }
    assert!(raw_members(&app, hub.uuid()).await.is_empty());
}

#[tokio::test]
async fn simultaneous_mutual_requests_still_connect_the_pair() {
    let app = spawn_app().await;
    for i in 0..5 {
        let a = app.register(&format!("a{i}")).await;
        let b = app.register(&format!("b{i}")).await;
        let (ra, rb) = tokio::join!(
            app.post("/v1/connections/requests", a.t(), json!({"to_user_id": b.id})),
            app.post("/v1/connections/requests", b.t(), json!({"to_user_id": a.id})),
        );
        let mut statuses = [ra.status.as_u16(), rb.status.as_u16()];
        statuses.sort();
        assert_eq!(statuses, [200, 201], "{} / {}", ra.text, rb.text);
        assert_eq!(connection_ids(&app, &a).await, vec![b.id.clone()]);
        assert_eq!(connection_ids(&app, &b).await, vec![a.id.clone()]);
        assert!(requests(&app, &a, "outgoing").await.is_empty());
        assert!(requests(&app, &b, "outgoing").await.is_empty());
        assert_eq!(adjacency_set(&app, a.uuid()).await, HashSet::from([b.uuid()]));
    }
}
