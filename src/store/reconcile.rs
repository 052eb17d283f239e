//! What the index's repair needs from Redis: per-slot-range readiness markers, probes of what
//! the index holds for some users, a scan of one shard's records, and the pacing state (a lock
//! and a cursor shared by every instance).
//!
//! - `<prefix>:index:mark:{<tag>}` — one marker per range of [`RANGE_SLOTS`] slots (the tag is
//!   chosen so that the key hashes into its range), holding the id of the master that served
//!   the range when the index was last known whole there. A marker that is gone (a master came
//!   back empty) or names another node (a replica was promoted, and replication being
//!   asynchronous it may lack the last writes) says the range may have lost writes.
//! - `<prefix>:index:reconcile:lock` / `…:cursor` — one paced page at a time across instances,
//!   and where the walk over PostgreSQL's live rows stands.
//!
//! A probe is one round trip of single-key commands (a pipeline on one server, concurrent
//! commands on the cluster connection): the record and the score in each indexed cell.

use super::StoreResult;
use super::index::{cell_key, record_key, record_key_prefix, record_key_user};
use super::redis::Redis;
use crate::domain::geo::{Coord, index_cells};
use crate::domain::nearby::LiveRecord;
use redis::Value;
use uuid::Uuid;

/// Redis Cluster's slots.
pub const SLOTS: u16 = 16_384;
/// Slots per marker: 16 ranges of 1,024.
pub const RANGE_SLOTS: u16 = 1_024;
/// How many ranges (markers) cover the slots.
pub const RANGES: u16 = SLOTS / RANGE_SLOTS;

/// The slot of a hash tag (what Redis Cluster computes for `…{tag}…`).
pub fn slot_of(tag: &str) -> u16 {
    crc_slot(tag.as_bytes())
}

fn crc_slot(bytes: &[u8]) -> u16 {
    crc16::State::<crc16::XMODEM>::calculate(bytes) % SLOTS
}

/// The slot of a key, by Redis Cluster's rule: the bytes between the first `{` and the first
/// `}` after it when there are any, else the whole key (record keys are binary, so their tag is
/// whatever their bytes make of it).
pub fn key_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|b| *b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|b| *b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc_slot(tag.unwrap_or(key))
}

/// The hash tag of range `r`: the first `m<n>` whose slot falls in it.
pub fn range_tag(r: u16) -> String {
    (0u32..)
        .map(|n| format!("m{n}"))
        .find(|t| slot_of(t) / RANGE_SLOTS == r)
        .unwrap_or_default()
}

fn marker_key(redis: &Redis, tag: &str) -> String {
    redis.key(format_args!("index:mark:{{{tag}}}"))
}

/// One slot range as the cluster serves it now.
#[derive(Debug, Clone)]
pub struct RangeState {
    pub range: u16,
    /// A slot inside the range (its marker's), to aim commands at its master.
    pub slot: u16,
    tag: String,
    /// The node id of the master serving the range now.
    pub master: String,
    /// The master its marker names (`None`: no marker).
    pub marked_by: Option<String>,
}

impl RangeState {
    /// True when the range may have lost writes since it was marked.
    pub fn lost(&self) -> bool {
        self.marked_by.as_deref() != Some(self.master.as_str())
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// Every range with its master and its marker, in one round trip of 2 × [`RANGES`] commands.
pub async fn ranges(redis: &Redis, tags: &[String]) -> StoreResult<Vec<RangeState>> {
    let myid = redis::cmd("CLUSTER").arg("MYID").clone();
    let masters = futures_util::future::try_join_all(tags.iter().map(|t| redis.run_on_slot(&myid, slot_of(t))));
    let marks = redis.run_many(
        tags.iter()
            .map(|t| redis::cmd("GET").arg(marker_key(redis, t)).clone())
            .collect(),
    );
    let (masters, marks) = futures_util::future::try_join(masters, marks).await?;
    Ok(tags
        .iter()
        .zip(masters.iter().zip(marks.iter()))
        .enumerate()
        .map(|(r, (tag, (m, mark)))| RangeState {
            range: r as u16,
            slot: slot_of(tag),
            tag: tag.clone(),
            master: text(m).unwrap_or_default(),
            marked_by: text(mark),
        })
        .collect())
}

/// Marks ranges as whole under the masters that serve them now.
pub async fn mark(redis: &Redis, ranges: &[RangeState]) -> StoreResult<()> {
    redis
        .run_many(
            ranges
                .iter()
                .map(|r| redis::cmd("SET").arg(marker_key(redis, &r.tag)).arg(&r.master).clone())
                .collect(),
        )
        .await?;
    Ok(())
}

/// What the index holds for one user: the record, and the user's score in each cell of the
/// point probed (`None`: not a member).
#[derive(Debug, Clone)]
pub struct Held {
    pub record: Option<LiveRecord>,
    /// `true` when a value is stored under the record key, readable or not.
    pub record_present: bool,
    pub scores: Vec<Option<i64>>,
}

/// Probes many users in one round trip: each user's record, and their scores in the indexed
/// cells of the point given (none when `None`).
pub async fn probe(redis: &Redis, users: &[(Uuid, Option<Coord>)]) -> StoreResult<Vec<Held>> {
    let mut cmds = Vec::with_capacity(users.len() * 5);
    for (u, at) in users {
        cmds.push(redis::cmd("GET").arg(record_key(redis, *u)).clone());
        for c in at.map(index_cells).into_iter().flatten() {
            cmds.push(
                redis::cmd("ZSCORE")
                    .arg(cell_key(redis, c))
                    .arg(u.as_bytes().as_slice())
                    .clone(),
            );
        }
    }
    let answers = redis.run_many(cmds).await?;
    let mut it = answers.into_iter();
    let mut out = Vec::with_capacity(users.len());
    for (_, at) in users {
        let rec = it.next().unwrap_or(Value::Nil);
        let (record, record_present) = match &rec {
            Value::BulkString(b) => (LiveRecord::from_bytes(b), true),
            _ => (None, false),
        };
        let n = if at.is_some() { 4 } else { 0 };
        let scores = (0..n)
            .map(|_| match it.next() {
                Some(Value::BulkString(b)) => std::str::from_utf8(&b).ok().and_then(|s| s.parse::<f64>().ok()),
                Some(Value::Double(d)) => Some(d),
                _ => None,
            })
            .map(|s| s.map(|f| f as i64))
            .collect();
        out.push(Held {
            record,
            record_present,
            scores,
        });
    }
    Ok(out)
}

/// One step of a scan of the records on the master that serves `slot`: the next cursor (0 at
/// the end) and the users whose record keys it returned.
pub async fn scan_records(redis: &Redis, slot: u16, cursor: u64, count: u32) -> StoreResult<(u64, Vec<Uuid>)> {
    let mut pattern = record_key_prefix(redis).into_bytes();
    pattern.extend_from_slice(b"*}");
    let v = redis
        .run_on_slot(
            redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(count),
            slot,
        )
        .await?;
    let Value::Array(parts) = v else {
        return Ok((0, vec![]));
    };
    let next = parts.first().and_then(text).and_then(|s| s.parse().ok()).unwrap_or(0);
    let users = match parts.get(1) {
        Some(Value::Array(keys)) => keys
            .iter()
            .filter_map(|k| match k {
                Value::BulkString(b) => record_key_user(redis, b),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    Ok((next, users))
}

/// Takes a lock named `name` for `ms` milliseconds if nobody holds it; true when taken.
pub async fn try_lock(redis: &Redis, name: &str, ms: u64) -> StoreResult<bool> {
    let key = lock_key(redis, name);
    let v: Value = redis
        .run(redis::cmd("SET").arg(key).arg(1).arg("NX").arg("PX").arg(ms.max(1)))
        .await?;
    Ok(matches!(v, Value::Okay))
}

/// Releases a lock taken by [`try_lock`].
pub async fn unlock(redis: &Redis, name: &str) -> StoreResult<()> {
    let key = lock_key(redis, name);
    redis.run::<()>(redis::cmd("DEL").arg(key)).await
}

fn lock_key(redis: &Redis, name: &str) -> String {
    redis.key(format_args!("index:{name}:lock"))
}

fn cursor_key(redis: &Redis) -> String {
    redis.key(format_args!("index:reconcile:cursor"))
}

/// Where the paced walk stands (`None`: at the start).
pub async fn cursor(redis: &Redis) -> StoreResult<Option<Uuid>> {
    let v: Option<String> = redis.run(redis::cmd("GET").arg(cursor_key(redis))).await?;
    Ok(v.and_then(|s| s.parse().ok()))
}

/// Saves where the walk stands (`None`: a lap ended, start again).
pub async fn set_cursor(redis: &Redis, at: Option<Uuid>) -> StoreResult<()> {
    match at {
        Some(u) => {
            redis
                .run::<()>(redis::cmd("SET").arg(cursor_key(redis)).arg(u.to_string()))
                .await
        }
        None => redis.run::<()>(redis::cmd("DEL").arg(cursor_key(redis))).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_redis_clusters() {
        // values from `CLUSTER KEYSLOT` on Redis 7.0
        assert_eq!(slot_of("foo"), 12_182);
        assert_eq!(slot_of("bar"), 5_061);
        // Redis Cluster's examples: the tag when there is one, else the whole key
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), slot_of("foo{}{bar}"));
        assert_eq!(key_slot(b"foo{{bar}}zap"), slot_of("{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), slot_of("bar"));
    }

    #[test]
    fn every_range_has_a_tag_inside_it() {
        for r in 0..RANGES {
            assert_eq!(slot_of(&range_tag(r)) / RANGE_SLOTS, r);
        }
    }
}
