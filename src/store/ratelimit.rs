//! Fixed-window rate limits in Redis, shared by every API instance (single-key, cluster-safe).

use super::StoreResult;
use super::redis::Redis;

/// Counts one hit on `bucket` in a window of `window_s`; `Err(retry_after_s)` past `limit`.
pub async fn hit(redis: &Redis, bucket: &str, limit: u32, window_s: u64) -> StoreResult<Result<(), u64>> {
    let key = redis.key(format_args!("rl:{bucket}"));
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("INCR")
        .arg(&key)
        .cmd("EXPIRE")
        .arg(&key)
        .arg(window_s)
        .arg("NX")
        .ignore()
        .cmd("TTL")
        .arg(&key);
    let (count, ttl): (u64, i64) = redis.run_pipe(&pipe).await?;
    if count > u64::from(limit) {
        Ok(Err(ttl.max(1) as u64))
    } else {
        Ok(Ok(()))
    }
}

/// Deletes the per-user buckets of an erased user.
pub async fn forget_user(redis: &Redis, user: uuid::Uuid) -> StoreResult<()> {
    redis
        .run::<()>(redis::cmd("DEL").arg(redis.key(format_args!("rl:checkin:{user}"))))
        .await
}
