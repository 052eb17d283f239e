//! Hereabouts: the backend of a proximity-aware app — which of my connections are near me now.
//!
//! Layers, each importing only those to its left (and the leaves):
//! `domain ← store ← service ← {push, jobs} ← http ← startup ← main`.
//!
//! - [`domain`] — pure logic without I/O: values parsed at the edge (`Email`, `Coord`,
//!   `Precision`), precision snapping, the H3 cover, the nearby filter and plan choice, zones.
//! - [`store`] — PostgreSQL repositories and the Redis index, every call bounded in time; the
//!   only layer that runs SQL or knows Redis keys.
//! - [`service`] — use cases over both stores and their context ([`service::Ctx`]) and error
//!   ([`service::ServiceError`] with a stable [`service::Code`]); credentials; the one nearby
//!   planner, and what it would list of a few named users (the live radar's incremental reads);
//!   check-ins and changes of who sees whom announced on a channel ([`service::events`]); the
//!   live radar's streams and their fan-out by Redis pub/sub, which tells each stream it wakes
//!   the users to read ([`service::stream`], [`service::radar`]).
//! - [`push`] — arrival detection (listening on that channel), the delivery worker, providers
//!   (APNs, FCM, webhook, Web Push, and a development log).
//! - [`jobs`] — periodic jobs of the server process (controls, index watchdog, the index's
//!   reconciliation and slot-range markers, purge, resuming re-publishing passes).
//! - [`http`] — the only layer that knows actix: app factory, request guard, handlers (parse,
//!   call, respond), the problem+json error, the OpenAPI document.
//! - [`startup`] — the composition root: wires the layers, one shutdown token for all tasks.
//! - Leaves that import nothing of ours: [`config`] (defaults < TOML file < `HEREABOUTS_*`
//!   environment), [`metrics`] (typed Prometheus families), [`telemetry`] (tracing).
//! - `main.rs` — the CLI (`serve`, `worker`, `migrate`, `reconcile`, `admin …`, `openapi`,
//!   `healthcheck`).
//!   The load tool is the workspace crate `loadgen/`.

pub mod config;
pub mod domain;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod push;
pub mod service;
pub mod startup;
pub mod store;
pub mod telemetry;
