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

/// The rows of many users, expired or not, locked for the transaction in user-id order.
pub async fn get_many_for_update(tx: &mut Transaction<'_, Postgres>, users: &[Uuid]) -> StoreResult<Vec<LiveRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLS} FROM live_locations WHERE user_id = ANY($1) ORDER BY user_id FOR UPDATE"
    ))
    .bind(users)
    .fetch_all(&mut **tx)
    .await?)
}

/// Inserts or replaces many users' rows in one statement (at most one row per user).
pub async fn upsert_many(tx: &mut Transaction<'_, Postgres>, rows: &[LiveRow]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&LiveRow) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
    sqlx::query(&format!(
        "INSERT INTO live_locations ({COLS})
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::float8[], $4::float8[], $5::float8[], $6::float8[],
                              $7::float8[], $8::text[], $9::text[], $10::bool[], $11::text[], $12::timestamptz[],
                              $13::timestamptz[], $14::text[])
         ON CONFLICT (user_id) DO UPDATE SET checkin_id = EXCLUDED.checkin_id, lat = EXCLUDED.lat, lng = EXCLUDED.lng,
           accuracy_m = EXCLUDED.accuracy_m, pub_lat = EXCLUDED.pub_lat, pub_lng = EXCLUDED.pub_lng,
           precision = EXCLUDED.precision, h3_cell = EXCLUDED.h3_cell, indexed = EXCLUDED.indexed,
           reason = EXCLUDED.reason, recorded_at = EXCLUDED.recorded_at, expires_at = EXCLUDED.expires_at,
           client_id = EXCLUDED.client_id, created_at = now()"
    ))
    .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.checkin_id).collect::<Vec<_>>())
    .bind(col(&|r| r.lat))
    .bind(col(&|r| r.lng))
    .bind(rows.iter().map(|r| r.accuracy_m).collect::<Vec<_>>())
    .bind(col(&|r| r.pub_lat))
    .bind(col(&|r| r.pub_lng))
    .bind(rows.iter().map(|r| r.precision.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.h3_cell.as_str()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.indexed).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.reason.as_deref()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.recorded_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.expires_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.client_id.as_deref()).collect::<Vec<_>>())
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

/// How many users are live and indexed now (what others can see), in the whole deployment.
pub async fn count_indexed(db: &PgPool) -> StoreResult<i64> {
    Ok(
        sqlx::query_scalar("SELECT count(*) FROM live_locations WHERE expires_at > now() AND indexed")
            .fetch_one(db)
            .await?,
    )
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

/// The stored answers to earlier check-ins with these (user, client id) pairs, if still live.
pub async fn idempotent_responses(
    db: &PgPool,
    pairs: &[(Uuid, String)],
) -> StoreResult<Vec<(Uuid, String, serde_json::Value)>> {
    if pairs.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(
        "SELECT r.user_id, r.client_id, r.response FROM checkin_requests r
         JOIN UNNEST($1::uuid[], $2::text[]) AS k(user_id, client_id)
           ON r.user_id = k.user_id AND r.client_id = k.client_id
         WHERE r.expires_at > now()",
    )
    .bind(pairs.iter().map(|p| p.0).collect::<Vec<_>>())
    .bind(pairs.iter().map(|p| p.1.as_str()).collect::<Vec<_>>())
    .fetch_all(db)
    .await?)
}

/// Remembers many answers (user, client id, answer, expiry) in one statement.
pub async fn remember_responses(
    tx: &mut Transaction<'_, Postgres>,
    items: &[(Uuid, String, serde_json::Value, OffsetDateTime)],
) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO checkin_requests (user_id, client_id, response, expires_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[], $4::timestamptz[])
         ON CONFLICT (user_id, client_id) DO UPDATE SET response = EXCLUDED.response, expires_at = EXCLUDED.expires_at",
    )
    .bind(items.iter().map(|i| i.0).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.1.as_str()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.2.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.3).collect::<Vec<_>>())
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
