//! The composition root: builds the service context, wires arrival detection to the check-ins
//! it announces, binds the HTTP server, and runs it with the push worker and the background
//! jobs under one shutdown token (SIGTERM/SIGINT, or the caller's), waiting for every task.

use crate::config::Settings;
use crate::http::{self, Inflight};
use crate::service::{self, Ctx, events};
use anyhow::Context;
use std::net::TcpListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A bound server with its tasks started, not yet awaited.
pub struct Application {
    port: u16,
    metrics_port: Option<u16>,
    server: actix_web::dev::Server,
    ctx: Ctx,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Application {
    /// Binds the listener (port 0 picks a free one), migrates if configured, starts the tasks.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(Ctx::new(settings)?, CancellationToken::new()).await
    }

    /// As [`Application::build`], with a context made by the caller and a token the caller may
    /// cancel to stop the server (SIGTERM and SIGINT cancel it too).
    pub async fn build_with(ctx: Ctx, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let s = ctx.settings.clone();
        if s.migrate_on_start {
            service::migrate(&ctx.db).await?;
        }
        ctx.load_controls().await;
        let tasks = TaskTracker::new();
        let (checkins, announced) = events::Checkins::channel();
        let (checkins, moved) = checkins.with_radar();
        let (ingest, queued) = service::ingest::Ingest::channel();
        let (hub, subscriptions) = service::radar::Hub::new(ctx.redis.clone());
        let ctx = ctx.with_checkins(checkins).with_ingest(ingest).with_radar(hub.clone());
        tasks.spawn(crate::push::detect::run(ctx.clone(), announced, shutdown.clone()));
        // the live radar: changes published after commit, this instance's streams subscribed
        tasks.spawn(service::radar::publish(ctx.clone(), moved, shutdown.clone()));
        tasks.spawn(service::radar::listen(
            ctx.clone(),
            hub,
            subscriptions,
            shutdown.clone(),
        ));
        tasks.spawn(service::ingest::run(ctx.clone(), queued, shutdown.clone()));
        crate::jobs::spawn_all(&ctx, &tasks, &shutdown);
        if s.push.worker_enabled {
            tasks.spawn(crate::push::run_worker(ctx.clone(), shutdown.clone()));
        }
        tasks.spawn(cancel_on_signal(shutdown.clone()));

        let listener = TcpListener::bind(&s.listen).with_context(|| format!("cannot listen on {}", s.listen))?;
        let port = listener.local_addr()?.port();
        let app_ctx = ctx.clone();
        let inflight = Inflight::new(s.max_concurrent_requests);
        let server = actix_web::HttpServer::new(move || http::create_app(app_ctx.clone(), inflight.clone()))
            .listen(listener)?
            .workers(s.workers)
            // actix counts connections per worker; the setting caps the whole instance
            .max_connections(s.max_connections.div_ceil(s.workers.max(1)))
            .client_request_timeout(Duration::from_secs(5))
            .client_disconnect_timeout(Duration::from_secs(1))
            .shutdown_timeout(s.shutdown_grace.as_secs())
            .disable_signals()
            .run();
        let handle = server.handle();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            stop.cancelled().await;
            // in-flight requests finish within the grace period
            handle.stop(true).await;
        });
        let metrics_port = match &s.metrics_listen {
            Some(addr) => Some(serve_metrics(&ctx, addr, &tasks, &shutdown)?),
            None => None,
        };
        tasks.close();
        Ok(Self {
            port,
            metrics_port,
            server,
            ctx,
            shutdown,
            tasks,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when there is one.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// The service context (tests reach the stores through it).
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// The token that stops the server and its tasks.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until the token is cancelled (SIGTERM/SIGINT), letting in-flight requests finish
    /// within the grace period, then waits for the worker, the jobs and the detections.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let r = self.server.await;
        self.shutdown.cancel();
        let grace = self.ctx.settings.shutdown_grace + Duration::from_secs(5);
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!("background tasks did not stop within the grace period");
        }
        r
    }
}

/// Serves `/metrics` on its own listener (a private address: it is not part of the API) until
/// `shutdown`; the bound port.
fn serve_metrics(ctx: &Ctx, addr: &str, tasks: &TaskTracker, shutdown: &CancellationToken) -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind(addr).with_context(|| format!("HEREABOUTS_METRICS_LISTEN: cannot listen on {addr}"))?;
    let port = listener.local_addr()?.port();
    let ctx = ctx.clone();
    let server = actix_web::HttpServer::new(move || http::ops::metrics_app(ctx.clone()))
        .listen(listener)?
        .workers(1)
        .disable_signals()
        .run();
    let handle = server.handle();
    let stop = shutdown.clone();
    tasks.spawn(async move {
        stop.cancelled().await;
        handle.stop(true).await;
    });
    tasks.spawn(async move {
        if let Err(e) = server.await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(port)
}

/// Cancels `shutdown` on SIGTERM or SIGINT (or returns when it is cancelled otherwise).
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    tokio::select! {
        () = signal() => shutdown.cancel(),
        () = shutdown.cancelled() => {}
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
