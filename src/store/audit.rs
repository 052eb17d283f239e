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
    /// The pseudonym of an erased target.
    pub target_ref: Option<String>,
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

/// Writes an entry of an action taken outside the API (the CLI), with no acting user.
pub async fn record_by_operator<'e, E: PgExecutor<'e>>(
    db: E,
    action: &str,
    target: Uuid,
    detail: serde_json::Value,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (action, target_user_id, detail) VALUES ($1, $2, $3)")
        .bind(action)
        .bind(target)
        .bind(detail)
        .execute(db)
        .await?;
    Ok(())
}

/// Writes an entry about a user already erased, by their pseudonym.
pub async fn record_about_erased<'e, E: PgExecutor<'e>>(
    db: E,
    actor: Uuid,
    action: &str,
    target_ref: &str,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO audit_log (actor_user_id, action, target_ref) VALUES ($1, $2, $3)")
        .bind(actor)
        .bind(action)
        .bind(target_ref)
        .execute(db)
        .await?;
    Ok(())
}

/// Which entries to list; every part optional (all of them together narrow the list).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<Uuid>,
    pub target: Option<Uuid>,
    pub action: Option<String>,
    /// Entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Entries before this time.
    pub until: Option<OffsetDateTime>,
}

/// Entries newest first, after the cursor (an entry id), that pass the filter.
pub async fn list<'e, E: PgExecutor<'e>>(
    db: E,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    Ok(sqlx::query_as(
        "SELECT id, actor_user_id, action, target_user_id, target_ref, detail, at FROM audit_log
         WHERE ($1::uuid IS NULL OR target_user_id = $1) AND ($2::bigint IS NULL OR id < $2)
           AND ($4::uuid IS NULL OR actor_user_id = $4) AND ($5::text IS NULL OR action = $5)
           AND ($6::timestamptz IS NULL OR at >= $6) AND ($7::timestamptz IS NULL OR at < $7)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(filter.target)
    .bind(before)
    .bind(limit)
    .bind(filter.actor)
    .bind(filter.action.as_deref())
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(db)
    .await?)
}

/// Takes an erased user out of old entries: their id becomes NULL (as target, `target_ref`
/// becomes `pseudonym`; as actor, nothing), and every string of a detail that contains their
/// email (searches, exports) becomes `"[erased]"`.
pub async fn forget(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    user: Uuid,
    email: Option<&str>,
    pseudonym: &str,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE audit_log SET
            target_ref = CASE WHEN target_user_id = $1 THEN $2 ELSE target_ref END,
            target_user_id = CASE WHEN target_user_id = $1 THEN NULL ELSE target_user_id END,
            actor_user_id = CASE WHEN actor_user_id = $1 THEN NULL ELSE actor_user_id END
         WHERE target_user_id = $1 OR actor_user_id = $1",
    )
    .bind(user)
    .bind(pseudonym)
    .execute(&mut **tx)
    .await?;
    let Some(email) = email.map(str::to_lowercase).filter(|e| !e.is_empty()) else {
        return Ok(());
    };
    let rows: Vec<(i64, serde_json::Value)> =
        sqlx::query_as("SELECT id, detail FROM audit_log WHERE strpos(lower(detail::text), $1) > 0")
            .bind(&email)
            .fetch_all(&mut **tx)
            .await?;
    for (id, mut detail) in rows {
        scrub(&mut detail, &email);
        sqlx::query("UPDATE audit_log SET detail = $2 WHERE id = $1")
            .bind(id)
            .bind(detail)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Replaces every string holding `needle` (lower case) with `"[erased]"`.
fn scrub(v: &mut serde_json::Value, needle: &str) {
    match v {
        serde_json::Value::String(s) if s.to_lowercase().contains(needle) => *s = "[erased]".into(),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|i| scrub(i, needle)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|i| scrub(i, needle)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::scrub;
    use serde_json::json;

    #[test]
    fn scrubbing_takes_the_email_out_of_every_string() {
        let mut d = json!({"query": "Alice@Example.com", "n": 3, "list": ["x", "alice@example.com"], "o": {"e": "alice@example.co"}});
        scrub(&mut d, "alice@example.com");
        assert_eq!(
            d,
            json!({"query": "[erased]", "n": 3, "list": ["x", "[erased]"], "o": {"e": "alice@example.co"}})
        );
    }
}
