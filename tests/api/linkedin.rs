//! `POST /v1/contacts/import/linkedin`: a real `Connections.csv` parses (preamble, BOM, quotes,
//! commas in company names, CRLF, blank emails), matches by discoverable email and by normalised
//! LinkedIn URL, never matches the caller, blocked pairs or suspended users, optionally sends
//! requests in bulk, and refuses other content types (415), files without the header (400) and
//! oversized ones (413).

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Instant;

const PATH: &str = "/v1/contacts/import/linkedin";
const HEADER: &str = "First Name,Last Name,URL,Email Address,Company,Position,Connected On";

fn export(rows: &[String]) -> Vec<u8> {
    let mut s = String::from(
        "\u{feff}Notes:\r\n\"When exporting your connection data, you may notice that some of the email addresses are missing. You will only see email addresses for connections who have allowed their connections to see or download their email address using this setting https://www.linkedin.com/psettings/privacy/email. You can learn more about this setting here: https://www.linkedin.com/help/linkedin/answer/261\"\r\n\r\n",
    );
    s.push_str(HEADER);
    s.push_str("\r\n");
    for r in rows {
        s.push_str(r);
        s.push_str("\r\n");
    }
    s.into_bytes()
}

async fn import(app: &TestApp, u: &TestUser, query: &str, body: Vec<u8>) -> Value {
    let r = app.post_raw(&format!("{PATH}{query}"), u.t(), "text/csv", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

fn matched<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["matched"]
        .as_array()
        .and_then(|m| m.iter().find(|x| x["user_id"] == id))
}

#[tokio::test]
async fn a_real_export_matches_by_discoverable_email_and_by_url() {
    let app = spawn_app().await;
    let me = app.register("importer").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let erin = app.register("erin").await;
    let frank = app.register("frank").await;
    let gina = app.register("gina").await;
    let hank = app.register("hank").await;
    app.patch(
        "/v1/me",
        carol.t(),
        json!({"linkedin_url": "https://www.linkedin.com/in/carol-c"}),
    )
    .await;
    app.patch(
        "/v1/me",
        hank.t(),
        json!({"linkedin_url": "https://www.linkedin.com/in/hank"}),
    )
    .await;
    app.patch("/v1/me/privacy", dave.t(), json!({"discoverable_by_email": false}))
        .await;
    let root = app.register("root").await;
    let root = app.make_admin(&root).await;
    let r = app
        .post(&format!("/v1/admin/users/{}/suspend", erin.id), root.t(), json!({}))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    app.put(&format!("/v1/blocks/{}", frank.id), me.t()).await;
    app.put(&format!("/v1/blocks/{}", me.id), gina.t()).await;
    let body = export(&[
        "Bob,Builder,https://www.linkedin.com/in/bob-b,BOB@Example.com ,\"Acme, Inc.\",CTO,01 Dec 2026".into(),
        "Carol,C,http://linkedin.com/in/Carol-C/,,\"Initech, \"\"Labs\"\"\",Lead,02 Dec 2026".into(),
        "Dave,D,https://www.linkedin.com/in/dave,dave@example.com,Hooli,Dev,03 Dec 2026".into(),
        "Erin,E,https://www.linkedin.com/in/erin,erin@example.com,Hooli,Dev,03 Dec 2026".into(),
        "Frank,F,https://www.linkedin.com/in/frank,frank@example.com,Hooli,Dev,03 Dec 2026".into(),
        "Gina,G,https://www.linkedin.com/in/gina,gina@example.com,Hooli,Dev,03 Dec 2026".into(),
        "Me,Myself,https://www.linkedin.com/in/me,importer@example.com,Self,Me,03 Dec 2026".into(),
        "Nobody,Known,https://www.linkedin.com/in/nobody,,Nowhere,None,04 Dec 2026".into(),
        "broken,row".into(),
        "Hank,H,\"https://www.linkedin.com/in/HANK\",,\"multi\nline, company\",X,05 Dec 2026".into(),
    ]);
    let v = import(&app, &me, "", body).await;
    assert_eq!(v["rows"], 10, "{v}");
    assert_eq!(v["requested"], 0);
    let m = v["matched"].as_array().expect("matched");
    assert_eq!(m.len(), 3, "{v}");
    let b = matched(&v, &bob.id).expect("bob by email");
    assert_eq!(b["matched_by"], "email");
    assert_eq!(b["display_name"], "bob");
    assert_eq!(b["connection"], "none");
    let c = matched(&v, &carol.id).expect("carol by URL");
    assert_eq!(c["matched_by"], "linkedin_url");
    assert_eq!(
        matched(&v, &hank.id).expect("hank by URL")["matched_by"],
        "linkedin_url"
    );
    for never in [&dave, &erin, &frank, &gina, &me] {
        assert!(matched(&v, &never.id).is_none(), "{} must not match: {v}", never.email);
    }
    assert_eq!(v["unmatched"], 7, "{v}");
    let errors = v["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{v}");
    // BOM+Notes (1), the quoted note (2), blank (3), header (4), rows from line 5
    assert_eq!(errors[0]["line"], 13, "{v}");
    assert!(errors[0]["message"].is_string());
    // nothing of the rows is stored
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'public' AND column_name ILIKE '%import%'",
    )
    .fetch_one(&app.db)
    .await
    .expect("scan");
    assert_eq!(n, 0);
    // LF only, no BOM, no preamble
    let lf = format!("{HEADER}\nBob,B,,bob@example.com,,,\n");
    let v = import(&app, &me, "", lf.into_bytes()).await;
    assert_eq!(v["rows"], 1);
    assert_eq!(matched(&v, &bob.id).expect("bob")["matched_by"], "email");
}

#[tokio::test]
async fn request_true_asks_each_match_neither_connected_nor_pending() {
    let app = spawn_app().await;
    let me = app.register("asker").await;
    let friend = app.register("friend").await;
    let fan = app.register("fan").await;
    let asked = app.register("asked").await;
    let new1 = app.register("newone").await;
    let new2 = app.register("newtwo").await;
    app.connect(&me, &friend).await;
    app.post("/v1/connections/requests", fan.t(), json!({"to_user_id": me.id}))
        .await;
    app.post("/v1/connections/requests", me.t(), json!({"to_user_id": asked.id}))
        .await;
    app.patch(
        "/v1/me",
        new2.t(),
        json!({"linkedin_url": "https://www.linkedin.com/in/new-two"}),
    )
    .await;
    let rows: Vec<String> = [
        "friend@example.com",
        "fan@example.com",
        "asked@example.com",
        "newone@example.com",
    ]
    .iter()
    .map(|e| format!("A,B,,{e},C,D,E"))
    .chain(["N,T,https://linkedin.com/in/NEW-TWO,,C,D,E".to_string()])
    .collect();
    let v = import(&app, &me, "", export(&rows)).await;
    assert_eq!(v["requested"], 0);
    assert_eq!(matched(&v, &friend.id).expect("friend")["connection"], "connected");
    assert_eq!(matched(&v, &fan.id).expect("fan")["connection"], "pending_incoming");
    assert_eq!(matched(&v, &asked.id).expect("asked")["connection"], "pending_outgoing");
    assert_eq!(matched(&v, &new1.id).expect("new1")["connection"], "none");
    let v = import(&app, &me, "?request=true", export(&rows)).await;
    assert_eq!(v["requested"], 2, "{v}");
    assert_eq!(matched(&v, &new1.id).expect("new1")["connection"], "pending_outgoing");
    assert_eq!(matched(&v, &new2.id).expect("new2")["connection"], "pending_outgoing");
    assert_eq!(matched(&v, &friend.id).expect("friend")["connection"], "connected");
    assert_eq!(matched(&v, &fan.id).expect("fan")["connection"], "pending_incoming");
    let incoming = app
        .get("/v1/connections/requests?direction=incoming", new1.t())
        .await
        .json();
    assert_eq!(incoming["items"][0]["from_user_id"], me.id.as_str());
    // the bulk path notifies each one asked, as a single request does
    for (u, request) in [(&new1, incoming["items"][0]["id"].clone())] {
        let notes = app.get("/v1/notifications", u.t()).await.json();
        let notes = notes["items"].as_array().expect("items");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert_eq!(notes[0]["kind"], "connection_request");
        assert_eq!(notes[0]["actor_user_id"], me.id.as_str());
        assert_eq!(notes[0]["request_id"], request);
    }
    let notes = app.get("/v1/notifications", new2.t()).await.json();
    assert_eq!(notes["items"][0]["kind"], "connection_request", "{notes}");
    let outgoing = app
        .get("/v1/connections/requests?direction=outgoing", me.t())
        .await
        .json();
    assert_eq!(outgoing["items"].as_array().map(Vec::len), Some(3), "{outgoing}");
    // asking again sends nothing new
    let v = import(&app, &me, "?request=true", export(&rows)).await;
    assert_eq!(v["requested"], 0);
    // the fan's request is still pending, not turned into a connection by the import
    let conns = app.get("/v1/connections", me.t()).await.json();
    assert_eq!(conns["items"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn other_types_headerless_and_oversized_uploads_are_refused() {
    let app = spawn_app().await;
    let me = app.register("strict").await;
    let ok = export(&["A,B,,a@x.com,C,D,E".into()]);
    app.post_raw(PATH, me.t(), "application/json", ok.clone())
        .await
        .assert_problem(415, "unsupported_media_type");
    app.post_raw(PATH, me.t(), "text/plain", ok.clone())
        .await
        .assert_problem(415, "unsupported_media_type");
    let r = app.post_raw(PATH, me.t(), "text/csv; charset=utf-8", ok.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.post_raw(PATH, None, "text/csv", ok.clone())
        .await
        .assert_problem(401, "unauthorized");
    app.post_raw(PATH, me.t(), "text/csv", b"Name,Email\nA,a@x.com\n".to_vec())
        .await
        .assert_problem(400, "bad_request");
    app.post_raw(PATH, me.t(), "text/csv", vec![])
        .await
        .assert_problem(400, "bad_request");
    // 30,000 rows pass, 30,001 do not
    let rows: Vec<String> = (0..30_000).map(|_| "A,B,,,C,D,E".to_string()).collect();
    let v = import(&app, &me, "", export(&rows)).await;
    assert_eq!(v["rows"], 30_000);
    assert_eq!(v["unmatched"], 30_000);
    let rows: Vec<String> = (0..30_001).map(|_| "A,B,,,C,D,E".to_string()).collect();
    app.post_raw(PATH, me.t(), "text/csv", export(&rows))
        .await
        .assert_problem(413, "payload_too_large");
    // 5 MiB pass, one byte more does not
    let mut big = format!("{HEADER}\n").into_bytes();
    big.resize(5 * 1024 * 1024, b'\n');
    let r = app.post_raw(PATH, me.t(), "text/csv", big.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    big.push(b'\n');
    app.post_raw(PATH, me.t(), "text/csv", big)
        .await
        .assert_problem(413, "payload_too_large");
}

/// 30,000 rows, every one of them a user of the app (the worst case for matching), answer in
/// a few set-based queries; the time is printed, not asserted.
#[tokio::test]
async fn thirty_thousand_rows_answer_quickly() {
    // the machine running the suite is shared: a statement slowed by other tests must not turn
    // this measurement into a 503 (the time is printed, not asserted)
    let app = spawn_app_with(&[("HEREABOUTS_STORE_TIMEOUT_MS", "10000")]).await;
    let me = app.register("bulk").await;
    let n = 30_000;
    let emails: Vec<String> = (0..n).map(|i| format!("member{i}@example.com")).collect();
    let hashes: Vec<Vec<u8>> = emails
        .iter()
        .map(|e| hereabouts::domain::account::email_sha256(e))
        .collect();
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let urls: Vec<String> = (0..n)
        .map(|i| format!("https://www.linkedin.com/in/member-{i}"))
        .collect();
    sqlx::query(
        "INSERT INTO users (id, email, email_sha256, display_name, password_hash, linkedin_url)
         SELECT id, email, sha, 'member', 'x', url FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::text[])
           AS t(id, email, sha, url)",
    )
    .bind(&ids)
    .bind(&emails)
    .bind(&hashes)
    .bind(&urls)
    .execute(&app.db)
    .await
    .expect("users");
    sqlx::query("INSERT INTO privacy_settings (user_id) SELECT unnest($1::uuid[])")
        .bind(&ids)
        .execute(&app.db)
        .await
        .expect("privacy");
    sqlx::query("ANALYZE users").execute(&app.db).await.expect("analyze");
    // half by email, half by URL only
    let rows: Vec<String> = (0..n)
        .map(|i| {
            if i % 2 == 0 {
                format!(
                    "First{i},Last,https://www.linkedin.com/in/other-{i},{},\"Co, {i}\",Dev,01 Dec 2026",
                    emails[i]
                )
            } else {
                format!("First{i},Last,http://LinkedIn.com/in/MEMBER-{i}/,,\"Co, {i}\",Dev,01 Dec 2026")
            }
        })
        .collect();
    let body = export(&rows);
    let started = Instant::now();
    let v = import(&app, &me, "", body.clone()).await;
    let matching = started.elapsed();
    assert_eq!(v["rows"], n);
    assert_eq!(v["matched"].as_array().map(Vec::len), Some(n));
    assert_eq!(v["unmatched"], 0);
    let started = Instant::now();
    let v = import(&app, &me, "?request=true", body).await;
    let requesting = started.elapsed();
    assert_eq!(v["requested"], n);
    println!(
        "linkedin import of {n} rows ({} KiB), all matching: {} ms; with request=true ({n} requests): {} ms",
        export(&rows).len() / 1024,
        matching.as_millis(),
        requesting.as_millis()
    );
}
