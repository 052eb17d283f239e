//! Reads for administrators and data subjects: user search, the admin view of a user, and the
//! complete export of everything stored about a user.

use super::StoreResult;
use sqlx::{PgExecutor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// A user as an administrator sees them.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdminUserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: crate::domain::account::Role,
    pub created_at: OffsetDateTime,
    pub suspended: bool,
    pub sharing: bool,
    pub has_live_location: bool,
}

const SELECT: &str = "SELECT u.id, u.email, u.display_name, u.role, u.created_at, u.suspended, p.sharing,
    EXISTS (SELECT 1 FROM live_locations l WHERE l.user_id = u.id AND l.expires_at > now()) AS has_live_location
    FROM users u JOIN privacy_settings p ON p.user_id = u.id";

pub async fn user<'e, E: PgExecutor<'e>>(db: E, id: Uuid) -> StoreResult<Option<AdminUserRow>> {
    Ok(sqlx::query_as(&format!("{SELECT} WHERE u.id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// Users whose email starts with `prefix` (case-insensitive), ordered by email then id, after
/// the cursor `(lower email, id)`.
pub async fn search<'e, E: PgExecutor<'e>>(
    db: E,
    prefix: &str,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> StoreResult<Vec<AdminUserRow>> {
    let escaped = prefix
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    let (after_email, after_id) = after.unzip();
    Ok(sqlx::query_as(&format!(
        "{SELECT} WHERE lower(u.email) LIKE $1 || '%'
         AND ($2::text IS NULL OR (lower(u.email), u.id) > ($2, $3))
         ORDER BY lower(u.email), u.id LIMIT $4"
    ))
    .bind(escaped)
    .bind(after_email)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Sets or clears suspension; false when no such user.
pub async fn set_suspended<'e, E: PgExecutor<'e>>(db: E, id: Uuid, suspended: bool) -> StoreResult<bool> {
    Ok(sqlx::query("UPDATE users SET suspended = $2 WHERE id = $1")
        .bind(id)
        .bind(suspended)
        .execute(db)
        .await?
        .rows_affected()
        == 1)
}

/// Revokes every refresh token of a user.
pub async fn revoke_all_tokens<'e, E: PgExecutor<'e>>(db: E, id: Uuid) -> StoreResult<()> {
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes a user's check-in history (idempotency records).
pub async fn purge_history<'e, E: PgExecutor<'e>>(db: E, id: Uuid) -> StoreResult<()> {
    sqlx::query("DELETE FROM checkin_requests WHERE user_id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

async fn table_exists(db: &PgPool, name: &str) -> StoreResult<bool> {
    let (exists,): (bool,) = sqlx::query_as("SELECT to_regclass($1) IS NOT NULL")
        .bind(format!("public.{name}"))
        .fetch_one(db)
        .await?;
    Ok(exists)
}

async fn json(db: &PgPool, sql: &str, id: Uuid) -> StoreResult<serde_json::Value> {
    let row: Option<(Option<serde_json::Value>,)> = sqlx::query_as(sql).bind(id).fetch_optional(db).await?;
    Ok(row.and_then(|(v,)| v).unwrap_or(serde_json::Value::Null))
}

/// Everything stored about a user, as one JSON document (GDPR access and portability).
pub async fn export(db: &PgPool, id: Uuid) -> StoreResult<Option<serde_json::Value>> {
    let profile = json(
        db,
        "SELECT json_build_object('id', id, 'email', email, 'display_name', display_name, 'role', role,
            'suspended', suspended, 'created_at', created_at, 'headline', headline, 'company', company, 'title', title,
            'avatar_url', avatar_url, 'linkedin_url', linkedin_url) FROM users WHERE id = $1",
        id,
    )
    .await;
    let profile = match profile? {
        serde_json::Value::Null => return Ok(None),
        v => v,
    };
    let mut doc = serde_json::json!({
        "format": "hereabouts-export/1",
        "exported_at": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "profile": profile,
        "privacy": json(db, "SELECT row_to_json(p) FROM (SELECT sharing, precision, hidden_from, default_ttl_s, paused_until,
            notify_nearby, notify_radius_m, discoverable_by_email, home_lat, home_lng, home_cell, home_visible, updated_at
            FROM privacy_settings WHERE user_id = $1) p", id).await?,
        "consent_history": json(db, "SELECT coalesce(json_agg(json_build_object('sharing', sharing, 'at', at) ORDER BY at, id), '[]')
            FROM consent_events WHERE user_id = $1", id).await?,
        "connections": json(db, "SELECT coalesce(json_agg(json_build_object('user_id', c.peer_id, 'display_name', u.display_name,
            'connected_at', c.connected_at) ORDER BY c.connected_at), '[]')
            FROM connections c JOIN users u ON u.id = c.peer_id WHERE c.user_id = $1", id).await?,
        "connection_requests": json(db, "SELECT json_build_object(
            'incoming', coalesce((SELECT json_agg(json_build_object('id', id, 'from_user_id', from_user_id, 'created_at', created_at))
                FROM connection_requests WHERE to_user_id = $1), '[]'),
            'outgoing', coalesce((SELECT json_agg(json_build_object('id', id, 'to_user_id', to_user_id, 'created_at', created_at))
                FROM connection_requests WHERE from_user_id = $1), '[]'))", id).await?,
        "blocks": json(db, "SELECT coalesce(json_agg(json_build_object('user_id', blocked_id, 'blocked_at', created_at)), '[]')
            FROM blocks WHERE blocker_id = $1", id).await?,
        "live_location": json(db, "SELECT row_to_json(l) FROM (SELECT checkin_id, lat, lng, accuracy_m, pub_lat AS published_lat,
            pub_lng AS published_lng, precision, h3_cell, indexed, reason, recorded_at, expires_at, client_id
            FROM live_locations WHERE user_id = $1) l", id).await?,
        "checkin_requests": json(db, "SELECT coalesce(json_agg(json_build_object('client_id', client_id, 'expires_at', expires_at)), '[]')
            FROM checkin_requests WHERE user_id = $1", id).await?,
        "refresh_sessions": json(db, "SELECT coalesce(json_agg(json_build_object('family_id', family_id, 'created_at', created_at,
            'expires_at', expires_at, 'used_at', used_at, 'revoked_at', revoked_at)), '[]') FROM refresh_tokens WHERE user_id = $1", id).await?,
    });
    if table_exists(db, "events").await? {
        doc["events_organised"] = json(
            db,
            "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'lat', lat, 'lng', lng, 'radius_m', radius_m,
                'starts_at', starts_at, 'ends_at', ends_at, 'join_code', join_code, 'created_at', created_at)
                ORDER BY created_at, id), '[]') FROM events WHERE organizer_id = $1",
            id,
        )
        .await?;
        doc["event_attendance"] = json(
            db,
            "SELECT coalesce(json_agg(json_build_object('event_id', a.event_id, 'name', e.name, 'joined_at', a.joined_at)
                ORDER BY a.joined_at, a.event_id), '[]')
             FROM event_attendees a JOIN events e ON e.id = a.event_id WHERE a.user_id = $1",
            id,
        )
        .await?;
    }
    if table_exists(db, "devices").await? {
        doc["devices"] = json(
            db,
            "SELECT coalesce(json_agg(row_to_json(d)), '[]') FROM devices d WHERE d.user_id = $1",
            id,
        )
        .await?;
    }
    if table_exists(db, "notifications").await? {
        doc["notifications"] = json(
            db,
            "SELECT coalesce(json_agg(row_to_json(n)), '[]') FROM notifications n WHERE n.user_id = $1",
            id,
        )
        .await?;
    }
    doc["trips"] = json(
        db,
        "SELECT coalesce(json_agg(json_build_object('id', id, 'name', name, 'lat', lat, 'lng', lng, 'h3_cell', h3_cell,
            'starts_on', starts_on, 'ends_on', ends_on, 'visibility', visibility, 'ical_uid', ical_uid,
            'created_at', created_at, 'updated_at', updated_at) ORDER BY starts_on, id), '[]') FROM trips WHERE user_id = $1",
        id,
    )
    .await?;
    // the secret itself is never stored: its hash, and when it was made
    doc["calendar_feed"] = json(
        db,
        "SELECT json_build_object('secret_sha256', encode(secret_hash, 'hex'), 'created_at', created_at)
         FROM calendar_feeds WHERE user_id = $1",
        id,
    )
    .await?;
    doc["shares"] = json(
        db,
        "SELECT json_build_object(
            'given', coalesce((SELECT json_agg(json_build_object('id', id, 'to_user_id', to_user_id, 'expires_at', expires_at,
                'created_at', created_at)) FROM shares WHERE from_user_id = $1), '[]'),
            'received', coalesce((SELECT json_agg(json_build_object('id', id, 'from_user_id', from_user_id,
                'expires_at', expires_at, 'created_at', created_at)) FROM shares WHERE to_user_id = $1), '[]'))",
        id,
    )
    .await?;
    Ok(Some(doc))
}
