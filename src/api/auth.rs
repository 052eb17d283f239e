//! `/v1/auth/*`: register, login, refresh, logout.

use super::extract::ClientIp;
use super::me::User;
use crate::domain::account;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::startup::AppState;
use crate::store::{ratelimit, users};
use actix_web::{HttpResponse, post, web};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(register).service(login).service(refresh).service(logout);
}

#[derive(Deserialize, ToSchema)]
pub struct RegisterRequest {
    #[schema(example = "alex@example.com", max_length = 254)]
    pub email: String,
    #[schema(example = "correct horse battery", min_length = 10, max_length = 1024, format = Password)]
    pub password: String,
    #[schema(example = "Alex", min_length = 1, max_length = 100)]
    pub display_name: String,
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    #[schema(example = "alex@example.com", max_length = 254)]
    pub email: String,
    #[schema(example = "correct horse battery", max_length = 1024, format = Password)]
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[schema(max_length = 200)]
    pub refresh_token: String,
}

impl RefreshRequest {
    /// Refresh tokens are 43 characters; anything past 200 is not one.
    fn check(&self) -> ApiResult<()> {
        if self.refresh_token.len() > 200 {
            return Err(ApiError::field("refresh_token", "at most 200 characters"));
        }
        Ok(())
    }
}

/// A new session: the user and a token pair.
#[derive(Serialize, ToSchema)]
pub struct AuthResponse {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Lifetime of the access token, in seconds.
    #[schema(example = 900)]
    pub expires_in: u64,
}

async fn limit(state: &AppState, bucket: String, per_min: u32) -> ApiResult<()> {
    ratelimit::hit(&state.redis, &bucket, per_min, 60)
        .await?
        .map_err(|retry_after_s| ApiError::RateLimited { retry_after_s })
}

fn email_bucket(email: &str) -> String {
    hex::encode(&Sha256::digest(email.trim().to_lowercase().as_bytes())[..12])
}

/// Issues an access token with `rotated` (already stored) or a refresh token of a new family.
async fn session(state: &AppState, user: users::UserRecord, rotated: Option<String>) -> ApiResult<AuthResponse> {
    let access = state.tokens.issue(user.id, user.role()).map_err(ApiError::Internal)?;
    let refresh_token = match rotated {
        Some(t) => t,
        None => {
            let (token, hash) = crate::auth::new_refresh_token();
            let expires = OffsetDateTime::now_utc() + state.settings.refresh_token_ttl;
            users::insert_refresh(&state.db, &hash, Uuid::new_v4(), user.id, expires).await?;
            token
        }
    };
    Ok(AuthResponse {
        user: User::from(user),
        access_token: access,
        refresh_token,
        token_type: "Bearer",
        expires_in: state.tokens.ttl_s(),
    })
}

/// Creates an account (sharing off) and signs it in.
#[utoipa::path(tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = AuthResponse),
    (status = 400, response = crate::error::Problem),
    (status = 409, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 422, response = crate::error::Problem),
    (status = 429, response = crate::error::Problem),
))]
#[post("/v1/auth/register")]
pub async fn register(
    state: web::Data<AppState>,
    ip: ClientIp,
    body: web::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let mut errors: Vec<FieldError> = Vec::new();
    let email = account::parse_email(&body.email).map_err(|e| errors.push(e)).ok();
    let name = account::parse_display_name(&body.display_name)
        .map_err(|e| errors.push(e))
        .ok();
    let _ = account::check_password(&body.password).map_err(|e| errors.push(e));
    let (Some(email), Some(name), true) = (email, name, errors.is_empty()) else {
        return Err(ApiError::invalid(errors));
    };
    limit(
        &state,
        format!("reg:ip:{}", ip.0),
        state.settings.rate_register_per_ip_per_min,
    )
    .await?;
    let hash = state
        .passwords
        .hash(SecretString::from(body.password))
        .await
        .map_err(ApiError::Internal)?;
    let user = users::create(&state.db, &email, &name, &hash)
        .await?
        .ok_or(ApiError::Conflict("email_taken", "an account with this email exists"))?;
    tracing::info!(user_id = %user.id, "registered");
    Ok(HttpResponse::Created().json(session(&state, user, None).await?))
}

/// Signs in. Unknown email and wrong password answer the same 401 after the same work.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 400, response = crate::error::Problem),
    (status = 401, response = crate::error::Problem),
    (status = 403, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 429, response = crate::error::Problem),
))]
#[post("/v1/auth/login")]
pub async fn login(state: web::Data<AppState>, ip: ClientIp, body: web::Json<LoginRequest>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    limit(
        &state,
        format!("login:ip:{}", ip.0),
        state.settings.rate_login_per_ip_per_min,
    )
    .await?;
    limit(
        &state,
        format!("login:email:{}", email_bucket(&body.email)),
        state.settings.rate_login_per_email_per_min,
    )
    .await?;
    let user = if body.email.len() <= 254 && body.password.len() <= 1024 {
        users::by_email(&state.db, &body.email).await?
    } else {
        None
    };
    let ok = state
        .passwords
        .verify(
            SecretString::from(body.password),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await;
    let user = match user {
        Some(u) if ok => u,
        _ => return Err(ApiError::Unauthorized),
    };
    if user.suspended {
        return Err(ApiError::Forbidden("this account is suspended"));
    }
    Ok(HttpResponse::Ok().json(session(&state, user, None).await?))
}

/// Rotates a refresh token: the old one is spent; presenting a spent one revokes its family.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 400, response = crate::error::Problem),
    (status = 401, response = crate::error::Problem),
    (status = 403, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 422, response = crate::error::Problem),
))]
#[post("/v1/auth/refresh")]
pub async fn refresh(state: web::Data<AppState>, body: web::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    body.check()?;
    let old = crate::auth::hash_token(&body.refresh_token);
    let (token, new) = crate::auth::new_refresh_token();
    let expires = OffsetDateTime::now_utc() + state.settings.refresh_token_ttl;
    match users::rotate_refresh(&state.db, &old, &new, expires).await? {
        users::Rotation::Rotated { user } => Ok(HttpResponse::Ok().json(session(&state, user, Some(token)).await?)),
        users::Rotation::Suspended => Err(ApiError::Forbidden("this account is suspended")),
        users::Rotation::Rejected => Err(ApiError::Unauthorized),
    }
}

/// Ends the session: the refresh token's whole family is revoked.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "signed out"),
    (status = 400, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 422, response = crate::error::Problem),
))]
#[post("/v1/auth/logout")]
pub async fn logout(state: web::Data<AppState>, body: web::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    body.check()?;
    users::revoke_family_of(&state.db, &crate::auth::hash_token(&body.refresh_token)).await?;
    Ok(HttpResponse::NoContent().finish())
}
