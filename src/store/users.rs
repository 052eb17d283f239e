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
    #[sqlx(flatten)]
    pub profile: ProfileFields,
}

/// The profile fields of a user (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct ProfileFields {
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
    pub linkedin_url: Option<String>,
}

/// A change of profile fields: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub display_name: Option<String>,
    pub headline: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub linkedin_url: Option<Option<String>>,
}

const COLS: &str = "id, email, display_name, password_hash, role, suspended, created_at, headline, company, title, avatar_url, linkedin_url";

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

/// Applies a profile change in one statement; `None` when no such user.
pub async fn update_profile(db: &PgPool, id: Uuid, c: &ProfileChange) -> StoreResult<Option<UserRecord>> {
    let set = |f: &Option<Option<String>>| (f.is_some(), f.clone().flatten());
    let (h, c2, t, a, l) = (
        set(&c.headline),
        set(&c.company),
        set(&c.title),
        set(&c.avatar_url),
        set(&c.linkedin_url),
    );
    Ok(sqlx::query_as(&format!(
        "UPDATE users SET display_name = coalesce($2, display_name),
           headline = CASE WHEN $3 THEN $4 ELSE headline END,
           company = CASE WHEN $5 THEN $6 ELSE company END,
           title = CASE WHEN $7 THEN $8 ELSE title END,
           avatar_url = CASE WHEN $9 THEN $10 ELSE avatar_url END,
           linkedin_url = CASE WHEN $11 THEN $12 ELSE linkedin_url END
         WHERE id = $1 RETURNING {COLS}"
    ))
    .bind(id)
    .bind(&c.display_name)
    .bind(h.0)
    .bind(h.1)
    .bind(c2.0)
    .bind(c2.1)
    .bind(t.0)
    .bind(t.1)
    .bind(a.0)
    .bind(a.1)
    .bind(l.0)
    .bind(l.1)
    .fetch_optional(db)
    .await?)
}

/// Another user's profile as `viewer` may see it, with how the two stand to each other;
/// `None` for an unknown or suspended user and for a blocked pair (either way). One query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    pub id: Uuid,
    pub display_name: String,
    #[sqlx(flatten)]
    pub profile: ProfileFields,
    pub connected: bool,
    /// They asked the viewer.
    pub incoming: bool,
    /// The viewer asked them.
    pub outgoing: bool,
    /// Both attend one event.
    pub fellow_attendee: bool,
}

pub async fn profile_for(db: &PgPool, viewer: Uuid, id: Uuid) -> StoreResult<Option<ProfileRow>> {
    Ok(sqlx::query_as(
        "SELECT u.id, u.display_name, u.headline, u.company, u.title, u.avatar_url, u.linkedin_url,
                EXISTS (SELECT 1 FROM connections c WHERE c.user_id = $1 AND c.peer_id = u.id) AS connected,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = u.id AND r.to_user_id = $1) AS incoming,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = $1 AND r.to_user_id = u.id) AS outgoing,
                EXISTS (SELECT 1 FROM event_attendees a JOIN event_attendees b ON b.event_id = a.event_id
                        WHERE a.user_id = $1 AND b.user_id = u.id) AS fellow_attendee
         FROM users u
         WHERE u.id = $2 AND NOT u.suspended
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                              OR (b.blocker_id = u.id AND b.blocked_id = $1))",
    )
    .bind(viewer)
    .bind(id)
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
    Rotated { user: Box<UserRecord>, family: Uuid },
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
    Ok(Rotation::Rotated {
        user: Box::new(user),
        family,
    })
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
