//! Hereabouts: the backend of a proximity-aware app — which of my connections are near me now.
//!
//! Layout:
//! - `main.rs` — the CLI (`serve`, `worker`, `migrate`, `admin …`, `openapi`, `loadgen`); thin, calls into this library.
//! - [`config`] — settings: defaults < TOML file < `HEREABOUTS_*` environment.
//! - [`startup`] — shared state, the one app factory, the request guard, graceful shutdown.
//! - [`telemetry`] — tracing subscriber (JSON or human lines); [`metrics`] — Prometheus text.
//! - [`error`] — the one HTTP error type (problem+json with stable codes).
//! - [`api`] — handlers, one module per resource: parse, call, respond.
//! - [`domain`] — pure logic without I/O (validation, precision, H3 cover, nearby planner).
//! - [`auth`] — access tokens (JWT), refresh tokens, password hashing.
//! - [`service`] — use cases spanning both stores (erasure, index maintenance).
//! - [`store`] — PostgreSQL repositories and the Redis index, every call bounded in time.
//! - [`jobs`] — background jobs of the server process.
//! - [`push`] — push notifications: arrival detection, the outbox, the delivery worker, providers.
//! - [`loadgen`] — `hereabouts loadgen`: synthetic world, bulk seeding, HTTP phases, baselines, report.

pub mod api;
pub mod auth;
pub mod config;
pub mod domain;
pub mod error;
pub mod jobs;
pub mod loadgen;
pub mod metrics;
pub mod push;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
