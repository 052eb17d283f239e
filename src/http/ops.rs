//! Operations: liveness, readiness, the OpenAPI document; and the metrics, served on their own
//! listener ([`metrics_app`]), never on the API's.

use super::error::ApiResult;
use crate::service::{Ctx, ServiceError};
use actix_web::{HttpResponse, get, web};
use serde::Serialize;
use utoipa::ToSchema;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(openapi_yaml)
        .service(openapi_json)
        .service(docs);
}

/// Readiness of each store.
#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ok")]
    pub postgres: &'static str,
    #[schema(example = "ok")]
    pub redis: &'static str,
}

/// Liveness.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// 200 while the process runs.
#[utoipa::path(tag = "operations", responses((status = 200, description = "the process is running", body = Health)))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// 200 when PostgreSQL and Redis both answer in time, 503 otherwise.
#[utoipa::path(tag = "operations", responses(
    (status = 200, description = "both stores answer", body = Ready),
    (status = 503, description = "a store is down", body = crate::http::error::Problem, content_type = "application/problem+json"),
))]
#[get("/readyz")]
pub async fn readyz(ctx: web::Data<Ctx>) -> ApiResult<HttpResponse> {
    let (pg, redis) = crate::service::readiness(&ctx).await;
    match (&pg, &redis) {
        (Ok(_), Ok(())) => Ok(HttpResponse::Ok().json(Ready {
            postgres: "ok",
            redis: "ok",
        })),
        _ => {
            let mut down = vec![];
            if pg.is_err() {
                down.push("postgres");
            }
            if redis.is_err() {
                down.push("redis");
            }
            Err(ServiceError::Unavailable(format!("{}: not answering", down.join(" and "))).into())
        }
    }
}

/// The metrics listener's app: `GET /metrics` (OpenMetrics text), 404 for anything else.
pub fn metrics_app(
    ctx: Ctx,
) -> actix_web::App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    actix_web::App::new()
        .app_data(web::Data::new(ctx))
        .service(metrics)
        .default_service(web::to(HttpResponse::NotFound))
}

/// OpenMetrics text exposition (what prometheus-client renders).
#[get("/metrics")]
async fn metrics(ctx: web::Data<Ctx>) -> HttpResponse {
    crate::service::refresh_gauges(&ctx).await;
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(ctx.metrics.render())
}

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(tag = "operations", responses((status = 200, description = "the OpenAPI document", body = String, content_type = "application/yaml")))]
#[get("/openapi.yaml")]
pub async fn openapi_yaml() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/yaml")
        .body(super::openapi::OPENAPI_YAML)
}

/// The OpenAPI document as JSON (what `/docs` renders).
#[utoipa::path(tag = "operations", responses((status = 200, description = "the OpenAPI document", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(super::openapi::document())
}

/// A human-readable page of the API that works offline (no CDN; everything is embedded).
#[utoipa::path(tag = "operations", responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "content-security-policy",
            "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'",
        ))
        .body(include_str!("docs.html"))
}
