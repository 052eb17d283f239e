//! The audit log of administrator actions: insert-only through the API.

use super::StoreResult;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

/// One entry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub actor_user_id: Option<Uuid>,
    pub action: String,
    pub target_user_id: Option<Uuid>,
    pub detail: serde_json::Value,
    pub at: OffsetDateTime,
}

/// Writes an entry (call it inside the transaction of the change it records). Never put
/// coordinates in `detail`.
pub async fn record<'e, E: PgExecutor<'e>>(
    db: E,
    actor: Uuid,
    action: &str,
    target: Option<Uuid>,
    detail: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (actor_user_id, action, target_user_id, detail) VALUES ($1, $2, $3, $4)")
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// Entries newest first, after the cursor (an entry id), optionally for one target.
pub async fn list<'e, E: PgExecutor<'e>>(
    db: E,
    target: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT id, actor_user_id, action, target_user_id, detail, at FROM audit_log
         WHERE ($1::uuid IS NULL OR target_user_id = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(target)
    .bind(before)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Removes an erased user's id from old entries.
pub async fn forget<'e, E: PgExecutor<'e>>(db: E, user: Uuid) -> StoreResult<()> {
    sqlx::query(
        "UPDATE audit_log SET
            target_user_id = CASE WHEN target_user_id = $1 THEN NULL ELSE target_user_id END,
            actor_user_id = CASE WHEN actor_user_id = $1 THEN NULL ELSE actor_user_id END
         WHERE target_user_id = $1 OR actor_user_id = $1",
    )
    .bind(user)
    .execute(db)
    .await?;
    Ok(())
}
