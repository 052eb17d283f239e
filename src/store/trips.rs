//! Trips, home bases, the overlap queries, the pairs already notified, and calendar feeds, in
//! PostgreSQL.
//!
//! # The overlap query and its plan
//!
//! A trip's place is its resolution-5 cell; `trips.centre` is that cell's centre as a point and
//! `trips.dates` the inclusive date range. `trips_space_time` is one GiST index over
//! `(centre, dates)` for visible trips only, so "visible trips whose centre lies in the box
//! around this cell and whose dates meet these (widened by the tolerance)" is one index scan
//! (a BitmapOr of two when the box crosses the antimeridian) that reads only the trips of that
//! place and time — in a city with 10,000 trips, those of the same week. The planner joins
//! all of those trips to the caller's connections (a probe of the primary key `connections
//! (user_id, peer_id)` per trip, or a merge with the caller's connections). It could instead
//! walk a small caller's connections and probe `trips_user`, but in practice it does not: `<@ box` on a point has a fixed
//! selectivity estimate, so the box side is always estimated at a few rows (8–21 where the
//! bench measured 6,000–7,400), and the work follows the place, not the smaller side (the
//! bench's trips workload measures it; see README, Performance). Blocks, hidden lists and
//! suspension are filtered per candidate by index lookups. The exact distance between cell centres is measured by the caller (the box
//! is a superset). `EXPLAIN` of it on 10,000 trips and 30,000 connections is printed by the
//! test `trips::overlap_plan_on_a_crowded_city` (ignored by default; see README).

use super::StoreResult;
use crate::domain::trips::LngLatBox;
use sqlx::{PgExecutor, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

/// A trip as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TripRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: Option<String>,
    pub lat: f64,
    pub lng: f64,
    pub h3_cell: String,
    pub starts_on: Date,
    pub ends_on: Date,
    pub visibility: String,
    pub created_at: OffsetDateTime,
}

/// What writing a trip takes (the cell and its centre are computed by the caller).
#[derive(Debug, Clone)]
pub struct TripWrite {
    pub name: Option<String>,
    pub lat: f64,
    pub lng: f64,
    pub h3_cell: String,
    pub centre_lat: f64,
    pub centre_lng: f64,
    pub starts_on: Date,
    pub ends_on: Date,
    pub visibility: String,
}

const COLUMNS: &str = "id, user_id, name, lat, lng, h3_cell, starts_on, ends_on, visibility, created_at";

/// Writes a new trip.
pub async fn insert(db: &PgPool, user: Uuid, t: &TripWrite) -> StoreResult<TripRecord> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO trips (id, user_id, name, lat, lng, h3_cell, centre, starts_on, ends_on, visibility)
         VALUES ($1, $2, $3, $4, $5, $6, point($7, $8), $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(&t.name)
    .bind(t.lat)
    .bind(t.lng)
    .bind(&t.h3_cell)
    .bind(t.centre_lng)
    .bind(t.centre_lat)
    .bind(t.starts_on)
    .bind(t.ends_on)
    .bind(&t.visibility)
    .fetch_one(db)
    .await?)
}

/// Writes an imported trip, or updates the one imported before with the same UID; the flag
/// says whether it was created.
pub async fn upsert_imported(db: &PgPool, user: Uuid, uid: &str, t: &TripWrite) -> StoreResult<(TripRecord, bool)> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        trip: TripRecord,
        created: bool,
    }
    let row: Row = sqlx::query_as(&format!(
        "INSERT INTO trips (id, user_id, name, lat, lng, h3_cell, centre, starts_on, ends_on, visibility, ical_uid)
         VALUES ($1, $2, $3, $4, $5, $6, point($7, $8), $9, $10, 'connections', $11)
         ON CONFLICT (user_id, ical_uid) WHERE ical_uid IS NOT NULL DO UPDATE SET
             name = EXCLUDED.name, lat = EXCLUDED.lat, lng = EXCLUDED.lng, h3_cell = EXCLUDED.h3_cell,
             centre = EXCLUDED.centre, starts_on = EXCLUDED.starts_on, ends_on = EXCLUDED.ends_on, updated_at = now()
         RETURNING {COLUMNS}, (xmax = 0) AS created"
    ))
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(&t.name)
    .bind(t.lat)
    .bind(t.lng)
    .bind(&t.h3_cell)
    .bind(t.centre_lng)
    .bind(t.centre_lat)
    .bind(t.starts_on)
    .bind(t.ends_on)
    .bind(uid)
    .fetch_one(db)
    .await?;
    Ok((row.trip, row.created))
}

/// Rewrites a trip of `user`; none when it is not theirs.
pub async fn update(db: &PgPool, user: Uuid, id: Uuid, t: &TripWrite) -> StoreResult<Option<TripRecord>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE trips SET name = $3, lat = $4, lng = $5, h3_cell = $6, centre = point($7, $8), starts_on = $9,
             ends_on = $10, visibility = $11, updated_at = now()
         WHERE id = $1 AND user_id = $2 RETURNING {COLUMNS}"
    ))
    .bind(id)
    .bind(user)
    .bind(&t.name)
    .bind(t.lat)
    .bind(t.lng)
    .bind(&t.h3_cell)
    .bind(t.centre_lng)
    .bind(t.centre_lat)
    .bind(t.starts_on)
    .bind(t.ends_on)
    .bind(&t.visibility)
    .fetch_optional(db)
    .await?)
}

/// A trip of `user`; none when it is not theirs.
pub async fn get(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<Option<TripRecord>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM trips WHERE id = $1 AND user_id = $2"))
            .bind(id)
            .bind(user)
            .fetch_optional(db)
            .await?,
    )
}

/// The user's trips by `starts_on` (then id), after `(starts_on, id)`, at most `limit + 1`.
pub async fn list(db: &PgPool, user: Uuid, after: Option<(Date, Uuid)>, limit: i64) -> StoreResult<Vec<TripRecord>> {
    let (d, id) = (after.map(|a| a.0), after.map(|a| a.1));
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM trips WHERE user_id = $1 AND ($2::date IS NULL OR (starts_on, id) > ($2, $3::uuid))
         ORDER BY starts_on, id LIMIT $4"
    ))
    .bind(user)
    .bind(d)
    .bind(id)
    .bind(limit + 1)
    .fetch_all(db)
    .await?)
}

/// Deletes a trip of `user`; false when it is not theirs.
pub async fn delete(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM trips WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(db)
        .await?
        .rows_affected()
        > 0)
}

/// A connection's visible trip near a place and a time (the overlap query's candidates).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateTrip {
    pub id: Uuid,
    pub user_id: Uuid,
    pub display_name: String,
    pub name: Option<String>,
    pub h3_cell: String,
    pub starts_on: Date,
    pub ends_on: Date,
}

/// The privacy rules of nearby, for candidate `x.user_id` seen by `$1`: not suspended, not
/// hiding from the caller, no block either way (connected is the join).
const VISIBLE_TO_CALLER: &str = "NOT u.suspended AND NOT ($1 = ANY(p.hidden_from))
    AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                                            OR (b.blocker_id = u.id AND b.blocked_id = $1))";

/// The candidates query: visible trips of `$1`'s connections whose centre lies in one of two
/// boxes (`$4`–`$11`) and whose dates meet `[$2, $3]`.
fn candidates_sql() -> String {
    format!(
        "SELECT t.id, t.user_id, u.display_name, t.name, t.h3_cell, t.starts_on, t.ends_on
         FROM trips t
         JOIN connections c ON c.user_id = $1 AND c.peer_id = t.user_id
         JOIN users u ON u.id = t.user_id
         JOIN privacy_settings p ON p.user_id = t.user_id
         WHERE t.visibility = 'connections' AND t.dates && daterange($2, $3, '[]')
           AND (t.centre <@ box(point($4, $5), point($6, $7)) OR t.centre <@ box(point($8, $9), point($10, $11)))
           AND {VISIBLE_TO_CALLER}"
    )
}

/// Binds the candidates query's parameters, in order.
macro_rules! bind_candidates {
    ($q:expr, $me:expr, $from:expr, $to:expr, $boxes:expr) => {
        $q.bind($me)
            .bind($from)
            .bind($to)
            .bind($boxes[0].0)
            .bind($boxes[0].1)
            .bind($boxes[0].2)
            .bind($boxes[0].3)
            .bind($boxes[1].0)
            .bind($boxes[1].1)
            .bind($boxes[1].2)
            .bind($boxes[1].3)
    };
}

/// Visible trips of `me`'s connections whose centre lies in one of `boxes` and whose dates meet
/// `[from, to]` (see the module's notes on the plan).
pub async fn candidates<'e>(
    db: impl PgExecutor<'e>,
    me: Uuid,
    from: Date,
    to: Date,
    boxes: &[LngLatBox; 2],
) -> StoreResult<Vec<CandidateTrip>> {
    let sql = candidates_sql();
    Ok(bind_candidates!(sqlx::query_as(&sql), me, from, to, boxes)
        .fetch_all(db)
        .await?)
}

/// The query plan of [`candidates`], run as it is (for the measurement test and the README).
pub async fn explain_candidates(
    db: &PgPool,
    me: Uuid,
    from: Date,
    to: Date,
    boxes: &[LngLatBox; 2],
) -> StoreResult<Vec<String>> {
    let sql = format!("EXPLAIN (ANALYZE, BUFFERS) {}", candidates_sql());
    Ok(bind_candidates!(sqlx::query_scalar(&sql), me, from, to, boxes)
        .fetch_all(db)
        .await?)
}

/// A connection whose visible home base lies near a place.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CandidateHome {
    pub user_id: Uuid,
    pub display_name: String,
    pub home_cell: String,
}

/// Connections of `me` with a visible home whose cell centre lies in one of `boxes`.
pub async fn home_candidates(db: &PgPool, me: Uuid, boxes: &[LngLatBox; 2]) -> StoreResult<Vec<CandidateHome>> {
    Ok(sqlx::query_as(&format!(
        "SELECT u.id AS user_id, u.display_name, p.home_cell
         FROM privacy_settings p
         JOIN connections c ON c.user_id = $1 AND c.peer_id = p.user_id
         JOIN users u ON u.id = p.user_id
         WHERE p.home_visible AND p.home_cell IS NOT NULL
           AND (p.home_centre <@ box(point($2, $3), point($4, $5)) OR p.home_centre <@ box(point($6, $7), point($8, $9)))
           AND {VISIBLE_TO_CALLER}"
    ))
    .bind(me)
    .bind(boxes[0].0)
    .bind(boxes[0].1)
    .bind(boxes[0].2)
    .bind(boxes[0].3)
    .bind(boxes[1].0)
    .bind(boxes[1].1)
    .bind(boxes[1].2)
    .bind(boxes[1].3)
    .fetch_all(db)
    .await?)
}

/// One `trip_overlap` notification pair to record: both owners, both trips.
#[derive(Debug, Clone)]
pub struct OverlapPair {
    pub mine: Uuid,
    pub me: Uuid,
    pub theirs: Uuid,
    pub them: Uuid,
    pub from: Date,
    pub to: Date,
    pub distance_m: i32,
}

/// Records the pairs not notified before and writes a `trip_overlap` notification to each
/// owner (with one pending delivery per active device, as the outbox does); returns how many
/// pairs were new. One transaction: a pair is recorded iff its notifications are written.
pub async fn notify_overlaps(db: &PgPool, pairs: &[OverlapPair]) -> StoreResult<u64> {
    if pairs.is_empty() {
        return Ok(0);
    }
    let mut tx = db.begin().await?;
    let a: Vec<Uuid> = pairs.iter().map(|p| p.mine.min(p.theirs)).collect();
    let b: Vec<Uuid> = pairs.iter().map(|p| p.mine.max(p.theirs)).collect();
    let new: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "INSERT INTO trip_overlap_pairs (trip_a, trip_b) SELECT * FROM UNNEST($1::uuid[], $2::uuid[])
         ON CONFLICT DO NOTHING RETURNING trip_a, trip_b",
    )
    .bind(&a)
    .bind(&b)
    .fetch_all(&mut *tx)
    .await?;
    let mut items = vec![];
    for p in pairs {
        let key = (p.mine.min(p.theirs), p.mine.max(p.theirs));
        if new.contains(&key) {
            // each owner hears of the other, about their own trip
            items.push(crate::store::outbox::NewTripOverlap {
                user_id: p.me,
                actor_user_id: p.them,
                trip_id: p.mine,
                from: p.from,
                to: p.to,
                distance_m: p.distance_m,
            });
            items.push(crate::store::outbox::NewTripOverlap {
                user_id: p.them,
                actor_user_id: p.me,
                trip_id: p.theirs,
                from: p.from,
                to: p.to,
                distance_m: p.distance_m,
            });
        }
    }
    crate::store::outbox::insert_trip_overlaps(&mut tx, &items).await?;
    tx.commit().await?;
    Ok(new.len() as u64)
}

// ---------------------------------------------------------------------------------------------
// Home base

/// A home base to write: the point, its resolution-5 cell and that cell's centre.
#[derive(Debug, Clone)]
pub struct HomeWrite {
    pub lat: f64,
    pub lng: f64,
    pub cell: String,
    pub centre_lat: f64,
    pub centre_lng: f64,
}

/// Sets (`Some(Some)`), clears (`Some(None)`) or keeps (`None`) the home base, and sets its
/// visibility when given.
pub async fn set_home(
    db: &PgPool,
    user: Uuid,
    home: Option<Option<&HomeWrite>>,
    visible: Option<bool>,
) -> StoreResult<()> {
    if let Some(h) = home {
        sqlx::query(
            "UPDATE privacy_settings SET home_lat = $2, home_lng = $3, home_cell = $4,
                 home_centre = CASE WHEN $5::float8 IS NULL THEN NULL ELSE point($6, $5) END, updated_at = now()
             WHERE user_id = $1",
        )
        .bind(user)
        .bind(h.map(|h| h.lat))
        .bind(h.map(|h| h.lng))
        .bind(h.map(|h| h.cell.clone()))
        .bind(h.map(|h| h.centre_lat))
        .bind(h.map(|h| h.centre_lng))
        .execute(db)
        .await?;
    }
    if let Some(v) = visible {
        sqlx::query("UPDATE privacy_settings SET home_visible = $2, updated_at = now() WHERE user_id = $1")
            .bind(user)
            .bind(v)
            .execute(db)
            .await?;
    }
    Ok(())
}

/// The user's home cell and whether it is visible.
pub async fn home(db: &PgPool, user: Uuid) -> StoreResult<(Option<String>, bool)> {
    Ok(
        sqlx::query_as("SELECT home_cell, home_visible FROM privacy_settings WHERE user_id = $1")
            .bind(user)
            .fetch_optional(db)
            .await?
            .unwrap_or((None, false)),
    )
}

// ---------------------------------------------------------------------------------------------
// Calendar feeds

/// Sets the hash of the user's feed secret (a new one replaces the old).
pub async fn set_feed(db: &PgPool, user: Uuid, secret_hash: &[u8]) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO calendar_feeds (user_id, secret_hash) VALUES ($1, $2)
         ON CONFLICT (user_id) DO UPDATE SET secret_hash = EXCLUDED.secret_hash, created_at = now()",
    )
    .bind(user)
    .bind(secret_hash)
    .execute(db)
    .await?;
    Ok(())
}

/// Ends the user's feed; false when there was none.
pub async fn delete_feed(db: &PgPool, user: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM calendar_feeds WHERE user_id = $1")
        .bind(user)
        .execute(db)
        .await?
        .rows_affected()
        > 0)
}

/// The owner of a feed by the hash of its secret (not a suspended one).
pub async fn feed_owner(db: &PgPool, secret_hash: &[u8]) -> StoreResult<Option<Uuid>> {
    Ok(sqlx::query_scalar(
        "SELECT f.user_id FROM calendar_feeds f JOIN users u ON u.id = f.user_id
         WHERE f.secret_hash = $1 AND NOT u.suspended",
    )
    .bind(secret_hash)
    .fetch_optional(db)
    .await?)
}

/// Every trip of the user (the feed), by `starts_on`, at most `limit`.
pub async fn all_of(db: &PgPool, user: Uuid, limit: i64) -> StoreResult<Vec<TripRecord>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM trips WHERE user_id = $1 ORDER BY starts_on, id LIMIT $2"
    ))
    .bind(user)
    .bind(limit)
    .fetch_all(db)
    .await?)
}
