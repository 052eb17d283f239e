//! Building and running the server: shared state, the one app factory used by the binary and the
//! tests, the request guard (panic catcher, deadline, concurrency cap, metrics, request id), and
//! graceful shutdown.

use crate::api;
use crate::auth::{Passwords, TokenKeys};
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::service::controls::ControlsCache;
use crate::store::redis::Redis;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use anyhow::Context;
use futures_util::FutureExt;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::Semaphore;
use tracing_actix_web::{RequestId, TracingLogger};

/// Everything a handler needs, cheap to clone; no global statics.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub redis: Redis,
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Passwords,
    pub controls: ControlsCache,
    inflight: Arc<Semaphore>,
}

impl AppState {
    /// Connects lazily to both stores (the server starts even while they are down).
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let db = pg_pool(&settings)?;
        let redis = Redis::new(
            settings.redis_urls.clone(),
            settings.redis_prefix.clone(),
            settings.store_timeout,
        );
        let tokens = Arc::new(TokenKeys::from_settings(&settings)?);
        let passwords = Passwords::new(settings.argon2_memory_kib, settings.argon2_iterations)?;
        Ok(Self {
            tokens,
            passwords,
            controls: ControlsCache::default(),
            inflight: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            settings: Arc::new(settings),
            db,
            redis,
            metrics: Arc::new(Metrics::default()),
        })
    }
}

/// A lazily connecting pool whose every statement is bounded by the store timeout.
pub fn pg_pool(settings: &Settings) -> anyhow::Result<PgPool> {
    let timeout_ms = settings.store_timeout.as_millis().to_string();
    let opts = PgConnectOptions::from_str(settings.database_url())
        .context("HEREABOUTS_DATABASE_URL is not a valid PostgreSQL URL")?
        .application_name("hereabouts")
        .options([
            ("statement_timeout", timeout_ms.as_str()),
            ("lock_timeout", timeout_ms.as_str()),
        ]);
    Ok(PgPoolOptions::new()
        .max_connections(settings.db_max_connections)
        .min_connections(0)
        .acquire_timeout(settings.store_timeout)
        .connect_lazy_with(opts))
}

/// Applies pending migrations.
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    crate::store::MIGRATOR.run(db).await.context("applying migrations")?;
    Ok(())
}

/// Wires the actix `App`: state, extractor error handlers, middleware, routes, 404 fallback.
pub fn create_app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let limit = state.settings.max_body_bytes;
    App::new()
        .app_data(web::Data::new(state))
        .app_data(api::json_config(limit))
        .app_data(api::query_config())
        .app_data(api::path_config())
        .app_data(web::PayloadConfig::new(limit))
        .wrap(from_fn(guard))
        .wrap(TracingLogger::default())
        .configure(api::config)
        .default_service(web::to(api::not_found))
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
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let method = req.method().to_string();
    let start = Instant::now();
    let record = |route: &str, status: u16| {
        let status = status.to_string();
        let l = [
            ("route", route),
            ("method", method.as_str()),
            ("status", status.as_str()),
        ];
        state.metrics.count(
            "http_requests_total",
            "HTTP requests by route, method and status",
            &l,
            1.0,
        );
        state.metrics.observe(
            "http_request_duration_seconds",
            "HTTP request latency by route, method and status",
            &l,
            start.elapsed().as_secs_f64(),
        );
    };
    let Ok(_permit) = state.inflight.clone().try_acquire_owned() else {
        record("unmatched", 503);
        return Err(ApiError::Unavailable("concurrent request cap reached".into()).into());
    };
    let fut = AssertUnwindSafe(next.call(req)).catch_unwind();
    let failure = match tokio::time::timeout(state.settings.request_timeout, fut).await {
        Ok(Ok(Ok(res))) => {
            let mut res = res.map_into_boxed_body();
            let http_req = res.request().clone();
            if let Some(id) = http_req.extensions().get::<RequestId>().copied()
                && let Ok(v) = HeaderValue::from_str(&id.to_string())
            {
                res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
            }
            let route = http_req.match_pattern().unwrap_or_else(|| "unmatched".into());
            record(&route, res.status().as_u16());
            return Ok(res);
        }
        Ok(Ok(Err(e))) => e,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::Internal(anyhow::anyhow!("handler panicked: {msg}")).into()
        }
        Err(_) => ApiError::Unavailable("request deadline passed".into()).into(),
    };
    record("unmatched", failure.as_response_error().status_code().as_u16());
    Err(failure)
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), migrates if configured, starts background jobs.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let state = AppState::new(settings)?;
        Self::build_with_state(state).await
    }

    /// As [`Application::build`], with state made by the caller.
    pub async fn build_with_state(state: AppState) -> anyhow::Result<Self> {
        let s = state.settings.clone();
        if s.migrate_on_start {
            migrate(&state.db).await?;
        }
        if let Err(e) = state.controls.reload(&state.db).await {
            tracing::warn!(error = %e, "policy not loaded yet; defaults apply until PostgreSQL answers");
        }
        let listener = TcpListener::bind(&s.listen).with_context(|| format!("cannot listen on {}", s.listen))?;
        let port = listener.local_addr()?.port();
        let background = crate::jobs::spawn_all(&state);
        let app_state = state.clone();
        let server = HttpServer::new(move || create_app(app_state.clone()))
            .listen(listener)?
            .workers(s.workers)
            // actix counts connections per worker; the setting caps the whole instance
            .max_connections(s.max_connections.div_ceil(s.workers.max(1)))
            .client_request_timeout(std::time::Duration::from_secs(5))
            .client_disconnect_timeout(std::time::Duration::from_secs(1))
            .shutdown_timeout(s.shutdown_grace.as_secs())
            .run();
        Ok(Self {
            port,
            server,
            state,
            background,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state (tests reach the stores through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGTERM/SIGINT, letting in-flight requests finish within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let r = self.server.await;
        for task in self.background {
            task.abort();
        }
        r
    }
}
