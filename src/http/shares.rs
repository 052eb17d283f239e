//! `/v1/shares*`: exact sharing with one connection for a while.

use super::error::ApiResult;
use super::extract::AuthUser;
use crate::service::Ctx;
use crate::service::shares::{self, NewShare, Share};
use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(create_share).service(list_shares).service(delete_share);
}

#[derive(OpenApi)]
#[openapi(
    paths(create_share, list_shares, delete_share),
    components(schemas(Share, NewShare, ShareList, Direction))
)]
pub struct Doc;

/// Shares the caller gave, or received.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ShareDirection)]
pub enum Direction {
    Given,
    Received,
}

/// `?direction=given|received`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShareQuery {
    /// Default `given`.
    pub direction: Option<Direction>,
}

/// The caller's active shares; `next_cursor` is always null (one page).
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareList {
    pub items: Vec<Share>,
    pub next_cursor: Option<String>,
}

/// Until `expires_at` (`duration_s` 300 to 86400 from now) that connection sees the caller at
/// `exact` precision in nearby, whatever the caller's own precision; the policy's
/// `min_precision` still wins. Sharing again with the same person replaces the running share.
/// 404 for a non-connection. A block, hiding from them, a pause or sharing off ends it at once.
#[utoipa::path(tag = "shares", security(("bearer" = [])), request_body = NewShare, responses(
    (status = 201, body = Share),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/shares")]
pub async fn create_share(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<NewShare>,
) -> ApiResult<HttpResponse> {
    let s = shares::create(&ctx, me.id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(s))
}

/// The caller's active shares, given (default) or received, newest first.
#[utoipa::path(tag = "shares", security(("bearer" = [])), params(ShareQuery), responses(
    (status = 200, body = ShareList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
))]
#[get("/v1/shares")]
pub async fn list_shares(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ShareQuery>,
) -> ApiResult<web::Json<ShareList>> {
    let given = !matches!(q.direction, Some(Direction::Received));
    Ok(web::Json(ShareList {
        items: shares::list(&ctx, me.id, given).await?,
        next_cursor: None,
    }))
}

/// Ends a share the caller gave or received; 404 otherwise.
#[utoipa::path(tag = "shares", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "share id")),
    responses(
        (status = 204, description = "ended"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/shares/{id}")]
pub async fn delete_share(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    shares::end(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
