//! `/v1/me`: the caller's profile, its change, and erasure.

use super::extract::AuthUser;
use crate::auth::Role;
use crate::domain::account;
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::users;
use actix_web::{HttpResponse, delete, get, patch, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_me)
        .service(patch_me)
        .service(delete_me)
        .service(export_me);
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
}

impl From<users::UserRecord> for User {
    fn from(u: users::UserRecord) -> Self {
        let role = u.role();
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            role,
            created_at: u.created_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct PatchMe {
    #[schema(example = "Alex M.", min_length = 1, max_length = 100)]
    pub display_name: Option<String>,
}

/// The caller's profile.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = User),
    (status = 401, response = crate::error::Problem),
))]
#[get("/v1/me")]
pub async fn get_me(state: web::Data<AppState>, me: AuthUser) -> ApiResult<web::Json<User>> {
    let user = users::by_id(&state.db, me.id).await?.ok_or(ApiError::Unauthorized)?;
    Ok(web::Json(user.into()))
}

/// Changes the caller's display name.
#[utoipa::path(tag = "me", security(("bearer" = [])), request_body = PatchMe, responses(
    (status = 200, body = User),
    (status = 400, response = crate::error::Problem),
    (status = 401, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 422, response = crate::error::Problem),
))]
#[patch("/v1/me")]
pub async fn patch_me(
    state: web::Data<AppState>,
    me: AuthUser,
    body: web::Json<PatchMe>,
) -> ApiResult<web::Json<User>> {
    let user = match &body.display_name {
        Some(name) => {
            let name = account::parse_display_name(name).map_err(|e| ApiError::invalid(vec![e]))?;
            let user = users::set_display_name(&state.db, me.id, &name).await?;
            if user.is_some() {
                crate::service::profile_changed(&state, me.id).await?;
            }
            user
        }
        None => users::by_id(&state.db, me.id).await?,
    };
    Ok(web::Json(user.ok_or(ApiError::Unauthorized)?.into()))
}

/// Erases the caller's account and every datum about it, in PostgreSQL and Redis.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 204, description = "erased"),
    (status = 401, response = crate::error::Problem),
))]
#[delete("/v1/me")]
pub async fn delete_me(state: web::Data<AppState>, me: AuthUser) -> ApiResult<HttpResponse> {
    if !crate::service::erase_user(&state, me.id).await? {
        return Err(ApiError::Unauthorized);
    }
    Ok(HttpResponse::NoContent().finish())
}

/// Everything stored about the caller, as one JSON document (GDPR access and portability):
/// profile, privacy settings and consent history, connections, requests, blocks, devices, live
/// location, notifications.
#[utoipa::path(tag = "me", security(("bearer" = [])), responses(
    (status = 200, body = Object, description = "the export document"),
    (status = 401, response = crate::error::Problem),
))]
#[get("/v1/me/export")]
pub async fn export_me(state: web::Data<AppState>, me: AuthUser) -> ApiResult<web::Json<serde_json::Value>> {
    Ok(web::Json(
        crate::store::admin::export(&state.db, me.id)
            .await?
            .ok_or(ApiError::Unauthorized)?,
    ))
}
