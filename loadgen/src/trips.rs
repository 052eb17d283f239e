//! Travel plans in the bench world: trips and home bases (pure generation), their bulk seeding
//! (COPY), the HTTP phase `trip_overlaps` (`GET /v1/trips/{id}/overlaps` with the defaults:
//! tolerance 1 day, 50 km) for typical callers and for the crowded case, at one client and at
//! `--trips-concurrency`, the plan of the
//! overlap query in the crowded case, and a store-level comparison of that query with a naive
//! join of the caller's connections to their trips.
//!
//! - Trips: every user plans 0–3 trips (35/35/20/10 %) of 1–7 days starting within the next
//!   `horizon_days`, to a city drawn by the cities' weights (another than the one they are in
//!   when live), at a point of that city's metro area; 10 % of them visible to nobody.
//! - Home bases: `home_share` of the users, in the city they are in (or one drawn by weight),
//!   `home_visible_share` of them visible.
//! - The crowded case (the issue's "30,000 connections, a city with 10,000 trips", scaled with
//!   the world): `crowded_trips` more trips in the hall's city (London, around ExCeL), one per
//!   user drawn, every super-connector among them; `conference_share` of them around the
//!   conference week, the rest spread like the others. The caller of the crowded workload is
//!   the super-connector of the highest degree, on their trip to the conference.

use super::cpu::{Meter, PerOp, per_op};
use super::http::Phase;
use super::stats::{Load, Outcome, Stats, drive};
use super::world::{Alias, HALL_PLACE, World, city_point, derived_uuid, gaussian, hall_centre, offset};
use super::{Args, Budget, mix, say, timed_bar};
use hereabouts::config::Settings;
use hereabouts::domain::account::Role;
use hereabouts::domain::geo::Coord;
use hereabouts::domain::trips::{LngLatBox, centre, format_date, search_boxes, trip_cell};
use hereabouts::service::Ctx;
use hereabouts::service::auth::TokenKeys;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::Date;
use uuid::Uuid;

/// The overlap query's defaults (API.md: tolerance 1 day, radius 50 km), which the phase uses.
pub const TOLERANCE_DAYS: i64 = 1;
pub const RADIUS_KM: i64 = 50;
/// Callers of the typical workload at most.
const CALLERS: usize = 2_000;
/// Bytes per COPY message.
const CHUNK: usize = 1 << 20;

/// Everything that shapes the travel plans.
#[derive(Debug, Clone)]
pub struct TripSpec {
    /// Share of users planning 0, 1, 2, 3 trips.
    pub trips_per_user: [f64; 4],
    pub horizon_days: u16,
    pub max_days: u8,
    pub hidden_share: f64,
    pub home_share: f64,
    pub home_visible_share: f64,
    pub crowded_trips: usize,
    /// First day (from today) and length of the conference in the crowded city.
    pub conference_start: u16,
    pub conference_days: u8,
    pub conference_share: f64,
}

impl TripSpec {
    /// The default for `users` users: 10,000 trips in the crowded city (fewer in worlds under
    /// 10,000 users: one per user).
    pub fn for_users(users: usize) -> Self {
        Self {
            trips_per_user: [0.35, 0.35, 0.20, 0.10],
            horizon_days: 60,
            max_days: 7,
            hidden_share: 0.1,
            home_share: 0.4,
            home_visible_share: 0.8,
            crowded_trips: users.min(10_000),
            conference_start: 14,
            conference_days: 4,
            conference_share: 0.6,
        }
    }
}

/// One seeded trip: `start_day` days after the seeding day, `days` long (1 = a single day).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedTrip {
    pub owner: u32,
    /// City index, or [`HALL_PLACE`] for the crowded city.
    pub place: u16,
    pub point: Coord,
    pub start_day: u16,
    pub days: u8,
    pub visible: bool,
}

impl SeedTrip {
    pub fn dates(&self, today: Date) -> (Date, Date) {
        let start = today + time::Duration::days(i64::from(self.start_day));
        (start, start + time::Duration::days(i64::from(self.days) - 1))
    }
}

/// One seeded home base.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeedHome {
    pub owner: u32,
    pub point: Coord,
    pub visible: bool,
}

/// The world's travel plans.
#[derive(Debug, Clone)]
pub struct TripPlan {
    /// The typical trips first (`..typical`), then the crowded city's.
    pub trips: Vec<SeedTrip>,
    pub typical: usize,
    pub homes: Vec<SeedHome>,
    /// The crowded workload's caller (the super-connector of the highest degree) and their trip.
    pub crowded_caller: Option<(u32, usize)>,
}

/// The id of trip `j` (the same on every run of one world seed).
pub fn trip_id(world: &World, j: usize) -> Uuid {
    derived_uuid(world.spec.seed ^ 0x7219_5EED, j as u64)
}

/// Draws a duration in days in [1, max].
fn days<R: Rng>(rng: &mut R, max: u8) -> u8 {
    rng.random_range(1..=max.max(1))
}

impl TripPlan {
    pub fn generate(world: &World, spec: &TripSpec) -> TripPlan {
        let n = world.ids.len();
        let mut rng = SmallRng::seed_from_u64(world.spec.seed ^ 0x7219_0000);
        let city_pick = Alias::new(&world.cities.iter().map(|c| c.weight).collect::<Vec<_>>());
        let count_pick = Alias::new(&spec.trips_per_user);
        let here = |i: usize| {
            world.people[i]
                .spot
                .map(|s| world.spots[s as usize].place)
                .filter(|p| *p != HALL_PLACE)
        };
        let mut trips = Vec::new();
        for i in 0..n {
            for _ in 0..count_pick.sample(&mut rng) {
                let mut c = city_pick.sample(&mut rng);
                if here(i) == Some(c as u16) {
                    c = city_pick.sample(&mut rng);
                }
                trips.push(SeedTrip {
                    owner: i as u32,
                    place: c as u16,
                    point: city_point(&mut rng, &world.cities[c], &world.spec),
                    start_day: rng.random_range(1..=spec.horizon_days.max(1)),
                    days: days(&mut rng, spec.max_days),
                    visible: !rng.random_bool(spec.hidden_share),
                });
            }
        }
        let typical = trips.len();

        // the crowded city: every super-connector, then users drawn without replacement
        let want = spec.crowded_trips.min(n);
        let mut chosen = vec![false; n];
        let mut owners: Vec<u32> = Vec::with_capacity(want);
        for &h in world.hubs.iter().take(want) {
            chosen[h as usize] = true;
            owners.push(h);
        }
        for k in rand::seq::index::sample(&mut rng, n, want) {
            if owners.len() >= want {
                break;
            }
            if !chosen[k] {
                chosen[k] = true;
                owners.push(k as u32);
            }
        }
        let conf_end = spec.conference_start + u16::from(spec.conference_days.max(1)) - 1;
        let top_hub = world
            .hubs
            .iter()
            .copied()
            .max_by_key(|&h| world.graph.degree(h as usize));
        let mut crowded_caller = None;
        for owner in owners {
            let hub = world.people[owner as usize].hub;
            let (point, start_day, len) = if Some(owner) == top_hub {
                // the caller: at the hall, for the conference
                (hall_centre(), spec.conference_start, spec.conference_days.max(1))
            } else if hub || rng.random_bool(spec.conference_share) {
                // a day early or a day late, either end
                let start = spec.conference_start.saturating_sub(rng.random_range(0..=1)).max(1);
                let end = conf_end + rng.random_range(0..=1);
                let sigma = 2_500.0;
                let p = offset(hall_centre(), gaussian(&mut rng) * sigma, gaussian(&mut rng) * sigma);
                (p, start, (end - start + 1) as u8)
            } else {
                let sigma = 8_000.0;
                let p = offset(hall_centre(), gaussian(&mut rng) * sigma, gaussian(&mut rng) * sigma);
                (
                    p,
                    rng.random_range(1..=spec.horizon_days.max(1)),
                    days(&mut rng, spec.max_days),
                )
            };
            if Some(owner) == top_hub {
                crowded_caller = Some((owner, trips.len()));
            }
            trips.push(SeedTrip {
                owner,
                place: HALL_PLACE,
                point,
                start_day,
                days: len,
                visible: Some(owner) == top_hub || !rng.random_bool(spec.hidden_share),
            });
        }

        let mut homes = Vec::new();
        for i in 0..n {
            if !rng.random_bool(spec.home_share) {
                continue;
            }
            let c = here(i).map_or_else(|| city_pick.sample(&mut rng), usize::from);
            homes.push(SeedHome {
                owner: i as u32,
                point: city_point(&mut rng, &world.cities[c], &world.spec),
                visible: rng.random_bool(spec.home_visible_share),
            });
        }
        TripPlan {
            trips,
            typical,
            homes,
            crowded_caller,
        }
    }
}

/// A `point` as PostgreSQL's text input reads it: `(x,y)` = `(lng,lat)`.
fn point_text(c: Coord) -> String {
    format!("({},{})", c.lng(), c.lat())
}

/// One COPY line of the trips table (columns of [`seed`]'s COPY).
pub fn trip_line(world: &World, plan: &TripPlan, j: usize, today: Date) -> String {
    let t = &plan.trips[j];
    let cell = trip_cell(t.point);
    let (from, to) = t.dates(today);
    let name = if t.place == HALL_PLACE {
        "Conference".to_string()
    } else {
        world.cities[usize::from(t.place)].name.clone()
    };
    format!(
        "{}\t{}\t{name}\t{}\t{}\t{cell}\t{}\t{}\t{}\t{}\n",
        trip_id(world, j),
        world.ids[t.owner as usize],
        t.point.lat(),
        t.point.lng(),
        point_text(centre(cell)),
        format_date(from),
        format_date(to),
        if t.visible { "connections" } else { "nobody" }
    )
}

/// COPYs `lines` through `copy_sql`; the rows written.
async fn copy_lines(
    conn: &mut PgConnection,
    copy_sql: &str,
    lines: impl Iterator<Item = String>,
) -> anyhow::Result<u64> {
    let mut copy = conn.copy_in_raw(copy_sql).await?;
    let mut buf = Vec::with_capacity(CHUNK + 512);
    for l in lines {
        buf.write_all(l.as_bytes())?;
        if buf.len() >= CHUNK {
            copy.send(std::mem::take(&mut buf)).await?;
            buf.reserve(CHUNK + 512);
        }
    }
    if !buf.is_empty() {
        copy.send(buf).await?;
    }
    Ok(copy.finish().await?)
}

/// Seeds the trips (COPY) and home bases (COPY into a temporary table, one UPDATE) on a bulk
/// session; the caller runs `VACUUM (ANALYZE)` after.
pub async fn seed(
    conn: &mut PgConnection,
    world: &World,
    plan: &TripPlan,
    today: Date,
) -> anyhow::Result<Vec<super::seed::Step>> {
    use super::seed::Step;
    let t = Instant::now();
    let rows = copy_lines(
        conn,
        "COPY trips (id, user_id, name, lat, lng, h3_cell, centre, starts_on, ends_on, visibility) FROM STDIN",
        (0..plan.trips.len()).map(|j| trip_line(world, plan, j, today)),
    )
    .await?;
    let mut steps = vec![Step::new("postgres: trips", rows, t)];
    let t = Instant::now();
    sqlx::raw_sql(
        "CREATE TEMP TABLE bench_homes (user_id uuid, lat float8, lng float8, cell text, centre point, visible bool)",
    )
    .execute(&mut *conn)
    .await?;
    let rows = copy_lines(
        conn,
        "COPY bench_homes (user_id, lat, lng, cell, centre, visible) FROM STDIN",
        plan.homes.iter().map(|h| {
            let cell = trip_cell(h.point);
            format!(
                "{}\t{}\t{}\t{cell}\t{}\t{}\n",
                world.ids[h.owner as usize],
                h.point.lat(),
                h.point.lng(),
                point_text(centre(cell)),
                if h.visible { "t" } else { "f" }
            )
        }),
    )
    .await?;
    sqlx::raw_sql(
        "UPDATE privacy_settings p SET home_lat = h.lat, home_lng = h.lng, home_cell = h.cell,
             home_centre = h.centre, home_visible = h.visible
         FROM bench_homes h WHERE p.user_id = h.user_id;
         DROP TABLE bench_homes",
    )
    .execute(&mut *conn)
    .await?;
    steps.push(Step::new("postgres: home bases", rows, t));
    Ok(steps)
}

/// What the overlap query is asked for one trip: the caller, the trip, its dates widened by the
/// tolerance and the search boxes.
#[derive(Debug, Clone)]
pub struct Ask {
    pub me: Uuid,
    pub trip: Uuid,
    pub from: Date,
    pub to: Date,
    pub boxes: [LngLatBox; 2],
}

impl Ask {
    pub fn of(world: &World, plan: &TripPlan, j: usize, today: Date) -> Ask {
        let t = &plan.trips[j];
        let (from, to) = t.dates(today);
        let tol = time::Duration::days(TOLERANCE_DAYS);
        Ask {
            me: world.ids[t.owner as usize],
            trip: trip_id(world, j),
            from: from - tol,
            to: to + tol,
            boxes: search_boxes(centre(trip_cell(t.point)), RADIUS_KM as f64),
        }
    }
}

/// Trips of the typical workload: `..typical` evenly spread, at most `max`.
pub fn typical_sample(plan: &TripPlan, max: usize) -> Vec<usize> {
    let step = (plan.typical / max.max(1)).max(1);
    (0..plan.typical).step_by(step).take(max).collect()
}

/// Items in the answers of one phase.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Answers {
    pub phase: String,
    pub answers: u64,
    pub mean_items: f64,
    pub max_items: u64,
    /// Answers cut at the service's cap (1,000 items).
    pub at_cap: u64,
}

/// One store-level run of the candidates query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRun {
    /// `hereabouts` (the query of src/store/trips.rs) or `naive-join`.
    pub implementation: String,
    pub workload: String,
    pub concurrency: usize,
    pub stats: Stats,
    pub mean_rows: f64,
    pub cpu: PerOp,
}

/// Everything about the trips workload.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TripsReport {
    pub trips: u64,
    pub visible_trips: u64,
    pub crowded_city_trips: u64,
    pub home_bases: u64,
    pub visible_home_bases: u64,
    pub super_connector_degree: u64,
    pub tolerance_days: i64,
    pub radius_km: i64,
    pub answers: Vec<Answers>,
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the candidates query for the crowded caller.
    pub crowded_plan: Vec<String>,
    pub crowded_plan_execution_ms: Option<f64>,
    pub store: Vec<QueryRun>,
    /// Whether both implementations returned the same rows for the callers compared.
    pub store_same_rows: Option<bool>,
    pub skipped: Vec<String>,
}

/// The `Execution Time: 1.234 ms` of an EXPLAIN ANALYZE.
pub fn execution_ms(plan: &[String]) -> Option<f64> {
    plan.iter().find_map(|l| {
        l.trim()
            .strip_prefix("Execution Time:")?
            .trim()
            .strip_suffix("ms")?
            .trim()
            .parse()
            .ok()
    })
}

/// The number of items of an overlaps answer.
fn items_of(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Body {
        items: Vec<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Body>(body).ok().map(|b| b.items.len() as u64)
}

#[derive(Default)]
struct Counts {
    answers: AtomicU64,
    items: AtomicU64,
    max: AtomicU64,
    at_cap: AtomicU64,
}

impl Counts {
    fn add(&self, items: u64) {
        self.answers.fetch_add(1, Ordering::Relaxed);
        self.items.fetch_add(items, Ordering::Relaxed);
        self.max.fetch_max(items, Ordering::Relaxed);
        if items >= hereabouts::service::trips::MAX_OVERLAPS as u64 {
            self.at_cap.fetch_add(1, Ordering::Relaxed);
        }
    }
    fn take(&self, phase: &str) -> Answers {
        let answers = self.answers.swap(0, Ordering::Relaxed);
        Answers {
            phase: phase.into(),
            answers,
            mean_items: self.items.swap(0, Ordering::Relaxed) as f64 / answers.max(1) as f64,
            max_items: self.max.swap(0, Ordering::Relaxed),
            at_cap: self.at_cap.swap(0, Ordering::Relaxed),
        }
    }
}

async fn get_overlaps(http: &reqwest::Client, url: &str, token: &str, counts: &Counts) -> Result<(), String> {
    let label = |e: reqwest::Error| {
        if e.is_timeout() {
            "timeout".to_string()
        } else if e.is_connect() {
            "connect".into()
        } else {
            "io".into()
        }
    };
    let resp = http.get(url).bearer_auth(token).send().await.map_err(label)?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(label)?;
    if !status.is_success() {
        return Err(status.as_u16().to_string());
    }
    counts.add(items_of(&body).ok_or_else(|| "body".to_string())?);
    Ok(())
}

/// The facts of the seeded plan.
pub fn describe(world: &World, plan: &TripPlan) -> TripsReport {
    TripsReport {
        trips: plan.trips.len() as u64,
        visible_trips: plan.trips.iter().filter(|t| t.visible).count() as u64,
        crowded_city_trips: (plan.trips.len() - plan.typical) as u64,
        home_bases: plan.homes.len() as u64,
        visible_home_bases: plan.homes.iter().filter(|h| h.visible).count() as u64,
        super_connector_degree: plan
            .crowded_caller
            .map_or(0, |(o, _)| world.graph.degree(o as usize) as u64),
        tolerance_days: TOLERANCE_DAYS,
        radius_km: RADIUS_KM,
        ..Default::default()
    }
}

/// The HTTP phases `trip_overlaps typical c=…` and `trip_overlaps crowded c=…` (one client,
/// then `--trips-concurrency`), appended to `phases`.
#[allow(clippy::too_many_arguments)]
pub async fn run_http(
    settings: &Settings,
    args: &Args,
    world: &World,
    plan: &TripPlan,
    state: &Ctx,
    budget: &Budget,
    rep: &mut TripsReport,
    phases: &mut Vec<Phase>,
) -> anyhow::Result<()> {
    let keys = TokenKeys::from_settings(settings)?;
    let meter = super::http::server_meter(args, state);
    let base = args.base_url.trim_end_matches('/').to_string();
    let http = super::http::api_client()?;
    let caller = |j: usize| -> anyhow::Result<(String, String)> {
        let t = &plan.trips[j];
        Ok((
            format!("{base}/v1/trips/{}/overlaps", trip_id(world, j)),
            keys.issue(world.ids[t.owner as usize], Role::User, Uuid::new_v4())?,
        ))
    };
    let typical: Vec<(String, String)> = typical_sample(plan, CALLERS)
        .into_iter()
        .map(caller)
        .collect::<anyhow::Result<_>>()?;
    let crowded: Vec<(String, String)> = plan
        .crowded_caller
        .map(|(_, j)| caller(j))
        .transpose()?
        .into_iter()
        .collect();
    let counts = Arc::new(Counts::default());
    let secs = Duration::from_secs_f64(args.trips_secs);
    for (name, callers) in [("typical", typical), ("crowded", crowded)] {
        if callers.is_empty() {
            rep.skipped.push(format!("trip_overlaps {name}: no callers"));
            continue;
        }
        let callers = Arc::new(callers);
        let op = {
            let (http, callers, counts) = (http.clone(), callers.clone(), counts.clone());
            move |i: u64| {
                let (http, callers, counts) = (http.clone(), callers.clone(), counts.clone());
                async move {
                    let (url, token) = &callers[(mix(i ^ 0x7219) % callers.len() as u64) as usize];
                    (0usize, get_overlaps(&http, url, token, &counts).await) as Outcome
                }
            }
        };
        // warm-up (not reported): the trips' pages
        let warm = Load {
            concurrency: args.trips_concurrency,
            duration: Duration::from_secs(1),
            max_requests: args.max_requests,
            rate: None,
            from_schedule: false,
        };
        drive(
            &warm,
            &["overlaps"],
            &timed_bar(warm.duration, "http warm-up"),
            op.clone(),
        )
        .await;
        counts.take("warm-up");
        // one client (the latency of one request), then several (the throughput)
        let mut levels = vec![1, args.trips_concurrency];
        levels.dedup();
        for c in levels {
            let phase = format!("trip_overlaps {name} c={c}");
            if !budget.allows(secs) {
                rep.skipped.push(format!("{phase}: time budget"));
                continue;
            }
            let load = Load {
                concurrency: c,
                duration: secs,
                ..warm.clone()
            };
            let before = meter.sample().await;
            let run = drive(
                &load,
                &["overlaps"],
                &timed_bar(secs, &format!("http {phase}")),
                op.clone(),
            )
            .await;
            let cpu = per_op(&before, &meter.sample().await, run.total.requests);
            let answers = counts.take(&phase);
            say(format!(
                "{phase}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {:.0} µs CPU (server {:.0}, PostgreSQL {:.0}), {:.1} items per answer (max {}), errors {}",
                run.total.throughput,
                run.total.p50_ms,
                run.total.p99_ms,
                cpu.total_us,
                cpu.server_us.unwrap_or(f64::NAN),
                cpu.postgres_us.unwrap_or(f64::NAN),
                answers.mean_items,
                answers.max_items,
                run.total.errors_text()
            ));
            rep.answers.push(answers);
            phases.push(Phase { name: phase, run, cpu });
        }
    }
    Ok(())
}

/// The naive overlap query: the caller's connections joined to all their trips (the index
/// `trips_user` on the owner), dates and boxes compared as plain columns, so that the
/// space-time GiST index cannot serve it. The same rows as the candidates query.
pub const NAIVE_QUERY: &str = "SELECT t.id
    FROM connections c
    JOIN trips t ON t.user_id = c.peer_id
    JOIN users u ON u.id = t.user_id
    JOIN privacy_settings p ON p.user_id = t.user_id
    WHERE c.user_id = $1 AND t.visibility = 'connections' AND t.starts_on <= $3 AND t.ends_on >= $2
      AND ((t.centre[0] BETWEEN $4 AND $6 AND t.centre[1] BETWEEN $5 AND $7)
        OR (t.centre[0] BETWEEN $8 AND $10 AND t.centre[1] BETWEEN $9 AND $11))
      AND NOT u.suspended AND NOT ($1 = ANY(p.hidden_from))
      AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = u.id)
                                              OR (b.blocker_id = u.id AND b.blocked_id = $1))";

async fn naive(db: &PgPool, a: &Ask) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(NAIVE_QUERY)
        .bind(a.me)
        .bind(a.from)
        .bind(a.to)
        .bind(a.boxes[0].0)
        .bind(a.boxes[0].1)
        .bind(a.boxes[0].2)
        .bind(a.boxes[0].3)
        .bind(a.boxes[1].0)
        .bind(a.boxes[1].1)
        .bind(a.boxes[1].2)
        .bind(a.boxes[1].3)
        .fetch_all(db)
        .await
}

async fn indexed(db: &PgPool, a: &Ask) -> Result<Vec<Uuid>, String> {
    hereabouts::store::trips::candidates(db, a.me, a.from, a.to, &a.boxes)
        .await
        .map(|rows| rows.into_iter().map(|r| r.id).collect())
        .map_err(|e| format!("{e:?}").chars().take(40).collect())
}

/// The day the plan was seeded on (a reused world keeps its dates).
async fn seeding_day(db: &PgPool, world: &World, plan: &TripPlan) -> anyhow::Result<Date> {
    let first = plan
        .trips
        .first()
        .ok_or_else(|| anyhow::anyhow!("the world has no trips"))?;
    let starts: Option<Date> = sqlx::query_scalar("SELECT starts_on FROM trips WHERE id = $1")
        .bind(trip_id(world, 0))
        .fetch_optional(db)
        .await?;
    let starts = starts.ok_or_else(|| anyhow::anyhow!("the trips of this world are not seeded"))?;
    Ok(starts - time::Duration::days(i64::from(first.start_day)))
}

/// The crowded plan, then the store-level runs (one client: the latency of one query).
pub async fn run_store(
    args: &Args,
    world: &World,
    plan: &TripPlan,
    state: &Ctx,
    budget: &Budget,
    rep: &mut TripsReport,
) -> anyhow::Result<()> {
    let db = state.db.clone();
    let today = seeding_day(&db, world, plan).await?;
    if let Some((_, j)) = plan.crowded_caller {
        let a = Ask::of(world, plan, j, today);
        let lines = hereabouts::store::trips::explain_candidates(&db, a.me, a.from, a.to, &a.boxes).await?;
        rep.crowded_plan_execution_ms = execution_ms(&lines);
        say(format!(
            "overlap query plan, crowded caller ({} connections):\n{}",
            rep.super_connector_degree,
            lines.join("\n")
        ));
        rep.crowded_plan = lines;
    }
    let mut workloads: Vec<(&str, Vec<Ask>)> = vec![(
        "typical",
        typical_sample(plan, 1_000)
            .into_iter()
            .map(|j| Ask::of(world, plan, j, today))
            .collect(),
    )];
    if let Some((_, j)) = plan.crowded_caller {
        workloads.push(("crowded", vec![Ask::of(world, plan, j, today)]));
    }
    // the same rows, for a few callers of each workload
    let mut same = true;
    for (_, asks) in &workloads {
        for a in asks.iter().step_by((asks.len() / 10).max(1)) {
            let mut x = indexed(&db, a).await.map_err(anyhow::Error::msg)?;
            let mut y = naive(&db, a).await?;
            x.sort_unstable();
            y.sort_unstable();
            same &= x == y;
        }
    }
    rep.store_same_rows = Some(same);
    // the backends of this process's pool (`Ctx` names them as the server does; the server
    // is idle meanwhile)
    let meter = Meter {
        server_pid: None,
        redis: None,
        pg: Some((db.clone(), vec!["hereabouts".to_string()])),
    };
    let secs = Duration::from_secs_f64(args.store_secs);
    for (workload, asks) in workloads {
        let asks = Arc::new(asks);
        for imp in ["hereabouts", "naive-join"] {
            if !budget.allows(secs) {
                rep.skipped.push(format!("store {imp} {workload}: time budget"));
                continue;
            }
            let rows = Arc::new(AtomicU64::new(0));
            let op = {
                let (db, asks, rows) = (db.clone(), asks.clone(), rows.clone());
                move |i: u64| {
                    let (db, asks, rows) = (db.clone(), asks.clone(), rows.clone());
                    async move {
                        let a = &asks[(mix(i ^ 0x5707) % asks.len() as u64) as usize];
                        let r = if imp == "hereabouts" {
                            indexed(&db, a).await
                        } else {
                            naive(&db, a)
                                .await
                                .map_err(|e| format!("{e:?}").chars().take(40).collect())
                        };
                        let r = r.map(|ids| {
                            rows.fetch_add(ids.len() as u64, Ordering::Relaxed);
                        });
                        (0usize, r) as Outcome
                    }
                }
            };
            let load = Load {
                concurrency: 1,
                duration: secs,
                max_requests: args.max_requests,
                rate: None,
                from_schedule: false,
            };
            let before = meter.sample().await;
            let run = drive(
                &load,
                &["query"],
                &timed_bar(secs, &format!("store {imp} {workload}")),
                op,
            )
            .await;
            let cpu = per_op(&before, &meter.sample().await, run.total.requests);
            let mean_rows = rows.load(Ordering::Relaxed) as f64 / run.total.ok.max(1) as f64;
            say(format!(
                "store overlaps {workload} {imp}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, {:.0} µs CPU, {mean_rows:.1} rows",
                run.total.throughput, run.total.p50_ms, run.total.p99_ms, cpu.total_us
            ));
            rep.store.push(QueryRun {
                implementation: imp.into(),
                workload: workload.into(),
                concurrency: 1,
                stats: run.total,
                mean_rows,
                cpu,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{CITIES_CSV, WorldSpec, parse_cities};
    use hereabouts::domain::geo::distance_m;

    fn world(users: usize) -> World {
        World::generate(
            &WorldSpec::for_users(users, 9),
            parse_cities(CITIES_CSV).expect("cities"),
        )
        .expect("world")
    }

    #[test]
    fn plans_have_the_promised_shape() {
        let w = world(5_000);
        let spec = TripSpec::for_users(5_000);
        let p = TripPlan::generate(&w, &spec);
        // ~1.05 typical trips per user, then one crowded trip per user drawn
        let per_user = p.typical as f64 / 5_000.0;
        assert!((0.95..1.15).contains(&per_user), "{per_user}");
        assert_eq!(p.trips.len() - p.typical, 5_000);
        let today = Date::from_calendar_date(2026, time::Month::December, 1).expect("date");
        for t in &p.trips {
            assert!((1..=7).contains(&t.days) || t.place == HALL_PLACE);
            assert!((1..=60).contains(&t.start_day));
            let (from, to) = t.dates(today);
            assert!(from > today && to >= from && (to - from).whole_days() < 7);
        }
        for t in &p.trips[..p.typical] {
            let c = &w.cities[usize::from(t.place)];
            assert!(distance_m(t.point, Coord::stored(c.lat, c.lng)) < 60_000.0);
        }
        // the crowded city: around the hall, most during the conference, every hub there
        let crowded = &p.trips[p.typical..];
        assert!(crowded.iter().all(|t| t.place == HALL_PLACE));
        let conference = crowded
            .iter()
            .filter(|t| {
                t.start_day <= spec.conference_start + 3 && t.start_day + u16::from(t.days) > spec.conference_start
            })
            .count() as f64
            / crowded.len() as f64;
        assert!((0.6..0.8).contains(&conference), "{conference}");
        for h in &w.hubs {
            assert!(crowded.iter().any(|t| t.owner == *h));
        }
        let owners: std::collections::HashSet<u32> = crowded.iter().map(|t| t.owner).collect();
        assert_eq!(owners.len(), crowded.len(), "one crowded trip per owner");
        // the caller: the hub of the highest degree, visible, at the hall for the conference
        let (o, j) = p.crowded_caller.expect("caller");
        assert_eq!(p.trips[j].owner, o);
        let top = w.hubs.iter().map(|h| w.graph.degree(*h as usize)).max().expect("hubs");
        assert_eq!(w.graph.degree(o as usize), top);
        assert!(p.trips[j].visible);
        assert_eq!(trip_cell(p.trips[j].point), trip_cell(hall_centre()));
        assert_eq!((p.trips[j].start_day, p.trips[j].days), (14, 4));
        // homes: ~40 %, ~80 % of them visible
        let share = p.homes.len() as f64 / 5_000.0;
        assert!((0.37..0.43).contains(&share), "{share}");
        let visible = p.homes.iter().filter(|h| h.visible).count() as f64 / p.homes.len() as f64;
        assert!((0.76..0.84).contains(&visible), "{visible}");
        let hidden = p.trips.iter().filter(|t| !t.visible).count() as f64 / p.trips.len() as f64;
        assert!((0.08..0.12).contains(&hidden), "{hidden}");
        // deterministic
        let again = TripPlan::generate(&w, &spec);
        assert_eq!(again.trips, p.trips);
        assert_eq!(again.homes, p.homes);
        assert_eq!(trip_id(&w, 3), trip_id(&w, 3));
        assert_ne!(trip_id(&w, 3), trip_id(&w, 4));
    }

    #[test]
    fn small_worlds_have_a_crowded_trip_per_user() {
        let w = world(300);
        let p = TripPlan::generate(&w, &TripSpec::for_users(300));
        assert_eq!(p.trips.len() - p.typical, 300);
    }

    #[test]
    fn copy_lines_and_asks() {
        let w = world(1_000);
        let p = TripPlan::generate(&w, &TripSpec::for_users(1_000));
        let today = Date::from_calendar_date(2026, time::Month::December, 1).expect("date");
        let (_, j) = p.crowded_caller.expect("caller");
        let line = trip_line(&w, &p, j, today);
        let f: Vec<&str> = line.trim_end().split('\t').collect();
        assert_eq!(f.len(), 10);
        assert_eq!(f[0], trip_id(&w, j).to_string());
        assert_eq!(f[2], "Conference");
        assert_eq!(f[5], trip_cell(hall_centre()).to_string());
        let c = centre(trip_cell(hall_centre()));
        assert_eq!(f[6], format!("({},{})", c.lng(), c.lat()));
        assert_eq!((f[7], f[8], f[9]), ("2026-12-15", "2026-12-18", "connections"));
        let a = Ask::of(&w, &p, j, today);
        assert_eq!(
            (format_date(a.from), format_date(a.to)),
            ("2026-12-14".into(), "2026-12-19".into())
        );
        assert!(hereabouts::domain::trips::in_boxes(c, &a.boxes));
        let s = typical_sample(&p, 100);
        assert_eq!(s.len(), 100);
        assert!(s.iter().all(|&j| j < p.typical));
    }

    #[test]
    fn answers_and_plans_parse() {
        assert_eq!(items_of(br#"{"items":[{"a":1},{"b":[2]}]}"#), Some(2));
        assert_eq!(items_of(b"{}"), None);
        let plan = vec![
            "Nested Loop".to_string(),
            "Planning Time: 0.2 ms".into(),
            "Execution Time: 12.345 ms".into(),
        ];
        assert_eq!(execution_ms(&plan), Some(12.345));
        assert_eq!(execution_ms(&plan[..1]), None);
        let c = Counts::default();
        c.add(3);
        c.add(1_000);
        let a = c.take("x");
        assert_eq!((a.answers, a.max_items, a.at_cap, a.mean_items), (2, 1_000, 1, 501.5));
        assert_eq!(c.take("y").answers, 0);
    }
}
