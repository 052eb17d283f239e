//! Storage: PostgreSQL repositories (the system of record) and the Redis index, behind small
//! typed APIs. Only this layer runs SQL or knows Redis keys and commands.
//!
//! Every call here is bounded in time; a store that does not answer becomes
//! [`StoreError::Unavailable`], which the HTTP layer turns into a 503.

pub mod admin;
pub mod audit;
pub mod conference;
pub mod cooldown;
pub mod devices;
pub mod graph;
pub mod index;
pub mod jobs;
pub mod live;
pub mod outbox;
pub mod paging;
pub mod policy;
pub mod privacy;
pub mod radar;
pub mod ratelimit;
pub mod reconcile;
pub mod redis;
pub mod sessions;
pub mod shares;
pub mod streams;
pub mod trips;
pub mod users;

/// The embedded migrations of `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

use std::time::Duration;

/// Failure of a store call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store did not answer (down, timed out, connection refused).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected answer.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// Result of a store call.
pub type StoreResult<T> = Result<T, StoreError>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(format!("postgres: {e}"))
            }
            E::Database(db) => match db.code().as_deref() {
                // query_canceled (statement_timeout), lock_not_available (lock_timeout), admin/crash
                // shutdown, cannot connect now, too many connections, read-only during failover
                Some(
                    "57014" | "55P03" | "57P01" | "57P02" | "57P03" | "53300" | "25006" | "08000" | "08003" | "08006",
                ) => StoreError::Unavailable(format!("postgres: {e}")),
                _ => StoreError::Internal(e.into()),
            },
            E::Protocol(_) => StoreError::Unavailable(format!("postgres: {e}")),
            _ => StoreError::Internal(e.into()),
        }
    }
}

impl From<::redis::RedisError> for StoreError {
    fn from(e: ::redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.is_unrecoverable_error()
            || matches!(
                e.kind(),
                ::redis::ErrorKind::ClusterDown
                    | ::redis::ErrorKind::MasterDown
                    | ::redis::ErrorKind::TryAgain
                    | ::redis::ErrorKind::BusyLoadingError
                    // a redirection the client did not follow, during a failover
                    | ::redis::ErrorKind::Moved
                    | ::redis::ErrorKind::Ask
                    | ::redis::ErrorKind::ClusterConnectionNotFound
            )
        {
            StoreError::Unavailable(format!("redis: {e}"))
        } else {
            StoreError::Internal(e.into())
        }
    }
}

/// Answers a trivial query within the store timeout (readiness).
pub async fn ping_postgres(db: &sqlx::PgPool, limit: Duration) -> StoreResult<()> {
    bounded(limit, "postgres", sqlx::query("SELECT 1").execute(db)).await?;
    Ok(())
}

/// Runs a store future with a deadline; past it the store is considered unavailable.
pub async fn bounded<T, E, F>(limit: Duration, what: &str, fut: F) -> StoreResult<T>
where
    F: std::future::Future<Output = Result<T, E>>,
    E: Into<StoreError>,
{
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(StoreError::Unavailable(format!(
            "{what}: no answer within {} ms",
            limit.as_millis()
        ))),
    }
}
