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
        .service(docs)
        .service(docs_asset);
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
pub async fn openapi_json() -> ApiResult<HttpResponse> {
    let json = super::openapi::render_json().map_err(ServiceError::internal)?;
    Ok(HttpResponse::Ok().content_type("application/json").body(json))
}

/// The files of `/docs` (`apidocs/public/`: our page and the pinned Swagger UI), embedded at
/// compile time like the console's.
#[derive(rust_embed::RustEmbed)]
#[folder = "apidocs/public/"]
struct DocsAssets;

/// What `/docs` may load: its own files and this server's API, nothing from elsewhere (Swagger
/// UI sets inline styles, hence `'unsafe-inline'` for styles only).
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The API reference (Swagger UI over `/openapi.json`): every operation with its schemas and
/// examples, the error codes, "Try it out" and a bearer-token field (Authorize). Works offline.
#[utoipa::path(tag = "operations", responses((status = 200, description = "HTML page", body = String, content_type = "text/html")))]
#[get("/docs")]
pub async fn docs() -> HttpResponse {
    docs_file("index.html")
}

/// The files of the reference page under `/docs/`.
#[get("/docs/{path:.+}")]
pub async fn docs_asset(path: web::Path<String>) -> HttpResponse {
    docs_file(&path.into_inner())
}

fn docs_file(path: &str) -> HttpResponse {
    let file = (!path.split('/').any(|s| s.is_empty() || s.starts_with('.')))
        .then(|| DocsAssets::get(path))
        .flatten();
    let Some(file) = file else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n");
    };
    let kind = match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        _ => "text/plain; charset=utf-8",
    };
    // vendored files sit in versioned folders: a new version is a new URL
    let cache = if path.starts_with("vendor/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    HttpResponse::Ok()
        .content_type(kind)
        .insert_header(("content-security-policy", DOCS_CSP))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", cache))
        .body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_embedded_files() {
        let page = String::from_utf8(DocsAssets::get("index.html").expect("page").data.into_owned()).expect("utf-8");
        let mut refs = 0;
        for part in page.split(['"', '\'']).filter(|p| p.starts_with("/docs/")) {
            refs += 1;
            let name = part.trim_start_matches("/docs/");
            assert!(DocsAssets::get(name).is_some(), "{name} is referenced but not embedded");
        }
        assert!(refs >= 3, "the page loads its script, styles and Swagger UI");
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no file from elsewhere"
        );
    }
}
