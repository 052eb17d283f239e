//! Store-level nearby (no HTTP), on the same data and at the same concurrency, for three
//! workloads (typical user, super-connector, hall member):
//!
//! - **Hereabouts**: [`hereabouts::service::nearby::nearby`] with an [`Ctx`] built from the settings
//!   (the query the API runs: H3 cover, planner, two Redis round trips on one server).
//! - **PostGIS**: published points in a `geography(Point)` column, what must be reached in a
//!   second one with a GiST index (`bench_live_geo`, built from `live_locations`), joined to `connections`, `ST_DWithin` on the
//!   spheroid, nearest first, `LIMIT`; each execution planned for its parameters
//!   (`plan_cache_mode = force_custom_plan`), so PostgreSQL picks per caller between walking the
//!   caller's connections and scanning the GiST index.
//! - **Redis GEO**: every published point in a geo set per precision; the caller's record (its
//!   centre), then `GEOSEARCH … FROMLONLAT … BYRADIUS … WITHCOORD` on each set (one round trip),
//!   then `SMISMEMBER` on the caller's adjacency set, then the records of the nearest `limit`
//!   connections (expiry, names).
//!
//! All three apply the API's rules of Revision 2: an exact user is listed by the distance
//! rounded to 10 m, a coarse one when the circle reaches their published H3 cell (PostGIS: the
//! cell's polygon in a second GiST-indexed column; GEO: one set per precision, searched wider,
//! then the cell test), ordered by the rounded distance shown. Both baselines skip the privacy
//! filters Hereabouts applies (hidden lists are empty in this world), which favours them
//! slightly. Callers publish exactly, so the three agree on the centre; the answers of a
//! sample of callers are compared (Jaccard similarity of the returned ids).

use super::cpu::{Meter, PerOp, per_op};
use super::seed::{Seeder, Step};
use super::stats::{Load, Outcome, Stats, drive};
use super::world::World;
use super::{Args, Budget, mix, say, timed_bar};
use hereabouts::config::Settings;
use hereabouts::domain::geo::{Coord, cell_distance_range, distance_m, round_distance};
use hereabouts::domain::nearby::{LiveRecord, within};
use hereabouts::domain::policy::Precision;
use hereabouts::service::Ctx;
use hereabouts::store::index;
use hereabouts::store::redis::Redis;
use redis::Value;
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

/// `application_name` of the PostGIS baseline's sessions.
const POSTGIS_APP: &str = "hereabouts-loadgen-postgis";
/// Callers per workload at most.
const CALLERS: usize = 1_000;
/// Callers whose answers are compared across implementations.
const AGREEMENT_CALLERS: usize = 10;

/// The PostGIS query, with the rules of the API (Revision 2): the caller's live centre, their
/// connections; an exact user when the distance rounded to 10 m is within the radius, a coarse
/// user when the circle reaches their published cell (`area`, the cell's polygon); ordered by
/// the rounded distance shown, then the true distance.
pub const POSTGIS_QUERY: &str = "SELECT n.user_id, u.display_name, n.distance_m FROM (
    SELECT p.user_id, ST_Distance(p.geog, me.centre) AS distance_m, p.step
    FROM bench_live_geo me
    JOIN connections c ON c.user_id = me.user_id
    JOIN bench_live_geo p ON p.user_id = c.peer_id
    WHERE me.user_id = $1 AND me.expires_at > now() AND p.expires_at > now()
      AND ST_DWithin(p.area, me.centre, $2 + 5)
      AND (p.step > 10 OR round(ST_Distance(p.geog, me.centre) / 10) * 10 <= $2)
      AND (p.step = 10 OR ST_DWithin(p.area, me.centre, $2))
    ORDER BY round(ST_Distance(p.geog, me.centre) / p.step) * p.step, distance_m, p.user_id
    LIMIT $3) n
  JOIN users u ON u.id = n.user_id
  ORDER BY round(n.distance_m / n.step) * n.step, n.distance_m, n.user_id";

/// One store-level run.
#[derive(Debug, Clone, Serialize)]
pub struct StoreRun {
    pub implementation: String,
    pub workload: String,
    pub concurrency: usize,
    pub stats: Stats,
    pub mean_hits: f64,
    /// Hereabouts only: how often each plan was taken.
    pub plans: BTreeMap<String, u64>,
    /// CPU per query: this process (the query's client side), Redis, PostgreSQL backends.
    pub cpu: PerOp,
}

/// Hereabouts ÷ baseline at one concurrency: throughput ratio (> 1: Hereabouts serves more) and
/// p50 ratio (< 1: Hereabouts answers sooner); `speedup_p50` is the inverse of the latter.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub workload: String,
    pub baseline: String,
    pub concurrency: usize,
    pub throughput_ratio: f64,
    pub p50_ratio: f64,
    pub speedup_p50: f64,
    /// Baseline CPU per query ÷ Hereabouts CPU per query (all processes): > 1, Hereabouts is cheaper.
    pub cpu_ratio: f64,
}

/// Ratios summarised per workload and baseline: peak throughput over peak throughput, and the
/// p50 ratio at the lowest concurrency.
#[derive(Debug, Clone, Serialize)]
pub struct RatioSummary {
    pub workload: String,
    pub baseline: String,
    pub peak_throughput_ratio: f64,
    pub p50_ratio_lowest_concurrency: f64,
    /// Baseline ÷ Hereabouts CPU per query at the highest concurrency.
    pub cpu_ratio_highest_concurrency: f64,
}

/// How far the baselines' answers agree with Hereabouts'.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    pub workload: String,
    pub baseline: String,
    pub callers: usize,
    pub mean_jaccard: f64,
}

/// A workload's callers.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadInfo {
    pub name: String,
    pub callers: usize,
    pub mean_degree: f64,
    /// The H3 cover of the first caller's circle: resolution, cells, live users in them.
    pub cover_resolution: u8,
    pub cover_cells: usize,
    pub cover_population: u64,
}

/// Everything of the store-level comparison.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StoreReport {
    pub radius_m: f64,
    pub limit: usize,
    pub workloads: Vec<WorkloadInfo>,
    pub builds: Vec<Step>,
    pub geo_set_bytes_per_live_user: f64,
    pub runs: Vec<StoreRun>,
    pub ratios: Vec<Ratio>,
    pub summary: Vec<RatioSummary>,
    pub agreement: Vec<Agreement>,
    pub skipped: Vec<String>,
}

#[derive(Clone)]
enum Engine {
    Hereabouts(Ctx),
    PostGis(PgPool),
    RedisGeo {
        redis: Redis,
        keys: Vec<(Precision, String)>,
    },
}

impl Engine {
    /// The processes whose CPU a query of this engine uses (besides this one).
    fn meter(&self) -> Meter {
        match self {
            Engine::Hereabouts(state) => Meter {
                server_pid: None,
                redis: Some(state.redis.clone()),
                pg: None,
            },
            Engine::PostGis(pool) => Meter {
                server_pid: None,
                redis: None,
                pg: Some((pool.clone(), vec![POSTGIS_APP.to_string()])),
            },
            Engine::RedisGeo { redis, .. } => Meter {
                server_pid: None,
                redis: Some(redis.clone()),
                pg: None,
            },
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Engine::Hereabouts(_) => "hereabouts",
            Engine::PostGis(_) => "postgis",
            Engine::RedisGeo { .. } => "redis-geo",
        }
    }

    /// The ids found, nearest first, and the plan (Hereabouts).
    async fn query(
        &self,
        user: Uuid,
        radius_m: f64,
        limit: usize,
    ) -> Result<(Vec<Uuid>, Option<&'static str>), String> {
        match self {
            Engine::Hereabouts(state) => hereabouts::service::nearby::nearby(state, user, radius_m, limit)
                .await
                .map(|a| {
                    (
                        a.hits.into_iter().map(|h| h.user_id).collect(),
                        a.plan.map(|p| p.as_str()),
                    )
                })
                .map_err(|e| short(&e.to_string())),
            Engine::PostGis(pool) => sqlx::query_as::<_, (Uuid, String, f64)>(POSTGIS_QUERY)
                .bind(user)
                .bind(radius_m)
                .bind(limit as i64)
                .fetch_all(pool)
                .await
                .map(|rows| (rows.into_iter().map(|r| r.0).collect(), None))
                .map_err(|e| short(&e.to_string())),
            Engine::RedisGeo { redis, keys } => geo_nearby(redis, keys, user, radius_m, limit)
                .await
                .map(|ids| (ids, None))
                .map_err(|e| short(&e.to_string())),
        }
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// How far beyond the radius the Redis GEO baseline searches a precision's set: the published
/// point of a coarse user is its cell's centre, at most about one edge length (1.5 × the
/// average, for the distortion of cells far from the icosahedron's face centres) from the
/// cell's farthest point; for exact users the 10 m rounding plus GEO's spherical distance
/// (up to 0.5 % off the ellipsoid's).
fn geo_margin_m(precision: Precision, radius_m: f64) -> f64 {
    match precision {
        Precision::Exact => 5.0 + radius_m * 0.006,
        coarse => 1.5 * coarse.resolution().edge_length_m() + radius_m * 0.006,
    }
}

/// The Redis GEO baseline, with the rules of the API (Revision 2): the caller's record, one
/// `GEOSEARCH` per precision's set (radius widened by [`geo_margin_m`]), `SMISMEMBER` on the
/// adjacency, then the API's tests on the geodesic distance (an exact user by the rounded
/// distance, a coarse user when the circle reaches their cell), the order shown (rounded, then
/// true distance), and the records of the nearest `limit`.
async fn geo_nearby(
    redis: &Redis,
    keys: &[(Precision, String)],
    user: Uuid,
    radius_m: f64,
    limit: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let now = now_ms();
    let me: LiveRecord = index::record(redis, user)
        .await?
        .filter(|r| r.is_live(now))
        .ok_or_else(|| anyhow::anyhow!("no live check-in"))?;
    let centre = me.centre();
    let searches = keys
        .iter()
        .map(|(p, key)| {
            redis::cmd("GEOSEARCH")
                .arg(key)
                .arg("FROMLONLAT")
                .arg(centre.lng())
                .arg(centre.lat())
                .arg("BYRADIUS")
                .arg(radius_m + geo_margin_m(*p, radius_m))
                .arg("m")
                .arg("WITHCOORD")
                .clone()
        })
        .collect();
    let mut candidates: Vec<(Uuid, Precision, Coord)> = Vec::new();
    for ((p, _), found) in keys.iter().zip(redis.run_many(searches).await?) {
        let Value::Array(items) = found else { continue };
        for item in items {
            if let Value::Array(pair) = item
                && let (Some(Value::BulkString(m)), Some(Value::Array(xy))) = (pair.first(), pair.get(1))
                && let Ok(id) = Uuid::from_slice(m)
                && id != user
                && let (Some(lng), Some(lat)) = (xy.first().and_then(float), xy.get(1).and_then(float))
                && let Ok(at) = Coord::new(lat, lng)
            {
                candidates.push((id, *p, at));
            }
        }
    }
    let ids: Vec<Uuid> = candidates.iter().map(|c| c.0).collect();
    let flags = index::connected(redis, user, &ids).await?;
    let mut listed: Vec<(u64, f64, Uuid)> = candidates
        .into_iter()
        .zip(flags)
        .filter_map(|(c, f)| f.then_some(c))
        .filter_map(|(id, p, at)| {
            let d = distance_m(centre, at);
            let reached = match p {
                Precision::Exact => within(d, p, radius_m),
                coarse => cell_distance_range(centre, at.cell(coarse.resolution())).0 <= radius_m,
            };
            reached.then(|| (round_distance(d, p), d, id))
        })
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    listed.truncate(limit);
    let top: Vec<Uuid> = listed.iter().map(|c| c.2).collect();
    let records = index::records(redis, &top).await?;
    Ok(top
        .into_iter()
        .zip(records)
        .filter_map(|(id, r)| r.filter(|r| r.is_live(now)).map(|_| id))
        .collect())
}

/// A coordinate in a GEOSEARCH answer.
fn float(v: &Value) -> Option<f64> {
    match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::Double(x) => Some(*x),
        _ => None,
    }
}

/// Live users that publish exactly, evenly spread, at most `CALLERS`.
fn pick(world: &World, candidates: impl Iterator<Item = u32>) -> Vec<u32> {
    let all: Vec<u32> = candidates
        .filter(|&i| {
            world.people[i as usize]
                .spot
                .is_some_and(|s| world.spots[s as usize].precision == Precision::Exact)
        })
        .collect();
    let step = (all.len() / CALLERS).max(1);
    all.into_iter().step_by(step).take(CALLERS).collect()
}

/// The three workloads' callers (user indices).
pub fn workloads(world: &World) -> Vec<(&'static str, Vec<u32>)> {
    let typical = pick(
        world,
        (0..world.ids.len() as u32).filter(|&i| {
            let p = world.people[i as usize];
            !p.hub && !p.in_hall
        }),
    );
    let hubs = pick(world, world.hubs.iter().copied());
    let hall = pick(world, world.hall_members.iter().copied());
    vec![("typical", typical), ("super-connector", hubs), ("hall", hall)]
}

fn jaccard(a: &[Uuid], b: &[Uuid]) -> f64 {
    let a: HashSet<&Uuid> = a.iter().collect();
    let b: HashSet<&Uuid> = b.iter().collect();
    let union = a.union(&b).count();
    if union == 0 {
        1.0
    } else {
        a.intersection(&b).count() as f64 / union as f64
    }
}

/// Builds the baselines and runs every implementation on every workload at every concurrency.
pub async fn run_all(
    settings: &Settings,
    args: &Args,
    world: &World,
    state: &Ctx,
    seeder: &Seeder<'_>,
    budget: &Budget,
) -> anyhow::Result<StoreReport> {
    let mut rep = StoreReport {
        radius_m: args.radius_m,
        limit: args.limit,
        ..Default::default()
    };
    let wanted = |name: &str| args.store_impls.iter().any(|i| i == name);
    let mut engines = Vec::new();
    if wanted("hereabouts") {
        engines.push(Engine::Hereabouts(state.clone()));
    }
    match if wanted("postgis") {
        seeder.build_postgis().await?
    } else {
        Err("not requested (--store-impls)".into())
    } {
        Ok(step) => {
            rep.builds.push(step);
            let max_c = args.store_concurrency.iter().copied().max().unwrap_or(1) as u32;
            let opts = PgConnectOptions::from_str(settings.database_url())?
                .application_name(POSTGIS_APP)
                .options([
                    ("statement_timeout", "10000"),
                    ("plan_cache_mode", args.postgis_plan_cache.as_str()),
                ]);
            let pool = PgPoolOptions::new()
                .max_connections(max_c)
                .min_connections(max_c)
                .connect_with(opts)
                .await?;
            engines.push(Engine::PostGis(pool));
        }
        Err(why) => {
            say(format!("PostGIS baseline skipped: {why}"));
            rep.skipped.push(format!("postgis: {why}"));
        }
    }
    if wanted("redis-geo") {
        let (step, geo_bytes) = seeder.build_geo().await?;
        rep.geo_set_bytes_per_live_user = geo_bytes as f64 / (world.live_users().max(1)) as f64;
        rep.builds.push(step);
        engines.push(Engine::RedisGeo {
            redis: state.redis.clone(),
            keys: [Precision::Exact, Precision::Approximate, Precision::City]
                .into_iter()
                .map(|p| (p, seeder.geo_key(p)))
                .collect(),
        });
    }

    let (radius, limit) = (args.radius_m, args.limit);
    let secs = Duration::from_secs_f64(args.store_secs);
    for (wname, idx) in workloads(world) {
        if !args.store_workloads.iter().any(|w| w == wname) {
            continue;
        }
        if idx.is_empty() {
            rep.skipped.push(format!("{wname}: no callers in this world"));
            continue;
        }
        let callers: Arc<Vec<Uuid>> = Arc::new(idx.iter().map(|&i| world.ids[i as usize]).collect());
        let first = world.people[idx[0] as usize]
            .spot
            .map(|s| world.spots[s as usize].raw)
            .unwrap_or(Coord::ORIGIN);
        let cov = hereabouts::domain::cover::cover(first, radius);
        rep.workloads.push(WorkloadInfo {
            name: wname.into(),
            callers: callers.len(),
            mean_degree: idx.iter().map(|&i| world.graph.degree(i as usize) as f64).sum::<f64>() / idx.len() as f64,
            cover_resolution: u8::from(cov.resolution),
            cover_cells: cov.cells.len(),
            cover_population: index::populations(&state.redis, &cov.cells)
                .await
                .map(|p| p.iter().sum())
                .unwrap_or(0),
        });
        // agreement of the answers
        let mut answers: BTreeMap<&str, Vec<Vec<Uuid>>> = BTreeMap::new();
        for e in &engines {
            let mut v = Vec::new();
            for u in callers.iter().take(AGREEMENT_CALLERS) {
                v.push(e.query(*u, radius, limit).await.map(|r| r.0).unwrap_or_default());
            }
            answers.insert(e.name(), v);
        }
        if let Some(hb) = answers.get("hereabouts") {
            for (name, v) in &answers {
                if *name == "hereabouts" {
                    continue;
                }
                let scores: Vec<f64> = hb.iter().zip(v).map(|(a, b)| jaccard(a, b)).collect();
                rep.agreement.push(Agreement {
                    workload: wname.into(),
                    baseline: (*name).into(),
                    callers: scores.len(),
                    mean_jaccard: scores.iter().sum::<f64>() / scores.len().max(1) as f64,
                });
            }
        }
        for e in &engines {
            // warm-up, not reported
            let warm = Load {
                concurrency: 4,
                duration: Duration::from_millis(500),
                max_requests: args.max_requests,
                rate: None,
                from_schedule: false,
            };
            drive(
                &warm,
                &["q"],
                &indicatif::ProgressBar::hidden(),
                op(e, &callers, radius, limit, None),
            )
            .await;
            for &c in &args.store_concurrency {
                if !budget.allows(secs) {
                    rep.skipped.push(format!("{} {wname} c={c}: time budget", e.name()));
                    continue;
                }
                let counters = Arc::new(Counters::default());
                let meter = e.meter();
                let before = meter.sample().await;
                let load = Load {
                    concurrency: c,
                    duration: secs,
                    max_requests: args.max_requests,
                    rate: None,
                    from_schedule: false,
                };
                let run = drive(
                    &load,
                    &["q"],
                    &timed_bar(secs, &format!("{} {wname} c={c}", e.name())),
                    op(e, &callers, radius, limit, Some(counters.clone())),
                )
                .await;
                let cpu = per_op(&before, &meter.sample().await, run.total.requests);
                let ok = run.total.ok.max(1) as f64;
                let mut plans = BTreeMap::new();
                if let Engine::Hereabouts(_) = e {
                    plans.insert("cell_first".into(), counters.cell_first.load(Ordering::Relaxed));
                    plans.insert("graph_first".into(), counters.graph_first.load(Ordering::Relaxed));
                }
                say(format!(
                    "store {} {wname} c={c}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, hits {:.1}, errors {}",
                    e.name(),
                    run.total.throughput,
                    run.total.p50_ms,
                    run.total.p99_ms,
                    counters.hits.load(Ordering::Relaxed) as f64 / ok,
                    run.total.errors_text()
                ));
                rep.runs.push(StoreRun {
                    implementation: e.name().into(),
                    workload: wname.into(),
                    concurrency: c,
                    mean_hits: counters.hits.load(Ordering::Relaxed) as f64 / ok,
                    stats: run.total,
                    plans,
                    cpu,
                });
            }
        }
    }
    compute_ratios(&mut rep);
    Ok(rep)
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    cell_first: AtomicU64,
    graph_first: AtomicU64,
}

fn op(
    e: &Engine,
    callers: &Arc<Vec<Uuid>>,
    radius: f64,
    limit: usize,
    counters: Option<Arc<Counters>>,
) -> impl Fn(u64) -> std::pin::Pin<Box<dyn std::future::Future<Output = Outcome> + Send>> + Send + Sync + 'static {
    let (e, callers) = (e.clone(), callers.clone());
    move |i| {
        let (e, callers, counters) = (e.clone(), callers.clone(), counters.clone());
        Box::pin(async move {
            let u = callers[(mix(i) % callers.len() as u64) as usize];
            match e.query(u, radius, limit).await {
                Ok((ids, plan)) => {
                    if let Some(c) = counters {
                        c.hits.fetch_add(ids.len() as u64, Ordering::Relaxed);
                        match plan {
                            Some("cell_first") => c.cell_first.fetch_add(1, Ordering::Relaxed),
                            Some(_) => c.graph_first.fetch_add(1, Ordering::Relaxed),
                            None => 0,
                        };
                    }
                    (0, Ok(()))
                }
                Err(label) => (0, Err(label)),
            }
        })
    }
}

/// Fills the ratios and their summary from the runs.
pub fn compute_ratios(rep: &mut StoreReport) {
    let find = |imp: &str, w: &str, c: usize| {
        rep.runs
            .iter()
            .find(|r| r.implementation == imp && r.workload == w && r.concurrency == c)
    };
    let mut ratios = Vec::new();
    let mut summary = Vec::new();
    let workloads: Vec<String> = rep.workloads.iter().map(|w| w.name.clone()).collect();
    for w in &workloads {
        for base in ["postgis", "redis-geo"] {
            let mut levels: Vec<usize> = rep
                .runs
                .iter()
                .filter(|r| r.workload == *w && r.implementation == base)
                .map(|r| r.concurrency)
                .collect();
            levels.sort_unstable();
            for &c in &levels {
                if let (Some(h), Some(b)) = (find("hereabouts", w, c), find(base, w, c))
                    && b.stats.throughput > 0.0
                    && b.stats.p50_ms > 0.0
                    && h.stats.p50_ms > 0.0
                {
                    ratios.push(Ratio {
                        workload: w.clone(),
                        baseline: base.into(),
                        concurrency: c,
                        throughput_ratio: h.stats.throughput / b.stats.throughput,
                        p50_ratio: h.stats.p50_ms / b.stats.p50_ms,
                        speedup_p50: b.stats.p50_ms / h.stats.p50_ms,
                        cpu_ratio: if h.cpu.total_us > 0.0 {
                            b.cpu.total_us / h.cpu.total_us
                        } else {
                            f64::NAN
                        },
                    });
                }
            }
            let peak = |imp: &str| {
                rep.runs
                    .iter()
                    .filter(|r| r.workload == *w && r.implementation == imp)
                    .map(|r| r.stats.throughput)
                    .fold(0.0, f64::max)
            };
            let (hp, bp) = (peak("hereabouts"), peak(base));
            let low = ratios
                .iter()
                .filter(|r| r.workload == *w && r.baseline == base)
                .min_by_key(|r| r.concurrency);
            let high = ratios
                .iter()
                .filter(|r| r.workload == *w && r.baseline == base)
                .max_by_key(|r| r.concurrency);
            if hp > 0.0 && bp > 0.0 {
                summary.push(RatioSummary {
                    workload: w.clone(),
                    baseline: base.into(),
                    peak_throughput_ratio: hp / bp,
                    p50_ratio_lowest_concurrency: low.map(|r| r.p50_ratio).unwrap_or(f64::NAN),
                    cpu_ratio_highest_concurrency: high.map(|r| r.cpu_ratio).unwrap_or(f64::NAN),
                });
            }
        }
    }
    rep.ratios = ratios;
    rep.summary = summary;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(imp: &str, w: &str, c: usize, tput: f64, p50: f64) -> StoreRun {
        StoreRun {
            implementation: imp.into(),
            workload: w.into(),
            concurrency: c,
            stats: Stats {
                throughput: tput,
                p50_ms: p50,
                ..Default::default()
            },
            mean_hits: 0.0,
            plans: BTreeMap::new(),
            cpu: PerOp {
                total_us: 1_000.0 / tput,
                ..Default::default()
            },
        }
    }

    #[test]
    fn ratios_are_hereabouts_over_baseline() {
        let mut rep = StoreReport {
            workloads: vec![WorkloadInfo {
                name: "hall".into(),
                callers: 1,
                mean_degree: 1.0,
                cover_resolution: 5,
                cover_cells: 37,
                cover_population: 1,
            }],
            runs: vec![
                run("hereabouts", "hall", 1, 1_000.0, 1.0),
                run("hereabouts", "hall", 4, 3_000.0, 1.3),
                run("postgis", "hall", 1, 50.0, 20.0),
                run("postgis", "hall", 4, 100.0, 40.0),
                run("redis-geo", "hall", 1, 200.0, 5.0),
            ],
            ..Default::default()
        };
        compute_ratios(&mut rep);
        assert_eq!(rep.ratios.len(), 3);
        let pg1 = &rep.ratios[0];
        assert_eq!((pg1.baseline.as_str(), pg1.concurrency), ("postgis", 1));
        assert_eq!(pg1.throughput_ratio, 20.0);
        assert_eq!(pg1.p50_ratio, 0.05);
        assert_eq!(pg1.speedup_p50, 20.0);
        assert_eq!(pg1.cpu_ratio, 20.0);
        let s = &rep.summary[0];
        assert_eq!(s.peak_throughput_ratio, 30.0);
        assert_eq!(s.p50_ratio_lowest_concurrency, 0.05);
        assert_eq!(s.cpu_ratio_highest_concurrency, 30.0);
        assert_eq!(rep.summary[1].peak_throughput_ratio, 15.0);
    }

    #[test]
    fn jaccard_of_answers() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        assert_eq!(jaccard(&[a, b], &[b, a]), 1.0);
        assert_eq!(jaccard(&[a, b], &[b, c]), 1.0 / 3.0);
        assert_eq!(jaccard(&[], &[]), 1.0);
    }
}
