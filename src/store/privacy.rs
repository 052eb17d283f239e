//! Privacy settings and the consent record in PostgreSQL.

use super::StoreResult;
use crate::domain::policy::Precision;
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user's privacy settings, plus what the check-in path needs about the account.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PrivacyRecord {
    pub user_id: Uuid,
    pub sharing: bool,
    pub precision: Precision,
    pub hidden_from: Vec<Uuid>,
    pub default_ttl_s: i32,
    pub paused_until: Option<OffsetDateTime>,
    pub notify_nearby: bool,
    pub notify_radius_m: i32,
    pub discoverable_by_email: bool,
    pub display_name: String,
    pub suspended: bool,
    /// What nearby items show of the user (kept in their live record).
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
}

impl PrivacyRecord {
    /// Sharing and not paused right now.
    pub fn is_sharing(&self, now: OffsetDateTime) -> bool {
        self.sharing && self.paused_until.is_none_or(|p| p <= now) && !self.suspended
    }
}

const SELECT: &str = "SELECT p.user_id, p.sharing, p.precision, p.hidden_from, p.default_ttl_s, p.paused_until,
    p.notify_nearby, p.notify_radius_m, p.discoverable_by_email, u.display_name, u.suspended,
    u.headline, u.company, u.title, u.avatar_url
    FROM privacy_settings p JOIN users u ON u.id = p.user_id WHERE p.user_id = $1";

pub async fn get(db: &PgPool, user: Uuid) -> StoreResult<Option<PrivacyRecord>> {
    Ok(sqlx::query_as(SELECT).bind(user).fetch_optional(db).await?)
}

/// Reads the settings and locks the row for the rest of the transaction.
pub async fn get_for_update(tx: &mut Transaction<'_, Postgres>, user: Uuid) -> StoreResult<Option<PrivacyRecord>> {
    Ok(sqlx::query_as(&format!("{SELECT} FOR UPDATE OF p"))
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes every field; records a consent event when `sharing` changed.
pub async fn put(tx: &mut Transaction<'_, Postgres>, p: &PrivacyRecord, sharing_changed: bool) -> StoreResult<()> {
    sqlx::query(
        "UPDATE privacy_settings SET sharing = $2, precision = $3, hidden_from = $4, default_ttl_s = $5,
         paused_until = $6, notify_nearby = $7, notify_radius_m = $8, discoverable_by_email = $9, updated_at = now()
         WHERE user_id = $1",
    )
    .bind(p.user_id)
    .bind(p.sharing)
    .bind(p.precision)
    .bind(&p.hidden_from)
    .bind(p.default_ttl_s)
    .bind(p.paused_until)
    .bind(p.notify_nearby)
    .bind(p.notify_radius_m)
    .bind(p.discoverable_by_email)
    .execute(&mut **tx)
    .await?;
    if sharing_changed {
        sqlx::query("INSERT INTO consent_events (user_id, sharing) VALUES ($1, $2)")
            .bind(p.user_id)
            .bind(p.sharing)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The user's consent record, oldest first: (sharing, at).
pub async fn consent_history(db: &PgPool, user: Uuid) -> StoreResult<Vec<(bool, OffsetDateTime)>> {
    Ok(
        sqlx::query_as("SELECT sharing, at FROM consent_events WHERE user_id = $1 ORDER BY at, id")
            .bind(user)
            .fetch_all(db)
            .await?,
    )
}

/// Takes an erased user out of every `hidden_from` list; returns the users whose list changed.
pub async fn forget_hidden(db: &PgPool, user: Uuid) -> StoreResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar(
        "UPDATE privacy_settings SET hidden_from = array_remove(hidden_from, $1), updated_at = now()
         WHERE $1 = ANY(hidden_from) RETURNING user_id",
    )
    .bind(user)
    .fetch_all(db)
    .await?)
}

/// The largest notify radius of the users who want arrival notifications and share (index-only).
pub async fn max_notify_radius_m(db: &PgPool) -> StoreResult<Option<i32>> {
    Ok(
        sqlx::query_scalar("SELECT max(notify_radius_m) FROM privacy_settings WHERE notify_nearby AND sharing")
            .fetch_one(db)
            .await?,
    )
}

/// Settings of many users in one query.
pub async fn get_many(db: &PgPool, users: &[Uuid]) -> StoreResult<Vec<PrivacyRecord>> {
    Ok(
        sqlx::query_as(&SELECT.replace("WHERE p.user_id = $1", "WHERE p.user_id = ANY($1)"))
            .bind(users)
            .fetch_all(db)
            .await?,
    )
}

/// Settings of many users, locked for the transaction in user-id order (so that concurrent
/// batches never wait on each other in a circle).
pub async fn get_many_for_update(
    tx: &mut Transaction<'_, Postgres>,
    users: &[Uuid],
) -> StoreResult<Vec<PrivacyRecord>> {
    Ok(sqlx::query_as(&format!(
        "{} ORDER BY p.user_id FOR UPDATE OF p",
        SELECT.replace("WHERE p.user_id = $1", "WHERE p.user_id = ANY($1)")
    ))
    .bind(users)
    .fetch_all(&mut **tx)
    .await?)
}

/// A user's time zone (IANA name) and quiet hours (from, to), when set.
pub async fn quiet_hours(db: &PgPool, user: Uuid) -> StoreResult<(String, Option<(time::Time, time::Time)>)> {
    let row: Option<(String, Option<time::Time>, Option<time::Time>)> =
        sqlx::query_as("SELECT time_zone, quiet_from, quiet_to FROM privacy_settings WHERE user_id = $1")
            .bind(user)
            .fetch_optional(db)
            .await?;
    Ok(match row {
        Some((tz, Some(f), Some(t))) => (tz, Some((f, t))),
        Some((tz, _, _)) => (tz, None),
        None => (crate::domain::quiet::DEFAULT_TIME_ZONE.to_string(), None),
    })
}

/// Sets the time zone (when given) and the quiet hours (when given; `Some(None)` clears them).
pub async fn set_quiet_hours(
    db: &PgPool,
    user: Uuid,
    time_zone: Option<&str>,
    quiet: Option<Option<(time::Time, time::Time)>>,
) -> StoreResult<()> {
    let (set_quiet, from, to) = match quiet {
        Some(Some((f, t))) => (true, Some(f), Some(t)),
        Some(None) => (true, None, None),
        None => (false, None, None),
    };
    sqlx::query(
        "UPDATE privacy_settings SET time_zone = COALESCE($2, time_zone),
             quiet_from = CASE WHEN $3 THEN $4 ELSE quiet_from END,
             quiet_to = CASE WHEN $3 THEN $5 ELSE quiet_to END, updated_at = now()
         WHERE user_id = $1",
    )
    .bind(user)
    .bind(time_zone)
    .bind(set_quiet)
    .bind(from)
    .bind(to)
    .execute(db)
    .await?;
    Ok(())
}
