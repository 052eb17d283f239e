//! The index's repair (`service::reconcile`), driven directly: an entry lost, one put back at
//! an older cell (a replica that missed the last move), one still there after its user left (a
//! lost leave) are each found and repaired, and a correct index is left alone.

use crate::checkins::{befriend, checkin, share};
use crate::helpers::*;
use hereabouts::service::reconcile::{full_pass, sweep_records};
use hereabouts::store::index;
use std::collections::HashMap;

/// Who `u` sees nearby: user id → cell.
async fn seen(app: &TestApp, u: &TestUser) -> HashMap<String, String> {
    let r = app.get("/v1/nearby?radius_m=20000", u.t()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            (
                i["user_id"].as_str().unwrap_or_default().to_string(),
                i["h3_cell"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn lost_stale_and_orphaned_entries_are_repaired_and_a_correct_index_left_alone() {
    // the paced walk is off: this test runs the repair itself
    let app = spawn_app_with(&[("HEREABOUTS_RECONCILE_INTERVAL_MS", "0")]).await;
    let (a, b) = (app.register("ann").await, app.register("bob").await);
    befriend(&app, &a, &b).await;
    share(&app, &a).await;
    share(&app, &b).await;
    checkin(&app, &a, 48.85, 2.35).await;
    checkin(&app, &b, 48.851, 2.35).await;
    let redis = &app.ctx.redis;
    let key = index::record_key(redis, b.id.parse().expect("uuid"));
    let older: Vec<u8> = redis.run(redis::cmd("GET").arg(&key)).await.expect("get");
    let moved = checkin(&app, &b, 48.90, 2.45).await;
    let cell = moved["h3_cell"].as_str().expect("cell").to_string();

    let t = full_pass(&app.ctx, 500).await.expect("pass");
    assert_eq!((t.checked, t.repaired), (2, 0), "a correct index was 'repaired'");

    // the last move lost: the older record is back
    let _: () = redis.run(redis::cmd("SET").arg(&key).arg(&older)).await.expect("set");
    assert_ne!(seen(&app, &a).await.get(&b.id), Some(&cell));
    assert_eq!(full_pass(&app.ctx, 500).await.expect("pass").repaired, 1);
    assert_eq!(
        seen(&app, &a).await.get(&b.id),
        Some(&cell),
        "not back at the last accepted cell"
    );

    // the record lost
    let _: () = redis.run(redis::cmd("DEL").arg(&key)).await.expect("del");
    assert!(!seen(&app, &a).await.contains_key(&b.id));
    assert_eq!(full_pass(&app.ctx, 1).await.expect("pass").repaired, 1);
    assert_eq!(seen(&app, &a).await.get(&b.id), Some(&cell));

    // a leave lost: the record outlives the live row; the walk of PostgreSQL's rows cannot see
    // it, the sweep of the records does
    let current: Vec<u8> = redis.run(redis::cmd("GET").arg(&key)).await.expect("get");
    assert_eq!(app.delete("/v1/checkins/current", b.t()).await.status, 204);
    // record and memberships, as the replica still has them
    let rec = hereabouts::domain::nearby::LiveRecord::from_bytes(&current).expect("a record");
    let uid: uuid::Uuid = b.id.parse().expect("uuid");
    hereabouts::store::index::put_many(redis, &[(uid, rec)])
        .await
        .expect("put back");
    assert!(seen(&app, &a).await.contains_key(&b.id));
    assert_eq!(full_pass(&app.ctx, 500).await.expect("pass").repaired, 0);
    // the master that holds the record (any slot on a single Redis)
    let slot = hereabouts::store::reconcile::key_slot(&key);
    let swept = sweep_records(&app.ctx, slot, 500).await.expect("sweep");
    assert_eq!(swept.repaired, 1, "{swept:?}");
    assert!(
        !seen(&app, &a).await.contains_key(&b.id),
        "a user who left is still shown"
    );
}
