//! Time-boxed exact shares between two connections: the rows in PostgreSQL (the system of
//! record, one per giver and recipient) and, per recipient, a Redis sorted set of the givers
//! (score = expiry in unix seconds) that nearby reads with its first round trip, so that a
//! caller without shares costs nothing more.

use super::StoreResult;
use super::redis::Redis;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// A share as both sides list it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareRecord {
    pub id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    pub expires_at: OffsetDateTime,
    pub created_at: OffsetDateTime,
}

const COLUMNS: &str = "id, from_user_id, to_user_id, expires_at, created_at";

/// The Redis key of the givers sharing with `recipient`.
pub fn received_key(redis: &Redis, recipient: Uuid) -> String {
    redis.key(format_args!("shr:{recipient}"))
}

/// Starts (or restarts) a share from `from` to `to` until `expires_at`, if they are connected
/// and neither blocked the other; none otherwise.
pub async fn start(
    db: &PgPool,
    redis: &Redis,
    from: Uuid,
    to: Uuid,
    expires_at: OffsetDateTime,
) -> StoreResult<Option<ShareRecord>> {
    let rec: Option<ShareRecord> = sqlx::query_as(&format!(
        "INSERT INTO shares (id, from_user_id, to_user_id, expires_at)
         SELECT $1, $2, $3, $4
         WHERE EXISTS (SELECT 1 FROM connections WHERE user_id = $2 AND peer_id = $3)
           AND NOT EXISTS (SELECT 1 FROM blocks WHERE (blocker_id = $2 AND blocked_id = $3)
                                                OR (blocker_id = $3 AND blocked_id = $2))
         ON CONFLICT (from_user_id, to_user_id) DO UPDATE SET id = EXCLUDED.id, expires_at = EXCLUDED.expires_at,
             created_at = now()
         RETURNING {COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(from)
    .bind(to)
    .bind(expires_at)
    .fetch_optional(db)
    .await?;
    if let Some(r) = &rec {
        let key = received_key(redis, to);
        let cmds = vec![
            redis::cmd("ZADD")
                .arg(&key)
                .arg(r.expires_at.unix_timestamp())
                .arg(from.to_string())
                .clone(),
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(OffsetDateTime::now_utc().unix_timestamp())
                .clone(),
            // the set outlives no share in it
            redis::cmd("EXPIREAT")
                .arg(&key)
                .arg(r.expires_at.unix_timestamp() + 1)
                .arg("GT")
                .clone(),
            redis::cmd("EXPIREAT")
                .arg(&key)
                .arg(r.expires_at.unix_timestamp() + 1)
                .arg("NX")
                .clone(),
        ];
        redis.run_many(cmds).await?;
    }
    Ok(rec)
}

/// Writes every recipient's set of givers again from PostgreSQL's active shares (after Redis
/// came back empty, with the index): one query, then pipelined writes 1,000 shares at a time.
/// How many shares were written.
pub async fn rebuild_received(db: &PgPool, redis: &Redis) -> StoreResult<u64> {
    let rows: Vec<(Uuid, Uuid, OffsetDateTime)> =
        sqlx::query_as("SELECT from_user_id, to_user_id, expires_at FROM shares WHERE expires_at > now()")
            .fetch_all(db)
            .await?;
    for chunk in rows.chunks(1_000) {
        let mut cmds = Vec::with_capacity(chunk.len() * 3);
        for (from, to, until) in chunk {
            let key = received_key(redis, *to);
            let at = until.unix_timestamp();
            cmds.push(redis::cmd("ZADD").arg(&key).arg(at).arg(from.to_string()).clone());
            cmds.push(redis::cmd("EXPIREAT").arg(&key).arg(at + 1).arg("GT").clone());
            cmds.push(redis::cmd("EXPIREAT").arg(&key).arg(at + 1).arg("NX").clone());
        }
        redis.run_many(cmds).await?;
    }
    Ok(rows.len() as u64)
}

/// The givers sharing with `recipient` now, from the Redis set (a hint: nearby checks each
/// in PostgreSQL with [`exact_points`]); empty for almost everyone, at the cost of one command
/// sent alongside nearby's first read.
pub async fn received_givers(redis: &Redis, recipient: Uuid) -> StoreResult<Vec<Uuid>> {
    let members: Vec<String> = redis
        .run(
            redis::cmd("ZRANGEBYSCORE")
                .arg(received_key(redis, recipient))
                .arg(OffsetDateTime::now_utc().unix_timestamp())
                .arg("+inf"),
        )
        .await?;
    Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
}

/// Active shares given (`given`) or received by `me`, newest first.
pub async fn list(db: &PgPool, me: Uuid, given: bool) -> StoreResult<Vec<ShareRecord>> {
    let side = if given { "from_user_id" } else { "to_user_id" };
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM shares WHERE {side} = $1 AND expires_at > now() ORDER BY created_at DESC, id DESC LIMIT 500"
    ))
    .bind(me)
    .fetch_all(db)
    .await?)
}

/// Forgets the givers in each recipient's Redis set.
async fn forget(redis: &Redis, ended: &[(Uuid, Uuid)]) -> StoreResult<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let cmds = ended
        .iter()
        .map(|(from, to)| {
            redis::cmd("ZREM")
                .arg(received_key(redis, *to))
                .arg(from.to_string())
                .clone()
        })
        .collect();
    redis.run_many(cmds).await?;
    Ok(())
}

/// Ends a share that `me` gave or received; false when there is no such share for them.
pub async fn end(db: &PgPool, redis: &Redis, me: Uuid, id: Uuid) -> StoreResult<bool> {
    let ended: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "DELETE FROM shares WHERE id = $1 AND (from_user_id = $2 OR to_user_id = $2) AND expires_at > now()
         RETURNING from_user_id, to_user_id",
    )
    .bind(id)
    .bind(me)
    .fetch_all(db)
    .await?;
    forget(redis, &ended).await?;
    Ok(!ended.is_empty())
}

/// Ends every share between `a` and `b`, either way (a block, a removed connection).
pub async fn end_between(db: &PgPool, redis: &Redis, a: Uuid, b: Uuid) -> StoreResult<()> {
    let ended: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "DELETE FROM shares WHERE (from_user_id = $1 AND to_user_id = $2) OR (from_user_id = $2 AND to_user_id = $1)
         RETURNING from_user_id, to_user_id",
    )
    .bind(a)
    .bind(b)
    .fetch_all(db)
    .await?;
    forget(redis, &ended).await
}

/// Ends the shares `from` gave: all of them (`to = None`: pause, sharing off) or those to the
/// users in `to` (hidden from).
pub async fn end_given(db: &PgPool, redis: &Redis, from: Uuid, to: Option<&[Uuid]>) -> StoreResult<()> {
    let ended: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "DELETE FROM shares WHERE from_user_id = $1 AND ($2::uuid[] IS NULL OR to_user_id = ANY($2))
         RETURNING from_user_id, to_user_id",
    )
    .bind(from)
    .bind(to)
    .fetch_all(db)
    .await?;
    forget(redis, &ended).await
}

/// Erasure: every share the user gave or received, and their Redis set.
pub async fn forget_user(db: &PgPool, redis: &Redis, user: Uuid) -> StoreResult<()> {
    let ended: Vec<(Uuid, Uuid)> = sqlx::query_as(
        "DELETE FROM shares WHERE from_user_id = $1 OR to_user_id = $1 RETURNING from_user_id, to_user_id",
    )
    .bind(user)
    .fetch_all(db)
    .await?;
    forget(redis, &ended).await?;
    redis
        .run::<i64>(redis::cmd("DEL").arg(received_key(redis, user)))
        .await?;
    Ok(())
}

/// The live point itself of each giver among `givers` who shares with `recipient` right now
/// (the share active in PostgreSQL, the check-in live and indexed): (giver, lat, lng).
pub async fn exact_points(db: &PgPool, recipient: Uuid, givers: &[Uuid]) -> StoreResult<Vec<(Uuid, f64, f64)>> {
    Ok(sqlx::query_as(
        "SELECT l.user_id, l.lat, l.lng FROM shares s JOIN live_locations l ON l.user_id = s.from_user_id
         WHERE s.to_user_id = $1 AND s.from_user_id = ANY($2) AND s.expires_at > now()
           AND l.indexed AND l.expires_at > now()",
    )
    .bind(recipient)
    .bind(givers)
    .fetch_all(db)
    .await?)
}

/// For arrival detection: every recipient of an active exact share from one of `givers`, with
/// the giver's live point (as [`exact_points`]): (giver, recipient, lat, lng).
pub async fn exact_points_given(db: &PgPool, givers: &[Uuid]) -> StoreResult<Vec<(Uuid, Uuid, f64, f64)>> {
    Ok(sqlx::query_as(
        "SELECT s.from_user_id, s.to_user_id, l.lat, l.lng
           FROM shares s JOIN live_locations l ON l.user_id = s.from_user_id
          WHERE s.from_user_id = ANY($1) AND s.expires_at > now() AND l.indexed AND l.expires_at > now()",
    )
    .bind(givers)
    .fetch_all(db)
    .await?)
}
