//! Registered devices in PostgreSQL.
//!
//! A token belongs to one user at a time: registering it again for the same user is idempotent
//! (the same device, reactivated); registering it for another user deletes the old row — with its
//! pending deliveries, so nothing meant for the old owner reaches the new one — and creates a new
//! device.

use super::StoreResult;
use super::paging::{self, Cursor, Keyed, Page, Sorted};
use crate::domain::device::Platform;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeviceRecord {
    pub id: Uuid,
    pub user_id: Uuid,
    pub platform: Platform,
    pub token: String,
    pub locale: Option<String>,
    pub active: bool,
    pub deactivated_reason: Option<String>,
    pub created_at: OffsetDateTime,
    /// Web Push: the subscription's keys (base64url).
    pub web_p256dh: Option<String>,
    pub web_auth: Option<String>,
}

/// What registering did.
#[derive(Debug)]
pub enum Registered {
    Device(DeviceRecord),
    /// The user has as many devices as allowed.
    TooMany,
    /// The user no longer exists (erased while its token lives).
    UserGone,
}

/// First key of the advisory lock taken on a token while it is registered.
const TOKEN_LOCK_CLASS: i32 = 0x7075_7368; // "push"

const COLUMNS: &str =
    "id, user_id, platform, token, locale, active, deactivated_reason, created_at, web_p256dh, web_auth";

/// Registers (or re-registers) a token for `user`.
pub async fn register(
    db: &PgPool,
    user: Uuid,
    platform: Platform,
    token: &str,
    locale: Option<&str>,
    web_keys: Option<(&str, &str)>,
    max_devices: u32,
) -> StoreResult<Registered> {
    let (p256dh, auth) = web_keys.unzip();
    let mut tx = db.begin().await?;
    // serialise registrations of one user (the device cap) and of one token (moves)
    let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE")
        .bind(user)
        .execute(&mut *tx)
        .await?
        .rows_affected()
        == 1;
    if !exists {
        return Ok(Registered::UserGone);
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(TOKEN_LOCK_CLASS)
        .bind(format!("{}:{token}", platform.as_str()))
        .execute(&mut *tx)
        .await?;
    let existing: Option<DeviceRecord> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM devices WHERE platform = $1 AND token = $2 FOR UPDATE"
    ))
    .bind(platform)
    .bind(token)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(d) = existing {
        if d.user_id == user {
            let d: DeviceRecord = sqlx::query_as(&format!(
                "UPDATE devices SET active = true, deactivated_reason = NULL, locale = COALESCE($2, locale),
                 web_p256dh = COALESCE($3, web_p256dh), web_auth = COALESCE($4, web_auth),
                 updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
            ))
            .bind(d.id)
            .bind(locale)
            .bind(p256dh)
            .bind(auth)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(Registered::Device(d));
        }
        // the token moved to another account (a phone changed hands, a user logged in elsewhere)
        sqlx::query("DELETE FROM devices WHERE id = $1")
            .bind(d.id)
            .execute(&mut *tx)
            .await?;
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM devices WHERE user_id = $1")
        .bind(user)
        .fetch_one(&mut *tx)
        .await?;
    if count >= i64::from(max_devices) {
        return Ok(Registered::TooMany);
    }
    let d: DeviceRecord = sqlx::query_as(&format!(
        "INSERT INTO devices (id, user_id, platform, token, locale, web_p256dh, web_auth)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(user)
    .bind(platform.as_str())
    .bind(token)
    .bind(locale)
    .bind(p256dh)
    .bind(auth)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Registered::Device(d))
}

/// The user's devices, newest first, after `cursor`.
pub async fn list(db: &PgPool, user: Uuid, limit: i64, cursor: Option<Cursor>) -> StoreResult<Page<DeviceRecord>> {
    let select = format!("SELECT {COLUMNS} FROM devices WHERE user_id = $1");
    paging::keyset(db, Sorted::newest(&select, "created_at", "id"), user, limit, cursor).await
}

/// Deletes one of the user's devices (its pending deliveries go with it); false when the user
/// has no such device.
pub async fn delete(db: &PgPool, user: Uuid, id: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM devices WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user)
        .execute(db)
        .await?
        .rows_affected()
        > 0)
}

/// Marks a device as no longer reachable (the provider said the token is gone) and fails its
/// other pending deliveries.
pub async fn deactivate(db: &PgPool, id: Uuid, reason: &str) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE devices SET active = false, deactivated_reason = $2, updated_at = now() WHERE id = $1")
        .bind(id)
        .bind(reason)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE deliveries SET status = 'failed', last_error = 'device deactivated: ' || $2,
             lease_until = NULL, lease_token = NULL, updated_at = now()
         WHERE device_id = $1 AND status IN ('pending', 'held')",
    )
    .bind(id)
    .bind(reason)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

impl Keyed for DeviceRecord {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}
