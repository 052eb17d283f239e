//! `/v1/auth/*`: register, login, refresh, logout (of one session or of all).

use super::error::ApiResult;
use super::extract::{AuthUser, ClientIp};
use super::me::User;
use crate::service::{Ctx, accounts};
use actix_web::{HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(register)
        .service(login)
        .service(refresh)
        .service(logout)
        .service(logout_all);
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

impl From<accounts::Session> for AuthResponse {
    fn from(s: accounts::Session) -> Self {
        Self {
            user: User::from(s.user),
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            token_type: "Bearer",
            expires_in: s.expires_in,
        }
    }
}

/// Creates an account (sharing off) and signs it in.
#[utoipa::path(tag = "auth", request_body = RegisterRequest, responses(
    (status = 201, body = AuthResponse),
    (status = 400, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[post("/v1/auth/register")]
pub async fn register(
    ctx: web::Data<Ctx>,
    ip: ClientIp,
    body: super::extract::Json<RegisterRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let registration = accounts::Registration {
        email: b.email,
        password: b.password,
        display_name: b.display_name,
    };
    let session = accounts::register(&ctx, &ip.0.to_string(), registration).await?;
    Ok(HttpResponse::Created().json(AuthResponse::from(session)))
}

/// Signs in. Unknown email and wrong password answer the same 401 after the same work.
#[utoipa::path(tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[post("/v1/auth/login")]
pub async fn login(
    ctx: web::Data<Ctx>,
    ip: ClientIp,
    body: super::extract::Json<LoginRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let session = accounts::login(&ctx, &ip.0.to_string(), &b.email, b.password).await?;
    Ok(HttpResponse::Ok().json(AuthResponse::from(session)))
}

/// Rotates a refresh token: the old one is spent; presenting a spent one revokes its family.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 200, body = AuthResponse),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/auth/refresh")]
pub async fn refresh(ctx: web::Data<Ctx>, body: super::extract::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    let session = accounts::refresh(&ctx, &body.refresh_token).await?;
    Ok(HttpResponse::Ok().json(AuthResponse::from(session)))
}

/// Ends the session: the refresh token's whole family is revoked and the session's access
/// tokens are refused (401) within a second on every instance.
#[utoipa::path(tag = "auth", request_body = RefreshRequest, responses(
    (status = 204, description = "signed out"),
    (status = 400, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/auth/logout")]
pub async fn logout(ctx: web::Data<Ctx>, body: super::extract::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    accounts::logout(&ctx, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Ends every session of the caller ("log out everywhere"): their refresh tokens are revoked
/// and their access tokens refused within a second on every instance, this one included.
#[utoipa::path(tag = "auth", security(("bearer" = [])), responses(
    (status = 204, description = "every session ended"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
))]
#[post("/v1/auth/logout-all")]
pub async fn logout_all(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<HttpResponse> {
    accounts::logout_all(&ctx, me.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
