//! Fixed-window rate limits in Redis, shared by every API instance (single-key, cluster-safe).

use super::StoreResult;
use super::redis::Redis;

/// One hit on a fixed window, atomically and on one key (so it works alike on Redis Cluster):
/// the count, and the seconds left in the window.
const HIT: &str = "local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('TTL', KEYS[1])}";

/// Counts one hit on `bucket` in a window of `window_s`; `Err(retry_after_s)` past `limit`.
pub async fn hit(redis: &Redis, bucket: &str, limit: u32, window_s: u64) -> StoreResult<Result<(), u64>> {
    let mut one = hit_many(redis, &[bucket.to_string()], limit, window_s).await?;
    Ok(one.pop().unwrap_or(Ok(())))
}

/// Counts one hit on each bucket, in one round trip.
pub async fn hit_many(
    redis: &Redis,
    buckets: &[String],
    limit: u32,
    window_s: u64,
) -> StoreResult<Vec<Result<(), u64>>> {
    let cmds = buckets
        .iter()
        .map(|b| {
            redis::cmd("EVAL")
                .arg(HIT)
                .arg(1)
                .arg(redis.key(format_args!("rl:{b}")))
                .arg(window_s)
                .clone()
        })
        .collect();
    Ok(redis
        .run_many(cmds)
        .await?
        .iter()
        .map(|a| match a {
            redis::Value::Array(v) => match (v.first(), v.get(1)) {
                (Some(redis::Value::Int(n)), Some(redis::Value::Int(ttl))) if *n > i64::from(limit) => {
                    Err((*ttl).max(1) as u64)
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        })
        .collect())
}

/// Deletes the per-user buckets of an erased user (check-ins, nearby, password changes, event joins).
pub async fn forget_user(redis: &Redis, user: uuid::Uuid) -> StoreResult<()> {
    let cmds = ["checkin", "nearby", "login:user", "eventjoin"]
        .iter()
        .map(|b| redis::cmd("DEL").arg(redis.key(format_args!("rl:{b}:{user}"))).clone())
        .collect();
    redis.run_many(cmds).await?;
    Ok(())
}
