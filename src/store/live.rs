//! Live locations in PostgreSQL: one row per user, the system of record behind the Redis index,
//! and the idempotency record of check-ins.

use super::StoreResult;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's live location row.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LiveRow {
    pub user_id: Uuid,
    pub checkin_id: Uuid,
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f64>,
    pub pub_lat: f64,
    pub pub_lng: f64,
    pub precision: crate::domain::policy::Precision,
    pub h3_cell: String,
    pub indexed: bool,
    pub reason: Option<String>,
    pub recorded_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub client_id: Option<String>,
}

const COLS: &str = "user_id, checkin_id, lat, lng, accuracy_m, pub_lat, pub_lng, precision, h3_cell, indexed, reason,
    recorded_at, expires_at, client_id";

/// The live (unexpired) row of a user.
pub async fn get(db: &PgPool, user: Uuid) -> StoreResult<Option<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM live_locations WHERE user_id = $1 AND expires_at > now()"
    ))
    .bind(user)
    .fetch_optional(db)
    .await?)
}

/// The row of a user, expired or not, locked for the transaction.
pub async fn get_for_update(tx: &mut Transaction<'_, Postgres>, user: Uuid) -> StoreResult<Option<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM live_locations WHERE user_id = $1 FOR UPDATE"
    ))
    .bind(user)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Inserts or replaces a user's row.
pub async fn upsert(tx: &mut Transaction<'_, Postgres>, r: &LiveRow) -> StoreResult<()> {
    sqlx::query(&format!(
        "INSERT INTO live_locations ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (user_id) DO UPDATE SET checkin_id = EXCLUDED.checkin_id, lat = EXCLUDED.lat, lng = EXCLUDED.lng,
           accuracy_m = EXCLUDED.accuracy_m, pub_lat = EXCLUDED.pub_lat, pub_lng = EXCLUDED.pub_lng,
           precision = EXCLUDED.precision, h3_cell = EXCLUDED.h3_cell, indexed = EXCLUDED.indexed,
           reason = EXCLUDED.reason, recorded_at = EXCLUDED.recorded_at, expires_at = EXCLUDED.expires_at,
           client_id = EXCLUDED.client_id, created_at = now()"
    ))
    .bind(r.user_id)
    .bind(r.checkin_id)
    .bind(r.lat)
    .bind(r.lng)
    .bind(r.accuracy_m)
    .bind(r.pub_lat)
    .bind(r.pub_lng)
    .bind(r.precision)
    .bind(&r.h3_cell)
    .bind(r.indexed)
    .bind(&r.reason)
    .bind(r.recorded_at)
    .bind(r.expires_at)
    .bind(&r.client_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes a user's live location; returns the row that was there (to clean the index).
pub async fn delete<'e, E: sqlx::PgExecutor<'e>>(db: E, user: Uuid) -> StoreResult<Option<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "DELETE FROM live_locations WHERE user_id = $1 RETURNING {COLS}"
    ))
    .bind(user)
    .fetch_optional(db)
    .await?)
}

/// Live rows in pages by user id: only the indexed ones (rebuilding the index) or all of them
/// (re-publishing after a policy or zone change).
pub async fn live_page(db: &PgPool, after: Option<Uuid>, limit: i64, indexed_only: bool) -> StoreResult<Vec<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM live_locations WHERE expires_at > now() AND (indexed OR NOT $3)
         AND ($1::uuid IS NULL OR user_id > $1) ORDER BY user_id LIMIT $2"
    ))
    .bind(after)
    .bind(limit)
    .bind(indexed_only)
    .fetch_all(db)
    .await?)
}

/// The indexed live rows in pages by user id, locked `FOR SHARE` until `tx` ends (rebuilding the
/// index): a check-in, move or removal of one of these users waits until the rebuild has written
/// them to Redis, so the rebuild never writes an older row over a newer check-in.
pub async fn indexed_page_for_share(
    tx: &mut Transaction<'_, Postgres>,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM live_locations WHERE expires_at > now() AND indexed
         AND ($1::uuid IS NULL OR user_id > $1) ORDER BY user_id LIMIT $2 FOR SHARE"
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// The stored answer to an earlier check-in with this client id, if still live.
pub async fn idempotent_response(db: &PgPool, user: Uuid, client_id: &str) -> StoreResult<Option<serde_json::Value>> {
    let row: Option<(serde_json::Value,)> = sqlx::query_as(
        "SELECT response FROM checkin_requests WHERE user_id = $1 AND client_id = $2 AND expires_at > now()",
    )
    .bind(user)
    .bind(client_id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| r.0))
}

/// Remembers the answer to a check-in with a client id until it expires.
pub async fn remember_response(
    tx: &mut Transaction<'_, Postgres>,
    user: Uuid,
    client_id: &str,
    response: &serde_json::Value,
    expires_at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO checkin_requests (user_id, client_id, response, expires_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, client_id) DO UPDATE SET response = EXCLUDED.response, expires_at = EXCLUDED.expires_at",
    )
    .bind(user)
    .bind(client_id)
    .bind(response)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Deletes expired live rows and idempotency records; returns how many rows went.
pub async fn purge_expired(db: &PgPool) -> StoreResult<u64> {
    let a = sqlx::query("DELETE FROM live_locations WHERE expires_at <= now()")
        .execute(db)
        .await?
        .rows_affected();
    let b = sqlx::query("DELETE FROM checkin_requests WHERE expires_at <= now()")
        .execute(db)
        .await?
        .rows_affected();
    Ok(a + b)
}
