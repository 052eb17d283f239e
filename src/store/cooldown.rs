//! Notification cooldowns in Redis: at most one notification per pair and cooldown.
//!
//! The key `<prefix>:cool:{<B>}:<A>` (recipient B, actor A; hash-tagged by the recipient) is
//! written with `SET … EX <cooldown> GET` — one atomic command that both claims (the answer is nil
//! only for the one caller that created it) and, while A stays in B's area, keeps extending the
//! quiet period, so moving around inside the area never re-notifies, while leaving and coming back
//! after the cooldown does. Two API instances or a retried check-in race on the same key and only
//! one notifies.

use super::StoreResult;
use super::redis::Redis;
use redis::Value;
use uuid::Uuid;

/// The cooldown key of the pair (recipient `b`, actor `a`).
pub fn key(redis: &Redis, b: Uuid, a: Uuid) -> String {
    redis.key(format_args!("cool:{{{b}}}:{a}"))
}

/// Claims the pairs (recipient, actor) for `seconds`, in one round trip; true for each pair that
/// was free (this caller notifies), false for one still cooling down (its quiet period extended).
pub async fn claim(redis: &Redis, pairs: &[(Uuid, Uuid)], seconds: u64) -> StoreResult<Vec<bool>> {
    let cmds = pairs
        .iter()
        .map(|(b, a)| {
            redis::cmd("SET")
                .arg(key(redis, *b, *a))
                .arg(1)
                .arg("EX")
                .arg(seconds.max(1))
                .arg("GET")
                .clone()
        })
        .collect();
    Ok(redis
        .run_many(cmds)
        .await?
        .iter()
        .map(|v| matches!(v, Value::Nil))
        .collect())
}

/// Gives claimed pairs back (the outbox write that followed failed), so the next check-in can
/// notify them.
pub async fn release(redis: &Redis, pairs: &[(Uuid, Uuid)]) -> StoreResult<()> {
    let cmds = pairs
        .iter()
        .map(|(b, a)| redis::cmd("DEL").arg(key(redis, *b, *a)).clone())
        .collect();
    redis.run_many(cmds).await?;
    Ok(())
}

/// For erasure: deletes the user's cooldown keys, as recipient (`cool:{<user>}:*`) and as actor
/// (`cool:{*}:<user>`). One SCAN of the keyspace.
pub async fn forget_user(redis: &Redis, user: Uuid) -> StoreResult<()> {
    let pattern = redis.key(format_args!("cool:*{user}*"));
    let keys = redis.scan_keys(&pattern).await?;
    let cmds = keys.iter().map(|k| redis::cmd("DEL").arg(k).clone()).collect();
    redis.run_many(cmds).await?;
    Ok(())
}
