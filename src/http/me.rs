//! `/v1/me`: the caller's profile, its change, the password, export and erasure.

use super::error::ApiResult;
use super::extract::AuthUser;
use crate::domain::account::Role;
use crate::service::{Ctx, accounts};
use crate::store::users;
use actix_web::{HttpResponse, delete, get, patch, post, web};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_me)
        .service(patch_me)
        .service(delete_me)
        .service(export_me)
        .service(change_password);
}

/// A user as the user sees themself.
#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    #[schema(example = "alex@example.com")]
    pub email: String,
    #[schema(example = "Alex")]
    pub display_name: String,
    pub role: Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[schema(example = "Maps at scale", max_length = 100)]
    pub headline: Option<String>,
    #[schema(example = "Acme, Inc.", max_length = 100)]
    pub company: Option<String>,
    #[schema(example = "CTO", max_length = 100)]
    pub title: Option<String>,
    /// An `https` URL.
    #[schema(example = "https://cdn.example.com/alex.png", max_length = 500)]
    pub avatar_url: Option<String>,
    /// Normalised: `https://www.linkedin.com/in/<slug>`.
    #[schema(example = "https://www.linkedin.com/in/alex")]
    pub linkedin_url: Option<String>,
}

impl From<users::UserRecord> for User {
    fn from(u: users::UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role: u.role,
            created_at: u.created_at,
            headline: u.profile.headline,
            company: u.profile.company,
            title: u.profile.title,
            avatar_url: u.profile.avatar_url,
            linkedin_url: u.profile.linkedin_url,
        }
    }
}

/// A present field, `null` included (`null` clears a profile field).
fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Any subset of the caller's profile; `null` clears a profile field.
#[derive(Deserialize, ToSchema)]
pub struct PatchMe {
    #[schema(example = "Alex M.", min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
    /// Visible text, at most 100 characters, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub headline: Option<Option<String>>,
    /// Visible text, at most 100 characters, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub company: Option<Option<String>>,
    /// Visible text, at most 100 characters, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 100)]
    pub title: Option<Option<String>>,
    /// An `https` URL of at most 500 characters, or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub avatar_url: Option<Option<String>>,
    /// `https://www.linkedin.com/in/<slug>` (stored normalised: scheme, `www.`, trailing slash
    /// and case do not matter), or null.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub linkedin_url: Option<Option<String>>,
}

/// The caller's profile.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = User),
    (status = 401, response = crate::http::error::Problem),
))]
#[get("/v1/me")]
pub async fn get_me(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<web::Json<User>> {
    Ok(web::Json(accounts::me(&ctx, me.id).await?.into()))
}

/// Changes the caller's display name and profile fields (any subset; `null` clears a profile
/// field). 422 `validation_failed` names every invalid field.
#[utoipa::path(tag = "me", security(("bearer" = [])), request_body = PatchMe, responses(
    (status = 200, body = User),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[patch("/v1/me")]
pub async fn patch_me(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<PatchMe>,
) -> ApiResult<web::Json<User>> {
    let b = body.into_inner();
    let patch = accounts::ProfilePatch {
        display_name: b.display_name,
        headline: b.headline,
        company: b.company,
        title: b.title,
        avatar_url: b.avatar_url,
        linkedin_url: b.linkedin_url,
    };
    let user = accounts::update_profile(&ctx, me.id, patch).await?;
    Ok(web::Json(user.into()))
}

/// Erases the caller's account and every datum about it, in PostgreSQL and Redis.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 204, description = "erased"),
    (status = 401, response = crate::http::error::Problem),
))]
#[delete("/v1/me")]
pub async fn delete_me(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<HttpResponse> {
    accounts::erase(&ctx, me.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Everything stored about the caller, as one JSON document (GDPR access and portability):
/// profile, privacy settings and consent history, connections, requests, blocks, devices, live
/// location, notifications.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = Object, description = "the export document"),
    (status = 401, response = crate::http::error::Problem),
))]
#[get("/v1/me/export")]
pub async fn export_me(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<web::Json<serde_json::Value>> {
    Ok(web::Json(accounts::export(&ctx, me.id).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    #[schema(max_length = 1024, format = Password)]
    pub current_password: String,
    #[schema(example = "another horse battery", min_length = 10, max_length = 1024, format = Password)]
    pub new_password: String,
}

/// Changes the password. Every earlier session of the account ends (their access tokens are
/// refused within a second); the answer is a new session. 401 for a wrong current password.
#[utoipa::path(tag = "me", security(("bearer" = [])), request_body = PasswordChange, responses(
    (status = 200, body = super::auth::AuthResponse),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[post("/v1/me/password")]
pub async fn change_password(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<PasswordChange>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let session = accounts::change_password(&ctx, me.id, b.current_password, b.new_password).await?;
    Ok(HttpResponse::Ok().json(super::auth::AuthResponse::from(session)))
}
