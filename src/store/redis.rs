//! The Redis connection: one server or a Redis Cluster, connected lazily, every call bounded in time.
//!
//! Keys are namespaced by the configured prefix. Commands that must go together use hash tags
//! (`{...}`) so they stay in one slot; batches of independent single-key commands go as one
//! pipeline on a single server and as concurrent commands on the multiplexed cluster connection.

use super::{StoreError, StoreResult, bounded};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }
    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }
    fn get_db(&self) -> i64 {
        0
    }
}

struct Inner {
    urls: Vec<String>,
    prefix: String,
    timeout: Duration,
    /// One connection per [`Lane`].
    conns: [RwLock<Option<Conn>>; 2],
    /// When each lane's cluster connection was last dropped to be made anew (see
    /// [`Redis::recover`]).
    reset_at: [std::sync::Mutex<Option<std::time::Instant>>; 2],
}

/// Least time between two fresh cluster connections while a shard does not answer.
const CLUSTER_RESET_EVERY: Duration = Duration::from_millis(500);

/// A cheap-to-clone handle on Redis (single server or cluster).
#[derive(Clone)]
pub struct Redis {
    inner: Arc<Inner>,
    lane: Lane,
}

/// Which of the handle's two connections a call takes. Redis answers one connection's
/// commands in the order they came, but serves its connections in turn (a read of each ready
/// one per pass of its event loop): the check-ins' writes, on their own connection, wait
/// behind one read's worth of the queries' scripts, not behind all those queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Queries, scripts and everything else.
    Reads = 0,
    /// The check-in pipeline's rate limits and index writes, and the live radar's news.
    Writes = 1,
}

impl Redis {
    /// A handle that connects on first use (so the server starts while Redis is down).
    pub fn new(urls: Vec<String>, prefix: String, timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                urls,
                prefix,
                timeout,
                conns: [RwLock::new(None), RwLock::new(None)],
                reset_at: [std::sync::Mutex::new(None), std::sync::Mutex::new(None)],
            }),
            lane: Lane::Reads,
        }
    }

    /// The same Redis over the connection of `lane`.
    pub fn lane(&self, lane: Lane) -> Self {
        Self {
            inner: self.inner.clone(),
            lane,
        }
    }

    /// True when configured with several nodes (Redis Cluster).
    pub fn is_cluster(&self) -> bool {
        self.inner.urls.len() > 1
    }

    /// The configured node URLs (one, or the cluster's seeds).
    pub fn urls(&self) -> &[String] {
        &self.inner.urls
    }

    /// The bound on every call.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The key namespace.
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    /// A namespaced key.
    pub fn key(&self, rest: std::fmt::Arguments<'_>) -> String {
        format!("{}:{}", self.inner.prefix, rest)
    }

    async fn conn(&self) -> StoreResult<Conn> {
        let slot = &self.inner.conns[self.lane as usize];
        if let Some(c) = slot.read().await.as_ref() {
            return Ok(c.clone());
        }
        let mut guard = slot.write().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let t = self.inner.timeout;
        let conn = if self.is_cluster() {
            let client = redis::cluster::ClusterClientBuilder::new(self.inner.urls.clone())
                .connection_timeout(t)
                .response_timeout(t)
                .retries(1)
                .build()?;
            Conn::Cluster(bounded(t, "redis connect", client.get_async_connection()).await?)
        } else {
            let client = redis::Client::open(self.inner.urls[0].as_str())?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(t)
                .set_response_timeout(t)
                .set_number_of_retries(1)
                .set_max_delay(500);
            Conn::Single(bounded(t, "redis connect", ConnectionManager::new_with_config(client, cfg)).await?)
        };
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// After a failed call on a cluster: the client keeps its map of slots until a node answers
    /// MOVED, so a master that died stays in it and every call aimed at it (and, while the client
    /// tries to reconnect to it, every other call) times out, also once a replica has taken its
    /// slots. Dropping the connection (at most every [`CLUSTER_RESET_EVERY`]) makes the next call
    /// connect anew and read the slots from a live node: calls succeed again within that time of
    /// the promotion.
    async fn recover<T>(&self, r: StoreResult<T>) -> StoreResult<T> {
        if self.is_cluster() && matches!(r, Err(StoreError::Unavailable(_))) {
            let due = {
                let mut at = self.inner.reset_at[self.lane as usize]
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let due = at.is_none_or(|t| t.elapsed() >= CLUSTER_RESET_EVERY);
                if due {
                    *at = Some(std::time::Instant::now());
                }
                due
            };
            if due {
                tracing::debug!("a Redis Cluster call failed: connecting anew to re-read the slots");
                *self.inner.conns[self.lane as usize].write().await = None;
            }
        }
        r
    }

    /// Runs one command.
    pub async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        let mut c = self.conn().await?;
        let r = bounded(self.inner.timeout, "redis", cmd.query_async::<T>(&mut c)).await;
        self.recover(r).await
    }

    /// Runs a script by its hash, loading it first when the server does not know it (after a
    /// restart): the body crosses the wire once per server, not once per call.
    pub async fn invoke<T: FromRedisValue>(&self, inv: &redis::ScriptInvocation<'_>) -> StoreResult<T> {
        let mut c = self.conn().await?;
        bounded(self.inner.timeout, "redis", inv.invoke_async::<T>(&mut c)).await
    }

    /// Runs a pipeline whose keys all hash to one slot (or any pipeline on a single server).
    pub async fn run_pipe<T: FromRedisValue>(&self, pipe: &Pipeline) -> StoreResult<T> {
        let mut c = self.conn().await?;
        let r = bounded(self.inner.timeout, "redis", pipe.query_async::<T>(&mut c)).await;
        self.recover(r).await
    }

    /// Runs independent single-key commands in one round trip: a pipeline on one server,
    /// concurrent commands over the multiplexed connection on a cluster. Answers in order.
    pub async fn run_many(&self, cmds: Vec<Cmd>) -> StoreResult<Vec<Value>> {
        if cmds.is_empty() {
            return Ok(vec![]);
        }
        let c = self.conn().await?;
        let t = self.inner.timeout;
        match c {
            Conn::Single(mut c) => {
                let mut pipe = redis::pipe();
                for cmd in cmds {
                    pipe.add_command(cmd);
                }
                bounded(t, "redis", pipe.query_async::<Vec<Value>>(&mut c)).await
            }
            Conn::Cluster(c) => {
                let futs = cmds.into_iter().map(|cmd| {
                    let mut c = c.clone();
                    async move { cmd.query_async::<Value>(&mut c).await }
                });
                let r = bounded(t, "redis", futures_util::future::try_join_all(futs)).await;
                self.recover(r).await
            }
        }
    }

    /// Runs a command on the master that serves `slot` (a keyless command such as `CLUSTER MYID`
    /// or `SCAN` aimed at one shard); on a single server, on that server.
    pub async fn run_on_slot(&self, cmd: &Cmd, slot: u16) -> StoreResult<Value> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        let c = self.conn().await?;
        let t = self.inner.timeout;
        match c {
            Conn::Single(mut c) => bounded(t, "redis", cmd.query_async::<Value>(&mut c)).await,
            Conn::Cluster(mut c) => {
                let route =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(slot, SlotAddr::Master)));
                let r = bounded(t, "redis", c.route_command(cmd, route)).await;
                self.recover(r).await
            }
        }
    }

    /// Deletes every key under this handle's prefix (tests and erasure tooling only).
    pub async fn scan_keys(&self, pattern: &str) -> StoreResult<Vec<Vec<u8>>> {
        let c = self.conn().await?;
        let mut out = Vec::new();
        let scan_one = |mut conn: ConnectionManager, pattern: String| async move {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                // keys are bytes: record keys hold the user's 16 raw bytes
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                keys.extend(batch);
                if next == 0 {
                    return Ok::<_, redis::RedisError>(keys);
                }
                cursor = next;
            }
        };
        match c {
            Conn::Single(conn) => out.extend(
                bounded(
                    self.inner.timeout * 10,
                    "redis scan",
                    scan_one(conn, pattern.to_string()),
                )
                .await?,
            ),
            Conn::Cluster(_) => {
                for url in &self.inner.urls {
                    let client = redis::Client::open(url.as_str())?;
                    let conn = bounded(self.inner.timeout, "redis connect", ConnectionManager::new(client)).await?;
                    let keys = bounded(
                        self.inner.timeout * 10,
                        "redis scan",
                        scan_one(conn, pattern.to_string()),
                    )
                    .await?;
                    out.extend(keys);
                }
                out.sort();
                out.dedup();
            }
        }
        Ok(out)
    }

    /// Answers PING (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        let pong: String = self.run(&redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StoreError::Unavailable(format!("redis answered {pong:?} to PING")))
        }
    }
}
