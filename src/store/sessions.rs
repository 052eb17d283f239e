//! Sessions that ended, for every instance to refuse their access tokens: refresh-token families
//! revoked (by logout, a password change, "log out everywhere" or erasure) and written to
//! `session_revocations` in the same transaction; the suspended accounts.

use super::StoreResult;
use sqlx::{PgExecutor, PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// Ends one session (the family of a refresh token): its tokens are revoked and its access
/// tokens refused until `until`. The family, or `None` for an unknown token.
pub async fn end_family_of(
    tx: &mut Transaction<'_, Postgres>,
    token_hash: &[u8],
    until: OffsetDateTime,
) -> StoreResult<Option<Uuid>> {
    let family: Option<Uuid> = sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(token_hash)
        .fetch_optional(&mut **tx)
        .await?;
    let Some(family) = family else {
        return Ok(None);
    };
    sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
        .bind(family)
        .execute(&mut **tx)
        .await?;
    record(tx, &[family], until).await?;
    Ok(Some(family))
}

/// Ends every session of `user` but `keep`; the families ended.
pub async fn end_all_of(
    tx: &mut Transaction<'_, Postgres>,
    user: Uuid,
    keep: Option<Uuid>,
    until: OffsetDateTime,
) -> StoreResult<Vec<Uuid>> {
    let families: Vec<Uuid> = sqlx::query_scalar(
        "WITH ended AS (
             UPDATE refresh_tokens SET revoked_at = coalesce(revoked_at, now())
              WHERE user_id = $1 AND family_id IS DISTINCT FROM $2
          RETURNING family_id)
         SELECT DISTINCT family_id FROM ended",
    )
    .bind(user)
    .bind(keep)
    .fetch_all(&mut **tx)
    .await?;
    record(tx, &families, until).await?;
    Ok(families)
}

async fn record(tx: &mut Transaction<'_, Postgres>, families: &[Uuid], until: OffsetDateTime) -> StoreResult<()> {
    if families.is_empty() {
        return Ok(());
    }
    sqlx::query("INSERT INTO session_revocations (family_id, until) SELECT f, $2 FROM unnest($1::uuid[]) AS f")
        .bind(families)
        .bind(until)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sessions ended since `since` (by the database's clock) that still matter, with the time
/// their access tokens would have expired anyway; and the database's clock now.
pub async fn ended_since(
    db: &PgPool,
    since: Option<OffsetDateTime>,
) -> StoreResult<(Vec<(Uuid, OffsetDateTime)>, OffsetDateTime)> {
    let rows: Vec<(Uuid, OffsetDateTime)> = sqlx::query_as(
        "SELECT family_id, until FROM session_revocations
          WHERE until > now() AND ($1::timestamptz IS NULL OR ended_at >= $1)",
    )
    .bind(since)
    .fetch_all(db)
    .await?;
    let now: OffsetDateTime = sqlx::query_scalar("SELECT now()").fetch_one(db).await?;
    Ok((rows, now))
}

/// The suspended accounts.
pub async fn suspended<'e, E: PgExecutor<'e>>(db: E) -> StoreResult<Vec<Uuid>> {
    Ok(sqlx::query_scalar("SELECT id FROM users WHERE suspended")
        .fetch_all(db)
        .await?)
}

/// Forgets revocations whose tokens have expired anyway.
pub async fn purge(db: &PgPool) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM session_revocations WHERE until < now()")
        .execute(db)
        .await?
        .rows_affected())
}
