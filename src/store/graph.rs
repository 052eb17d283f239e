//! The connection graph in PostgreSQL and each user's adjacency set in Redis.
//!
//! PostgreSQL is the system of record: `connections` holds every edge in both directions (so
//! "all connections of u" is one range scan of the primary key), `connection_requests` the pending
//! requests, `blocks` who blocked whom. Every change of a pair runs in one transaction that first
//! takes a transaction-scoped advisory lock on the pair, so concurrent requests, accepts, removals
//! and blocks of the same two users are serialised.
//!
//! Redis keeps, for the nearby query, each user's adjacency as a SET at [`adjacency_key`]: the
//! 16 raw bytes of every connected user's id plus the one-byte sentinel [`ADJACENCY_SENTINEL`]
//! that marks "built from PostgreSQL" (an empty adjacency still exists as a key). It expires after
//! [`ADJACENCY_TTL_S`] and is rebuilt when missing, in one SQL query and one Redis round trip.
//!
//! Keeping the copy exact:
//! - after a change commits, both users' sets are updated by a script that touches a set only when
//!   it exists (a missing set is rebuilt from PostgreSQL on its next read); one key per user per
//!   call, so this is Redis-Cluster safe;
//! - when an update fails, the set is deleted instead, and if that fails too the call fails (503);
//! - after updating, the pair is read back from PostgreSQL: if a concurrent change of the same pair
//!   overtook this one in Redis, both sets are deleted (rebuilt on next read);
//! - a rebuild must not write what it read before a change committed: every update bumps a
//!   per-user version counter (`adjv:{<uuid>}`, same hash slot as the set) and a rebuild only
//!   writes when the counter is still what it was before its SQL query (else it reads again).

use super::StoreResult;
use super::outbox::{ConnectionNote, NewConnectionNote, insert_connection_notes};
pub use super::paging::{Cursor, Page};
use super::paging::{Keyed, Sorted, keyset};
use super::redis::Redis;
use super::users::ProfileFields;
use redis::{Cmd, Value};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// The member that marks an adjacency set as built from PostgreSQL.
pub const ADJACENCY_SENTINEL: &[u8] = b"!";
/// Lifetime of an adjacency set (and of its version counter), set when it is (re)built.
pub const ADJACENCY_TTL_S: u64 = 24 * 3600;
/// Members per SADD when a set is rebuilt.
const SADD_CHUNK: usize = 5_000;
/// Reads of PostgreSQL per rebuild when the graph keeps changing meanwhile.
const REBUILD_ATTEMPTS: u32 = 3;
/// Commands per round trip when many sets change at once (erasure).
const BATCH: usize = 5_000;
/// First key of the two-key advisory locks taken on pairs (the second is a hash of the pair).
const PAIR_LOCK_CLASS: i32 = 0x6772_6170; // "grap"

/// Updates one user's adjacency set after a committed change; bumps the version counter.
/// KEYS[1] the set, KEYS[2] its version counter; ARGV[1] member, ARGV[2] add|rem|del, ARGV[3] ttl.
/// Returns the SADD/SREM/DEL answer, or -1 when the set does not exist (left to be rebuilt).
const UPDATE_LUA: &str = "redis.call('INCR',KEYS[2]) redis.call('EXPIRE',KEYS[2],ARGV[3]) \
if ARGV[2]=='del' then return redis.call('DEL',KEYS[1]) end \
if redis.call('EXISTS',KEYS[1])==1 then \
if ARGV[2]=='add' then return redis.call('SADD',KEYS[1],ARGV[1]) end \
return redis.call('SREM',KEYS[1],ARGV[1]) end \
return -1";

/// Rebuilds one set when its version counter is unchanged since the caller read it (or always,
/// when the expected version is `*`).
/// KEYS[1] the set, KEYS[2] its version counter; ARGV[1] expected version, ARGV[2] ttl,
/// ARGV[3] chunk size, ARGV[4..] the sentinel and the members. Returns the degree, or -1 when a
/// change happened in between (nothing written).
const REBUILD_LUA: &str = "local v = redis.call('GET',KEYS[2]) or '0' \
if ARGV[1] ~= '*' and v ~= ARGV[1] then return -1 end \
redis.call('DEL',KEYS[1]) \
local n = #ARGV local step = tonumber(ARGV[3]) \
for i = 4, n, step do redis.call('SADD',KEYS[1],unpack(ARGV,i,math.min(i+step-1,n))) end \
redis.call('EXPIRE',KEYS[1],ARGV[2]) \
return redis.call('SCARD',KEYS[1]) - 1";

// ---------------------------------------------------------------------------------------------
// Records and pagination

/// A connection as seen by one of its two users: the other user.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ConnectionRecord {
    pub user_id: Uuid,
    pub display_name: String,
    pub connected_at: OffsetDateTime,
    #[sqlx(flatten)]
    pub profile: ProfileFields,
}

/// A pending connection request, with the other party of the pair (as the caller sees it).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RequestRecord {
    pub id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    pub created_at: OffsetDateTime,
    #[sqlx(flatten)]
    pub other: Party,
}

/// The other user of a request: name and profile fields.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Party {
    pub display_name: String,
    #[sqlx(flatten)]
    pub profile: ProfileFields,
}

/// The profile columns of `users u`, in the order of [`ProfileFields`].
pub const PROFILE_COLS: &str = "u.headline, u.company, u.title, u.avatar_url, u.linkedin_url";

/// A user the caller blocked.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BlockRecord {
    pub user_id: Uuid,
    pub display_name: String,
    pub blocked_at: OffsetDateTime,
}

/// A discoverable user whose email hash was asked for.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ContactMatch {
    pub email_sha256: Vec<u8>,
    pub user_id: Uuid,
    pub display_name: String,
}

// ---------------------------------------------------------------------------------------------
// Reads

/// True when `a` and `b` are connected.
pub async fn are_connected(db: &PgPool, a: Uuid, b: Uuid) -> StoreResult<bool> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM connections WHERE user_id = $1 AND peer_id = $2)")
            .bind(a)
            .bind(b)
            .fetch_one(db)
            .await?,
    )
}

/// True when either of `a` and `b` blocked the other.
pub async fn blocked_either_way(db: &PgPool, a: Uuid, b: Uuid) -> StoreResult<bool> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM blocks
                        WHERE (blocker_id = $1 AND blocked_id = $2) OR (blocker_id = $2 AND blocked_id = $1))",
    )
    .bind(a)
    .bind(b)
    .fetch_one(db)
    .await?)
}

/// The caller's connections, newest first (`connected_at DESC, user_id DESC`), after `cursor`.
pub async fn list_connections(
    db: &PgPool,
    user: Uuid,
    limit: i64,
    cursor: Option<Cursor>,
) -> StoreResult<Page<ConnectionRecord>> {
    let select = format!(
        "SELECT c.peer_id AS user_id, u.display_name, c.connected_at, {PROFILE_COLS}
         FROM connections c JOIN users u ON u.id = c.peer_id WHERE c.user_id = $1"
    );
    keyset(
        db,
        Sorted::newest(&select, "c.connected_at", "c.peer_id"),
        user,
        limit,
        cursor,
    )
    .await
}

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Addressed to the caller.
    Incoming,
    /// Sent by the caller.
    Outgoing,
}

/// Pending requests to or from the caller, newest first (`created_at DESC, id DESC`), after `cursor`.
pub async fn list_requests(
    db: &PgPool,
    user: Uuid,
    direction: Direction,
    limit: i64,
    cursor: Option<Cursor>,
) -> StoreResult<Page<RequestRecord>> {
    let (column, other) = match direction {
        Direction::Incoming => ("to_user_id", "from_user_id"),
        Direction::Outgoing => ("from_user_id", "to_user_id"),
    };
    // the other party's profile comes in the same query (one per page, never one per item)
    let select = format!(
        "SELECT r.id, r.from_user_id, r.to_user_id, r.created_at, u.display_name, {PROFILE_COLS}
         FROM connection_requests r JOIN users u ON u.id = r.{other} WHERE r.{column} = $1"
    );
    keyset(db, Sorted::newest(&select, "r.created_at", "r.id"), user, limit, cursor).await
}

/// The users the caller blocked, newest first (`created_at DESC, blocked_id DESC`), after `cursor`.
pub async fn list_blocks(
    db: &PgPool,
    user: Uuid,
    limit: i64,
    cursor: Option<Cursor>,
) -> StoreResult<Page<BlockRecord>> {
    const SELECT: &str = "SELECT b.blocked_id AS user_id, u.display_name, b.created_at AS blocked_at
                          FROM blocks b JOIN users u ON u.id = b.blocked_id WHERE b.blocker_id = $1";
    keyset(
        db,
        Sorted::newest(SELECT, "b.created_at", "b.blocked_id"),
        user,
        limit,
        cursor,
    )
    .await
}

/// The users among `hashes` (sha256 of normalised emails) who may be found by email: discoverable,
/// not suspended, not the caller, not blocked either way. One query.
pub async fn match_contacts(db: &PgPool, user: Uuid, hashes: &[Vec<u8>]) -> StoreResult<Vec<ContactMatch>> {
    if hashes.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(
        "SELECT u.email_sha256, u.id AS user_id, u.display_name
         FROM users u JOIN privacy_settings p ON p.user_id = u.id
         WHERE u.email_sha256 = ANY($2) AND p.discoverable_by_email AND NOT u.suspended AND u.id <> $1
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                              OR (b.blocker_id = u.id AND b.blocked_id = $1))
         ORDER BY u.display_name, u.id",
    )
    .bind(user)
    .bind(hashes)
    .fetch_all(db)
    .await?)
}

/// A user matched by a LinkedIn import, with how they stand to the caller.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ImportMatch {
    pub user_id: Uuid,
    pub display_name: String,
    /// Their email hash, when it was asked for and they may be found by email.
    pub email_sha256: Option<Vec<u8>>,
    /// Their LinkedIn URL, when it was asked for.
    pub linkedin_url: Option<String>,
    pub connected: bool,
    /// They asked the caller.
    pub incoming: bool,
    /// The caller asked them.
    pub outgoing: bool,
}

/// The users an import can match: by email hash (only who may be found by email) or by the
/// normalised LinkedIn URL; never the caller, suspended users or blocked pairs (either way).
/// One query whatever the number of rows (`= ANY` over both arrays, on their indexes).
pub async fn match_import(
    db: &PgPool,
    user: Uuid,
    hashes: &[Vec<u8>],
    urls: &[String],
) -> StoreResult<Vec<ImportMatch>> {
    if hashes.is_empty() && urls.is_empty() {
        return Ok(vec![]);
    }
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.display_name,
                CASE WHEN p.discoverable_by_email AND u.email_sha256 = ANY($2) THEN u.email_sha256 END AS email_sha256,
                CASE WHEN u.linkedin_url = ANY($3) THEN u.linkedin_url END AS linkedin_url,
                EXISTS (SELECT 1 FROM connections c WHERE c.user_id = $1 AND c.peer_id = u.id) AS connected,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = u.id AND r.to_user_id = $1) AS incoming,
                EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = $1 AND r.to_user_id = u.id) AS outgoing
         FROM users u JOIN privacy_settings p ON p.user_id = u.id
         WHERE ((u.email_sha256 = ANY($2) AND p.discoverable_by_email) OR u.linkedin_url = ANY($3))
           AND NOT u.suspended AND u.id <> $1
           AND NOT EXISTS (SELECT 1 FROM blocks b
                           WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                              OR (b.blocker_id = u.id AND b.blocked_id = $1))
         ORDER BY u.display_name, u.id",
    )
    .bind(user)
    .bind(hashes)
    .bind(urls)
    .fetch_all(db)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Changes

type Tx = Transaction<'static, Postgres>;

/// The second key of the advisory lock of the pair `{a, b}`.
fn pair_key(a: Uuid, b: Uuid) -> i32 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    let digest = Sha256::new()
        .chain_update(lo.as_bytes())
        .chain_update(hi.as_bytes())
        .finalize();
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// Serialises every change of the pair `{a, b}` until the transaction ends.
async fn lock_pair(tx: &mut Tx, a: Uuid, b: Uuid) -> StoreResult<()> {
    let key = pair_key(a, b);
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(PAIR_LOCK_CLASS)
        .bind(key)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// What holds between the caller and another user (read under the pair lock).
struct PairState {
    caller_exists: bool,
    /// Either blocked the other.
    blocked: bool,
    /// The caller blocked the other (the other never learns of a block).
    caller_blocked: bool,
    connected: bool,
}

async fn pair_state(tx: &mut Tx, me: Uuid, other: Uuid) -> StoreResult<PairState> {
    let (caller_exists, caller_blocked, blocked_by_other, connected): (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1),
                EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2),
                EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $1),
                EXISTS (SELECT 1 FROM connections WHERE user_id = $1 AND peer_id = $2)",
    )
    .bind(me)
    .bind(other)
    .fetch_one(&mut **tx)
    .await?;
    Ok(PairState {
        caller_exists,
        blocked: caller_blocked || blocked_by_other,
        caller_blocked,
        connected,
    })
}

/// Connects `a` and `b` (both directions) and drops the requests between them; the connection time.
async fn connect_tx(tx: &mut Tx, a: Uuid, b: Uuid) -> StoreResult<OffsetDateTime> {
    let times: Vec<OffsetDateTime> = sqlx::query_scalar(
        "INSERT INTO connections (user_id, peer_id) VALUES ($1, $2), ($2, $1)
         ON CONFLICT (user_id, peer_id) DO UPDATE SET connected_at = connections.connected_at
         RETURNING connected_at",
    )
    .bind(a)
    .bind(b)
    .fetch_all(&mut **tx)
    .await?;
    delete_requests_tx(tx, a, b).await?;
    times
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("connection insert returned no row").into())
}

async fn delete_requests_tx(tx: &mut Tx, a: Uuid, b: Uuid) -> StoreResult<u64> {
    Ok(sqlx::query(
        "DELETE FROM connection_requests
         WHERE (from_user_id = $1 AND to_user_id = $2) OR (from_user_id = $2 AND to_user_id = $1)",
    )
    .bind(a)
    .bind(b)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn disconnect_tx(tx: &mut Tx, a: Uuid, b: Uuid) -> StoreResult<u64> {
    Ok(
        sqlx::query("DELETE FROM connections WHERE (user_id = $1 AND peer_id = $2) OR (user_id = $2 AND peer_id = $1)")
            .bind(a)
            .bind(b)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    )
}

/// The user a request is addressed to or comes from.
#[derive(sqlx::FromRow)]
struct PeerRow {
    id: Uuid,
    #[sqlx(flatten)]
    party: Party,
}

/// Whom a request is for.
#[derive(Debug, Clone)]
pub enum Target {
    Id(Uuid),
    /// Compared case-insensitively.
    Email(crate::domain::account::Email),
}

/// What asking for a connection did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// A new pending request.
    Created(RequestRecord),
    /// The caller had already asked: that request, unchanged.
    Existing(RequestRecord),
    /// The other user had already asked the caller: now connected.
    Connected(ConnectionRecord),
    /// No such user, or a suspended one.
    UnknownUser,
    /// The caller addressed themself.
    ToSelf,
    /// One of the two blocked the other.
    Blocked,
    AlreadyConnected,
    /// The caller's account no longer exists.
    CallerGone,
}

/// Asks `target` for a connection, or connects at once when they already asked the caller.
pub async fn request_connection(db: &PgPool, redis: &Redis, me: Uuid, target: &Target) -> StoreResult<RequestOutcome> {
    if matches!(target, Target::Id(id) if *id == me) {
        return Ok(RequestOutcome::ToSelf);
    }
    let mut tx = db.begin().await?;
    let peer: Option<PeerRow> = match target {
        Target::Id(id) => {
            sqlx::query_as(&format!(
                "SELECT u.id, u.display_name, {PROFILE_COLS} FROM users u WHERE u.id = $1 AND NOT u.suspended"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
        }
        Target::Email(email) => {
            // an email finds only who may be found by email: anyone else answers as unknown
            sqlx::query_as(&format!(
                "SELECT u.id, u.display_name, {PROFILE_COLS} FROM users u JOIN privacy_settings p ON p.user_id = u.id
                 WHERE u.email_sha256 = $1 AND NOT u.suspended AND p.discoverable_by_email"
            ))
            .bind(email.sha256())
            .fetch_optional(&mut *tx)
            .await?
        }
    };
    let Some(PeerRow {
        id: peer,
        party: Party { display_name, profile },
    }) = peer
    else {
        return Ok(RequestOutcome::UnknownUser);
    };
    if peer == me {
        return Ok(RequestOutcome::ToSelf);
    }
    lock_pair(&mut tx, me, peer).await?;
    let state = pair_state(&mut tx, me, peer).await?;
    if !state.caller_exists {
        return Ok(RequestOutcome::CallerGone);
    }
    if state.blocked && !state.caller_blocked {
        // a block is silent to the blocked: as for an unknown user
        return Ok(RequestOutcome::UnknownUser);
    }
    if state.blocked {
        return Ok(RequestOutcome::Blocked);
    }
    if state.connected {
        return Ok(RequestOutcome::AlreadyConnected);
    }
    let reverse: Option<Uuid> =
        sqlx::query_scalar("SELECT id FROM connection_requests WHERE from_user_id = $1 AND to_user_id = $2")
            .bind(peer)
            .bind(me)
            .fetch_optional(&mut *tx)
            .await?;
    if let Some(reverse) = reverse {
        let connected_at = connect_tx(&mut tx, me, peer).await?;
        // asking back accepts: the one who asked first hears of it
        let note = NewConnectionNote {
            user_id: peer,
            actor_user_id: me,
            request_id: reverse,
            note: ConnectionNote::Accepted,
        };
        insert_connection_notes(&mut tx, &[note]).await?;
        tx.commit().await?;
        sync_pair(db, redis, me, peer, true).await?;
        return Ok(RequestOutcome::Connected(ConnectionRecord {
            user_id: peer,
            display_name,
            connected_at,
            profile,
        }));
    }
    let created: Option<(Uuid, Uuid, Uuid, OffsetDateTime)> = sqlx::query_as(
        "INSERT INTO connection_requests (id, from_user_id, to_user_id) VALUES ($1, $2, $3)
         ON CONFLICT (from_user_id, to_user_id) DO NOTHING
         RETURNING id, from_user_id, to_user_id, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(me)
    .bind(peer)
    .fetch_optional(&mut *tx)
    .await?;
    let record = |(id, from_user_id, to_user_id, created_at): (Uuid, Uuid, Uuid, OffsetDateTime)| RequestRecord {
        id,
        from_user_id,
        to_user_id,
        created_at,
        other: Party {
            display_name: display_name.clone(),
            profile: profile.clone(),
        },
    };
    let outcome = match created {
        Some(r) => {
            let note = NewConnectionNote {
                user_id: peer,
                actor_user_id: me,
                request_id: r.0,
                note: ConnectionNote::Request,
            };
            insert_connection_notes(&mut tx, &[note]).await?;
            RequestOutcome::Created(record(r))
        }
        None => RequestOutcome::Existing(record(
            sqlx::query_as(
                "SELECT id, from_user_id, to_user_id, created_at FROM connection_requests
                 WHERE from_user_id = $1 AND to_user_id = $2",
            )
            .bind(me)
            .bind(peer)
            .fetch_one(&mut *tx)
            .await?,
        )),
    };
    tx.commit().await?;
    Ok(outcome)
}

/// Pairs per transaction of [`request_many`] (each holds an advisory lock until the commit; the
/// shared lock table has room for a few thousand).
const REQUEST_CHUNK: usize = 500;

/// Sends a pending request from `me` to each of `targets` who is neither connected with `me` nor
/// has a request pending either way, is not suspended and not blocked either way: a few
/// statements per 500 targets, whatever their number. The users asked.
pub async fn request_many(db: &PgPool, me: Uuid, targets: &[Uuid]) -> StoreResult<Vec<Uuid>> {
    let mut asked = vec![];
    let mut targets: Vec<Uuid> = targets.iter().copied().filter(|t| *t != me).collect();
    targets.sort_unstable();
    targets.dedup();
    for chunk in targets.chunks(REQUEST_CHUNK) {
        let mut keys: Vec<i32> = chunk.iter().map(|t| pair_key(me, *t)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut tx = db.begin().await?;
        // the same pair locks as single requests, taken in key order (unnest keeps array order)
        sqlx::query("SELECT count(pg_advisory_xact_lock($1, k)) FROM unnest($2::int4[]) AS k")
            .bind(PAIR_LOCK_CLASS)
            .bind(&keys)
            .execute(&mut *tx)
            .await?;
        let ids: Vec<Uuid> = chunk.iter().map(|_| Uuid::now_v7()).collect();
        let sent: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "INSERT INTO connection_requests (id, from_user_id, to_user_id)
             SELECT t.id, $1, t.peer FROM unnest($2::uuid[], $3::uuid[]) AS t(id, peer)
             JOIN users u ON u.id = t.peer AND NOT u.suspended
             WHERE EXISTS (SELECT 1 FROM users WHERE id = $1)
               AND NOT EXISTS (SELECT 1 FROM connections c WHERE c.user_id = $1 AND c.peer_id = t.peer)
               AND NOT EXISTS (SELECT 1 FROM connection_requests r WHERE r.from_user_id = t.peer AND r.to_user_id = $1)
               AND NOT EXISTS (SELECT 1 FROM blocks b
                               WHERE (b.blocker_id = $1 AND b.blocked_id = t.peer)
                                  OR (b.blocker_id = t.peer AND b.blocked_id = $1))
             ON CONFLICT (from_user_id, to_user_id) DO NOTHING
             RETURNING id, to_user_id",
        )
        .bind(me)
        .bind(&ids)
        .bind(chunk)
        .fetch_all(&mut *tx)
        .await?;
        // each one asked hears of it: one statement for the chunk's notifications
        let notes: Vec<NewConnectionNote> = sent
            .iter()
            .map(|(request_id, to)| NewConnectionNote {
                user_id: *to,
                actor_user_id: me,
                request_id: *request_id,
                note: ConnectionNote::Request,
            })
            .collect();
        insert_connection_notes(&mut tx, &notes).await?;
        tx.commit().await?;
        asked.extend(sent.into_iter().map(|(_, to)| to));
    }
    Ok(asked)
}

/// Accepts request `id` addressed to `me`; `None` when there is no such request for `me` (or its
/// sender is suspended). The connection as `me` sees it.
pub async fn accept_request(db: &PgPool, redis: &Redis, me: Uuid, id: Uuid) -> StoreResult<Option<ConnectionRecord>> {
    let mut tx = db.begin().await?;
    let from: Option<Uuid> =
        sqlx::query_scalar("SELECT from_user_id FROM connection_requests WHERE id = $1 AND to_user_id = $2")
            .bind(id)
            .bind(me)
            .fetch_optional(&mut *tx)
            .await?;
    let Some(from) = from else { return Ok(None) };
    lock_pair(&mut tx, me, from).await?;
    // read again under the lock: a concurrent decline or block may have removed it
    let peer: Option<PeerRow> = sqlx::query_as(&format!(
        "SELECT u.id, u.display_name, {PROFILE_COLS} FROM connection_requests r JOIN users u ON u.id = r.from_user_id
         WHERE r.id = $1 AND r.to_user_id = $2 AND NOT u.suspended"
    ))
    .bind(id)
    .bind(me)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(PeerRow {
        id: peer,
        party: Party { display_name, profile },
    }) = peer
    else {
        return Ok(None);
    };
    if pair_state(&mut tx, me, peer).await?.blocked {
        // cannot happen while blocks drop requests under the same lock; never connect a blocked pair
        return Ok(None);
    }
    let connected_at = connect_tx(&mut tx, me, peer).await?;
    let note = NewConnectionNote {
        user_id: peer,
        actor_user_id: me,
        request_id: id,
        note: ConnectionNote::Accepted,
    };
    insert_connection_notes(&mut tx, &[note]).await?;
    tx.commit().await?;
    sync_pair(db, redis, me, peer, true).await?;
    Ok(Some(ConnectionRecord {
        user_id: peer,
        display_name,
        connected_at,
        profile,
    }))
}

/// Declines (deletes) request `id` addressed to `me`; false when there is no such request for `me`.
pub async fn decline_request(db: &PgPool, me: Uuid, id: Uuid) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM connection_requests WHERE id = $1 AND to_user_id = $2")
            .bind(id)
            .bind(me)
            .execute(db)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Removes the connection between `me` and `peer` for both; false when they were not connected.
pub async fn remove_connection(db: &PgPool, redis: &Redis, me: Uuid, peer: Uuid) -> StoreResult<bool> {
    let mut tx = db.begin().await?;
    lock_pair(&mut tx, me, peer).await?;
    let removed = disconnect_tx(&mut tx, me, peer).await?;
    tx.commit().await?;
    if removed == 0 {
        return Ok(false);
    }
    sync_pair(db, redis, me, peer, false).await?;
    Ok(true)
}

/// What blocking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOutcome {
    /// Blocked now or already before (idempotent).
    Blocked,
    /// No such user (suspended users can be blocked).
    UnknownUser,
    /// The caller's account no longer exists.
    CallerGone,
}

/// `me` blocks `other`: the connection and pending requests in both directions go. The caller
/// checks that `other` is not `me`.
pub async fn block(db: &PgPool, redis: &Redis, me: Uuid, other: Uuid) -> StoreResult<BlockOutcome> {
    let mut tx = db.begin().await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)")
        .bind(other)
        .fetch_one(&mut *tx)
        .await?;
    if !exists {
        return Ok(BlockOutcome::UnknownUser);
    }
    lock_pair(&mut tx, me, other).await?;
    if !pair_state(&mut tx, me, other).await?.caller_exists {
        return Ok(BlockOutcome::CallerGone);
    }
    sqlx::query("INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(me)
        .bind(other)
        .execute(&mut *tx)
        .await?;
    let removed = disconnect_tx(&mut tx, me, other).await?;
    delete_requests_tx(&mut tx, me, other).await?;
    // the notifications about each other leave both lists (their deliveries with them)
    sqlx::query(
        "DELETE FROM notifications
          WHERE (user_id = $1 AND actor_user_id = $2) OR (user_id = $2 AND actor_user_id = $1)",
    )
    .bind(me)
    .bind(other)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if removed > 0 {
        sync_pair(db, redis, me, other, false).await?;
    }
    Ok(BlockOutcome::Blocked)
}

/// Lifts the block of `other` by `me`; false when there was none.
pub async fn unblock(db: &PgPool, me: Uuid, other: Uuid) -> StoreResult<bool> {
    Ok(
        sqlx::query("DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2")
            .bind(me)
            .bind(other)
            .execute(db)
            .await?
            .rows_affected()
            > 0,
    )
}

// ---------------------------------------------------------------------------------------------
// The Redis adjacency cache

/// The key of `user`'s adjacency set: `<prefix>:adj:{<uuid>}`.
pub fn adjacency_key(redis: &Redis, user: Uuid) -> String {
    redis.key(format_args!("adj:{{{}}}", user))
}

/// The version counter of `user`'s adjacency set (same hash slot as the set).
fn version_key(redis: &Redis, user: Uuid) -> String {
    redis.key(format_args!("adjv:{{{}}}", user))
}

/// Makes sure `user`'s adjacency set exists and returns the degree (connections of `user`).
/// One SCARD round trip when the set exists; else one SQL query and one Redis write.
pub async fn ensure_adjacency(db: &PgPool, redis: &Redis, user: Uuid) -> StoreResult<u64> {
    let mut pipe = redis::pipe();
    pipe.cmd("SCARD")
        .arg(adjacency_key(redis, user))
        .cmd("GET")
        .arg(version_key(redis, user));
    let (card, version): (u64, Option<String>) = redis.run_pipe(&pipe).await?;
    if card > 0 {
        return Ok(card - 1);
    }
    Ok(rebuild(db, redis, user, version).await?.len() as u64)
}

/// The ids of `user`'s connections, from Redis (rebuilt from PostgreSQL when missing).
pub async fn adjacency(db: &PgPool, redis: &Redis, user: Uuid) -> StoreResult<Vec<Uuid>> {
    let mut pipe = redis::pipe();
    pipe.cmd("SMEMBERS")
        .arg(adjacency_key(redis, user))
        .cmd("GET")
        .arg(version_key(redis, user));
    let (members, version): (Vec<Vec<u8>>, Option<String>) = redis.run_pipe(&pipe).await?;
    if members.is_empty() {
        return rebuild(db, redis, user, version).await;
    }
    Ok(members
        .iter()
        .filter_map(|m| <[u8; 16]>::try_from(m.as_slice()).ok().map(Uuid::from_bytes))
        .collect())
}

/// Reads `user`'s connections from PostgreSQL and writes the set, unless a change of `user`'s
/// graph reached Redis since `version` was read: then it reads the version and PostgreSQL again.
/// The last attempt writes whatever it read (a change must land within milliseconds of each of
/// the earlier attempts to get there). The connections.
async fn rebuild(db: &PgPool, redis: &Redis, user: Uuid, mut version: Option<String>) -> StoreResult<Vec<Uuid>> {
    let started = std::time::Instant::now();
    let key = adjacency_key(redis, user);
    let version_key = version_key(redis, user);
    let mut attempt = 1;
    loop {
        let last = attempt == REBUILD_ATTEMPTS;
        let peers: Vec<Uuid> = sqlx::query_scalar("SELECT peer_id FROM connections WHERE user_id = $1")
            .bind(user)
            .fetch_all(db)
            .await?;
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(REBUILD_LUA)
            .arg(2)
            .arg(&key)
            .arg(&version_key)
            .arg(if last { "*" } else { version.as_deref().unwrap_or("0") })
            .arg(ADJACENCY_TTL_S)
            .arg(SADD_CHUNK)
            .arg(ADJACENCY_SENTINEL);
        for p in &peers {
            cmd.arg(p.as_bytes().as_slice());
        }
        let written: i64 = redis.run(&cmd).await?;
        if written >= 0 {
            tracing::debug!(
                %user,
                degree = peers.len(),
                attempt,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "adjacency rebuilt"
            );
            return Ok(peers);
        }
        attempt += 1;
        if attempt == REBUILD_ATTEMPTS {
            tracing::warn!(%user, "adjacency kept changing while rebuilt; writing the last read");
        }
        version = redis.run(redis::cmd("GET").arg(&version_key)).await?;
    }
}

/// The update script for `user`'s set: `op` is `add`, `rem` (of `member`) or `del` (the set).
fn update_cmd(redis: &Redis, user: Uuid, member: Option<Uuid>, op: &str) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(UPDATE_LUA)
        .arg(2)
        .arg(adjacency_key(redis, user))
        .arg(version_key(redis, user));
    match member {
        Some(m) => cmd.arg(m.as_bytes().as_slice()),
        None => cmd.arg(""),
    };
    cmd.arg(op).arg(ADJACENCY_TTL_S);
    cmd
}

fn any_error(values: &[Value]) -> bool {
    values.iter().any(|v| matches!(v, Value::ServerError(_)))
}

/// Deletes the sets of `users` (they are rebuilt on their next read); fails when Redis does not take it.
async fn invalidate(redis: &Redis, users: &[Uuid]) -> StoreResult<()> {
    for chunk in users.chunks(BATCH) {
        let cmds = chunk.iter().map(|u| update_cmd(redis, *u, None, "del")).collect();
        let values = redis.run_many(cmds).await?;
        if any_error(&values) {
            return Err(anyhow::anyhow!("redis refused to delete adjacency sets").into());
        }
    }
    Ok(())
}

/// Brings both sets of the pair in line with the committed state `connected`, then checks the
/// pair in PostgreSQL again: when a concurrent change overtook this one, both sets are deleted.
async fn sync_pair(db: &PgPool, redis: &Redis, a: Uuid, b: Uuid, connected: bool) -> StoreResult<()> {
    let op = if connected { "add" } else { "rem" };
    let cmds = vec![update_cmd(redis, a, Some(b), op), update_cmd(redis, b, Some(a), op)];
    let consistent = match redis.run_many(cmds).await {
        Ok(values) if !any_error(&values) => match are_connected(db, a, b).await {
            Ok(now) => now == connected,
            Err(e) => {
                tracing::warn!(error = %e, "cannot re-read the pair; dropping both adjacency sets");
                false
            }
        },
        Ok(_) => {
            tracing::warn!("adjacency update refused; dropping both sets");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "adjacency update failed; dropping both sets");
            false
        }
    };
    if consistent {
        Ok(())
    } else {
        invalidate(redis, &[a, b]).await
    }
}

/// For erasure, before the user row is deleted: removes `user` from the sets of all their
/// connections (read from PostgreSQL) and deletes `user`'s own set. A few round trips in all.
pub async fn forget_user(db: &PgPool, redis: &Redis, user: Uuid) -> StoreResult<()> {
    let peers: Vec<Uuid> = sqlx::query_scalar("SELECT peer_id FROM connections WHERE user_id = $1")
        .bind(user)
        .fetch_all(db)
        .await?;
    let mut cmds: Vec<Cmd> = peers.iter().map(|p| update_cmd(redis, *p, Some(user), "rem")).collect();
    // the user's own set and version counter go entirely (erasure leaves no key naming them)
    cmds.push(redis::cmd("DEL").arg(adjacency_key(redis, user)).clone());
    cmds.push(redis::cmd("DEL").arg(version_key(redis, user)).clone());
    let mut failed = false;
    let mut rest = cmds;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(BATCH));
        match redis.run_many(rest).await {
            Ok(values) if !any_error(&values) => {}
            _ => {
                failed = true;
                break;
            }
        }
        rest = tail;
    }
    if failed {
        let mut all = peers;
        all.push(user);
        invalidate(redis, &all).await?;
    }
    Ok(())
}

impl Keyed for ConnectionRecord {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.connected_at,
            id: self.user_id,
        }
    }
}

impl Keyed for RequestRecord {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.created_at,
            id: self.id,
        }
    }
}

impl Keyed for BlockRecord {
    fn key(&self) -> Cursor {
        Cursor {
            at: self.blocked_at,
            id: self.user_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            at: OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_000).expect("time"),
            id: Uuid::now_v7(),
        };
        let text = c.encode();
        assert_eq!(text.len(), 32);
        assert!(
            text.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        );
        assert_eq!(Cursor::decode(&text), Some(c));
        for bad in [
            "",
            "x",
            "AAAA",
            "!!!!",
            &text[..31],
            &format!("{text}A"),
            &format!("{text}="),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
        // any text of the stated shape is a position, times beyond the calendar included (clamped
        // into what PostgreSQL stores)
        let before_year_one = Cursor::decode("-4dxtzefrpEsA1VfJ04fy0Krj_S8NY8O").expect("a position");
        assert_eq!(before_year_one.at.year(), 1);
        for edge in [
            "________________________________",
            "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(Cursor::decode(edge).is_some(), "{edge}");
        }
    }
}
