//! Open live-radar streams per user, counted across every instance: one sorted set per user
//! (member: the stream's id; score: when its lease ends, renewed while it is open), so that a
//! stream whose instance died stops counting when its lease runs out.

use super::StoreResult;
use super::redis::Redis;
use uuid::Uuid;

/// Drops ended leases, then takes a slot for `stream` unless `max` are open (renewing it when
/// it holds one already): atomically, on one key.
const CLAIM: &str = "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) == false and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1";

fn key(redis: &Redis, user: Uuid) -> String {
    redis.key(format_args!("streams:{{{user}}}"))
}

/// Takes or renews `stream`'s slot until `until_ms`; false when `max` others are open.
pub async fn claim(redis: &Redis, user: Uuid, stream: Uuid, now_ms: i64, until_ms: i64, max: u32) -> StoreResult<bool> {
    let n: i64 = redis
        .run(
            redis::cmd("EVAL")
                .arg(CLAIM)
                .arg(1)
                .arg(key(redis, user))
                .arg(now_ms)
                .arg(until_ms)
                .arg(stream.to_string())
                .arg(max),
        )
        .await?;
    Ok(n == 1)
}

/// Gives the slot back.
pub async fn release(redis: &Redis, user: Uuid, stream: Uuid) -> StoreResult<()> {
    let _: i64 = redis
        .run(redis::cmd("ZREM").arg(key(redis, user)).arg(stream.to_string()))
        .await?;
    Ok(())
}

/// Forgets an erased user's streams.
pub async fn forget_user(redis: &Redis, user: Uuid) -> StoreResult<()> {
    let _: i64 = redis.run(redis::cmd("DEL").arg(key(redis, user))).await?;
    Ok(())
}
