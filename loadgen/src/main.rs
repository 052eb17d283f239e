//! `hereabouts-loadgen`: generates the "Social Shake-Up" world, seeds it through the bulk paths,
//! drives the real HTTP API with it, measures the store-level nearby query against two baselines
//! (PostGIS, Redis GEO) on the same data, and reports (terminal table, JSON, SVG).
//!
//! Safety: only loopback targets (the server's base URL, PostgreSQL and Redis hosts), a Redis
//! prefix of its own (not the default `hb`), a time budget and a request budget per run, and
//! nothing deleted unless `--reset` (then: `TRUNCATE users CASCADE` in the configured database and
//! every key under the configured Redis prefix, found with SCAN — never FLUSHALL).
//!
//! Authentication: access tokens are minted directly with [`hereabouts::auth::TokenKeys`] from the
//! same settings as the server (`HEREABOUTS_JWT_*`), so no argon2 work is measured. Every seeded
//! user also has the same precomputed argon2id hash of the password `loadgen-password`, so a
//! sample can log in through `/v1/auth/login` as well.
//!
//! The server must be started with high `HEREABOUTS_RATE_*` limits (`scripts/bench` does) so that
//! the rate limits do not distort the test.
//!
//! Modules: [`world`] (pure generation), [`seed`] (COPY, pipelined Redis writes, memory),
//! [`http`] (phases through the API), [`baseline`] (store-level runs), [`trips`] (travel plans:
//! seeding, the `trip_overlaps` phases, the overlap query's plan and store-level runs), [`stats`] (driver and
//! percentiles), [`cpu`] (CPU time per operation by process), [`report`] (table, JSON, SVG,
//! machine description).

pub mod baseline;
pub mod cpu;
pub mod http;
pub mod instr;
pub mod radar;
pub mod report;
pub mod seed;
pub mod stats;
pub mod trips;
pub mod world;

use anyhow::Context;
use hereabouts::config::Settings;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Options of `hereabouts-loadgen` (the stores come from the usual `HEREABOUTS_*` settings).
#[derive(clap::Parser, Debug, Clone)]
#[command(
    name = "hereabouts-loadgen",
    version,
    about = "Load test of Hereabouts on this machine"
)]
pub struct Args {
    /// Base URL of the server under test; loopback addresses only.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Users in the world (half of them live).
    #[arg(long, default_value_t = 100_000)]
    pub users: usize,
    /// Seed of the world generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// People in the conference hall (default: min(5000, users / 20)).
    #[arg(long)]
    pub hall: Option<usize>,
    /// Empty the database (TRUNCATE users CASCADE) and this Redis prefix before seeding.
    #[arg(long)]
    pub reset: bool,
    /// Do not seed: reuse the world a previous run seeded with the same --users and --seed.
    #[arg(long)]
    pub no_seed: bool,
    /// Skip the phases through the HTTP API.
    #[arg(long)]
    pub skip_http: bool,
    /// Skip the store-level runs (Hereabouts, PostGIS, Redis GEO, and the trips' query).
    #[arg(long)]
    pub skip_store: bool,
    /// Skip the trips workload (its HTTP phases, plan and store-level runs; the trips are
    /// seeded all the same).
    #[arg(long)]
    pub skip_trips: bool,
    /// Seconds of each trip_overlaps phase (typical callers, then the crowded case).
    #[arg(long, default_value_t = 5.0)]
    pub trips_secs: f64,
    /// Concurrent clients of the trip_overlaps phases.
    #[arg(long, default_value_t = 8)]
    pub trips_concurrency: usize,
    /// Trips in the crowded city (default: min(10000, users)).
    #[arg(long)]
    pub crowded_trips: Option<usize>,
    /// Where the JSON report and the SVG chart go.
    #[arg(long, default_value = "bench-results")]
    pub out_dir: PathBuf,
    /// Concurrency levels of the nearby ramp (it stops when throughput rises by less than 5 %).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32,64")]
    pub concurrency: Vec<usize>,
    /// Seconds per concurrency level of the nearby ramp.
    #[arg(long, default_value_t = 5.0)]
    pub step_secs: f64,
    /// Seconds of the check-in, 70 %-of-peak and mixed phases.
    #[arg(long, default_value_t = 10.0)]
    pub phase_secs: f64,
    /// Target rate of the check-in phase (per second).
    #[arg(long, default_value_t = 5_000.0)]
    pub checkin_rate: f64,
    /// Requests in flight at most during the check-in phase.
    #[arg(long, default_value_t = 64)]
    pub checkin_concurrency: usize,
    /// Concurrency levels of the store-level runs (the same for every implementation).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub store_concurrency: Vec<usize>,
    /// Seconds per store-level run.
    #[arg(long, default_value_t = 3.0)]
    pub store_secs: f64,
    /// Store-level implementations to run: hereabouts, postgis, redis-geo.
    #[arg(long, value_delimiter = ',', default_value = "hereabouts,postgis,redis-geo")]
    pub store_impls: Vec<String>,
    /// Store-level workloads to run: typical, super-connector, hall.
    #[arg(long, value_delimiter = ',', default_value = "typical,super-connector,hall")]
    pub store_workloads: Vec<String>,
    /// `plan_cache_mode` of the PostGIS baseline's sessions (auto, force_custom_plan, force_generic_plan).
    #[arg(long, default_value = "auto")]
    pub postgis_plan_cache: String,
    /// Radius of the nearby queries, metres.
    #[arg(long, default_value_t = 5_000.0)]
    pub radius_m: f64,
    /// Limit of the nearby queries.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Lifetime of the seeded check-ins, seconds.
    #[arg(long, default_value_t = 14_400)]
    pub ttl_s: i64,
    /// Requests at most per run (a phase or a concurrency level).
    #[arg(long, default_value_t = 1_000_000)]
    pub max_requests: u64,
    /// Wall-clock budget of the whole command, seconds: phases that would start later are skipped.
    #[arg(long, default_value_t = 1_800)]
    pub time_budget_s: u64,
    /// A `name,lat,lng,weight` CSV to use instead of the built-in 20 cities.
    #[arg(long)]
    pub cities: Option<PathBuf>,
    /// Pid of the server under test (to report its CPU time per request; scripts/bench passes it).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Live radar phase: streams to hold open (0: no radar phase).
    #[arg(long, default_value_t = 0)]
    pub radar_streams: usize,
    /// Check-ins per second offered during the radar phase.
    #[arg(long, default_value_t = 2_000.0)]
    pub radar_checkin_rate: f64,
    /// Seconds of check-ins during the radar phase.
    #[arg(long, default_value_t = 20.0)]
    pub radar_secs: f64,
    /// Print a scaling table from the JSON reports in this directory and exit.
    #[arg(long)]
    pub summarize: Option<PathBuf>,
    /// The server's metrics listener (`HEREABOUTS_METRICS_LISTEN`), for the arrival detection
    /// lag of the check-in phase; loopback only.
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Runs only the fixed scenario of `scripts/instructions` (OPS operations of
    /// --instructions-kind, sequentially, in this process) on the seeded world, then exits.
    #[arg(long, value_name = "OPS")]
    pub instructions: Option<u64>,
    /// What the --instructions scenario does.
    #[arg(long, value_enum, default_value = "nearby")]
    pub instructions_kind: instr::Kind,
}

/// The wall-clock budget.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    start: Instant,
    limit: Duration,
}

impl Budget {
    pub fn new(limit: Duration) -> Self {
        Self {
            start: Instant::now(),
            limit,
        }
    }
    /// True when `need` more still fits.
    pub fn allows(&self, need: Duration) -> bool {
        self.start.elapsed() + need <= self.limit
    }
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// True for loopback IPs and `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if h.eq_ignore_ascii_case("localhost") || h.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    match IpAddr::from_str(h) {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

/// The host of a URL (`scheme://[user@]host[:port]/…`) when it is a loopback one.
pub fn check_loopback_url(what: &str, url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{what}: not a URL"))?;
    match parsed.host_str() {
        Some(h) if is_loopback_host(h) => Ok(()),
        Some(h) => anyhow::bail!("{what}: {h} is not a loopback address; loadgen only targets this machine"),
        None => anyhow::bail!("{what}: the URL names no host"),
    }
}

/// Refuses anything that is not on this machine, and the default Redis prefix.
pub fn check_targets(settings: &Settings, args: &Args) -> anyhow::Result<()> {
    check_loopback_url("--base-url", &args.base_url)?;
    let base = reqwest::Url::parse(&args.base_url)?;
    if base.scheme() != "http" && base.scheme() != "https" {
        anyhow::bail!("--base-url: use http:// or https://");
    }
    let pg = sqlx::postgres::PgConnectOptions::from_str(settings.database_url())
        .context("HEREABOUTS_DATABASE_URL is not a valid PostgreSQL URL")?;
    let host = pg.get_host();
    if !(host.starts_with('/') || is_loopback_host(host)) {
        anyhow::bail!("HEREABOUTS_DATABASE_URL: {host} is not a loopback address or a local socket");
    }
    if let Some(u) = &args.metrics_url {
        check_loopback_url("--metrics-url", u)?;
    }
    for url in &settings.redis_urls {
        check_loopback_url("HEREABOUTS_REDIS_URL", url)?;
    }
    if settings.redis_prefix == "hb" {
        anyhow::bail!(
            "HEREABOUTS_REDIS_PREFIX: loadgen writes a whole world under the prefix; use one of its own (e.g. hbbench), not the default hb"
        );
    }
    if args.users < 100 {
        anyhow::bail!("--users: at least 100");
    }
    if args.concurrency.is_empty() || args.store_concurrency.is_empty() {
        anyhow::bail!("--concurrency and --store-concurrency need at least one level");
    }
    if args
        .concurrency
        .iter()
        .chain(&args.store_concurrency)
        .chain(std::iter::once(&args.trips_concurrency))
        .any(|&c| c == 0 || c > 4_096)
    {
        anyhow::bail!("concurrency levels must be in [1, 4096]");
    }
    if !(50.0..=200_000.0).contains(&args.radius_m) || !(1..=500).contains(&args.limit) {
        anyhow::bail!("--radius-m must be in [50, 200000] and --limit in [1, 500]");
    }
    for i in &args.store_impls {
        if !["hereabouts", "postgis", "redis-geo"].contains(&i.as_str()) {
            anyhow::bail!("--store-impls: {i:?} is not one of hereabouts, postgis, redis-geo");
        }
    }
    for w in &args.store_workloads {
        if !["typical", "super-connector", "hall"].contains(&w.as_str()) {
            anyhow::bail!("--store-workloads: {w:?} is not one of typical, super-connector, hall");
        }
    }
    if !["auto", "force_custom_plan", "force_generic_plan"].contains(&args.postgis_plan_cache.as_str()) {
        anyhow::bail!("--postgis-plan-cache: auto, force_custom_plan or force_generic_plan");
    }
    for (name, v) in [
        ("--step-secs", args.step_secs),
        ("--phase-secs", args.phase_secs),
        ("--store-secs", args.store_secs),
        ("--trips-secs", args.trips_secs),
    ] {
        if !(0.1..=3_600.0).contains(&v) {
            anyhow::bail!("{name} must be in [0.1, 3600]");
        }
    }
    Ok(())
}

/// A progress bar over `len` units, drawn on stderr (hidden when it is not a terminal).
pub fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(len);
    let style =
        indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:32}] {pos:>10}/{len:<10} {per_sec:>12} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}

/// A progress bar over a duration (position in milliseconds).
pub fn timed_bar(d: Duration, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(d.as_millis() as u64);
    let style = indicatif::ProgressStyle::with_template("{prefix:>24} [{bar:32}] {elapsed:>4} {msg}")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb
}

/// Prints a line on stderr above the progress bars.
pub fn say(msg: impl AsRef<str>) {
    eprintln!("[loadgen] {}", msg.as_ref());
}

/// A well-mixed 64-bit hash of a sequence number (picks callers without a shared RNG).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    hereabouts::telemetry::init(settings.log_format == hereabouts::config::LogFormat::Json);
    // the instruction-count scenario runs on one thread, so that no scheduling between worker
    // threads changes the count from run to run
    let runtime = if args.instructions.is_some() {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    };
    let result = runtime
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(settings, args)));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the whole tool.
pub async fn run(settings: Settings, args: Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.summarize {
        return report::summarize(dir);
    }
    check_targets(&settings, &args)?;
    let budget = Budget::new(Duration::from_secs(args.time_budget_s));
    let cities = match &args.cities {
        Some(p) => world::parse_cities(
            &std::fs::read_to_string(p).with_context(|| format!("--cities: cannot read {}", p.display()))?,
        )?,
        None => world::parse_cities(world::CITIES_CSV)?,
    };
    let mut spec = world::WorldSpec::for_users(args.users, args.seed);
    if let Some(h) = args.hall {
        spec.hall = h.min(args.users / 2);
    }
    let t = Instant::now();
    say(format!(
        "generating the world: {} users (seed {})",
        spec.users, spec.seed
    ));
    let world = world::World::generate(&spec, cities)?;
    let generate_s = t.elapsed().as_secs_f64();
    let degrees = world.sorted_degrees();
    say(format!(
        "world ready in {generate_s:.1} s: {} live, {} directed edges, median degree {}, max {}, hall {} in {}",
        world.live_users(),
        world.graph.directed_edges(),
        world::quantile_sorted(&degrees, 0.5),
        degrees.last().copied().unwrap_or(0),
        world.hall_members.len(),
        world.hall_cell
    ));

    let mut trip_spec = trips::TripSpec::for_users(world.ids.len());
    if let Some(c) = args.crowded_trips {
        trip_spec.crowded_trips = c;
    }
    let trip_plan = trips::TripPlan::generate(&world, &trip_spec);
    say(format!(
        "travel plans: {} trips ({} in the crowded city), {} home bases",
        trip_plan.trips.len(),
        trip_plan.trips.len() - trip_plan.typical,
        trip_plan.homes.len()
    ));

    let state = hereabouts::service::Ctx::new(settings.clone())?;
    hereabouts::service::migrate(&state.db).await?;
    if let Err(e) = state.controls.reload(&state.db).await {
        say(format!("policy not loaded ({e}); defaults apply"));
    }
    let mut rep = report::Report::new(&args, &world, generate_s, &degrees);
    rep.machine = report::machine(&settings, &state).await;

    let seeder = seed::Seeder::new(&settings, &world, args.ttl_s)?;
    if args.no_seed {
        seeder.check_seeded().await?;
        say("reusing the seeded world (--no-seed)");
    } else {
        rep.seeding = Some(seeder.seed_all(args.reset, &trip_plan).await?);
    }
    if let Some(ops) = args.instructions {
        return instr::run(&state, &world, args.instructions_kind, ops).await;
    }
    let mut memory = seeder.measure().await?;
    if let Some(s) = &rep.seeding {
        let delta = s
            .redis_used_memory_after_index
            .saturating_sub(s.redis_used_memory_before);
        memory.redis.used_memory_delta_per_live_user = Some(delta as f64 / world.live_users().max(1) as f64);
    }
    rep.memory = Some(memory);

    if args.radar_streams > 0 {
        radar::run(&settings, &args, &world).await?;
    }
    if !args.skip_http {
        rep.http = Some(http::run_phases(&settings, &args, &world, &state, &budget).await?);
    }
    if !args.skip_store {
        rep.store = Some(baseline::run_all(&settings, &args, &world, &state, &seeder, &budget).await?);
    }
    if !args.skip_trips {
        let mut t = trips::describe(&world, &trip_plan);
        if let Some(h) = rep.http.as_mut() {
            trips::run_http(
                &settings,
                &args,
                &world,
                &trip_plan,
                &state,
                &budget,
                &mut t,
                &mut h.phases,
            )
            .await?;
        }
        if !args.skip_store {
            trips::run_store(&args, &world, &trip_plan, &state, &budget, &mut t).await?;
        }
        rep.trips = Some(t);
    }
    rep.finish(budget.elapsed().as_secs_f64());
    report::print(&rep);
    let (json, svg) = report::write(&rep, &args.out_dir)?;
    println!("\nreport: {}\nchart:  {}", json.display(), svg.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_is_accepted() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.3.2.1",
            "http://localhost:1",
            "http://[::1]:80/x",
            "redis://127.0.0.1:6379",
            "http://api.localhost:9",
        ] {
            assert!(check_loopback_url("x", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:8080",
            "http://example.com",
            "http://0.0.0.0:8080",
            "http://[::]:80",
            "http://localhost.example.com",
            "redis://192.168.1.2:6379",
            "not a url",
        ] {
            assert!(check_loopback_url("x", bad).is_err(), "{bad}");
        }
        assert!(is_loopback_host("[::ffff:127.0.0.1]"));
    }

    #[test]
    fn mixing_spreads_sequence_numbers() {
        let buckets = (0..10_000u64).fold([0u32; 10], |mut b, i| {
            b[(mix(i) % 10) as usize] += 1;
            b
        });
        assert!(buckets.iter().all(|&c| (900..1_100).contains(&c)), "{buckets:?}");
    }
}
