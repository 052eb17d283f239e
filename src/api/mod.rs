//! HTTP handlers, one module per resource: parse, call, respond. Each module exposes
//! `config(cfg)`; extractor errors of actix are replaced by problem+json here.

pub mod admin;
pub mod auth;
pub mod checkins;
pub mod connections;
pub mod devices;
pub mod extract;
pub mod me;
pub mod nearby;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod privacy;

use crate::error::ApiError;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route.
pub fn config(cfg: &mut web::ServiceConfig) {
    ops::config(cfg);
    auth::config(cfg);
    me::config(cfg);
    admin::config(cfg);
    connections::config(cfg);
    privacy::config(cfg);
    checkins::config(cfg);
    nearby::config(cfg);
    devices::config(cfg);
    notifications::config(cfg);
}

/// Fallback: 405 with `Allow` for a known path and another method, else 404 problem+json.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match openapi::allowed_methods(req.path()) {
        Some(methods) if !methods.is_empty() => Err(ApiError::MethodNotAllowed(methods.join(", "))),
        _ => Err(ApiError::NotFound),
    }
}

/// JSON bodies: size limit (413), unparseable (400), wrong content type (415).
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req: &HttpRequest| {
            match &err {
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                    ApiError::PayloadTooLarge
                }
                JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
                JsonPayloadError::Deserialize(e) => {
                    ApiError::BadRequest(format!("invalid JSON body: {}", json_error_text(e)))
                }
                JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => ApiError::PayloadTooLarge,
                other => ApiError::BadRequest(format!("cannot read the body: {other}")),
            }
            .into()
        })
}

/// Describes a serde_json error without echoing the body.
fn json_error_text(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    // serde's messages name the field and the expected type; cap their length anyway.
    msg.chars().take(200).collect()
}

/// Query strings that cannot be parsed: 400.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err: QueryPayloadError, _req| {
        let text: String = err.to_string().chars().take(200).collect();
        ApiError::BadRequest(format!("invalid query string: {text}")).into()
    })
}

/// Path segments that do not parse (an id that is not a UUID): no such resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, req| {
        // `/v1/connections/requests` with DELETE lands on `/v1/connections/{user_id}`: a known
        // path with another method is a 405, anything else no such resource
        match openapi::allowed_methods(req.path()) {
            Some(m) if !m.contains(&req.method().as_str()) => ApiError::MethodNotAllowed(m.join(", ")).into(),
            _ => ApiError::NotFound.into(),
        }
    })
}

/// Validates a list's `limit` (422 outside [1, 500], default 50) and decodes its `cursor` (400
/// when it is not one; an empty one means the first page).
pub fn page_params(
    limit: Option<i64>,
    cursor: Option<&str>,
) -> Result<(i64, Option<crate::store::paging::Cursor>), ApiError> {
    let limit = limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::field("limit", "must be between 1 and 500"));
    }
    let cursor = match cursor {
        None | Some("") => None,
        Some(c) => {
            Some(crate::store::paging::Cursor::decode(c).ok_or_else(|| ApiError::BadRequest("invalid cursor".into()))?)
        }
    };
    Ok((limit, cursor))
}
