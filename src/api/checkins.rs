//! `/v1/checkins*`: opt-in check-ins.

use super::extract::AuthUser;
use crate::error::ApiResult;
use crate::service::live::{self, Checkin, CheckinInput, Outcome};
use crate::startup::AppState;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(post_checkin).service(get_current).service(delete_current);
}

#[derive(OpenApi)]
#[openapi(
    paths(post_checkin, get_current, delete_current),
    components(schemas(Checkin, CheckinRequest))
)]
pub struct Doc;

/// A check-in.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckinRequest {
    #[schema(example = 40.7128, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = -74.006, minimum = -180, maximum = 180)]
    pub lng: f64,
    #[schema(example = 12.5, minimum = 0, maximum = 1000000)]
    pub accuracy_m: Option<f64>,
    /// When the phone took the fix; at most 5 minutes ahead, not older than the TTL. Default: now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub recorded_at: Option<OffsetDateTime>,
    /// Lifetime in seconds (default: the user's `default_ttl_s`), capped by the policy's `max_ttl_s`.
    #[schema(example = 3600, minimum = 60)]
    pub ttl_s: Option<i64>,
    /// Makes the call idempotent within the TTL.
    #[schema(example = "phone-7f3a-0001", min_length = 1, max_length = 128)]
    pub client_id: Option<String>,
}

/// Checks in. 201 with the new live check-in, or the first answer for a repeated `client_id`;
/// 200 with the live check-in when this one is older and was ignored. 409 `sharing_disabled`;
/// 422 `invalid_coordinates` or `validation_failed`.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), request_body = CheckinRequest, responses(
    (status = 201, body = Checkin),
    (status = 200, description = "older than the live check-in: ignored, the live one is returned", body = Checkin),
    (status = 400, response = crate::error::Problem),
    (status = 401, response = crate::error::Problem),
    (status = 403, response = crate::error::Problem),
    (status = 409, response = crate::error::Problem),
    (status = 413, response = crate::error::Problem),
    (status = 422, response = crate::error::Problem),
    (status = 429, response = crate::error::Problem),
))]
#[post("/v1/checkins")]
pub async fn post_checkin(
    state: web::Data<AppState>,
    me: AuthUser,
    body: web::Json<CheckinRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let input = CheckinInput {
        lat: b.lat,
        lng: b.lng,
        accuracy_m: b.accuracy_m,
        recorded_at: b.recorded_at,
        ttl_s: b.ttl_s,
        client_id: b.client_id,
    };
    Ok(match live::checkin(&state, me.id, input).await? {
        Outcome::Created(c) | Outcome::Replayed(c) => HttpResponse::Created().json(c),
        Outcome::Ignored(c) => HttpResponse::Ok().json(c),
    })
}

/// The caller's live check-in.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), responses(
    (status = 200, body = Checkin),
    (status = 401, response = crate::error::Problem),
    (status = 404, response = crate::error::Problem),
))]
#[get("/v1/checkins/current")]
pub async fn get_current(state: web::Data<AppState>, me: AuthUser) -> ApiResult<web::Json<Checkin>> {
    Ok(web::Json(live::current(&state, me.id).await?))
}

/// Leaves the live index now.
#[utoipa::path(tag = "checkins", security(("bearer" = [])), responses(
    (status = 204, description = "no longer live"),
    (status = 401, response = crate::error::Problem),
))]
#[delete("/v1/checkins/current")]
pub async fn delete_current(state: web::Data<AppState>, me: AuthUser) -> ApiResult<HttpResponse> {
    live::leave(&state, me.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
