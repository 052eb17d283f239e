//! Users, roles, suspension and refresh-token families in PostgreSQL.

use super::StoreResult;
use crate::domain::account::{DisplayName, Email, Role, email_sha256};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// A user row (the password hash never leaves the store layer except for verification).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub suspended: bool,
    pub created_at: OffsetDateTime,
}

const COLS: &str = "id, email, display_name, password_hash, role, suspended, created_at";

/// Creates a user and their default privacy settings (sharing off). `None` when the email is taken.
pub async fn create(
    db: &PgPool,
    email: &Email,
    display_name: &DisplayName,
    password_hash: &str,
) -> StoreResult<Option<UserRecord>> {
    let mut tx = db.begin().await?;
    let row = sqlx::query_as::<_, UserRecord>(&format!(
        "INSERT INTO users (id, email, email_sha256, display_name, password_hash) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (email_sha256) DO NOTHING RETURNING {COLS}"
    ))
    .bind(Uuid::now_v7())
    .bind(email.as_str())
    .bind(email.sha256())
    .bind(display_name.as_str())
    .bind(password_hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user) = row else { return Ok(None) };
    sqlx::query("INSERT INTO privacy_settings (user_id) VALUES ($1)")
        .bind(user.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(user))
}

/// The user of an email, compared by the one rule (`normalise_email`, through its hash).
pub async fn by_email(db: &PgPool, email: &str) -> StoreResult<Option<UserRecord>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE email_sha256 = $1"))
            .bind(email_sha256(email))
            .fetch_optional(db)
            .await?,
    )
}

pub async fn by_id(db: &PgPool, id: Uuid) -> StoreResult<Option<UserRecord>> {
    Ok(sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?)
}

/// The user, its row locked until the transaction ends.
pub async fn by_id_for_update(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    id: Uuid,
) -> StoreResult<Option<UserRecord>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?,
    )
}

pub async fn set_display_name(db: &PgPool, id: Uuid, name: &str) -> StoreResult<Option<UserRecord>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE users SET display_name = $2 WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(name)
    .fetch_optional(db)
    .await?)
}

/// Changes a role by email; the user, or `None` when no such user.
pub async fn set_role<'e, E: sqlx::PgExecutor<'e>>(db: E, email: &str, role: Role) -> StoreResult<Option<Uuid>> {
    Ok(
        sqlx::query_scalar("UPDATE users SET role = $2 WHERE email_sha256 = $1 RETURNING id")
            .bind(email_sha256(email))
            .bind(role.as_str())
            .fetch_optional(db)
            .await?,
    )
}

/// Replaces the password hash.
pub async fn set_password_hash<'e, E: sqlx::PgExecutor<'e>>(db: E, id: Uuid, hash: &str) -> StoreResult<()> {
    sqlx::query("UPDATE users SET password_hash = $2 WHERE id = $1")
        .bind(id)
        .bind(hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Stores a new refresh token (by hash) in a family.
pub async fn insert_refresh(
    db: &PgPool,
    hash: &[u8],
    family: Uuid,
    user: Uuid,
    expires_at: OffsetDateTime,
) -> StoreResult<()> {
    sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(hash)
        .bind(family)
        .bind(user)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// What presenting a refresh token did.
#[derive(Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Rotated: the old token is spent, the new one stored in the same family.
    Rotated { user: UserRecord, family: Uuid },
    /// The account is suspended: nothing rotated.
    Suspended,
    /// Unknown, expired, revoked, or a reuse (which revoked the whole family).
    Rejected,
}

impl PartialEq for UserRecord {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for UserRecord {}

/// Spends `old` and stores `new` in its family, atomically; a reused token revokes the family.
pub async fn rotate_refresh(db: &PgPool, old: &[u8], new: &[u8], expires_at: OffsetDateTime) -> StoreResult<Rotation> {
    let mut tx = db.begin().await?;
    #[derive(sqlx::FromRow)]
    struct Token {
        family_id: Uuid,
        user_id: Uuid,
        expires_at: OffsetDateTime,
        used_at: Option<OffsetDateTime>,
        revoked_at: Option<OffsetDateTime>,
    }
    let row: Option<Token> = sqlx::query_as(
        "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
    )
    .bind(old)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(Token {
        family_id: family,
        user_id,
        expires_at: exp,
        used_at: used,
        revoked_at: revoked,
    }) = row
    else {
        return Ok(Rotation::Rejected);
    };
    if used.is_some() {
        sqlx::query("UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL")
            .bind(family)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(Rotation::Rejected);
    }
    if revoked.is_some() || exp <= OffsetDateTime::now_utc() {
        return Ok(Rotation::Rejected);
    }
    let user: Option<UserRecord> = sqlx::query_as(&format!("SELECT {COLS} FROM users WHERE id = $1"))
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(user) = user else {
        return Ok(Rotation::Rejected);
    };
    if user.suspended {
        return Ok(Rotation::Suspended);
    }
    sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
        .bind(old)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO refresh_tokens (token_hash, family_id, user_id, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(new)
        .bind(family)
        .bind(user.id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotation::Rotated { user, family })
}

/// Deletes expired and long-spent refresh tokens.
pub async fn purge_refresh_tokens(db: &PgPool) -> StoreResult<u64> {
    Ok(sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < now()")
        .execute(db)
        .await?
        .rows_affected())
}

/// Deletes a user; every row that references them goes with it (foreign keys cascade).
pub async fn delete<'e, E: sqlx::PgExecutor<'e>>(db: E, id: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?
        .rows_affected()
        == 1)
}
