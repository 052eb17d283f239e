//! The durable outbox in PostgreSQL: `notifications` (one row per decision to notify) and
//! `deliveries` (one row per notification and active device).
//!
//! A delivery is `pending` until a worker claims it: `sending` with a lease (`lease_until`, also
//! copied to `next_attempt_at`, so one partial index serves "due" for both states) and a
//! `lease_token` that the worker must present to record the outcome. A delivery whose lease ran
//! out is due again: a worker that died mid-send loses nothing, and a worker that comes back too
//! late cannot overwrite what the next one recorded. Delivery is therefore at-least-once.

use crate::store::StoreResult;
use crate::store::paging::{self, Cursor, Keyed, Page, Sorted};
use sqlx::{PgPool, Postgres, Transaction};
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

/// One notification to write.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub user_id: Uuid,
    pub actor_user_id: Uuid,
    pub distance_m: i64,
}

/// Writes notifications and one pending delivery per active device of each recipient.
/// Returns (notifications, deliveries) written.
pub async fn insert(tx: &mut Transaction<'_, Postgres>, items: &[NewNotification]) -> StoreResult<(u64, u64)> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let users: Vec<Uuid> = items.iter().map(|n| n.user_id).collect();
    let actors: Vec<Uuid> = items.iter().map(|n| n.actor_user_id).collect();
    let distances: Vec<i32> = items
        .iter()
        .map(|n| i32::try_from(n.distance_m).unwrap_or(i32::MAX))
        .collect();
    let n = sqlx::query(
        "INSERT INTO notifications (id, user_id, actor_user_id, kind, distance_m, actor_display_name)
         SELECT t.id, t.u, t.a, 'connection_nearby', t.d, x.display_name
           FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int4[]) AS t(id, u, a, d)
           JOIN users x ON x.id = t.a",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&actors)
    .bind(&distances)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((n, deliveries_for(tx, &ids).await?))
}

/// One `trip_overlap` notification to write: the recipient's own trip and the dates.
#[derive(Debug, Clone)]
pub struct NewTripOverlap {
    pub user_id: Uuid,
    pub actor_user_id: Uuid,
    pub trip_id: Uuid,
    pub from: time::Date,
    pub to: time::Date,
    /// Between the two trips' cell centres, rounded to 1 km.
    pub distance_m: i32,
}

/// Writes `trip_overlap` notifications and one pending delivery per active device of each
/// recipient. Returns (notifications, deliveries) written.
pub async fn insert_trip_overlaps(
    tx: &mut Transaction<'_, Postgres>,
    items: &[NewTripOverlap],
) -> StoreResult<(u64, u64)> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let users: Vec<Uuid> = items.iter().map(|n| n.user_id).collect();
    let actors: Vec<Uuid> = items.iter().map(|n| n.actor_user_id).collect();
    let trips: Vec<Uuid> = items.iter().map(|n| n.trip_id).collect();
    let froms: Vec<time::Date> = items.iter().map(|n| n.from).collect();
    let tos: Vec<time::Date> = items.iter().map(|n| n.to).collect();
    let distances: Vec<i32> = items.iter().map(|n| n.distance_m).collect();
    let n = sqlx::query(
        "INSERT INTO notifications (id, user_id, actor_user_id, kind, distance_m, trip_id, overlap_from, overlap_to,
             actor_display_name)
         SELECT x.id, x.u, x.a, 'trip_overlap', x.d, x.t, x.f, x.o, w.display_name
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int4[], $5::uuid[], $6::date[], $7::date[])
             AS x(id, u, a, d, t, f, o)
         JOIN users w ON w.id = x.a",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&actors)
    .bind(&distances)
    .bind(&trips)
    .bind(&froms)
    .bind(&tos)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((n, deliveries_for(tx, &ids).await?))
}

/// What a connection notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionNote {
    /// The actor asked the recipient for a connection.
    Request,
    /// The actor accepted the recipient's request (or asked back, which connects at once).
    Accepted,
}

impl ConnectionNote {
    pub fn kind(self) -> &'static str {
        match self {
            ConnectionNote::Request => "connection_request",
            ConnectionNote::Accepted => "connection_accepted",
        }
    }
}

/// One `connection_request` / `connection_accepted` notification to write.
#[derive(Debug, Clone)]
pub struct NewConnectionNote {
    pub user_id: Uuid,
    pub actor_user_id: Uuid,
    pub request_id: Uuid,
    pub note: ConnectionNote,
}

/// Writes connection notifications (one statement, whatever their number) and one pending
/// delivery per active device of each recipient, in the caller's transaction (the one that
/// made the request or the connection). A recipient who muted the actor is left out.
/// Returns (notifications, deliveries) written.
pub async fn insert_connection_notes(
    tx: &mut Transaction<'_, Postgres>,
    items: &[NewConnectionNote],
) -> StoreResult<(u64, u64)> {
    if items.is_empty() {
        return Ok((0, 0));
    }
    let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
    let users: Vec<Uuid> = items.iter().map(|n| n.user_id).collect();
    let actors: Vec<Uuid> = items.iter().map(|n| n.actor_user_id).collect();
    let requests: Vec<Uuid> = items.iter().map(|n| n.request_id).collect();
    let kinds: Vec<&str> = items.iter().map(|n| n.note.kind()).collect();
    let n = sqlx::query(
        "INSERT INTO notifications (id, user_id, actor_user_id, kind, distance_m, request_id, actor_display_name)
         SELECT t.id, t.u, t.a, t.k, 0, t.r, x.display_name
           FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[]) AS t(id, u, a, r, k)
           JOIN users x ON x.id = t.a
          WHERE NOT EXISTS (SELECT 1 FROM connection_mutes m WHERE m.user_id = t.u AND m.muted_id = t.a)",
    )
    .bind(&ids)
    .bind(&users)
    .bind(&actors)
    .bind(&requests)
    .bind(&kinds)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok((n, deliveries_for(tx, &ids).await?))
}

/// One pending delivery per active device of each recipient of the notifications `ids`.
async fn deliveries_for(tx: &mut Transaction<'_, Postgres>, ids: &[Uuid]) -> StoreResult<u64> {
    Ok(sqlx::query(
        "INSERT INTO deliveries (id, notification_id, device_id)
         SELECT gen_random_uuid(), n.id, v.id FROM notifications n JOIN devices v ON v.user_id = n.user_id AND v.active
         WHERE n.id = ANY($1)",
    )
    .bind(ids)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// Of the pairs (actor A, candidate B), those where B may hear that A is nearby, with B's
/// notify radius and how many more notifications B may get today (`None`: no cap): both share
/// (not paused, not suspended), B wants arrival notifications, they are connected, neither
/// blocked the other, A does not hide from B, B did not mute A, and B is under the daily cap
/// (`daily_cap` 0: none). One query for a whole batch of check-ins.
pub async fn eligible_pairs(
    db: impl sqlx::PgExecutor<'_>,
    pairs: &[(Uuid, Uuid)],
    daily_cap: u32,
) -> StoreResult<Vec<(Uuid, Uuid, i32, Option<i64>)>> {
    if pairs.is_empty() {
        return Ok(vec![]);
    }
    let (actors, candidates): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
    Ok(sqlx::query_as(
        "WITH pair AS (SELECT * FROM unnest($1::uuid[], $2::uuid[]) AS t(actor, recipient)),
         a AS (
             SELECT p.user_id, p.hidden_from FROM privacy_settings p JOIN users u ON u.id = p.user_id
             WHERE p.user_id IN (SELECT actor FROM pair)
               AND p.sharing AND (p.paused_until IS NULL OR p.paused_until <= now())
               AND NOT u.suspended
         )
         SELECT a.user_id, p.user_id, p.notify_radius_m, today.allowance
         FROM pair JOIN a ON a.user_id = pair.actor
              JOIN privacy_settings p ON p.user_id = pair.recipient
              JOIN users u ON u.id = p.user_id
              CROSS JOIN LATERAL (
                  SELECT CASE WHEN $3 = 0 THEN NULL
                              ELSE $3 - (SELECT count(*) FROM notifications n
                                         WHERE n.user_id = p.user_id AND n.created_at > now() - interval '1 day')
                         END AS allowance) today
         WHERE p.user_id <> a.user_id
           AND p.notify_nearby AND p.sharing AND (p.paused_until IS NULL OR p.paused_until <= now())
           AND NOT u.suspended
           AND NOT (p.user_id = ANY(a.hidden_from))
           AND EXISTS (SELECT 1 FROM connections c WHERE c.user_id = a.user_id AND c.peer_id = p.user_id)
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = a.user_id AND b.blocked_id = p.user_id)
                              OR (b.blocker_id = p.user_id AND b.blocked_id = a.user_id))
           AND NOT EXISTS (SELECT 1 FROM connection_mutes m WHERE m.user_id = p.user_id AND m.muted_id = a.user_id)
           AND (today.allowance IS NULL OR today.allowance > 0)",
    )
    .bind(&actors)
    .bind(&candidates)
    .bind(i64::from(daily_cap))
    .fetch_all(db)
    .await?)
}

/// A notification as its recipient lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NotificationRecord {
    pub id: Uuid,
    pub kind: String,
    pub actor_user_id: Uuid,
    pub actor_display_name: String,
    pub distance_m: i32,
    pub created_at: OffsetDateTime,
    /// `pending`, `held`, `delivered`, `failed` or `no_device`.
    pub delivery: String,
    /// The last error of the latest attempt that did not deliver, unless one was delivered.
    pub delivery_error: Option<String>,
    pub read_at: Option<OffsetDateTime>,
    /// `trip_overlap`: the recipient's trip and the shared (or nearest) dates.
    pub trip_id: Option<Uuid>,
    pub overlap_from: Option<time::Date>,
    pub overlap_to: Option<time::Date>,
    /// `connection_request` / `connection_accepted`: the request.
    pub request_id: Option<Uuid>,
}

const LIST: &str =
    "SELECT n.id, n.kind, n.actor_user_id, coalesce(n.actor_display_name, u.display_name) AS actor_display_name,
        n.distance_m, n.created_at,
        CASE WHEN bool_or(d.status = 'delivered') THEN 'delivered'
             WHEN bool_or(d.status = 'held') THEN 'held'
             WHEN bool_or(d.status IN ('pending', 'sending')) THEN 'pending'
             WHEN count(d.id) = 0 THEN 'no_device'
             ELSE 'failed' END AS delivery,
        CASE WHEN bool_or(d.status = 'delivered') THEN NULL
             ELSE (array_agg(d.last_error ORDER BY d.updated_at DESC) FILTER (WHERE d.last_error IS NOT NULL))[1]
        END AS delivery_error,
        n.trip_id, n.overlap_from, n.overlap_to, n.read_at, n.request_id
    FROM notifications n JOIN users u ON u.id = n.actor_user_id
    LEFT JOIN deliveries d ON d.notification_id = n.id
    WHERE n.user_id = $1";

/// The user's notifications (only the unread ones with `unread`), newest first, after `cursor`.
pub async fn list(
    db: &PgPool,
    user: Uuid,
    unread: bool,
    limit: i64,
    cursor: Option<Cursor>,
) -> StoreResult<Page<NotificationRecord>> {
    let tail = "GROUP BY n.id, u.display_name";
    let unread_only = format!("{LIST} AND n.read_at IS NULL");
    let select = if unread { unread_only.as_str() } else { LIST };
    paging::keyset(
        db,
        Sorted::newest(select, "n.created_at", "n.id").then(tail),
        user,
        limit,
        cursor,
    )
    .await
}

/// A claimed delivery with what sending it needs.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    /// Attempts including this one.
    pub attempts: i32,
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub actor_user_id: Uuid,
    pub actor_display_name: String,
    pub distance_m: i32,
    pub notification_created_at: OffsetDateTime,
    /// `connection_nearby`, `connection_request`, `connection_accepted` or `trip_overlap`.
    pub kind: String,
    pub request_id: Option<Uuid>,
    pub overlap_from: Option<time::Date>,
    pub overlap_to: Option<time::Date>,
    pub device_id: Uuid,
    pub platform: crate::domain::device::Platform,
    pub token: String,
    pub locale: Option<String>,
    pub device_active: bool,
    /// Web Push: the subscription's keys.
    pub web_p256dh: Option<String>,
    pub web_auth: Option<String>,
    /// The recipient's IANA time zone and quiet hours (both or neither).
    pub time_zone: String,
    pub quiet_from: Option<time::Time>,
    pub quiet_to: Option<time::Time>,
    /// Since the decision, the pair was blocked (either way), or disconnected (a request: it
    /// was answered or withdrawn), or the actor hid from the recipient (places and trips):
    /// do not send.
    pub withdrawn: bool,
}

/// Claims up to `limit` due deliveries for `lease` under `token` (`FOR UPDATE SKIP LOCKED`: two
/// workers never claim the same row).
pub async fn claim(db: &PgPool, limit: u32, lease: Duration, token: Uuid) -> StoreResult<Vec<Claimed>> {
    Ok(sqlx::query_as(
        "WITH due AS (
             SELECT id FROM deliveries
             WHERE status IN ('pending', 'sending', 'held') AND next_attempt_at <= now()
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED
         )
         UPDATE deliveries d
         SET status = 'sending', attempts = d.attempts + 1, lease_token = $3,
             lease_until = now() + make_interval(secs => $2), next_attempt_at = now() + make_interval(secs => $2),
             updated_at = now()
         FROM due, notifications n, devices v, users a, privacy_settings q
         WHERE d.id = due.id AND n.id = d.notification_id AND v.id = d.device_id AND a.id = n.actor_user_id
           AND q.user_id = n.user_id
         RETURNING d.id, d.attempts, n.id AS notification_id, n.user_id, n.actor_user_id,
             coalesce(n.actor_display_name, a.display_name) AS actor_display_name, n.distance_m, n.created_at AS notification_created_at,
             n.kind, n.request_id, n.overlap_from, n.overlap_to,
             v.id AS device_id, v.platform, v.token, v.locale, v.active AS device_active,
             v.web_p256dh, v.web_auth, q.time_zone, q.quiet_from, q.quiet_to,
             (CASE WHEN n.kind = 'connection_request'
                   THEN NOT EXISTS (SELECT 1 FROM connection_requests r WHERE r.id = n.request_id)
                   ELSE NOT EXISTS (SELECT 1 FROM connections c WHERE c.user_id = n.user_id AND c.peer_id = n.actor_user_id)
              END
              OR EXISTS (SELECT 1 FROM blocks b
                         WHERE (b.blocker_id = n.user_id AND b.blocked_id = n.actor_user_id)
                            OR (b.blocker_id = n.actor_user_id AND b.blocked_id = n.user_id))
              OR (n.kind IN ('connection_nearby', 'trip_overlap') AND EXISTS (SELECT 1 FROM privacy_settings p
                         WHERE p.user_id = n.actor_user_id AND n.user_id = ANY(p.hidden_from)))) AS withdrawn",
    )
    .bind(i64::from(limit))
    .bind(lease.as_secs_f64())
    .bind(token)
    .fetch_all(db)
    .await?)
}

/// Records a successful send; false when the lease was lost meanwhile.
pub async fn delivered(db: &PgPool, id: Uuid, token: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'delivered', delivered_at = now(), lease_until = NULL, lease_token = NULL,
             last_error = NULL, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(token)
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Puts a delivery back to pending, due after `delay`; false when the lease was lost meanwhile.
pub async fn retry_later(db: &PgPool, id: Uuid, token: Uuid, delay: Duration, error: &str) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now() + make_interval(secs => $3),
             lease_until = NULL, lease_token = NULL, last_error = $4, updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(token)
    .bind(delay.as_secs_f64())
    .bind(truncate(error))
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Marks a delivery failed for good; false when the lease was lost meanwhile.
pub async fn failed(db: &PgPool, id: Uuid, token: Uuid, error: &str) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'failed', lease_until = NULL, lease_token = NULL, last_error = $3,
             updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(token)
    .bind(truncate(error))
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Holds a claimed delivery until `until` (the end of the recipient's quiet hours): `held`,
/// the attempt not counted; false when the lease was lost meanwhile.
pub async fn hold(db: &PgPool, id: Uuid, token: Uuid, until: OffsetDateTime) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'held', next_attempt_at = $3, lease_until = NULL, lease_token = NULL,
             attempts = GREATEST(attempts - 1, 0), updated_at = now()
         WHERE id = $1 AND lease_token = $2 AND status = 'sending'",
    )
    .bind(id)
    .bind(token)
    .bind(until)
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Makes the user's held deliveries due now (their quiet hours changed: the worker decides
/// again); how many.
pub async fn release_held(db: &PgPool, user: Uuid) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE deliveries d SET status = 'pending', next_attempt_at = now(), updated_at = now()
           FROM notifications n
          WHERE n.id = d.notification_id AND n.user_id = $1 AND d.status = 'held'",
    )
    .bind(user)
    .execute(db)
    .await?
    .rows_affected())
}

/// Gives back what a stopping worker still holds: due again at once, the attempt not counted.
pub async fn release(db: &PgPool, token: Uuid) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now(), lease_until = NULL, lease_token = NULL,
             attempts = GREATEST(attempts - 1, 0), updated_at = now()
         WHERE lease_token = $1 AND status = 'sending'",
    )
    .bind(token)
    .execute(db)
    .await?
    .rows_affected())
}

/// Queue depth (pending or sending) and the age in seconds of the oldest pending delivery.
pub async fn stats(db: &PgPool) -> StoreResult<(i64, f64)> {
    let (depth, age): (i64, Option<f64>) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8
         FROM deliveries WHERE status IN ('pending', 'sending')",
    )
    .fetch_one(db)
    .await?;
    Ok((depth, age.unwrap_or(0.0).max(0.0)))
}

/// Deliveries that failed for good in the last `seconds` (every instance's).
pub async fn failed_within(db: &PgPool, seconds: f64) -> StoreResult<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM deliveries WHERE status = 'failed' AND updated_at > now() - make_interval(secs => $1)",
    )
    .bind(seconds)
    .fetch_one(db)
    .await?)
}

/// Deletes notifications (and their deliveries) older than the retention; how many.
pub async fn purge(db: &PgPool, retention_days: i32) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM notifications WHERE created_at < now() - make_interval(days => $1)")
            .bind(retention_days.max(1))
            .execute(db)
            .await?
            .rows_affected(),
    )
}

fn truncate(s: &str) -> String {
    s.chars().take(500).collect()
}

impl Keyed for NotificationRecord {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

/// Marks the user's notifications read: those in `ids`, and with `up_to` that one and every
/// older one. Notifications of others and unknown ids are ignored.
pub async fn mark_read(db: &PgPool, user: Uuid, ids: &[Uuid], up_to: Option<Uuid>) -> StoreResult<u64> {
    Ok(sqlx::query(
        "UPDATE notifications n SET read_at = now()
          WHERE n.user_id = $1 AND n.read_at IS NULL
            AND (n.id = ANY($2)
                 OR (n.created_at, n.id) <= (SELECT o.created_at, o.id FROM notifications o
                                              WHERE o.id = $3 AND o.user_id = $1))",
    )
    .bind(user)
    .bind(ids)
    .bind(up_to)
    .execute(db)
    .await?
    .rows_affected())
}

/// Mutes (or unmutes) `muted` for `user`: no notifications about them. False when they are
/// not connected (muting needs a connection; unmuting never fails).
pub async fn set_muted(db: &PgPool, user: Uuid, muted: Uuid, on: bool) -> StoreResult<bool> {
    if !on {
        sqlx::query("DELETE FROM connection_mutes WHERE user_id = $1 AND muted_id = $2")
            .bind(user)
            .bind(muted)
            .execute(db)
            .await?;
        return Ok(true);
    }
    Ok(sqlx::query_scalar(
        "WITH c AS (SELECT 1 FROM connections WHERE user_id = $1 AND peer_id = $2),
              m AS (INSERT INTO connection_mutes (user_id, muted_id) SELECT $1, $2 FROM c ON CONFLICT DO NOTHING)
         SELECT EXISTS (SELECT 1 FROM c)",
    )
    .bind(user)
    .bind(muted)
    .fetch_one(db)
    .await?)
}
