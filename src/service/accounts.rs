//! Accounts and sessions: register, log in, rotate and end refresh tokens; the caller's own
//! profile, its change, its export and erasure.

use super::auth::{hash_token, new_refresh_token};
use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::FieldError;
use crate::domain::account::{DisplayName, Email, check_password, normalise_email};
use crate::store::sessions;
use crate::store::users::{self, UserRecord};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// A new session: the user and a token pair.
#[derive(Debug)]
pub struct Session {
    pub user: UserRecord,
    pub access_token: String,
    pub refresh_token: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

/// What registering takes, as sent.
pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: String,
}

/// Refresh tokens are 43 characters; anything past 200 is not one.
fn check_refresh_token(token: &str) -> ServiceResult<()> {
    if token.len() > 200 {
        return Err(ServiceError::field("refresh_token", "at most 200 characters"));
    }
    Ok(())
}

/// The rate-limit bucket of an email (whatever was typed: one normalisation everywhere).
fn email_bucket(email: &str) -> String {
    hex::encode(&Sha256::digest(normalise_email(email).as_bytes())[..12])
}

/// Issues an access token with `rotated` (a refresh token already stored, and its family) or
/// a refresh token of a new family: a new session.
async fn session(ctx: &Ctx, user: UserRecord, rotated: Option<(String, Uuid)>) -> ServiceResult<Session> {
    let (refresh_token, family) = match rotated {
        Some(t) => t,
        None => {
            let (token, hash) = new_refresh_token();
            let expires = OffsetDateTime::now_utc() + ctx.settings.refresh_token_ttl;
            let family = Uuid::new_v4();
            users::insert_refresh(&ctx.db, &hash, family, user.id, expires).await?;
            (token, family)
        }
    };
    let access = ctx
        .tokens
        .issue(user.id, user.role, family)
        .map_err(ServiceError::Internal)?;
    Ok(Session {
        user,
        access_token: access,
        refresh_token,
        expires_in: ctx.tokens.ttl_s(),
    })
}

/// Creates an account (sharing off) and signs it in.
pub async fn register(ctx: &Ctx, client: &str, r: Registration) -> ServiceResult<Session> {
    let mut errors: Vec<FieldError> = Vec::new();
    let email = Email::parse(&r.email).map_err(|e| errors.push(e)).ok();
    let name = DisplayName::parse(&r.display_name).map_err(|e| errors.push(e)).ok();
    let _ = check_password(&r.password).map_err(|e| errors.push(e));
    let (Some(email), Some(name), true) = (email, name, errors.is_empty()) else {
        return Err(ServiceError::invalid(errors));
    };
    ctx.rate_limit(&format!("reg:ip:{client}"), ctx.settings.rate_register_per_ip_per_min)
        .await?;
    let hash = ctx
        .passwords
        .hash(SecretString::from(r.password))
        .await
        .map_err(ServiceError::Internal)?;
    let user = users::create(&ctx.db, &email, &name, &hash)
        .await?
        .ok_or_else(|| ServiceError::refused(Code::EmailTaken, "an account with this email exists"))?;
    tracing::info!(user_id = %user.id, "registered");
    session(ctx, user, None).await
}

/// Signs in. Unknown email and wrong password answer the same 401 after the same work.
pub async fn login(ctx: &Ctx, client: &str, email: &str, password: String) -> ServiceResult<Session> {
    ctx.rate_limit(&format!("login:ip:{client}"), ctx.settings.rate_login_per_ip_per_min)
        .await?;
    // per (email, client), and a much higher ceiling per email: wrong passwords from elsewhere
    // do not lock the owner out
    let bucket = email_bucket(email);
    ctx.rate_limit(
        &format!("login:email:{bucket}:{client}"),
        ctx.settings.rate_login_per_email_per_min,
    )
    .await?;
    ctx.rate_limit(
        &format!("login:email:{bucket}"),
        ctx.settings.rate_login_per_email_ceiling_per_min,
    )
    .await?;
    let user = if email.len() <= 254 && password.len() <= 1024 {
        users::by_email(&ctx.db, email).await?
    } else {
        None
    };
    let ok = ctx
        .passwords
        .verify(
            SecretString::from(password),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
    let user = match user {
        Some(u) if ok => u,
        _ => return Err(ServiceError::unauthorized()),
    };
    if user.suspended {
        return Err(ServiceError::suspended());
    }
    session(ctx, user, None).await
}

/// Rotates a refresh token: the old one is spent; presenting a spent one revokes its family.
pub async fn refresh(ctx: &Ctx, token: &str) -> ServiceResult<Session> {
    check_refresh_token(token)?;
    let old = hash_token(token);
    let (token, new) = new_refresh_token();
    let expires = OffsetDateTime::now_utc() + ctx.settings.refresh_token_ttl;
    match users::rotate_refresh(&ctx.db, &old, &new, expires).await? {
        users::Rotation::Rotated { user, family } => session(ctx, *user, Some((token, family))).await,
        users::Rotation::Suspended => Err(ServiceError::suspended()),
        users::Rotation::Rejected => Err(ServiceError::unauthorized()),
    }
}

/// Ends the session: the refresh token's whole family is revoked, and its access tokens are
/// refused from now on, on every instance.
pub async fn logout(ctx: &Ctx, token: &str) -> ServiceResult<()> {
    check_refresh_token(token)?;
    let until = ctx.tokens_of_ended_sessions_expire();
    let mut tx = ctx.db.begin().await?;
    let family = sessions::end_family_of(&mut tx, &hash_token(token), until).await?;
    tx.commit().await?;
    if let Some(f) = family {
        ctx.sessions.ended(&[f], until);
    }
    Ok(())
}

/// Ends every session of the user ("log out everywhere").
pub async fn logout_all(ctx: &Ctx, user: Uuid) -> ServiceResult<()> {
    let until = ctx.tokens_of_ended_sessions_expire();
    let mut tx = ctx.db.begin().await?;
    let ended = sessions::end_all_of(&mut tx, user, None, until).await?;
    tx.commit().await?;
    ctx.sessions.ended(&ended, until);
    Ok(())
}

/// Changes the password: the current one must be right (401 otherwise, rate-limited like a
/// login); every earlier session ends; the answer is a new session.
pub async fn change_password(ctx: &Ctx, user: Uuid, current: String, new: String) -> ServiceResult<Session> {
    check_password(&new).map_err(|e| ServiceError::invalid(vec![FieldError::new("new_password", e.message)]))?;
    ctx.rate_limit(&format!("login:user:{user}"), ctx.settings.rate_login_per_email_per_min)
        .await?;
    let record = me(ctx, user).await?;
    if current.len() > 1024
        || !ctx
            .passwords
            .verify(SecretString::from(current), Some(record.password_hash.clone()))
            .await
    {
        return Err(ServiceError::unauthorized());
    }
    let hash = ctx
        .passwords
        .hash(SecretString::from(new))
        .await
        .map_err(ServiceError::Internal)?;
    let until = ctx.tokens_of_ended_sessions_expire();
    let mut tx = ctx.db.begin().await?;
    users::set_password_hash(&mut *tx, user, &hash).await?;
    let ended = sessions::end_all_of(&mut tx, user, None, until).await?;
    tx.commit().await?;
    ctx.sessions.ended(&ended, until);
    session(ctx, record, None).await
}

/// The caller's account (401 once it is gone).
pub async fn me(ctx: &Ctx, user: Uuid) -> ServiceResult<UserRecord> {
    users::by_id(&ctx.db, user)
        .await?
        .ok_or_else(ServiceError::unauthorized)
}

/// Changes the caller's display name (the live index follows).
pub async fn rename(ctx: &Ctx, user: Uuid, name: &str) -> ServiceResult<UserRecord> {
    let name = DisplayName::parse(name)?;
    let record = users::set_display_name(&ctx.db, user, name.as_str())
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    super::profile_changed(ctx, user).await?;
    Ok(record)
}

/// A change of the caller's profile as sent: `None` leaves a field, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub headline: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub title: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub linkedin_url: Option<Option<String>>,
}

/// Changes any subset of the caller's profile (422 naming every invalid field); the live index
/// follows when something others see changed.
pub async fn update_profile(ctx: &Ctx, user: Uuid, patch: ProfilePatch) -> ServiceResult<UserRecord> {
    use crate::domain::profile::{parse_avatar_url, parse_linkedin_url, parse_text};
    let mut errors: Vec<FieldError> = Vec::new();
    let mut check =
        |value: Option<Option<String>>, parse: &dyn Fn(&str) -> Result<String, FieldError>| -> Option<Option<String>> {
            match value? {
                None => Some(None),
                Some(raw) => match parse(&raw) {
                    Ok(v) => Some(Some(v)),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                },
            }
        };
    let change = users::ProfileChange {
        display_name: check(patch.display_name.map(Some), &|r| {
            DisplayName::parse(r).map(|n| n.as_str().to_string())
        })
        .flatten(),
        headline: check(patch.headline, &|r| parse_text("headline", r)),
        company: check(patch.company, &|r| parse_text("company", r)),
        title: check(patch.title, &|r| parse_text("title", r)),
        avatar_url: check(patch.avatar_url, &parse_avatar_url),
        linkedin_url: check(patch.linkedin_url, &parse_linkedin_url),
    };
    if !errors.is_empty() {
        return Err(ServiceError::invalid(errors));
    }
    let seen_by_others = change.display_name.is_some()
        || change.headline.is_some()
        || change.company.is_some()
        || change.title.is_some()
        || change.avatar_url.is_some();
    let record = users::update_profile(&ctx.db, user, &change)
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    if seen_by_others {
        super::profile_changed(ctx, user).await?;
    }
    Ok(record)
}

/// Erases the caller's account and every datum about it.
pub async fn erase(ctx: &Ctx, user: Uuid) -> ServiceResult<()> {
    if super::erase_user(ctx, user).await?.is_none() {
        return Err(ServiceError::unauthorized());
    }
    Ok(())
}

/// Everything stored about the caller, as one JSON document.
pub async fn export(ctx: &Ctx, user: Uuid) -> ServiceResult<serde_json::Value> {
    crate::store::admin::export(&ctx.db, user)
        .await?
        .ok_or_else(ServiceError::unauthorized)
}

/// Gives or takes the admin role by email (the CLI), written to the audit log in the same
/// transaction (`admin.grant` / `admin.revoke`, no acting user); false when no such user.
pub async fn set_role(db: &sqlx::PgPool, email: &str, role: crate::domain::account::Role) -> ServiceResult<bool> {
    let mut tx = db.begin().await?;
    let Some(user) = users::set_role(&mut *tx, email, role).await? else {
        return Ok(false);
    };
    let action = match role {
        crate::domain::account::Role::Admin => "admin.grant",
        crate::domain::account::Role::User => "admin.revoke",
    };
    crate::store::audit::record_by_operator(&mut *tx, action, user, serde_json::json!({"via": "cli"})).await?;
    tx.commit().await?;
    Ok(true)
}
