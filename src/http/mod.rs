//! The HTTP layer, the only one that knows actix: the app factory, the request guard, and the
//! handlers, one module per resource — parse, call the service, respond. Each module exposes
//! `config(cfg)`; extractor errors of actix are replaced by problem+json here.

pub mod admin;
pub mod auth;
pub mod checkins;
pub mod connections;
pub mod console;
pub mod devices;
pub mod error;
pub mod events;
pub mod extract;
pub mod me;
pub mod nearby;
pub mod notifications;
pub mod openapi;
pub mod ops;
pub mod privacy;
pub mod profiles;
pub mod shares;
pub mod trips;

use crate::service::{Code, Ctx, ServiceError};
use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::{JsonPayloadError, PathError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::{App, HttpMessage, HttpRequest, HttpResponse, web};
use error::ApiError;
use futures_util::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tracing_actix_web::{RequestId, TracingLogger};

/// Largest request head (the sum of its header lines), as actix's own limit.
const MAX_HEAD_BYTES: usize = 128 * 1024;

/// The cap on requests in flight in this instance.
#[derive(Clone)]
pub struct Inflight(Arc<Semaphore>);

impl Inflight {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// Wires the actix `App`: the context, extractor error handlers, middleware, routes, 404 fallback.
/// The server and the tests use the same wiring.
pub fn create_app(
    ctx: Ctx,
    inflight: Inflight,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = ctx.settings.max_body_bytes;
    let origins = ctx.settings.cors_allowed_origins.clone();
    App::new()
        .app_data(web::Data::new(ctx))
        .app_data(web::Data::new(inflight))
        .app_data(json_config(limit))
        .app_data(path_config())
        .app_data(web::PayloadConfig::new(limit))
        .wrap(Condition::new(!origins.is_empty(), cors(&origins)))
        .wrap(from_fn(guard))
        .wrap(TracingLogger::default())
        .configure(config)
        .default_service(web::to(not_found))
}

/// CORS for the configured origins (`HEREABOUTS_CORS_ALLOWED_ORIGINS`): their preflights are
/// answered, their requests get `Access-Control-Allow-Origin`; other origins get no CORS headers
/// (their browsers refuse the answer) and a refused preflight. Bearer tokens, no cookies: no
/// credentials mode.
fn cors(origins: &[String]) -> Cors {
    use actix_web::http::header;
    let cors = origins.iter().fold(Cors::default(), |c, o| c.allowed_origin(o));
    cors.allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::RETRY_AFTER,
            header::LOCATION,
            header::ALLOW,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(3600)
}

/// actix-cors answers a preflight it refuses with a plain-text 400: written as problem+json.
fn is_refused_preflight(res: &ServiceResponse<BoxBody>) -> bool {
    res.request().method() == actix_web::http::Method::OPTIONS
        && res.status() == actix_web::http::StatusCode::BAD_REQUEST
        && res
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .is_none_or(|t| t.as_bytes() != b"application/problem+json")
}

/// Per-request guard: caps concurrency, applies the request deadline, turns a panic into an
/// opaque 500, adds `x-request-id`, and records the request in the metrics.
///
/// The request cannot be cloned before routing, so the failure paths answer with an error that
/// actix renders through [`ApiError`]'s problem+json.
async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let (Some(ctx), Some(inflight)) = (
        req.app_data::<web::Data<Ctx>>().cloned(),
        req.app_data::<web::Data<Inflight>>().cloned(),
    ) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let method = req.method().clone();
    let start = Instant::now();
    let record = |route: String, status: u16| {
        ctx.metrics
            .http(route, method.as_str(), status, start.elapsed().as_secs_f64());
    };
    // actix refuses a head past 128 KiB only when it arrives in pieces; a whole one read at once
    // passed: the same limit, whatever the reads
    let head: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if head > MAX_HEAD_BYTES {
        record("unmatched".into(), 431);
        return Err(ApiError::refused(Code::HeadersTooLarge, "request headers too large").into());
    }
    let Ok(_permit) = inflight.0.clone().try_acquire_owned() else {
        record("unmatched".into(), 503);
        return Err(ApiError::from(ServiceError::Unavailable("concurrent request cap reached".into())).into());
    };
    let fut = AssertUnwindSafe(next.call(req)).catch_unwind();
    let failure = match tokio::time::timeout(ctx.settings.request_timeout, fut).await {
        Ok(Ok(Ok(res))) => {
            let mut res = res.map_into_boxed_body();
            if is_refused_preflight(&res) {
                let refusal = ServiceError::bad_request_in(
                    "origin",
                    "CORS preflight refused: origin, method or headers not allowed",
                );
                res = res.into_response(actix_web::ResponseError::error_response(&ApiError::from(refusal)));
            }
            let http_req = res.request().clone();
            if let Some(id) = http_req.extensions().get::<RequestId>().copied()
                && let Ok(v) = HeaderValue::from_str(&id.to_string())
            {
                res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
            }
            let route = http_req.match_pattern().unwrap_or_else(|| "unmatched".into());
            record(route, res.status().as_u16());
            return Ok(res);
        }
        Ok(Ok(Err(e))) => e,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::from(ServiceError::Internal(anyhow::anyhow!("handler panicked: {msg}"))).into()
        }
        Err(_) => ApiError::from(ServiceError::Unavailable("request deadline passed".into())).into(),
    };
    record("unmatched".into(), failure.as_response_error().status_code().as_u16());
    Err(failure)
}

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
    console::config(cfg);
    trips::config(cfg);
    shares::config(cfg);
    profiles::config(cfg);
    events::config(cfg);
}

/// Fallback: 405 with `Allow` for a known path and another method, else 404 problem+json.
pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    match openapi::allowed_methods(req.path()) {
        Some(methods) if !methods.is_empty() => Err(ApiError::MethodNotAllowed(methods.join(", "))),
        _ => Err(ApiError::not_found()),
    }
}

/// JSON bodies: size limit (413), unparseable (400 naming the body), wrong content type (415).
/// Typing the value (fields of the wrong type, missing ones) is [`extract::Json`]'s, which
/// names the field.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .error_handler(|err, _req: &HttpRequest| {
            match &err {
                JsonPayloadError::Overflow { .. }
                | JsonPayloadError::OverflowKnownLength { .. }
                | JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => {
                    ApiError::refused(Code::PayloadTooLarge, "payload too large")
                }
                JsonPayloadError::ContentType => {
                    ApiError::refused(Code::UnsupportedMediaType, "unsupported media type")
                }
                JsonPayloadError::Deserialize(e) => {
                    ServiceError::bad_request_in("body", format!("invalid JSON: {}", json_error_text(e))).into()
                }
                other => ServiceError::bad_request_in("body", format!("cannot read the body: {other}")).into(),
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

/// Path segments that do not parse (an id that is not a UUID): no such resource.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_err: PathError, req| {
        // `/v1/connections/requests` with DELETE lands on `/v1/connections/{user_id}`: a known
        // path with another method is a 405, anything else no such resource
        match openapi::allowed_methods(req.path()) {
            Some(m) if !m.contains(&req.method().as_str()) => ApiError::MethodNotAllowed(m.join(", ")).into(),
            _ => ApiError::not_found().into(),
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
        Some(c) => Some(crate::store::paging::Cursor::decode(c).ok_or_else(|| {
            ServiceError::bad_request_in("cursor", "not a cursor of this list (use the `next_cursor` of a page)")
        })?),
    };
    Ok((limit, cursor))
}
