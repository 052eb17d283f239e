//! Seeding through the bulk paths, and what the stores spend per user.
//!
//! PostgreSQL: `COPY … FROM STDIN` (text format) on a dedicated connection without a statement
//! timeout, with `session_replication_role = replica` when allowed (superuser) so that the
//! foreign-key triggers of rows we know to be consistent are skipped, and `synchronous_commit =
//! off`. Users come in id order, so the primary keys grow by appending; `connections` is loaded by
//! two streams over the two halves of the id range; then the travel plans (trips and home
//! bases, [`super::trips::seed`]). Then `VACUUM (ANALYZE)`, as autovacuum would.
//!
//! Redis: the live index through [`index::put_many`] in batches of 1,000 users (one pipeline
//! each), and the adjacency set of every live user (the ones that query) with SADD in pipelines
//! — one key per command, the sentinel member first, the TTL of graph.rs — so cluster-safe.
//! Memory is measured with `INFO memory` before and after, and `MEMORY USAGE` of every cell key
//! (per resolution) and of samples of records and adjacency sets.

use super::trips::TripPlan;
use super::world::{World, derived_uuid};
use super::{bar, say};
use anyhow::Context;
use futures_util::TryStreamExt;
use h3o::CellIndex;
use hereabouts::config::Settings;
use hereabouts::domain::geo::publish;
use hereabouts::domain::nearby::LiveRecord;
use hereabouts::domain::policy::Precision;
use hereabouts::service::auth::Passwords;
use hereabouts::service::live::record_for;
use hereabouts::store::live::LiveRow;
use hereabouts::store::privacy::PrivacyRecord;
use hereabouts::store::redis::Redis;
use hereabouts::store::{graph, index};
use redis::{Cmd, Value};
use secrecy::SecretString;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::collections::BTreeMap;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// The password of every seeded user.
pub const PASSWORD: &str = "loadgen-password";
/// Bytes per COPY message.
const CHUNK: usize = 1 << 20;
/// Users per `index::put_many` pipeline.
const INDEX_BATCH: usize = 1_000;
/// Adjacency members per pipeline.
const ADJ_BATCH: usize = 100_000;
/// Members per SADD (as graph.rs does).
const SADD_CHUNK: usize = 5_000;

/// One timed step of the seeding.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_s: f64,
}

impl Step {
    pub fn new(name: &str, rows: u64, t: Instant) -> Self {
        let seconds = t.elapsed().as_secs_f64();
        Self {
            name: name.to_string(),
            rows,
            seconds,
            rows_per_s: rows as f64 / seconds.max(1e-9),
        }
    }
}

/// How seeding went.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SeedReport {
    pub steps: Vec<Step>,
    pub total_s: f64,
    pub foreign_key_triggers_skipped: bool,
    /// `INFO memory` used_memory before the index, after it, and after the adjacency sets.
    pub redis_used_memory_before: u64,
    pub redis_used_memory_after_index: u64,
    pub redis_used_memory_after_adjacency: u64,
    pub notes: Vec<String>,
}

/// Bytes of the index at one resolution.
#[derive(Debug, Clone, Serialize)]
pub struct ResolutionMemory {
    pub resolution: u8,
    pub keys: u64,
    pub members: u64,
    pub bytes: u64,
    pub bytes_per_live_user: f64,
}

/// Redis bytes (from `MEMORY USAGE`).
#[derive(Debug, Clone, Serialize, Default)]
pub struct RedisMemory {
    pub live_users: u64,
    pub per_resolution: Vec<ResolutionMemory>,
    pub record_bytes_mean: f64,
    pub records_sampled: u64,
    /// Cell keys of every resolution plus the record, per live user.
    pub index_bytes_per_live_user: f64,
    /// The same divided by the 4 indexed resolutions.
    pub index_bytes_per_live_user_per_resolution: f64,
    /// From `INFO memory` (noisier: other tenants of the server count too), when seeded in this run.
    pub used_memory_delta_per_live_user: Option<f64>,
    pub adjacency_bytes_per_member: f64,
    pub adjacency_sets_sampled: u64,
    pub adjacency_bytes_total_estimate: f64,
}

/// PostgreSQL bytes of one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableSize {
    pub table: String,
    pub rows: i64,
    pub total_bytes: i64,
    pub bytes_per_user: f64,
}

/// What the stores spend.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Memory {
    pub redis: RedisMemory,
    pub postgres: Vec<TableSize>,
    pub postgres_bytes_per_user: f64,
}

/// Writes one world into the stores.
pub struct Seeder<'w> {
    world: &'w World,
    settings: &'w Settings,
    opts: PgConnectOptions,
    pub redis: Redis,
    now: OffsetDateTime,
    ttl_s: i64,
    id_text: Vec<[u8; 36]>,
}

fn id_text(u: &Uuid) -> [u8; 36] {
    let mut buf = [0u8; 36];
    u.hyphenated().encode_lower(&mut buf);
    buf
}

/// The display name of user `i`.
pub fn display_name(i: usize) -> String {
    format!("Traveller {i:07}")
}

/// The email of user `i`.
pub fn email(i: usize) -> String {
    format!("traveller{i:07}@loadgen.test")
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `used_memory` from `INFO memory`: of the server, or summed over the nodes of a cluster (the
/// client sends INFO to every node and answers node → text).
pub async fn used_memory(redis: &Redis) -> anyhow::Result<u64> {
    let info: Value = redis.run(redis::cmd("INFO").arg("memory")).await?;
    let of = |text: &[u8]| -> Option<u64> {
        String::from_utf8_lossy(text)
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
    };
    let texts: Vec<Vec<u8>> = match info {
        Value::BulkString(b) => vec![b],
        Value::VerbatimString { text, .. } | Value::SimpleString(text) => vec![text.into_bytes()],
        Value::Map(nodes) => nodes
            .into_iter()
            .filter_map(|(_, v)| match v {
                Value::BulkString(b) => Some(b),
                Value::VerbatimString { text, .. } | Value::SimpleString(text) => Some(text.into_bytes()),
                _ => None,
            })
            .collect(),
        _ => vec![],
    };
    let sizes: Vec<u64> = texts.iter().filter_map(|t| of(t)).collect();
    anyhow::ensure!(!sizes.is_empty(), "INFO memory has no used_memory");
    Ok(sizes.iter().sum())
}

fn int(v: &Value) -> u64 {
    match v {
        Value::Int(n) => (*n).max(0) as u64,
        _ => 0,
    }
}

impl<'w> Seeder<'w> {
    pub fn new(settings: &'w Settings, world: &'w World, ttl_s: i64) -> anyhow::Result<Self> {
        let opts = PgConnectOptions::from_str(settings.database_url())
            .context("HEREABOUTS_DATABASE_URL is not a valid PostgreSQL URL")?
            .application_name("hereabouts-loadgen");
        Ok(Self {
            world,
            settings,
            opts,
            redis: Redis::new(
                settings.redis_urls.clone(),
                settings.redis_prefix.clone(),
                Duration::from_secs(60),
            ),
            now: OffsetDateTime::now_utc(),
            ttl_s: ttl_s.max(60),
            id_text: world.ids.iter().map(id_text).collect(),
        })
    }

    /// A connection without statement timeout.
    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect_with(&self.opts)
            .await
            .context("connecting to PostgreSQL")
    }

    /// A bulk-load session: FK triggers off when allowed, commits not waited for.
    async fn bulk_session(&self) -> anyhow::Result<(PgConnection, bool)> {
        let mut conn = self.connect().await?;
        sqlx::raw_sql("SET synchronous_commit = off; SET maintenance_work_mem = '256MB'")
            .execute(&mut conn)
            .await?;
        let skipped = sqlx::raw_sql("SET session_replication_role = replica")
            .execute(&mut conn)
            .await
            .is_ok();
        Ok((conn, skipped))
    }

    /// Fails unless the database holds this world (for `--no-seed`).
    pub async fn check_seeded(&self) -> anyhow::Result<()> {
        let mut conn = self.connect().await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut conn)
            .await?;
        let first: Option<Uuid> = sqlx::query_scalar("SELECT id FROM users ORDER BY id LIMIT 1")
            .fetch_optional(&mut conn)
            .await?;
        if n as usize != self.world.ids.len() || first != self.world.ids.first().copied() {
            anyhow::bail!(
                "--no-seed: the database holds {n} users, not this world's {}; seed it first (without --no-seed)",
                self.world.ids.len()
            );
        }
        Ok(())
    }

    /// The live row, privacy record and index record of the `k`-th live user.
    pub fn live_entry(&self, k: usize) -> (Uuid, LiveRow, PrivacyRecord) {
        let w = self.world;
        let i = w.spot_owner[k] as usize;
        let spot = w.spots[k];
        let p = publish(spot.raw, spot.precision);
        let recorded_at = self.now - time::Duration::seconds(i64::from(spot.age_s));
        let row = LiveRow {
            user_id: w.ids[i],
            checkin_id: derived_uuid(w.spec.seed ^ 0x00C4_EC1D, i as u64),
            lat: spot.raw.lat(),
            lng: spot.raw.lng(),
            accuracy_m: Some(5.0 + f64::from(spot.age_s % 40)),
            pub_lat: p.point.lat(),
            pub_lng: p.point.lng(),
            precision: spot.precision,
            h3_cell: p.cell.to_string(),
            indexed: true,
            reason: None,
            recorded_at,
            expires_at: recorded_at + time::Duration::seconds(self.ttl_s),
            client_id: None,
        };
        let privacy = PrivacyRecord {
            user_id: w.ids[i],
            sharing: true,
            precision: spot.precision,
            hidden_from: vec![],
            default_ttl_s: 14_400,
            paused_until: None,
            notify_nearby: true,
            notify_radius_m: 5_000,
            discoverable_by_email: true,
            display_name: display_name(i),
            suspended: false,
            headline: None,
            company: None,
            title: None,
            avatar_url: None,
        };
        (w.ids[i], row, privacy)
    }

    /// The index record of the `k`-th live user.
    pub fn live_record(&self, k: usize) -> (Uuid, LiveRecord) {
        let (id, row, privacy) = self.live_entry(k);
        (id, record_for(&row, &privacy))
    }

    /// Empties both stores of loadgen data when allowed; fails when data is there without `reset`.
    async fn reset(&self, conn: &mut PgConnection, reset: bool) -> anyhow::Result<()> {
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&mut *conn)
            .await?;
        let ready = index::is_ready(&self.redis).await?;
        if !reset && (users > 0 || ready) {
            anyhow::bail!(
                "the database already holds {users} users (or the Redis prefix {} an index): pass --reset to empty them, or --no-seed to reuse them",
                self.settings.redis_prefix
            );
        }
        if reset {
            let t = Instant::now();
            sqlx::raw_sql("TRUNCATE users CASCADE; DROP TABLE IF EXISTS bench_live_geo")
                .execute(&mut *conn)
                .await?;
            let pattern = format!("{}:*", glob_escape(&self.settings.redis_prefix));
            let keys = self.redis.scan_keys(&pattern).await?;
            for chunk in keys.chunks(1_000) {
                let cmds = chunk.iter().map(|k| redis::cmd("UNLINK").arg(k).clone()).collect();
                self.redis.run_many(cmds).await?;
            }
            say(format!(
                "reset: tables truncated, {} Redis keys under {}:* unlinked in {:.1} s",
                keys.len(),
                self.settings.redis_prefix,
                t.elapsed().as_secs_f64()
            ));
        }
        // the index is about to be loaded in bulk: keep the server's watchdog from rebuilding it
        index::mark_ready(&self.redis).await?;
        Ok(())
    }

    /// Seeds everything; returns the timings.
    pub async fn seed_all(&self, reset: bool, trips: &TripPlan) -> anyhow::Result<SeedReport> {
        let started = Instant::now();
        let mut rep = SeedReport::default();
        let (mut conn, skipped) = self.bulk_session().await?;
        rep.foreign_key_triggers_skipped = skipped;
        if !skipped {
            rep.notes
                .push("not a superuser: foreign-key triggers run during COPY (slower)".into());
        }
        self.reset(&mut conn, reset).await?;
        rep.steps.push(self.copy_users(&mut conn).await?);
        rep.steps.push(self.copy_privacy(&mut conn).await?);
        rep.steps.push(self.copy_connections().await?);
        rep.steps.push(self.copy_live(&mut conn).await?);
        rep.steps
            .extend(super::trips::seed(&mut conn, self.world, trips, self.now.date()).await?);
        let t = Instant::now();
        // one statement: VACUUM may not run in the implicit transaction of a multi-statement string
        sqlx::raw_sql("VACUUM (ANALYZE) users, privacy_settings, connections, live_locations, trips")
            .execute(&mut conn)
            .await?;
        rep.steps.push(Step::new("postgres: vacuum analyze", 0, t));

        rep.redis_used_memory_before = used_memory(&self.redis).await?;
        rep.steps.push(self.put_index().await?);
        rep.redis_used_memory_after_index = used_memory(&self.redis).await?;
        rep.steps.push(self.put_adjacency().await?);
        rep.redis_used_memory_after_adjacency = used_memory(&self.redis).await?;
        index::mark_ready(&self.redis).await?;
        rep.total_s = started.elapsed().as_secs_f64();
        Ok(rep)
    }

    async fn copy_users(&self, conn: &mut PgConnection) -> anyhow::Result<Step> {
        let t = Instant::now();
        let hash = Passwords::new(self.settings.argon2_memory_kib, self.settings.argon2_iterations)?
            .hash(SecretString::from(PASSWORD))
            .await?;
        let n = self.world.ids.len();
        let pb = bar(n as u64, "postgres: users");
        let mut copy = conn
            .copy_in_raw("COPY users (id, email, email_sha256, display_name, password_hash) FROM STDIN")
            .await?;
        let mut buf = Vec::with_capacity(CHUNK + 4_096);
        for i in 0..n {
            let email = email(i);
            buf.extend_from_slice(&self.id_text[i]);
            writeln!(
                buf,
                "\t{email}\t\\\\x{}\t{}\t{hash}",
                hex::encode(hereabouts::domain::account::email_sha256(&email)),
                display_name(i)
            )?;
            if buf.len() >= CHUNK {
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(CHUNK + 4_096);
                pb.set_position(i as u64);
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await?;
        }
        let rows = copy.finish().await?;
        pb.finish_and_clear();
        Ok(Step::new("postgres: users", rows, t))
    }

    async fn copy_privacy(&self, conn: &mut PgConnection) -> anyhow::Result<Step> {
        let t = Instant::now();
        let n = self.world.ids.len();
        let pb = bar(n as u64, "postgres: privacy");
        let mut copy = conn
            .copy_in_raw("COPY privacy_settings (user_id, sharing) FROM STDIN")
            .await?;
        let mut buf = Vec::with_capacity(CHUNK + 64);
        for i in 0..n {
            buf.extend_from_slice(&self.id_text[i]);
            buf.extend_from_slice(if self.world.people[i].spot.is_some() {
                b"\tt\n"
            } else {
                b"\tf\n"
            });
            if buf.len() >= CHUNK {
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(CHUNK + 64);
                pb.set_position(i as u64);
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await?;
        }
        let rows = copy.finish().await?;
        pb.finish_and_clear();
        Ok(Step::new("postgres: privacy_settings", rows, t))
    }

    async fn copy_connection_range(&self, lo: usize, hi: usize, pb: &indicatif::ProgressBar) -> anyhow::Result<u64> {
        let (mut conn, _) = self.bulk_session().await?;
        let mut copy = conn
            .copy_in_raw("COPY connections (user_id, peer_id) FROM STDIN")
            .await?;
        let mut buf = Vec::with_capacity(CHUNK + 128);
        let mut pending = 0u64;
        for i in lo..hi {
            for &v in self.world.graph.neighbours(i) {
                buf.extend_from_slice(&self.id_text[i]);
                buf.push(b'\t');
                buf.extend_from_slice(&self.id_text[v as usize]);
                buf.push(b'\n');
                pending += 1;
            }
            if buf.len() >= CHUNK {
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(CHUNK + 128);
                pb.inc(pending);
                pending = 0;
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await?;
        }
        pb.inc(pending);
        Ok(copy.finish().await?)
    }

    async fn copy_connections(&self) -> anyhow::Result<Step> {
        let t = Instant::now();
        let n = self.world.ids.len();
        let pb = bar(self.world.graph.directed_edges(), "postgres: connections");
        // split where half of the edges lie, so both streams carry the same load
        let half = self.world.graph.directed_edges() / 2;
        let mut acc = 0u64;
        let mut mid = n;
        for i in 0..n {
            acc += self.world.graph.degree(i) as u64;
            if acc >= half {
                mid = i + 1;
                break;
            }
        }
        let (a, b) = tokio::join!(
            self.copy_connection_range(0, mid, &pb),
            self.copy_connection_range(mid, n, &pb)
        );
        pb.finish_and_clear();
        Ok(Step::new("postgres: connections", a? + b?, t))
    }

    async fn copy_live(&self, conn: &mut PgConnection) -> anyhow::Result<Step> {
        let t = Instant::now();
        let n = self.world.live_users();
        let pb = bar(n as u64, "postgres: live_locations");
        let mut copy = conn
            .copy_in_raw(
                "COPY live_locations (user_id, checkin_id, lat, lng, accuracy_m, pub_lat, pub_lng, precision, \
                 h3_cell, indexed, recorded_at, expires_at) FROM STDIN",
            )
            .await?;
        let mut buf = Vec::with_capacity(CHUNK + 512);
        for k in 0..n {
            let (_, r, _) = self.live_entry(k);
            writeln!(
                buf,
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\tt\t{}\t{}",
                r.user_id,
                r.checkin_id,
                r.lat,
                r.lng,
                r.accuracy_m.unwrap_or(10.0),
                r.pub_lat,
                r.pub_lng,
                r.precision.as_str(),
                r.h3_cell,
                r.recorded_at.format(&Rfc3339)?,
                r.expires_at.format(&Rfc3339)?
            )?;
            if buf.len() >= CHUNK {
                copy.send(std::mem::take(&mut buf)).await?;
                buf.reserve(CHUNK + 512);
                pb.set_position(k as u64);
            }
        }
        if !buf.is_empty() {
            copy.send(buf).await?;
        }
        let rows = copy.finish().await?;
        pb.finish_and_clear();
        Ok(Step::new("postgres: live_locations", rows, t))
    }

    async fn put_index(&self) -> anyhow::Result<Step> {
        let t = Instant::now();
        let n = self.world.live_users();
        let pb = bar(n as u64, "redis: live index");
        let mut k = 0;
        while k < n {
            let end = (k + INDEX_BATCH).min(n);
            let batch: Vec<(Uuid, LiveRecord)> = (k..end).map(|j| self.live_record(j)).collect();
            index::put_many(&self.redis, &batch).await?;
            pb.set_position(end as u64);
            k = end;
        }
        pb.finish_and_clear();
        Ok(Step::new("redis: live index (put_many)", n as u64, t))
    }

    async fn put_adjacency(&self) -> anyhow::Result<Step> {
        let t = Instant::now();
        let w = self.world;
        let pb = bar(w.live_users() as u64, "redis: adjacency sets");
        let mut cmds: Vec<Cmd> = Vec::new();
        let mut members_in_batch = 0usize;
        let mut members_total = 0u64;
        for (k, &owner) in w.spot_owner.iter().enumerate() {
            let i = owner as usize;
            let key = graph::adjacency_key(&self.redis, w.ids[i]);
            let nb = w.graph.neighbours(i);
            let mut first = true;
            let mut rest = nb;
            loop {
                let room = if first { SADD_CHUNK - 1 } else { SADD_CHUNK };
                let (head, tail) = rest.split_at(rest.len().min(room));
                if head.is_empty() && !first {
                    break;
                }
                let mut cmd = redis::cmd("SADD");
                cmd.arg(&key);
                if first {
                    cmd.arg(graph::ADJACENCY_SENTINEL);
                }
                for &v in head {
                    cmd.arg(w.ids[v as usize].as_bytes().as_slice());
                }
                cmds.push(cmd);
                first = false;
                rest = tail;
            }
            cmds.push(redis::cmd("EXPIRE").arg(&key).arg(graph::ADJACENCY_TTL_S).clone());
            members_in_batch += nb.len() + 1;
            members_total += nb.len() as u64;
            if members_in_batch >= ADJ_BATCH {
                self.redis.run_many(std::mem::take(&mut cmds)).await?;
                members_in_batch = 0;
                pb.set_position(k as u64);
            }
        }
        self.redis.run_many(cmds).await?;
        pb.finish_and_clear();
        let mut step = Step::new("redis: adjacency sets (SADD)", w.live_users() as u64, t);
        step.name = format!("redis: adjacency sets (SADD, {members_total} members)");
        Ok(step)
    }

    /// The key of the Redis GEO baseline's set of users published at `precision` (one set per
    /// precision: a coarse user is found by the circle reaching their cell, so their sets are
    /// searched wider).
    pub fn geo_key(&self, precision: Precision) -> String {
        self.redis.key(format_args!("bench:geo:{}", precision.as_str()))
    }

    /// Builds the Redis GEO baseline from live_locations' published points: GEOADD in batches,
    /// into the set of each user's precision. The sets' bytes.
    pub async fn build_geo(&self) -> anyhow::Result<(Step, u64)> {
        let t = Instant::now();
        let all = [Precision::Exact, Precision::Approximate, Precision::City];
        for p in all {
            self.redis.run::<()>(redis::cmd("DEL").arg(self.geo_key(p))).await?;
        }
        let mut conn = self.connect().await?;
        let pb = bar(self.world.live_users() as u64, "redis: GEO baseline");
        let mut rows = sqlx::query_as::<_, (Uuid, f64, f64, Precision)>(
            "SELECT user_id, pub_lng, pub_lat, precision FROM live_locations WHERE indexed AND expires_at > now()",
        )
        .fetch(&mut conn);
        let mut n = 0u64;
        let mut batches: Vec<(Precision, redis::Cmd, usize)> = all
            .iter()
            .map(|p| (*p, redis::cmd("GEOADD").arg(self.geo_key(*p)).clone(), 0))
            .collect();
        while let Some((id, lng, lat, p)) = rows.try_next().await? {
            let Some(b) = batches.iter_mut().find(|b| b.0 == p) else {
                continue;
            };
            b.1.arg(lng).arg(lat).arg(id.as_bytes().as_slice());
            b.2 += 1;
            n += 1;
            if b.2 == 1_000 {
                self.redis.run::<()>(&b.1).await?;
                b.1 = redis::cmd("GEOADD").arg(self.geo_key(p)).clone();
                b.2 = 0;
                pb.set_position(n);
            }
        }
        for b in batches.iter().filter(|b| b.2 > 0) {
            self.redis.run::<()>(&b.1).await?;
        }
        pb.finish_and_clear();
        let mut bytes = 0;
        for p in all {
            let v: Value = self
                .redis
                .run(
                    redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(self.geo_key(p))
                        .arg("SAMPLES")
                        .arg(0),
                )
                .await?;
            bytes += int(&v);
        }
        Ok((Step::new("redis: GEO baseline (GEOADD)", n, t), bytes))
    }

    /// Builds the PostGIS baseline table from live_locations' published points; `Err` when
    /// PostGIS cannot be had (the message says why).
    pub async fn build_postgis(&self) -> anyhow::Result<Result<Step, String>> {
        let t = Instant::now();
        let mut conn = self.connect().await?;
        let available: Option<String> =
            sqlx::query_scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
                .fetch_optional(&mut conn)
                .await?;
        if available.is_none() {
            return Ok(Err(
                "PostGIS is not installed on the PostgreSQL server (Debian: apt-get install postgresql-<major>-postgis-3)"
                    .into(),
            ));
        }
        if let Err(e) = sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS postgis")
            .execute(&mut conn)
            .await
        {
            return Ok(Err(format!("CREATE EXTENSION postgis failed: {e}")));
        }
        // `geog` is the published point (distances and order), `area` what the circle must
        // reach: the point for exact users, the published H3 cell's polygon for coarse ones
        // (API.md, "coarse users are never missed"); `step` the precision's rounding.
        sqlx::raw_sql(
            "SET maintenance_work_mem = '256MB';
             DROP TABLE IF EXISTS bench_live_geo;
             CREATE TABLE bench_live_geo AS
               SELECT user_id,
                      ST_SetSRID(ST_MakePoint(pub_lng, pub_lat), 4326)::geography AS geog,
                      ST_SetSRID(ST_MakePoint(pub_lng, pub_lat), 4326)::geography AS area,
                      CASE precision WHEN 'exact' THEN 10.0 WHEN 'approximate' THEN 100.0 ELSE 1000.0 END
                        AS step,
                      ST_SetSRID(ST_MakePoint(lng, lat), 4326)::geography AS centre,
                      expires_at
               FROM live_locations WHERE indexed;
             ALTER TABLE bench_live_geo ADD PRIMARY KEY (user_id);",
        )
        .execute(&mut conn)
        .await?;
        let cells: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT h3_cell FROM live_locations WHERE indexed AND precision <> 'exact'")
                .fetch_all(&mut conn)
                .await?;
        let wkt: Vec<String> = cells.iter().map(|c| cell_wkt(c)).collect::<anyhow::Result<_>>()?;
        sqlx::query(
            "UPDATE bench_live_geo b SET area = ST_GeogFromText(v.wkt)
             FROM unnest($1::text[], $2::text[]) AS v(cell, wkt), live_locations l
             WHERE l.h3_cell = v.cell AND l.user_id = b.user_id AND l.precision <> 'exact'",
        )
        .bind(&cells)
        .bind(&wkt)
        .execute(&mut conn)
        .await?;
        sqlx::raw_sql("CREATE INDEX bench_live_geo_area ON bench_live_geo USING gist (area)")
            .execute(&mut conn)
            .await?;
        sqlx::raw_sql("VACUUM (ANALYZE) bench_live_geo")
            .execute(&mut conn)
            .await?;
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_live_geo")
            .fetch_one(&mut conn)
            .await?;
        Ok(Ok(Step::new("postgres: PostGIS baseline table + GiST", n as u64, t)))
    }

    /// Bytes per user in both stores.
    pub async fn measure(&self) -> anyhow::Result<Memory> {
        let mut mem = Memory::default();
        let mut conn = self.connect().await?;
        let users = self.world.ids.len() as f64;
        let mut total = 0i64;
        for table in ["users", "privacy_settings", "connections", "live_locations"] {
            let (rows, bytes): (i64, i64) = sqlx::query_as(&format!(
                "SELECT (SELECT count(*) FROM {table}), pg_total_relation_size('{table}'::regclass)"
            ))
            .fetch_one(&mut conn)
            .await?;
            total += bytes;
            mem.postgres.push(TableSize {
                table: table.into(),
                rows,
                total_bytes: bytes,
                bytes_per_user: bytes as f64 / users,
            });
        }
        mem.postgres_bytes_per_user = total as f64 / users;
        mem.redis = self.measure_redis().await?;
        Ok(mem)
    }

    async fn measure_redis(&self) -> anyhow::Result<RedisMemory> {
        let w = self.world;
        let live = w.live_users() as u64;
        let mut m = RedisMemory {
            live_users: live,
            ..Default::default()
        };
        let pb = bar(0, "redis: MEMORY USAGE");
        let prefix = format!("{}:cell:", self.settings.redis_prefix);
        let keys = self.redis.scan_keys(&format!("{}*", glob_escape(&prefix))).await?;
        pb.set_length(keys.len() as u64);
        let mut per_res: BTreeMap<u8, (u64, u64, u64)> = BTreeMap::new();
        for chunk in keys.chunks(500) {
            let mut cmds = Vec::with_capacity(chunk.len() * 2);
            for k in chunk {
                cmds.push(redis::cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0).clone());
                cmds.push(redis::cmd("ZCARD").arg(k).clone());
            }
            let values = self.redis.run_many(cmds).await?;
            for (k, pair) in chunk.iter().zip(values.chunks(2)) {
                let Some(res) = k
                    .strip_prefix(prefix.as_bytes())
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| CellIndex::from_str(c).ok())
                    .map(|c| u8::from(c.resolution()))
                else {
                    continue;
                };
                let e = per_res.entry(res).or_default();
                e.0 += 1;
                e.1 += pair.get(1).map(int).unwrap_or(0);
                e.2 += pair.first().map(int).unwrap_or(0);
            }
            pb.inc(chunk.len() as u64);
        }
        pb.finish_and_clear();
        let livef = (live as f64).max(1.0);
        let mut cells_total = 0u64;
        for (res, (keys, members, bytes)) in per_res.iter().rev() {
            cells_total += bytes;
            m.per_resolution.push(ResolutionMemory {
                resolution: *res,
                keys: *keys,
                members: *members,
                bytes: *bytes,
                bytes_per_live_user: *bytes as f64 / livef,
            });
        }
        // records: an even sample
        let step = (w.live_users() / 2_000).max(1);
        let sample: Vec<usize> = (0..w.live_users()).step_by(step).collect();
        let cmds = sample
            .iter()
            .map(|&k| {
                let id = w.ids[w.spot_owner[k] as usize];
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(index::record_key(&self.redis, id))
                    .clone()
            })
            .collect();
        let values = self.redis.run_many(cmds).await?;
        let present: Vec<u64> = values.iter().map(int).filter(|&b| b > 0).collect();
        m.records_sampled = present.len() as u64;
        m.record_bytes_mean = present.iter().sum::<u64>() as f64 / (present.len().max(1)) as f64;
        m.index_bytes_per_live_user = cells_total as f64 / livef + m.record_bytes_mean;
        m.index_bytes_per_live_user_per_resolution = m.index_bytes_per_live_user / 4.0;
        // adjacency sets: an even sample
        let step = (w.live_users() / 500).max(1);
        let mut cmds = Vec::new();
        for k in (0..w.live_users()).step_by(step) {
            let key = graph::adjacency_key(&self.redis, w.ids[w.spot_owner[k] as usize]);
            cmds.push(
                redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&key)
                    .arg("SAMPLES")
                    .arg(0)
                    .clone(),
            );
            cmds.push(redis::cmd("SCARD").arg(&key).clone());
        }
        let values = self.redis.run_many(cmds).await?;
        let (mut bytes, mut members, mut sets) = (0u64, 0u64, 0u64);
        for pair in values.chunks(2) {
            let b = pair.first().map(int).unwrap_or(0);
            if b > 0 {
                bytes += b;
                members += pair.get(1).map(int).unwrap_or(0);
                sets += 1;
            }
        }
        m.adjacency_sets_sampled = sets;
        m.adjacency_bytes_per_member = bytes as f64 / members.max(1) as f64;
        let all_members: u64 = w
            .spot_owner
            .iter()
            .map(|&i| w.graph.degree(i as usize) as u64 + 1)
            .sum();
        m.adjacency_bytes_total_estimate = m.adjacency_bytes_per_member * all_members as f64;
        Ok(m)
    }
}

/// The polygon of an H3 cell as WKT (longitude first, ring closed).
fn cell_wkt(cell: &str) -> anyhow::Result<String> {
    let cell: h3o::CellIndex = cell.parse()?;
    let ring: Vec<h3o::LatLng> = cell.boundary().iter().copied().collect();
    let first = ring
        .first()
        .ok_or_else(|| anyhow::anyhow!("cell {cell} has no boundary"))?;
    let pts: Vec<String> = ring
        .iter()
        .chain(std::iter::once(first))
        .map(|v| format!("{} {}", v.lng(), v.lat()))
        .collect();
    Ok(format!("POLYGON(({}))", pts.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_specials_are_escaped() {
        assert_eq!(glob_escape("hb*x?[a]\\"), "hb\\*x\\?\\[a\\]\\\\");
        assert_eq!(glob_escape("hbbench"), "hbbench");
    }

    #[test]
    fn names_are_stable() {
        assert_eq!(email(42), "traveller0000042@loadgen.test");
        assert_eq!(display_name(7), "Traveller 0000007");
        let u = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(&id_text(&u), b"01234567-89ab-cdef-0123-456789abcdef");
    }
}
