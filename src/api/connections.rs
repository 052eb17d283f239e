//! `/v1/connections*`, `/v1/blocks*`, `/v1/contacts/match`: the connection graph.

use actix_web::web;
use utoipa::OpenApi;

pub fn config(_cfg: &mut web::ServiceConfig) {}

/// The OpenAPI paths of this module (merged into the whole document).
#[derive(OpenApi)]
#[openapi()]
pub struct Doc;
