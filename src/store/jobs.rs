//! Durable jobs in PostgreSQL: `republish_jobs`, one row per pass over every live user, with
//! its keyset cursor, its counts and a lease, so that a pass cut short (crash, deadline) is
//! resumed where it stopped by whichever instance comes next.

use super::StoreResult;
use sqlx::{PgExecutor, PgPool};
use std::time::Duration;
use uuid::Uuid;

/// A job as a runner holds it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Job {
    pub id: Uuid,
    pub after_user: Option<Uuid>,
    pub republished: i64,
    pub removed: i64,
}

/// Queues a pass (in the transaction of the change that needs it); earlier open passes are
/// superseded, since this one re-applies the controls to everyone anyway.
pub async fn enqueue<'e, E: PgExecutor<'e>>(db: E, reason: &str) -> StoreResult<Uuid> {
    let id = Uuid::now_v7();
    sqlx::query(
        "WITH old AS (UPDATE republish_jobs SET done_at = now(), updated_at = now() WHERE done_at IS NULL)
         INSERT INTO republish_jobs (id, reason) VALUES ($1, $2)",
    )
    .bind(id)
    .bind(reason)
    .execute(db)
    .await?;
    Ok(id)
}

/// Takes `id` (or, without one, the oldest open job) when nobody holds it, for `lease`.
pub async fn claim(db: &PgPool, id: Option<Uuid>, lease: Duration) -> StoreResult<Option<Job>> {
    Ok(sqlx::query_as(
        "UPDATE republish_jobs SET lease_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE id = (SELECT id FROM republish_jobs
                     WHERE done_at IS NULL AND (lease_until IS NULL OR lease_until < now())
                       AND ($1::uuid IS NULL OR id = $1)
                     ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED)
         RETURNING id, after_user, republished, removed",
    )
    .bind(id)
    .bind(lease.as_secs_f64())
    .fetch_optional(db)
    .await?)
}

/// Records progress after a page and extends the lease; false when the job was superseded.
pub async fn advance(db: &PgPool, job: &Job, lease: Duration) -> StoreResult<bool> {
    Ok(sqlx::query(
        "UPDATE republish_jobs SET after_user = $2, republished = $3, removed = $4,
             lease_until = now() + make_interval(secs => $5), updated_at = now()
         WHERE id = $1 AND done_at IS NULL",
    )
    .bind(job.id)
    .bind(job.after_user)
    .bind(job.republished)
    .bind(job.removed)
    .bind(lease.as_secs_f64())
    .execute(db)
    .await?
    .rows_affected()
        == 1)
}

/// Marks a job done.
pub async fn finish(db: &PgPool, job: &Job) -> StoreResult<()> {
    sqlx::query(
        "UPDATE republish_jobs SET done_at = now(), lease_until = NULL, republished = $2, removed = $3,
             updated_at = now() WHERE id = $1",
    )
    .bind(job.id)
    .bind(job.republished)
    .bind(job.removed)
    .execute(db)
    .await?;
    Ok(())
}

/// What a job did: (re-published, removed); `None` when no such job.
pub async fn counts(db: &PgPool, id: Uuid) -> StoreResult<Option<(i64, i64)>> {
    Ok(
        sqlx::query_as("SELECT republished, removed FROM republish_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?,
    )
}

/// True once the job is done (or superseded).
pub async fn is_done(db: &PgPool, id: Uuid) -> StoreResult<bool> {
    let done: Option<bool> = sqlx::query_scalar("SELECT done_at IS NOT NULL FROM republish_jobs WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(done.unwrap_or(true))
}
