//! `/v1/me/privacy`: the user's own controls.

use super::error::ApiResult;
use super::extract::AuthUser;
use crate::service::Ctx;
use crate::service::privacy::{self, HomeCell, HomePoint, Privacy, PrivacyPatch, QuietHoursText};
use actix_web::{get, patch, web};
use utoipa::OpenApi;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_privacy).service(patch_privacy);
}

#[derive(OpenApi)]
#[openapi(
    paths(get_privacy, patch_privacy),
    components(schemas(Privacy, PrivacyPatch, HomeCell, HomePoint, QuietHoursText))
)]
pub struct Doc;

/// The caller's privacy settings.
#[utoipa::path(tag = "privacy", security(("bearer" = [])), responses(
    (status = 200, body = Privacy),
    (status = 401, response = crate::http::error::Problem),
))]
#[get("/v1/me/privacy")]
pub async fn get_privacy(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<web::Json<Privacy>> {
    Ok(web::Json(privacy::get(&ctx, me.id).await?))
}

/// Changes any subset of the settings and answers the whole. Turning sharing off or pausing
/// takes the caller out of the live index at once.
#[utoipa::path(tag = "privacy", security(("bearer" = [])), request_body = PrivacyPatch, responses(
    (status = 200, body = Privacy),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[patch("/v1/me/privacy")]
pub async fn patch_privacy(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<PrivacyPatch>,
) -> ApiResult<web::Json<Privacy>> {
    Ok(web::Json(privacy::update(&ctx, me.id, body.into_inner()).await?))
}
