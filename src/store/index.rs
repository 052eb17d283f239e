//! The live index in Redis.
//!
//! - `<prefix>:cell:<h3>` — a sorted set per H3 cell at each index resolution (9, 7, 5, 3):
//!   member = the user's 16 raw id bytes, score = expiry in Unix ms, so expired members are
//!   skipped by score and trimmed on write without a global sweep. Coarse users (approximate,
//!   city) score [`COARSE_OFFSET`] more: each class is one score range of the same set, so a
//!   query reads exact users from the cover of its circle and coarse users from the wider cover
//!   their cells need, without reading the other class (see [`Class`]).
//! - `<prefix>:rec:{<user>}` — the user's [`LiveRecord`] with its own expiry; the user is the
//!   same 16 raw bytes as in the cells, so that the server-side query forms the key by
//!   concatenation (a hex UUID cost the script ~0.8 µs a key; this costs ~0.15).
//! - `<prefix>:index:ready:2` — set once the index was built from PostgreSQL; its absence means
//!   Redis came back empty (or holds an older key format) and the index must be rebuilt.
//!
//! Every command touches one key, so the index works unchanged on Redis Cluster. A move between
//! cells adds the new memberships and the record first and removes the old memberships last;
//! readers take a user's position from the record alone (stale memberships are filtered), so no
//! reader sees a user in two places or in none.

use super::redis::Redis;
use super::{StoreError, StoreResult};
use crate::domain::geo::{Coord, index_cells};
use crate::domain::nearby::LiveRecord;
use h3o::CellIndex;
use redis::{Cmd, Value};
use uuid::Uuid;

pub fn cell_key(redis: &Redis, cell: CellIndex) -> String {
    redis.key(format_args!("cell:{cell}"))
}

/// What every record key starts with: `<prefix>:rec:{`.
pub fn record_key_prefix(redis: &Redis) -> String {
    redis.key(format_args!("rec:{{"))
}

/// `<prefix>:rec:{` + the user's 16 bytes + `}`: a binary hash tag, so the slot comes from these
/// bytes by Redis Cluster's rule (`store::reconcile::key_slot`; a `}` among them shortens the
/// tag, which is harmless: every command on a record touches that key alone).
pub fn record_key(redis: &Redis, user: Uuid) -> Vec<u8> {
    let mut key = record_key_prefix(redis).into_bytes();
    key.extend_from_slice(user.as_bytes());
    key.push(b'}');
    key
}

/// The user a record key names (see [`record_key`]).
pub fn record_key_user(redis: &Redis, key: &[u8]) -> Option<Uuid> {
    let rest = key.strip_prefix(record_key_prefix(redis).as_bytes())?;
    Uuid::from_slice(rest.strip_suffix(b"}")?).ok()
}

fn ready_key(redis: &Redis) -> String {
    // `:2` since the record keys became binary: an index of the older format is rebuilt
    redis.key(format_args!("index:ready:2"))
}

/// Added to the score of a coarse user's memberships: above every expiry in Unix ms (2^44 ms
/// is the year 2527) and exact in a double with it.
pub const COARSE_OFFSET: i64 = 1 << 44;

/// The two classes of members, each a score range of every cell's set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Exact,
    Coarse,
}

impl Class {
    /// The live members' score range, as `ZCOUNT`/`ZRANGE … BYSCORE` bounds.
    fn live_range(self, now: i64) -> (String, String) {
        match self {
            Class::Exact => (format!("({now}"), format!("({COARSE_OFFSET}")),
            Class::Coarse => (format!("({}", COARSE_OFFSET + now), "+inf".into()),
        }
    }
}

/// The score of a user's memberships: their expiry, in the range of their class.
pub fn member_score(rec: &LiveRecord) -> i64 {
    match rec.precision {
        crate::domain::policy::Precision::Exact => rec.expires_at_ms,
        _ => rec.expires_at_ms + COARSE_OFFSET,
    }
}

fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// The commands that publish one user: memberships (trimming expired members), then the record.
fn put_cmds(redis: &Redis, user: Uuid, rec: &LiveRecord, now: i64, cmds: &mut Vec<Cmd>) -> StoreResult<()> {
    let ttl_ms = rec.expires_at_ms - now;
    if ttl_ms <= 0 {
        return Ok(());
    }
    let bytes = rec.to_bytes();
    for c in index_cells(rec.published()) {
        let key = cell_key(redis, c);
        cmds.push(
            redis::cmd("ZADD")
                .arg(&key)
                .arg(member_score(rec))
                .arg(user.as_bytes().as_slice())
                .clone(),
        );
        // the expired of both classes
        cmds.push(redis::cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now).clone());
        cmds.push(
            redis::cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg(COARSE_OFFSET)
                .arg(COARSE_OFFSET + now)
                .clone(),
        );
    }
    cmds.push(
        redis::cmd("SET")
            .arg(record_key(redis, user))
            .arg(bytes)
            .arg("PX")
            .arg(ttl_ms)
            .clone(),
    );
    Ok(())
}

/// Publishes many users in one round trip (rebuilds, bulk loads).
pub async fn put_many(redis: &Redis, users: &[(Uuid, LiveRecord)]) -> StoreResult<()> {
    redis.run_many(put_many_cmds(redis, users)?).await?;
    Ok(())
}

fn put_many_cmds(redis: &Redis, users: &[(Uuid, LiveRecord)]) -> StoreResult<Vec<Cmd>> {
    let now = now_ms();
    let mut cmds = Vec::with_capacity(users.len() * 13);
    for (u, rec) in users {
        put_cmds(redis, *u, rec, now, &mut cmds)?;
    }
    Ok(cmds)
}

/// A batch of changes to the index: users taken out (with the published point they held),
/// users published, and the old points of those who moved (whose cells the new point does not
/// share are left last). On a single server, one pipeline (Redis runs it in order); on a
/// cluster, where a batch's commands go concurrently, three steps in that order — either way
/// no reader sees a user in none of their cells.
pub async fn apply(
    redis: &Redis,
    unpublish: &[(Uuid, Option<Coord>)],
    publish: &[(Uuid, LiveRecord)],
    moves: &[(Uuid, Coord, Coord)],
) -> StoreResult<()> {
    if redis.is_cluster() {
        remove_many(redis, unpublish).await?;
        put_many(redis, publish).await?;
        return drop_stale_cells(redis, moves).await;
    }
    let mut cmds = remove_many_cmds(redis, unpublish);
    cmds.extend(put_many_cmds(redis, publish)?);
    cmds.extend(drop_stale_cmds(redis, moves));
    redis.run_many(cmds).await?;
    Ok(())
}

/// Publishes a user's record and memberships; `previous` is the published point they held
/// before (its cells are left last).
pub async fn put(redis: &Redis, user: Uuid, rec: &LiveRecord, previous: Option<Coord>) -> StoreResult<()> {
    let now = now_ms();
    if rec.expires_at_ms <= now {
        return remove(redis, user, previous).await;
    }
    let mut cmds = Vec::with_capacity(13);
    put_cmds(redis, user, rec, now, &mut cmds)?;
    redis.run_many(cmds).await?;
    if let Some(prev) = previous {
        drop_stale_cells(redis, &[(user, prev, rec.published())]).await?;
    }
    Ok(())
}

/// Takes a user out of the index: the record and the memberships of `published`.
pub async fn remove(redis: &Redis, user: Uuid, published: Option<Coord>) -> StoreResult<()> {
    remove_many(redis, &[(user, published)]).await
}

/// The command that ends a user's membership of a cell.
fn zrem(redis: &Redis, cell: CellIndex, user: Uuid) -> Cmd {
    redis::cmd("ZREM")
        .arg(cell_key(redis, cell))
        .arg(user.as_bytes().as_slice())
        .clone()
}

/// Takes many users out of the index in one round trip: (user, published point they held).
pub async fn remove_many(redis: &Redis, users: &[(Uuid, Option<Coord>)]) -> StoreResult<()> {
    redis.run_many(remove_many_cmds(redis, users)).await?;
    Ok(())
}

fn remove_many_cmds(redis: &Redis, users: &[(Uuid, Option<Coord>)]) -> Vec<Cmd> {
    let mut cmds = Vec::with_capacity(users.len() * 5);
    for (u, _) in users {
        cmds.push(redis::cmd("DEL").arg(record_key(redis, *u)).clone());
    }
    for (u, p) in users {
        for c in p.map(index_cells).into_iter().flatten() {
            cmds.push(zrem(redis, c, *u));
        }
    }
    cmds
}

/// Drops the memberships users held at an old point that their new point does not share
/// (after [`put_many`] published the new one).
pub async fn drop_stale_cells(redis: &Redis, moves: &[(Uuid, Coord, Coord)]) -> StoreResult<()> {
    redis.run_many(drop_stale_cmds(redis, moves)).await?;
    Ok(())
}

fn drop_stale_cmds(redis: &Redis, moves: &[(Uuid, Coord, Coord)]) -> Vec<Cmd> {
    let mut cmds = Vec::new();
    for (u, old, new) in moves {
        let keep = index_cells(*new);
        for c in index_cells(*old).into_iter().filter(|c| !keep.contains(c)) {
            cmds.push(zrem(redis, c, *u));
        }
    }
    cmds
}

fn parse_record(v: &Value) -> Option<LiveRecord> {
    match v {
        Value::BulkString(bytes) => LiveRecord::from_bytes(bytes),
        _ => None,
    }
}

/// A caller's own record and the size of their adjacency set (connections + 1 sentinel, or 0
/// when not cached), in one round trip: what a nearby query needs first.
pub async fn record_and_degree(redis: &Redis, user: Uuid) -> StoreResult<(Option<LiveRecord>, Option<u64>)> {
    let answers = redis
        .run_many(vec![
            redis::cmd("GET").arg(record_key(redis, user)).clone(),
            redis::cmd("SCARD")
                .arg(super::graph::adjacency_key(redis, user))
                .clone(),
        ])
        .await?;
    let record = answers.first().and_then(parse_record);
    let degree = match answers.get(1) {
        Some(Value::Int(n)) if *n > 0 => Some((*n - 1) as u64),
        _ => None,
    };
    Ok((record, degree))
}

/// Which of `ids` are `user`'s connections (SMISMEMBER on the adjacency set), in one round trip.
pub async fn connected(redis: &Redis, user: Uuid, ids: &[Uuid]) -> StoreResult<Vec<bool>> {
    set_contains(redis, &super::graph::adjacency_key(redis, user), ids).await
}

/// One user's record.
pub async fn record(redis: &Redis, user: Uuid) -> StoreResult<Option<LiveRecord>> {
    let v: Value = redis.run(redis::cmd("GET").arg(record_key(redis, user))).await?;
    Ok(parse_record(&v))
}

/// Records of many users in one round trip (absent or expired users give `None`).
pub async fn records(redis: &Redis, users: &[Uuid]) -> StoreResult<Vec<Option<LiveRecord>>> {
    let cmds = users
        .iter()
        .map(|u| redis::cmd("GET").arg(record_key(redis, *u)).clone())
        .collect();
    Ok(redis.run_many(cmds).await?.iter().map(parse_record).collect())
}

/// Those of `ids` who are `user`'s connections, with `user`'s own record, in one round trip
/// (SCARD and SMISMEMBER on the adjacency set, GET of the record); `None` when the adjacency set
/// is not cached (the caller must take the full path, which rebuilds it).
pub async fn connected_among(
    redis: &Redis,
    user: Uuid,
    ids: &[Uuid],
) -> StoreResult<Option<(Vec<Uuid>, Option<LiveRecord>)>> {
    let adjacency = super::graph::adjacency_key(redis, user);
    let mut member = redis::cmd("SMISMEMBER");
    member.arg(&adjacency);
    for id in ids {
        member.arg(id.as_bytes().as_slice());
    }
    let answers = redis
        .run_many(vec![
            redis::cmd("SCARD").arg(&adjacency).clone(),
            member,
            redis::cmd("GET").arg(record_key(redis, user)).clone(),
        ])
        .await?;
    if !matches!(answers.first(), Some(Value::Int(n)) if *n > 0) {
        return Ok(None);
    }
    let (Some(Value::Array(flags)), Some(own)) = (answers.get(1), answers.get(2)) else {
        return Ok(None);
    };
    let connected = ids
        .iter()
        .zip(flags)
        .filter(|(_, f)| matches!(f, Value::Int(1)))
        .map(|(id, _)| *id)
        .collect();
    Ok(Some((connected, parse_record(own))))
}

/// Live population of each cell in one class (O(log n) per cell), in one round trip.
pub async fn populations(redis: &Redis, cells: &[CellIndex], class: Class) -> StoreResult<Vec<u64>> {
    let (lo, hi) = class.live_range(now_ms());
    let cmds = cells
        .iter()
        .map(|c| redis::cmd("ZCOUNT").arg(cell_key(redis, *c)).arg(&lo).arg(&hi).clone())
        .collect();
    Ok(redis
        .run_many(cmds)
        .await?
        .iter()
        .map(|v| if let Value::Int(n) = v { *n as u64 } else { 0 })
        .collect())
}

/// Live members of the cells in one class, in one round trip.
pub async fn members(redis: &Redis, cells: &[CellIndex], class: Class) -> StoreResult<Vec<Uuid>> {
    let (lo, hi) = class.live_range(now_ms());
    let cmds = cells
        .iter()
        .map(|c| {
            redis::cmd("ZRANGE")
                .arg(cell_key(redis, *c))
                .arg(&lo)
                .arg(&hi)
                .arg("BYSCORE")
                .clone()
        })
        .collect();
    let mut out = Vec::new();
    for v in redis.run_many(cmds).await? {
        if let Value::Array(items) = v {
            out.extend(items.iter().filter_map(|m| match m {
                Value::BulkString(b) => Uuid::from_slice(b).ok(),
                _ => None,
            }));
        }
    }
    Ok(out)
}

/// Which of `ids` are members of the set at `key` (SMISMEMBER), in one round trip.
async fn set_contains(redis: &Redis, key: &str, ids: &[Uuid]) -> StoreResult<Vec<bool>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut cmd = redis::cmd("SMISMEMBER");
    cmd.arg(key);
    for id in ids {
        cmd.arg(id.as_bytes().as_slice());
    }
    let flags: Vec<i64> = redis.run(&cmd).await?;
    Ok(flags.into_iter().map(|f| f == 1).collect())
}

/// The common path of a nearby query in one round trip, on a single Redis server (its keys span
/// slots, so a cluster takes the pipelined path instead): the plan
/// ([`crate::domain::nearby::choose`], same weight) decided while the cells are read, the
/// connections' ids from the cheaper side, and their live records — everything
/// [`populations`], [`members`], [`connected`] and [`records`] do, without shipping members and
/// flags back and forth; a cell dense with members is intersected with the adjacency set by
/// Redis (`ZINTER`), so that only connections reach the script. The population it answers is
/// the cover's on the cell-first plan, and what it read until the budget ran out (more than
/// degree × weight) on the graph-first one.
/// KEYS[1] the adjacency set, KEYS[2..ARGV[6]+1] the cells read for exact users, the rest the
/// cells read for coarse users; ARGV[1] and ARGV[7] the exact class's live score range, ARGV[8]
/// and ARGV[9] the coarse class's, ARGV[2] degree, ARGV[3] the record keys' prefix, ARGV[4] the
/// caller's 16 bytes, ARGV[5] the record weight.
/// Returns {-1} when the adjacency set is absent (the caller rebuilds it), else
/// {plan (0 cell-first, 1 graph-first), population, found}: the live connections as one string
/// of (16 id bytes, record length as 4 bytes big-endian, record) — one reply value to parse
/// instead of two per connection.
const NEARBY_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local n1 = tonumber(ARGV[6]) + 1
-- each class's live score range: as ZRANGE/ZCOUNT bounds, and as numbers to keep ZINTER's
-- scores by (the bounds are exclusive, '(' and a number, or +inf)
local function num(b) if b == '+inf' then return math.huge end return tonumber(string.sub(b, 2)) end
local exact = {ARGV[1], ARGV[7], num(ARGV[1]), num(ARGV[7])}
local coarse = {ARGV[8], ARGV[9], num(ARGV[8]), num(ARGV[9])}
local function class(i) if i <= n1 then return exact end return coarse end
-- cell-first while the cells' live members stay within the budget (the planner's rule, read
-- as the cells are: no counting pass, and never more than the budget read before giving up)
-- A cell is read up to DENSE members: its members are asked of the adjacency set together
-- (SMISMEMBER). A denser cell is counted (ZCOUNT) and, on the cell-first plan, intersected
-- with the adjacency set by Redis (ZINTER walks the smaller of the two), so that its members
-- who are not connections never become Lua strings; the cell's score (expiry) comes along to
-- keep the live ones of its class.
-- (a user appears once per class and cover, or twice for a moment while moving: the caller
-- drops repeated ids; no set of seen members is kept here)
-- (the limit is made a string once, as Lua turns a number argument into one by printf on
-- every call)
-- (DENSE measured, 2026-12-02: the radar bench at 10k users and 1,000 streams served 1,430
-- check-ins/s at 16, 1,860 at 8, 1,770 at 4, 1,751 when every cell was intersected; the
-- sparse world of scripts/instructions, +0.8, +2.0, +9.9 and +13.9 % Redis instructions)
local DENSE = 8
local budget = tonumber(ARGV[2]) * tonumber(ARGV[5])
local cap = tostring(math.floor(math.min(budget, DENSE) + 1))
local me = ARGV[4]
local pop, plan, nf, nd = 0, 0, 0, 0
local found, dense = {}, {}
for i = 2, #KEYS do
  local b = class(i)
  local ms = redis.call('ZRANGE', KEYS[i], b[1], b[2], 'BYSCORE', 'LIMIT', '0', cap)
  local nm = #ms
  if nm > DENSE then
    nm = redis.call('ZCOUNT', KEYS[i], b[1], b[2])
    nd = nd + 1; dense[nd] = i
  else
    for j = 1, nm do
      local m = ms[j]
      if m ~= me then nf = nf + 1; found[nf] = m end
    end
  end
  pop = pop + nm
  if pop > budget then plan = 1; break end
end
local ids, ni = {}, 0
if plan == 0 then
  for i = 1, nf, 4000 do
    local last = math.min(i + 3999, nf)
    local flags = redis.call('SMISMEMBER', KEYS[1], unpack(found, i, last))
    for j = 1, #flags do if flags[j] == 1 then ni = ni + 1; ids[ni] = found[i + j - 1] end end
  end
  for d = 1, nd do
    local i = dense[d]
    local b = class(i)
    local r = redis.call('ZINTER', 2, KEYS[1], KEYS[i], 'WEIGHTS', 0, 1, 'WITHSCORES')
    for j = 1, #r, 2 do
      local m, sc = r[j], tonumber(r[j + 1])
      if sc > b[3] and sc < b[4] and m ~= me then ni = ni + 1; ids[ni] = m end
    end
  end
else
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    if #m == 16 and m ~= me then ni = ni + 1; ids[ni] = m end
  end
end
local p = ARGV[3]
local keys = {}
for i = 1, ni do keys[i] = p .. ids[i] .. '}' end
-- the pieces of the answer, joined once (a concatenation per record would intern each)
local out, no = {}, 0
for i = 1, ni, 4000 do
  local last = math.min(i + 3999, ni)
  local part = redis.call('MGET', unpack(keys, i, last))
  for j = 1, #part do
    local r = part[j]
    if r then
      out[no + 1] = ids[i + j - 1]; out[no + 2] = struct.pack('>I4', #r); out[no + 3] = r
      no = no + 3
    end
  end
end
return {plan, pop, table.concat(out)}
";

/// What [`nearby_in_one`] found.
pub struct InOne {
    pub graph_first: bool,
    pub population: u64,
    pub records: Vec<(Uuid, LiveRecord)>,
}

/// See [`NEARBY_LUA`]; `None` when the adjacency set is absent.
pub async fn nearby_in_one(
    redis: &Redis,
    user: Uuid,
    exact_cells: &[CellIndex],
    coarse_cells: &[CellIndex],
    degree: u64,
    weight: u64,
) -> StoreResult<Option<InOne>> {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(NEARBY_LUA));
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(super::graph::adjacency_key(redis, user));
    for c in exact_cells.iter().chain(coarse_cells) {
        inv.key(cell_key(redis, *c));
    }
    let now = now_ms();
    let (exact_lo, exact_hi) = Class::Exact.live_range(now);
    let (coarse_lo, coarse_hi) = Class::Coarse.live_range(now);
    inv.arg(exact_lo)
        .arg(degree)
        .arg(record_key_prefix(redis))
        .arg(user.as_bytes().as_slice())
        .arg(weight)
        .arg(exact_cells.len())
        .arg(exact_hi)
        .arg(coarse_lo)
        .arg(coarse_hi);
    let v: Value = redis.invoke(&inv).await?;
    let Value::Array(parts) = v else {
        return Ok(None);
    };
    let (Some(Value::Int(plan)), Some(Value::Int(pop)), Some(Value::BulkString(found))) =
        (parts.first(), parts.get(1), parts.get(2))
    else {
        return Ok(None);
    };
    let mut records = parse_found(found);
    // a user caught between two cells while moving comes twice, with the same record
    records.sort_unstable_by_key(|(id, _)| *id);
    records.dedup_by_key(|(id, _)| *id);
    Ok(Some(InOne {
        graph_first: *plan == 1,
        population: (*pop).max(0) as u64,
        records,
    }))
}

/// The records of a script's answer: (16 id bytes, record length as 4 bytes big-endian, record)
/// after one another.
fn parse_found(found: &[u8]) -> Vec<(Uuid, LiveRecord)> {
    let mut records = Vec::new();
    let mut rest = found;
    while let (Some(id), Some(len)) = (rest.get(..16), rest.get(16..20)) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(bytes) = rest.get(20..20 + len) else { break };
        if let (Ok(id), Some(r)) = (Uuid::from_slice(id), LiveRecord::from_bytes(bytes)) {
            records.push((id, r));
        }
        rest = &rest[20 + len..];
    }
    records
}

/// The query of [`NEARBY_LUA`] for several users at once (arrival detection's batch): each
/// cell (and class) that any of their covers holds is read once, whoever needs it, and each
/// record once, whoever it is a candidate of; the plan, the budget and the dense cells' ZINTER
/// are still each user's own. Measured by the radar bench (a batch's users crowd the same
/// cities): see the README. It repeats [`NEARBY_LUA`]'s per-user steps on purpose: with
/// [`nearby_in_one`] made a one-user call of this script (tried 2026-12-04), `scripts/
/// instructions` counted +29.8 % Redis and +8.6 % of our instructions per nearby query — the
/// bookkeeping of sharing (cell positions, record numbers, refs) that one user never needs.
/// KEYS[1..ARGV[1]] the users' adjacency sets, the rest the cells; ARGV[2..5] the exact and
/// coarse classes' live score ranges, ARGV[6] the record keys' prefix, ARGV[7] the record
/// weight; then per user: their 16 bytes, the numbers of exact and coarse cells, and those
/// cells as positions in KEYS.
/// Returns {records, then per user: plan (-1 when the adjacency set is absent), population,
/// refs}: records as [`NEARBY_LUA`] answers them, each live one once, and refs the user's
/// records as 4-byte big-endian positions (from 0) among them.
const NEARBY_MANY_LUA: &str = r"
local na = tonumber(ARGV[1])
local function num(b) if b == '+inf' then return math.huge end return tonumber(string.sub(b, 2)) end
local classes = {{ARGV[2], ARGV[3], num(ARGV[2]), num(ARGV[3])}, {ARGV[4], ARGV[5], num(ARGV[4]), num(ARGV[5])}}
local prefix, weight = ARGV[6], tonumber(ARGV[7])
-- as NEARBY_LUA's (the cap is DENSE's: a smaller budget than DENSE gives up on the same count)
local DENSE = 8
local cap = tostring(DENSE + 1)
-- what each (cell, class) held: its members (sparse) or their count (dense), read once
local read = {}
local function cell(k, c)
  local slot = k * 2 + c
  local r = read[slot]
  if r == nil then
    local b = classes[c]
    r = redis.call('ZRANGE', KEYS[k], b[1], b[2], 'BYSCORE', 'LIMIT', '0', cap)
    if #r > DENSE then r = redis.call('ZCOUNT', KEYS[k], b[1], b[2]) end
    read[slot] = r
  end
  return r
end
-- every candidate once: its number, and the ids by number
local number, ids, nids = {}, {}, 0
local answers = {}
local at = 8
for a = 1, na do
  local adj, me = KEYS[a], ARGV[at]
  local ne, nc = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local first, last = at + 3, at + 2 + ne + nc
  at = last + 1
  local card = redis.call('SCARD', adj)
  if card == 0 then
    answers[a] = {-1, 0, {}}
  else
    local budget = (card - 1) * weight
    local pop, plan, nf, nd = 0, 0, 0, 0
    local found, dense = {}, {}
    for x = first, last do
      local k, c = tonumber(ARGV[x]), 1
      if x >= first + ne then c = 2 end
      local r = cell(k, c)
      local nm
      if type(r) == 'number' then
        nm = r
        nd = nd + 1; dense[nd] = {k, c}
      else
        nm = #r
        for j = 1, nm do
          local m = r[j]
          if m ~= me then nf = nf + 1; found[nf] = m end
        end
      end
      pop = pop + nm
      if pop > budget then plan = 1; break end
    end
    local mine, ni = {}, 0
    if plan == 0 then
      for i = 1, nf, 4000 do
        local upto = math.min(i + 3999, nf)
        local flags = redis.call('SMISMEMBER', adj, unpack(found, i, upto))
        for j = 1, #flags do if flags[j] == 1 then ni = ni + 1; mine[ni] = found[i + j - 1] end end
      end
      for d = 1, nd do
        local k, b = dense[d][1], classes[dense[d][2]]
        local r = redis.call('ZINTER', 2, adj, KEYS[k], 'WEIGHTS', 0, 1, 'WITHSCORES')
        for j = 1, #r, 2 do
          local m, sc = r[j], tonumber(r[j + 1])
          if sc > b[3] and sc < b[4] and m ~= me then ni = ni + 1; mine[ni] = m end
        end
      end
    else
      for _, m in ipairs(redis.call('SMEMBERS', adj)) do
        if #m == 16 and m ~= me then ni = ni + 1; mine[ni] = m end
      end
    end
    for i = 1, ni do
      local id = mine[i]
      local n = number[id]
      if n == nil then nids = nids + 1; n = nids; number[id] = n; ids[n] = id end
      mine[i] = n
    end
    answers[a] = {plan, pop, mine}
  end
end
-- the records, each once; a record gone meanwhile gets no position
local keys = {}
for i = 1, nids do keys[i] = prefix .. ids[i] .. '}' end
local out, no, pos, np = {}, 0, {}, 0
for i = 1, nids, 4000 do
  local upto = math.min(i + 3999, nids)
  local part = redis.call('MGET', unpack(keys, i, upto))
  for j = 1, #part do
    local r = part[j]
    if r then
      out[no + 1] = ids[i + j - 1]; out[no + 2] = struct.pack('>I4', #r); out[no + 3] = r
      no = no + 3
      pos[i + j - 1] = struct.pack('>I4', np); np = np + 1
    end
  end
end
local reply = {table.concat(out)}
for a = 1, na do
  local refs, nr = {}, 0
  for _, n in ipairs(answers[a][3]) do
    local p = pos[n]
    if p then nr = nr + 1; refs[nr] = p end
  end
  reply[#reply + 1] = answers[a][1]; reply[#reply + 1] = answers[a][2]; reply[#reply + 1] = table.concat(refs)
end
return reply
";

/// One user of [`nearby_many_in_one`]: who, and the cells of their exact and coarse covers.
pub struct Asked<'a> {
    pub user: Uuid,
    pub exact_cells: &'a [CellIndex],
    pub coarse_cells: &'a [CellIndex],
}

/// [`nearby_in_one`] for each of `asked` (degrees read by the script itself), in one round
/// trip on a single Redis server, reading each cell and record once (see [`NEARBY_MANY_LUA`]):
/// in order, each user's answer, `None` when their adjacency set is absent.
pub async fn nearby_many_in_one(redis: &Redis, asked: &[Asked<'_>], weight: u64) -> StoreResult<Vec<Option<InOne>>> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(NEARBY_MANY_LUA));
    if asked.is_empty() {
        return Ok(vec![]);
    }
    let mut inv = SCRIPT.prepare_invoke();
    for a in asked {
        inv.key(super::graph::adjacency_key(redis, a.user));
    }
    // each cell's position in KEYS (from 1), given once
    let mut position: rustc_hash::FxHashMap<CellIndex, usize> = rustc_hash::FxHashMap::default();
    let mut numbered = Vec::new();
    for a in asked {
        let mut cells = Vec::with_capacity(a.exact_cells.len() + a.coarse_cells.len());
        for c in a.exact_cells.iter().chain(a.coarse_cells) {
            let next = asked.len() + position.len() + 1;
            let k = *position.entry(*c).or_insert_with(|| {
                inv.key(cell_key(redis, *c));
                next
            });
            cells.push(k);
        }
        numbered.push(cells);
    }
    let now = now_ms();
    let (exact_lo, exact_hi) = Class::Exact.live_range(now);
    let (coarse_lo, coarse_hi) = Class::Coarse.live_range(now);
    inv.arg(asked.len())
        .arg(exact_lo)
        .arg(exact_hi)
        .arg(coarse_lo)
        .arg(coarse_hi)
        .arg(record_key_prefix(redis))
        .arg(weight);
    for (a, cells) in asked.iter().zip(&numbered) {
        inv.arg(a.user.as_bytes().as_slice())
            .arg(a.exact_cells.len())
            .arg(a.coarse_cells.len())
            .arg(cells.as_slice());
    }
    let v: Value = redis.invoke(&inv).await?;
    let unexpected = || StoreError::Internal(anyhow::anyhow!("nearby_many: unexpected reply"));
    let Value::Array(parts) = v else {
        return Err(unexpected());
    };
    let Some(Value::BulkString(found)) = parts.first() else {
        return Err(unexpected());
    };
    if parts.len() != 1 + 3 * asked.len() {
        return Err(unexpected());
    }
    let found = parse_found(found);
    Ok(parts[1..]
        .chunks_exact(3)
        .map(|answer| {
            let (Value::Int(plan), Value::Int(pop), Value::BulkString(refs)) = (&answer[0], &answer[1], &answer[2])
            else {
                return None;
            };
            if *plan < 0 {
                return None;
            }
            let mut records: Vec<(Uuid, LiveRecord)> = refs
                .chunks_exact(4)
                .filter_map(|r| {
                    found
                        .get(u32::from_be_bytes([r[0], r[1], r[2], r[3]]) as usize)
                        .cloned()
                })
                .collect();
            records.sort_unstable_by_key(|(id, _)| *id);
            records.dedup_by_key(|(id, _)| *id);
            Some(InOne {
                graph_first: *plan == 1,
                population: (*pop).max(0) as u64,
                records,
            })
        })
        .collect())
}

/// True when the index was built and Redis has not lost it since.
pub async fn is_ready(redis: &Redis) -> StoreResult<bool> {
    let n: i64 = redis.run(redis::cmd("EXISTS").arg(ready_key(redis))).await?;
    Ok(n == 1)
}

/// Marks the index as built.
pub async fn mark_ready(redis: &Redis) -> StoreResult<()> {
    redis
        .run::<()>(redis::cmd("SET").arg(ready_key(redis)).arg(now_ms()))
        .await
}

/// Takes a short lock so that one instance rebuilds at a time; true when taken.
pub async fn try_lock_rebuild(redis: &Redis, seconds: u64) -> StoreResult<bool> {
    let v: Value = redis
        .run(
            redis::cmd("SET")
                .arg(redis.key(format_args!("index:rebuilding")))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(seconds),
        )
        .await?;
    Ok(matches!(v, Value::Okay))
}

/// Releases the rebuild lock.
pub async fn unlock_rebuild(redis: &Redis) -> StoreResult<()> {
    redis
        .run::<()>(redis::cmd("DEL").arg(redis.key(format_args!("index:rebuilding"))))
        .await
}
