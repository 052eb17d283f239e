//! Use cases, one module per resource, over both stores (PostgreSQL first, then the Redis index).
//! Called by the HTTP handlers, the push worker, background jobs and the CLI; they know nothing
//! of HTTP: they take domain values and answer records or a [`ServiceError`].
//!
//! [`Ctx`] is what every use case gets: settings, both stores, metrics, credentials, the
//! operator's controls, and [`events::Checkins`] through which check-ins reach whoever listens
//! (arrival detection), wired by the composition root.

pub mod accounts;
pub mod admin;
pub mod auth;
pub mod conference;
pub mod connections;
pub mod controls;
pub mod devices;
pub mod error;
pub mod events;
pub mod ingest;
pub mod live;
pub mod nearby;
pub mod net;
pub mod notifications;
pub mod privacy;
pub mod profiles;
pub mod radar;
pub mod reconcile;
pub mod sessions;
pub mod shares;
pub mod stream;
pub mod trips;

pub use error::{Code, ServiceError, ServiceResult};

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::store::redis::Redis;
use crate::store::{StoreResult, cooldown, graph, ratelimit, users};
use anyhow::Context;
use auth::{Passwords, TokenKeys};
use controls::ControlsCache;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// The context of every use case, cheap to clone; no global statics.
#[derive(Clone)]
pub struct Ctx {
    pub settings: Arc<Settings>,
    pub db: PgPool,
    pub redis: Redis,
    pub metrics: Arc<Metrics>,
    pub tokens: Arc<TokenKeys>,
    pub passwords: Passwords,
    pub controls: ControlsCache,
    /// Where accepted check-ins are announced (arrival detection listens).
    pub checkins: events::Checkins,
    /// The batched check-in pipeline (without one, check-ins are written one by one).
    pub ingest: ingest::Ingest,
    /// Ended sessions and suspended accounts, as this instance knows them.
    pub sessions: sessions::Sessions,
    /// The VAPID key pair of Web Push (configured, or derived for development).
    pub vapid: Arc<crate::domain::webpush::Vapid>,
    /// This instance's live-radar streams and their subscriptions (none: streams poll).
    pub radar: Option<Arc<radar::Hub>>,
}

/// The configured VAPID key, or a development key derived (HKDF-SHA256) from the token signing
/// settings, which every process of a deployment shares: a separate `hereabouts worker` signs
/// with the key the API hands out, and subscriptions survive restarts; rotating the token keys
/// rotates it (said in the log: set the key in production).
fn vapid_key(settings: &Settings) -> anyhow::Result<crate::domain::webpush::Vapid> {
    use crate::domain::webpush::Vapid;
    use secrecy::ExposeSecret;
    if let Some(text) = &settings.push.webpush_vapid_key {
        return Vapid::parse(text.expose_secret()).context(
            "HEREABOUTS_WEBPUSH_VAPID_PRIVATE_KEY_FILE: not a P-256 private key (PEM, or base64url of 32 bytes)",
        );
    }
    let mut material = settings.jwt_secret.expose_secret().as_bytes().to_vec();
    if let Some(pem) = &settings.jwt_private_key_pem {
        material.extend_from_slice(pem.expose_secret().as_bytes());
    }
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"hereabouts web push"), &material);
    // all but a 2^-128 share of 32-byte strings are valid scalars: the first counter does
    for counter in 0..=u8::MAX {
        let mut secret = [0u8; 32];
        hk.expand(
            &[b"development VAPID key ".as_slice(), &[counter]].concat(),
            &mut secret,
        )
        .map_err(|e| anyhow::anyhow!("VAPID key derivation: {e}"))?;
        if let Some(v) = Vapid::from_bytes(&secret) {
            tracing::info!(
                public_key = v.public_key(),
                "no HEREABOUTS_WEBPUSH_VAPID_PRIVATE_KEY_FILE: using a development VAPID key derived from the token settings"
            );
            return Ok(v);
        }
    }
    anyhow::bail!("VAPID key derivation found no valid P-256 scalar")
}

impl Ctx {
    /// Connects lazily to both stores (the server starts even while they are down). Check-ins
    /// are announced to nobody until [`Ctx::with_checkins`] wires a listener.
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let db = pg_pool(
            settings.database_url(),
            settings.store_timeout,
            settings.db_max_connections,
        )?;
        let redis = Redis::new(
            settings.redis_urls.clone(),
            settings.redis_prefix.clone(),
            settings.store_timeout,
        );
        let tokens = Arc::new(TokenKeys::from_settings(&settings)?);
        let passwords = Passwords::new(settings.argon2_memory_kib, settings.argon2_iterations)?;
        let vapid = Arc::new(vapid_key(&settings)?);
        Ok(Self {
            vapid,
            radar: None,
            tokens,
            passwords,
            controls: ControlsCache::default(),
            settings: Arc::new(settings),
            db,
            redis,
            metrics: Arc::new(Metrics::new()),
            checkins: events::Checkins::none(),
            ingest: ingest::Ingest::none(),
            sessions: sessions::Sessions::default(),
        })
    }

    /// The same context announcing check-ins to `checkins`.
    pub fn with_checkins(mut self, checkins: events::Checkins) -> Self {
        self.checkins = checkins;
        self
    }

    /// The same context with the live radar's hub (its listener and publisher are the
    /// composition root's to run).
    pub fn with_radar(mut self, hub: Arc<radar::Hub>) -> Self {
        self.radar = Some(hub);
        self
    }

    /// The same context writing check-ins through the pipeline `ingest`.
    pub fn with_ingest(mut self, ingest: ingest::Ingest) -> Self {
        self.ingest = ingest;
        self
    }

    /// Loads the policy and zones; a failure is logged and defaults apply until PostgreSQL answers.
    pub async fn load_controls(&self) {
        if let Err(e) = self.controls.reload(&self.db).await {
            tracing::warn!(error = %e, "policy not loaded yet; defaults apply until PostgreSQL answers");
        }
    }

    /// When the access tokens of a session ended now would have expired anyway (with the leeway
    /// verification allows): how long the session's end must be remembered.
    pub fn tokens_of_ended_sessions_expire(&self) -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc() + time::Duration::seconds(self.tokens.ttl_s() as i64 + 60)
    }

    /// Counts a hit against a rate-limit bucket; 429 past `per_min` a minute.
    pub async fn rate_limit(&self, bucket: &str, per_min: u32) -> ServiceResult<()> {
        ratelimit::hit(&self.redis, bucket, per_min, 60)
            .await?
            .map_err(|retry_after_s| ServiceError::RateLimited { retry_after_s })
    }
}

/// A lazily connecting pool whose every statement is bounded by the store timeout.
pub fn pg_pool(url: &str, timeout: Duration, max_connections: u32) -> anyhow::Result<PgPool> {
    let timeout_ms = timeout.as_millis().to_string();
    let opts = PgConnectOptions::from_str(url)
        .context("HEREABOUTS_DATABASE_URL is not a valid PostgreSQL URL")?
        .application_name("hereabouts")
        .options([
            ("statement_timeout", timeout_ms.as_str()),
            ("lock_timeout", timeout_ms.as_str()),
        ]);
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(timeout)
        // every statement is bounded anyway; a ping per checkout cost 8 % of a check-in
        .test_before_acquire(false)
        .connect_lazy_with(opts))
}

/// Applies pending migrations.
/// Applies pending migrations, on a connection of their own: a migration may take longer than
/// the statement timeout that bounds requests (a busy machine, a large table), and waits for
/// locks up to a minute.
pub async fn migrate(db: &PgPool) -> anyhow::Result<()> {
    use sqlx::Connection;
    let opts = (*db.connect_options())
        .clone()
        .options([("statement_timeout", "0"), ("lock_timeout", "60000")]);
    let mut conn = sqlx::PgConnection::connect_with(&opts)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    crate::store::MIGRATOR
        .run(&mut conn)
        .await
        .context("applying migrations")?;
    conn.close().await.ok();
    Ok(())
}

/// Whether each store answers in time: (PostgreSQL, Redis).
pub async fn readiness(ctx: &Ctx) -> (StoreResult<()>, StoreResult<()>) {
    futures_util::join!(
        crate::store::ping_postgres(&ctx.db, ctx.settings.store_timeout),
        ctx.redis.ping()
    )
}

/// Sets the gauges that describe the stores, just before a scrape renders the metrics.
pub async fn refresh_gauges(ctx: &Ctx) {
    let m = &ctx.metrics;
    let pool = &ctx.db;
    m.db_pool
        .get_or_create(&crate::metrics::PoolLabels { state: "open" })
        .set(i64::from(pool.size()));
    m.db_pool
        .get_or_create(&crate::metrics::PoolLabels { state: "idle" })
        .set(pool.num_idle() as i64);
    m.request_capacity.set(ctx.settings.max_concurrent_requests as i64);
    if let Ok((depth, age)) = crate::store::outbox::stats(&ctx.db).await {
        m.push_queue_depth.set(depth);
        m.push_oldest_pending.set(age);
    }
}

/// Refreshes what the index holds about a user after their profile changed (display name).
pub async fn profile_changed(ctx: &Ctx, user: Uuid) -> StoreResult<()> {
    live::sync_user(ctx, user).await
}

/// Erases a user and everything about them from both stores; the pseudonym that audit entries
/// about them now carry, or `None` when there was no such user.
///
/// Erasure wins every race with the user's own requests: the user's privacy row is locked as a
/// check-in batch locks it, so a batch holding it has written the index before erasure takes it
/// out, and a later batch finds no user (401); the sessions end on every instance; the Redis
/// keys a request already past those checks could still write are swept again after the
/// longest a request may take.
pub async fn erase_user(ctx: &Ctx, user: Uuid) -> StoreResult<Option<String>> {
    // other users' rows first (their hidden lists), so that the lock order never inverts
    for hider in crate::store::privacy::forget_hidden(&ctx.db, user).await? {
        live::sync_user(ctx, hider).await?;
    }
    // the exact shares they gave or received, and their Redis set
    crate::store::shares::forget_user(&ctx.db, &ctx.redis, user).await?;
    let until = ctx.tokens_of_ended_sessions_expire();
    let mut tx = ctx.db.begin().await?;
    // privacy row, then user row: the order a check-in batch takes them in (its live row's
    // foreign key locks the user row)
    crate::store::privacy::get_for_update(&mut tx, user).await?;
    let Some(account) = users::by_id_for_update(&mut tx, user).await? else {
        return Ok(None);
    };
    let gone = crate::store::live::delete(&mut *tx, user).await?;
    crate::store::index::remove(
        &ctx.redis,
        user,
        gone.as_ref().filter(|r| r.indexed).map(live::published_of),
    )
    .await?;
    let ended = crate::store::sessions::end_all_of(&mut tx, user, None, until).await?;
    graph::forget_user(&ctx.db, &ctx.redis, user).await?;
    let pseudonym = format!("erased-{}", Uuid::new_v4());
    crate::store::audit::forget(&mut tx, user, Some(&account.email), &pseudonym).await?;
    users::delete(&mut *tx, user).await?;
    tx.commit().await?;
    ctx.sessions.ended(&ended, until);
    // after the user row is gone: an arrival detection still in flight cannot write its outbox
    // rows any more and gives its cooldown keys back, so nothing is left behind
    sweep_erased(ctx, user).await?;
    let (later, wait) = (ctx.clone(), ctx.settings.request_timeout + Duration::from_secs(1));
    tokio::spawn(async move {
        tokio::time::sleep(wait).await;
        if let Err(e) = sweep_erased(&later, user).await {
            tracing::warn!(error = %e, "second sweep after an erasure failed; the keys expire by themselves");
        }
    });
    Ok(Some(pseudonym))
}

/// The Redis keys a request of an erased user may still have written: the index entry, rate
/// limit buckets, cooldowns, adjacency.
async fn sweep_erased(ctx: &Ctx, user: Uuid) -> StoreResult<()> {
    crate::store::index::remove(&ctx.redis, user, None).await?;
    ratelimit::forget_user(&ctx.redis, user).await?;
    cooldown::forget_user(&ctx.redis, user).await?;
    crate::store::streams::forget_user(&ctx.redis, user).await?;
    crate::store::shares::forget_user(&ctx.db, &ctx.redis, user).await?;
    graph::forget_user(&ctx.db, &ctx.redis, user).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(secret: &str) -> Settings {
        let env = [
            ("HEREABOUTS_DATABASE_URL", "postgres://x@127.0.0.1/db"),
            ("HEREABOUTS_JWT_SECRET", secret),
        ];
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_sources(&env).expect("valid settings")
    }

    #[test]
    fn the_development_vapid_key_is_shared_by_processes_of_one_deployment_only() {
        let a = vapid_key(&settings("0123456789abcdef0123456789abcdef")).expect("key");
        let again = vapid_key(&settings("0123456789abcdef0123456789abcdef")).expect("key");
        let other = vapid_key(&settings("fedcba9876543210fedcba9876543210")).expect("key");
        assert_eq!(a.public_key(), again.public_key(), "a worker signs with the API's key");
        assert_ne!(a.public_key(), other.public_key(), "another deployment's key differs");
    }
}
