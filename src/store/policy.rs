//! The policy row and the restricted zones in PostgreSQL.

use super::StoreResult;
use crate::domain::policy::{Policy, Precision};
use sqlx::{PgPool, Row};

/// Reads the policy (the migration guarantees its one row).
pub async fn get(db: &PgPool) -> StoreResult<Policy> {
    let row = sqlx::query(
        "SELECT location_sharing_enabled, max_ttl_s, min_precision, notification_cooldown_s, retention_days FROM policy",
    )
    .fetch_one(db)
    .await?;
    Ok(Policy {
        location_sharing_enabled: row.try_get("location_sharing_enabled")?,
        max_ttl_s: row.try_get("max_ttl_s")?,
        min_precision: row.try_get::<Precision, _>("min_precision")?,
        notification_cooldown_s: row.try_get("notification_cooldown_s")?,
        retention_days: row.try_get("retention_days")?,
    })
}

/// Writes the whole policy.
pub async fn put<'e, E: sqlx::PgExecutor<'e>>(db: E, p: &Policy) -> StoreResult<()> {
    sqlx::query(
        "UPDATE policy SET location_sharing_enabled = $1, max_ttl_s = $2, min_precision = $3,
         notification_cooldown_s = $4, retention_days = $5, updated_at = now()",
    )
    .bind(p.location_sharing_enabled)
    .bind(p.max_ttl_s)
    .bind(p.min_precision.as_str())
    .bind(p.notification_cooldown_s)
    .bind(p.retention_days)
    .execute(db)
    .await?;
    Ok(())
}

/// A stored restricted zone.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ZoneRow {
    pub id: uuid::Uuid,
    pub name: String,
    pub geometry: serde_json::Value,
    pub created_at: time::OffsetDateTime,
}

/// Every restricted zone, oldest first.
pub async fn zones(db: &PgPool) -> StoreResult<Vec<ZoneRow>> {
    Ok(
        sqlx::query_as("SELECT id, name, geometry, created_at FROM restricted_zones ORDER BY created_at, id")
            .fetch_all(db)
            .await?,
    )
}

/// Stores a zone (validated by the caller).
pub async fn insert_zone<'e, E: sqlx::PgExecutor<'e>>(
    db: E,
    name: &str,
    geometry: &serde_json::Value,
) -> StoreResult<ZoneRow> {
    Ok(sqlx::query_as(
        "INSERT INTO restricted_zones (id, name, geometry) VALUES ($1, $2, $3) RETURNING id, name, geometry, created_at",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(name)
    .bind(geometry)
    .fetch_one(db)
    .await?)
}

/// Replaces a zone's name and geometry; `None` when no such zone.
pub async fn update_zone<'e, E: sqlx::PgExecutor<'e>>(
    db: E,
    id: uuid::Uuid,
    name: &str,
    geometry: &serde_json::Value,
) -> StoreResult<Option<ZoneRow>> {
    Ok(sqlx::query_as(
        "UPDATE restricted_zones SET name = $2, geometry = $3 WHERE id = $1 RETURNING id, name, geometry, created_at",
    )
    .bind(id)
    .bind(name)
    .bind(geometry)
    .fetch_optional(db)
    .await?)
}

/// Deletes a zone; false when no such zone.
pub async fn delete_zone<'e, E: sqlx::PgExecutor<'e>>(db: E, id: uuid::Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM restricted_zones WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected()
        == 1)
}
