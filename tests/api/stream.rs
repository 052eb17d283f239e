//! The live radar, `GET /v1/nearby/stream`: snapshot, enter/move/leave within 2 s, ids, the end
//! and its reason, the per-user cap, and a check-in on another instance reaching the stream.

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One server-sent event.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: Option<u64>,
    data: Value,
}

/// An open stream and what it has sent so far.
struct Radar {
    resp: reqwest::Response,
    buf: String,
}

impl Radar {
    async fn open(app: &TestApp, u: &TestUser, query: &str) -> Result<Radar, (u16, String)> {
        let resp = app
            .client
            .get(format!("{}/v1/nearby/stream{query}", app.address))
            .bearer_auth(&u.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("stream request");
        if resp.status() != 200 {
            let status = resp.status().as_u16();
            return Err((status, resp.text().await.unwrap_or_default()));
        }
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        Ok(Radar {
            resp,
            buf: String::new(),
        })
    }

    /// The next event (comments skipped), waiting at most `within`.
    async fn next(&mut self, within: Duration) -> Option<Sse> {
        let deadline = Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = (String::from("message"), None, String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some(Sse {
                        event,
                        id,
                        data: serde_json::from_str(&data).expect("JSON data"),
                    });
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event named `name` within `within`, the ones before it returned too.
    async fn until(&mut self, name: &str, within: Duration) -> (Sse, Vec<Sse>) {
        let deadline = Instant::now() + within;
        let mut seen = vec![];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let e = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("no `{name}` event within {within:?}; saw {seen:?}"));
            if e.event == name {
                return (e, seen);
            }
            seen.push(e);
        }
    }
}

/// Two connections who share, `a` checked in.
async fn pair(app: &TestApp) -> (TestUser, TestUser) {
    let (a, b) = (app.register("ann").await, app.register("bob").await);
    befriend(app, &a, &b).await;
    share(app, &a).await;
    share(app, &b).await;
    checkin(app, &a, 48.85, 2.35).await;
    (a, b)
}

#[tokio::test]
async fn the_radar_sends_a_snapshot_then_enter_move_and_leave_within_two_seconds() {
    let app = spawn_app().await;
    let (a, b) = pair(&app).await;
    let mut radar = Radar::open(&app, &a, "?radius_m=5000").await.expect("open");
    let snap = radar.next(Duration::from_secs(2)).await.expect("snapshot");
    assert_eq!(snap.event, "snapshot");
    assert_eq!(snap.data["items"], json!([]), "{:?}", snap.data);
    assert_eq!(snap.data["radius_m"], 5000);
    let mut last_id = snap.id.expect("id");

    checkin(&app, &b, 48.851, 2.35).await;
    let (enter, _) = radar.until("enter", Duration::from_secs(2)).await;
    assert_eq!(enter.data["user_id"], b.id.as_str());
    assert!(
        enter.data["distance_m"].is_u64() && enter.data["distance_range_m"].is_array(),
        "{:?}",
        enter.data
    );
    assert!(enter.id.expect("id") > last_id);
    last_id = enter.id.expect("id");

    checkin(&app, &b, 48.86, 2.35).await;
    let (moved, _) = radar.until("move", Duration::from_secs(2)).await;
    assert_eq!(moved.data["user_id"], b.id.as_str());
    assert!(moved.data["distance_m"].as_u64() > enter.data["distance_m"].as_u64());
    assert!(moved.id.expect("id") > last_id);

    assert_eq!(app.delete("/v1/checkins/current", b.t()).await.status, 204);
    let (leave, _) = radar.until("leave", Duration::from_secs(2)).await;
    assert_eq!(leave.data, json!({"user_id": b.id}));
}

#[tokio::test]
async fn the_radar_ends_with_its_reason() {
    let app = spawn_app().await;
    let (a, _b) = pair(&app).await;
    // the caller stops sharing
    let mut radar = Radar::open(&app, &a, "").await.expect("open");
    radar.until("snapshot", Duration::from_secs(2)).await;
    assert_eq!(app.delete("/v1/checkins/current", a.t()).await.status, 204);
    let (end, _) = radar.until("end", Duration::from_secs(3)).await;
    assert_eq!(end.data, json!({"reason": "not_sharing"}));
    assert!(
        radar.next(Duration::from_secs(1)).await.is_none(),
        "nothing after the end"
    );
    // the session ends
    checkin(&app, &a, 48.85, 2.35).await;
    let mut radar = Radar::open(&app, &a, "").await.expect("open");
    radar.until("snapshot", Duration::from_secs(2)).await;
    let r = app.post("/v1/auth/logout-all", a.t(), json!({})).await;
    assert_eq!(r.status, 204);
    let (end, _) = radar.until("end", Duration::from_secs(3)).await;
    assert_eq!(end.data, json!({"reason": "session_ended"}));
}

#[tokio::test]
async fn the_kill_switch_ends_every_radar() {
    let app = spawn_app().await;
    let (a, _b) = pair(&app).await;
    let root = app.register("root").await;
    let admin = app.make_admin(&root).await;
    let mut radar = Radar::open(&app, &a, "").await.expect("open");
    radar.until("snapshot", Duration::from_secs(2)).await;
    let r = app
        .patch(
            "/v1/admin/policy",
            admin.t(),
            json!({"location_sharing_enabled": false}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (end, _) = radar.until("end", Duration::from_secs(4)).await;
    assert_eq!(end.data, json!({"reason": "kill_switch"}));
}

#[tokio::test]
async fn the_radar_needs_a_live_checkin_and_is_capped_per_user() {
    let app = spawn_app().await;
    let u = app.register("una").await;
    share(&app, &u).await;
    let (status, body) = Radar::open(&app, &u, "").await.err().expect("refused");
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no_active_checkin"), "{body}");
    let (status, body) = Radar::open(&app, &u, "?radius_m=10").await.err().expect("refused");
    assert_eq!(status, 422, "{body}");
    checkin(&app, &u, 10.0, 10.0).await;
    let mut open = vec![];
    for _ in 0..3 {
        open.push(Radar::open(&app, &u, "").await.expect("within the cap"));
    }
    let (status, body) = Radar::open(&app, &u, "").await.err().expect("past the cap");
    assert_eq!(status, 429, "{body}");
    // closing one frees its slot (the server notices at its next keep-alive, every 5 s)
    drop(open.pop());
    let mut reopened = None;
    for _ in 0..60 {
        if let Ok(r) = Radar::open(&app, &u, "").await {
            reopened = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reopened.is_some(), "a closed stream gives its slot back");
}

#[tokio::test]
async fn a_checkin_on_another_instance_reaches_the_radar_and_a_reconnect_starts_with_a_snapshot() {
    let app = spawn_app().await;
    let second = app.second_instance().await;
    let (a, b) = pair(&app).await;
    let mut radar = Radar::open(&second, &a, "").await.expect("open");
    let snap = radar.until("snapshot", Duration::from_secs(2)).await.0;
    checkin(&app, &b, 48.851, 2.35).await;
    let (enter, _) = radar.until("enter", Duration::from_secs(2)).await;
    assert_eq!(enter.data["user_id"], b.id.as_str());
    // reconnecting after the last id seen: a fresh snapshot with b in it, numbered after it
    drop(radar);
    let last = enter.id.expect("id");
    let resp = app
        .client
        .get(format!("{}/v1/nearby/stream", app.address))
        .bearer_auth(&a.token)
        .header("last-event-id", last.to_string())
        .send()
        .await
        .expect("reconnect");
    let mut radar = Radar {
        resp,
        buf: String::new(),
    };
    let again = radar.next(Duration::from_secs(2)).await.expect("snapshot");
    assert_eq!(again.event, "snapshot");
    assert!(again.id.expect("id") > last && snap.id.expect("id") < last);
    assert_eq!(again.data["items"][0]["user_id"], b.id.as_str());
}

/// The value of a counter in the metrics text (0 when absent).
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_radar_reads_only_when_a_change_may_affect_it() {
    let app = spawn_app().await;
    let (a, b) = pair(&app).await;
    // a connection far away (a new connection makes the radar read again: befriended first)
    let far = app.register("far").await;
    share(&app, &far).await;
    befriend(&app, &a, &far).await;
    let mut radar = Radar::open(&app, &a, "?radius_m=5000").await.expect("open");
    radar.until("snapshot", Duration::from_secs(2)).await;
    // reads of either kind: the whole answer, or only the users a message named
    let reads = || async {
        let m = app.metrics().await;
        counter(&m, "radar_reads_total ") + counter(&m, "radar_partial_reads_total ")
    };
    // once its subscription is in place the stream reads once (a change may have come between);
    // from then on only what may affect it wakes it
    assert!(radar.next(Duration::from_millis(700)).await.is_none());
    let settled = reads().await;
    assert!(settled <= 1.0, "{settled} reads before anything changed");
    // nothing changes, or something changes far away: no read, no event
    checkin(&app, &far, 40.4168, -3.7038).await;
    assert!(radar.next(Duration::from_millis(1_500)).await.is_none());
    assert_eq!(
        reads().await,
        settled,
        "a check-in in Madrid does not wake a 5 km radar in Paris"
    );
    // a connection checks in nearby: one read, and the enter
    checkin(&app, &b, 48.851, 2.35).await;
    let (enter, _) = radar.until("enter", Duration::from_secs(2)).await;
    assert_eq!(enter.data["user_id"], b.id.as_str());
    let after = reads().await - settled;
    assert!((1.0..=2.0).contains(&after), "{after} reads");
    assert_eq!(
        counter(&app.metrics().await, "radar_reads_total "),
        settled,
        "bob alone is read, not the whole answer"
    );
}

/// What the caller sees of an item, the fields a stream's `move` is about.
fn view_of(item: &Value) -> (String, Value) {
    let id = item["user_id"].as_str().expect("user_id").to_string();
    let seen = json!({
        "distance_m": item["distance_m"],
        "distance_range_m": item["distance_range_m"],
        "precision": item["precision"],
        "h3_cell": item["h3_cell"],
    });
    (id, seen)
}

/// A stream's list as its events built it, by user.
type View = std::collections::BTreeMap<String, Value>;

/// `/v1/nearby` of `u` as a [`View`].
async fn nearby_view(app: &TestApp, u: &TestUser) -> View {
    let r = app.get("/v1/nearby?radius_m=5000", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(view_of)
        .collect()
}

/// Applies the stream's events to `view` until it equals `/v1/nearby` (asked at most every
/// 400 ms), within `within`; the answer of nearby then.
async fn settles(app: &TestApp, u: &TestUser, radar: &mut Radar, view: &mut View, within: Duration) -> View {
    let deadline = Instant::now() + within;
    loop {
        let truth = nearby_view(app, u).await;
        if *view == truth {
            return truth;
        }
        let slice = Instant::now() + Duration::from_millis(400);
        while let Some(e) = radar.next(slice.saturating_duration_since(Instant::now())).await {
            match e.event.as_str() {
                "enter" | "move" => {
                    let (id, seen) = view_of(&e.data);
                    view.insert(id, seen);
                }
                "leave" => {
                    view.remove(e.data["user_id"].as_str().expect("user_id"));
                }
                other => panic!("unexpected `{other}`: {:?}", e.data),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the stream shows {view:?}, nearby answers {truth:?}"
        );
    }
}

/// Follows `user` in `view`.
fn shows(view: &View, u: &TestUser) -> Option<Value> {
    view.get(u.id.as_str()).cloned()
}

#[tokio::test]
async fn a_radar_told_which_users_changed_stays_equal_to_nearby() {
    let app = spawn_app().await;
    let (a, b) = pair(&app).await;
    let (c, d) = (app.register("cy").await, app.register("dee").await);
    for u in [&c, &d] {
        befriend(&app, &a, u).await;
        share(&app, u).await;
    }
    let mut radar = Radar::open(&app, &a, "?radius_m=5000").await.expect("open");
    let snap = radar.until("snapshot", Duration::from_secs(2)).await.0;
    let mut view: View = snap.data["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(view_of)
        .collect();
    // let the subscription's own full read pass, then count
    assert!(radar.next(Duration::from_millis(700)).await.is_none());
    let metrics = app.metrics().await;
    let (full_before, partial_before) = (
        counter(&metrics, "radar_reads_total "),
        counter(&metrics, "radar_partial_reads_total "),
    );
    // three connections check in nearby, one after the other
    for (u, lat) in [(&b, 48.851), (&c, 48.853), (&d, 48.855)] {
        checkin(&app, u, lat, 2.35).await;
        let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
        assert!(shows(&truth, u).is_some(), "{truth:?}");
    }
    let metrics = app.metrics().await;
    assert_eq!(
        counter(&metrics, "radar_reads_total "),
        full_before,
        "check-ins of others are read one by one, not by re-reading the whole answer"
    );
    assert!(counter(&metrics, "radar_partial_reads_total ") > partial_before);

    // bob coarsens his precision: a move to his cell, with a range
    let exact = shows(&view, &b).expect("bob shown");
    let r = app
        .patch("/v1/me/privacy", b.t(), json!({"precision": "approximate"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
    let coarse = shows(&truth, &b).expect("bob still listed");
    assert_eq!(coarse["precision"], "approximate");
    assert_ne!(coarse, exact);

    // an exact share from bob: ann sees his point again
    let r = app
        .post("/v1/shares", b.t(), json!({"to_user_id": a.id, "duration_s": 600}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
    assert_eq!(shows(&truth, &b).expect("bob")["precision"], "exact");

    // cy hides from ann while she streams, then shows herself again
    let r = app.patch("/v1/me/privacy", c.t(), json!({"hidden_from": [a.id]})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
    assert!(shows(&truth, &c).is_none(), "{truth:?}");
    let r = app.patch("/v1/me/privacy", c.t(), json!({"hidden_from": []})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
    assert!(shows(&truth, &c).is_some(), "{truth:?}");

    // dee blocks ann: she leaves the radar well before its safety re-read
    let r = app.put(&format!("/v1/blocks/{}", a.id), d.t()).await;
    assert!(r.status == 204 || r.status == 200, "{}", r.text);
    let truth = settles(&app, &a, &mut radar, &mut view, Duration::from_secs(3)).await;
    assert!(shows(&truth, &d).is_none(), "{truth:?}");
    assert_eq!(truth.len(), 2, "{truth:?}");
}
