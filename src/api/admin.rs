//! `/v1/admin/*`: the operator's privacy controls. Every call requires a current admin.

use super::extract::AdminUser;
use crate::domain::policy::Policy;
use crate::error::ApiResult;
use crate::startup::AppState;
use crate::store::policy;
use actix_web::{get, web};

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_policy);
}

/// The current policy.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Policy),
    (status = 401, response = crate::error::Problem),
    (status = 403, response = crate::error::Problem),
))]
#[get("/v1/admin/policy")]
pub async fn get_policy(state: web::Data<AppState>, _admin: AdminUser) -> ApiResult<web::Json<Policy>> {
    Ok(web::Json(policy::get(&state.db).await?))
}
