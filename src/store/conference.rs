//! Events (conference mode) in PostgreSQL: the events, who attends them, and the people at an
//! event right now (attendees whose live check-in lies in the venue's bounding box; the exact
//! geodesic test is the service's).

use super::StoreResult;
use super::graph::PROFILE_COLS;
use super::paging::{Cursor, Keyed, Page, Sorted, keyset};
use super::users::ProfileFields;
use crate::domain::event::NewEvent;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// An event row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: Uuid,
    pub name: String,
    pub lat: f64,
    pub lng: f64,
    pub radius_m: i32,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
    pub organizer_id: Uuid,
    pub join_code: String,
    pub created_at: OffsetDateTime,
    /// Whether the reading user attends it.
    pub attending: bool,
}

const COLS: &str =
    "e.id, e.name, e.lat, e.lng, e.radius_m, e.starts_at, e.ends_at, e.organizer_id, e.join_code, e.created_at";

/// Creates an event; its organiser attends it from the start.
pub async fn create(db: &PgPool, organizer: Uuid, e: &NewEvent, join_code: &str) -> StoreResult<EventRow> {
    let mut tx = db.begin().await?;
    let row: EventRow = sqlx::query_as(&format!(
        "WITH e AS (INSERT INTO events (id, name, lat, lng, radius_m, starts_at, ends_at, organizer_id, join_code)
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *)
         SELECT {COLS}, true AS attending FROM e"
    ))
    .bind(Uuid::now_v7())
    .bind(&e.name)
    .bind(e.venue.lat())
    .bind(e.venue.lng())
    .bind(e.radius_m)
    .bind(e.starts_at)
    .bind(e.ends_at)
    .bind(organizer)
    .bind(join_code)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO event_attendees (event_id, user_id) VALUES ($1, $2)")
        .bind(row.id)
        .bind(organizer)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(row)
}

/// The event `id` when `user` organises or attends it.
pub async fn visible(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<Option<EventRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS}, EXISTS (SELECT 1 FROM event_attendees a WHERE a.event_id = e.id AND a.user_id = $1) AS attending
         FROM events e WHERE e.id = $2"
    ))
    .bind(user)
    .bind(id)
    .fetch_optional(db)
    .await?
    .filter(|e: &EventRow| e.attending || e.organizer_id == user))
}

/// The events `user` organises or attends, newest first, after `cursor`.
pub async fn list(db: &PgPool, user: Uuid, limit: i64, cursor: Option<Cursor>) -> StoreResult<Page<EventRow>> {
    let select = format!(
        "SELECT {COLS}, EXISTS (SELECT 1 FROM event_attendees a WHERE a.event_id = e.id AND a.user_id = $1) AS attending
         FROM events e
         WHERE (e.organizer_id = $1 OR e.id IN (SELECT a.event_id FROM event_attendees a WHERE a.user_id = $1))"
    );
    keyset(db, Sorted::newest(&select, "e.created_at", "e.id"), user, limit, cursor).await
}

/// `user` joins event `id` when `join_code` is its code (joining again changes nothing); false
/// when there is no such event or the code is another.
pub async fn join(db: &PgPool, user: Uuid, id: Uuid, join_code: &str) -> StoreResult<bool> {
    Ok(sqlx::query_scalar(
        "WITH e AS (SELECT id FROM events WHERE id = $1 AND join_code = $2),
              ins AS (INSERT INTO event_attendees (event_id, user_id) SELECT id, $3 FROM e ON CONFLICT DO NOTHING)
         SELECT EXISTS (SELECT 1 FROM e)",
    )
    .bind(id)
    .bind(join_code)
    .bind(user)
    .fetch_one(db)
    .await?)
}

/// `user` stops attending event `id`; false when they did not attend it.
pub async fn leave(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM event_attendees WHERE event_id = $1 AND user_id = $2")
            .bind(id)
            .bind(user)
            .execute(db)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Deletes event `id` organised by `user` (attendances go with it); false when there is none.
pub async fn delete(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM events WHERE id = $1 AND organizer_id = $2")
        .bind(id)
        .bind(user)
        .execute(db)
        .await?
        .rows_affected()
        > 0)
}

/// An attendee with a live, indexed check-in in the venue's bounding box, who shares, is not
/// suspended, does not hide from the caller, and is not blocked by or blocking the caller.
/// `lat`/`lng` are the raw point: for the service's exact test only, never shown.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PresentRow {
    pub user_id: Uuid,
    pub display_name: String,
    #[sqlx(flatten)]
    pub profile: ProfileFields,
    pub connected: bool,
    pub incoming: bool,
    pub outgoing: bool,
    pub lat: f64,
    pub lng: f64,
    /// When the live check-in was recorded.
    pub since: OffsetDateTime,
}

impl Keyed for PresentRow {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.since,
            id: self.user_id,
        }
    }
}

/// The box the raw points must lie in: (lat_min, lat_max, lng_min, lng_max).
pub type BBox = (f64, f64, f64, f64);

/// Up to `limit` candidates present at event `id` as `caller` may see them, ordered by
/// `(since DESC, user_id DESC)` after `after`. One query.
pub async fn present(
    db: &PgPool,
    caller: Uuid,
    id: Uuid,
    bbox: BBox,
    after: Option<Cursor>,
    limit: i64,
) -> StoreResult<Vec<PresentRow>> {
    let (at, after_id) = after.map(|c| (c.at, c.id)).unzip();
    Ok(sqlx::query_as(&format!(
        "SELECT a.user_id, u.display_name, {PROFILE_COLS},
                EXISTS (SELECT 1 FROM connections c WHERE c.user_id = $2 AND c.peer_id = a.user_id) AS connected,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = a.user_id AND r.to_user_id = $2) AS incoming,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = $2 AND r.to_user_id = a.user_id) AS outgoing,
                l.lat, l.lng, l.recorded_at AS since
         FROM event_attendees a
         JOIN users u ON u.id = a.user_id
         JOIN privacy_settings p ON p.user_id = a.user_id
         JOIN live_locations l ON l.user_id = a.user_id
         WHERE a.event_id = $1 AND a.user_id <> $2 AND NOT u.suspended
           AND p.sharing AND (p.paused_until IS NULL OR p.paused_until <= now()) AND NOT ($2 = ANY(p.hidden_from))
           AND l.expires_at > now() AND l.indexed
           AND l.lat BETWEEN $3 AND $4 AND l.lng BETWEEN $5 AND $6
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = $2 AND b.blocked_id = a.user_id)
                              OR (b.blocker_id = a.user_id AND b.blocked_id = $2))
           AND ($7::timestamptz IS NULL OR (l.recorded_at, a.user_id) < ($7, $8))
         ORDER BY l.recorded_at DESC, a.user_id DESC LIMIT $9"
    ))
    .bind(id)
    .bind(caller)
    .bind(bbox.0)
    .bind(bbox.1)
    .bind(bbox.2)
    .bind(bbox.3)
    .bind(at)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

impl Keyed for EventRow {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}
