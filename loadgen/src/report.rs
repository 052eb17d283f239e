//! The report: every figure in one serialisable structure, printed as tables, written as JSON
//! with the machine's description, and drawn as an SVG chart (throughput vs p99 latency per
//! implementation, log–log, one panel per workload). `--summarize DIR` prints how the figures
//! of several runs (sizes) compare.

use super::Args;
use super::baseline::StoreReport;
use super::http::HttpReport;
use super::seed::{Memory, SeedReport};
use super::trips::TripsReport;
use super::world::{World, quantile_sorted};
use anyhow::Context;
use hereabouts::config::Settings;
use hereabouts::service::Ctx;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The machine the figures come from.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub nproc: usize,
    pub memory_total_kib: u64,
    pub cpu_model: String,
    pub kernel: String,
    pub os: String,
    pub rustc: String,
    pub hereabouts: String,
    pub postgres: String,
    pub postgis_available: Option<String>,
    pub redis: String,
    pub server_workers: usize,
    /// `/proc/loadavg` when the run started and when it ended (other work on the machine skews
    /// every figure).
    pub load_average_start: String,
    pub load_average_end: String,
}

/// The world's shape.
#[derive(Debug, Clone, Serialize, Default)]
pub struct WorldSummary {
    pub users: usize,
    pub live: usize,
    pub connections: u64,
    pub directed_edges: u64,
    pub degree_p10: u32,
    pub degree_median: u32,
    pub degree_p90: u32,
    pub degree_p99: u32,
    pub degree_max: u32,
    pub degree_mean: f64,
    pub hub_degrees: Vec<usize>,
    pub hall: usize,
    pub hall_hubs: usize,
    pub hall_cell: String,
    pub cities: usize,
    pub generate_s: f64,
    pub graph_heap_bytes: usize,
}

/// The run's settings that shape the figures.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RunSettings {
    pub base_url: String,
    pub seed: u64,
    pub radius_m: f64,
    pub limit: usize,
    pub concurrency: Vec<usize>,
    pub store_concurrency: Vec<usize>,
    pub step_secs: f64,
    pub phase_secs: f64,
    pub store_secs: f64,
    pub checkin_rate: f64,
    pub checkin_concurrency: usize,
}

/// A target of the issue, measured.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub name: String,
    pub goal: String,
    pub measured: Option<f64>,
    pub unit: String,
    pub met: Option<bool>,
    pub note: String,
}

/// Everything.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub tool: String,
    pub generated_at: String,
    pub settings: RunSettings,
    pub machine: Machine,
    pub world: WorldSummary,
    pub seeding: Option<SeedReport>,
    pub memory: Option<Memory>,
    pub http: Option<HttpReport>,
    pub store: Option<StoreReport>,
    /// The trips workload (its HTTP phases are in `http.phases`, named `trip_overlaps …`).
    pub trips: Option<TripsReport>,
    pub targets: Vec<Target>,
    pub total_s: f64,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Describes this machine and the stores' versions.
pub async fn machine(settings: &Settings, state: &Ctx) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let postgres: String = sqlx::query_scalar("SELECT version()")
        .fetch_one(&state.db)
        .await
        .unwrap_or_default();
    let postgis: Option<String> =
        sqlx::query_scalar("SELECT default_version FROM pg_available_extensions WHERE name = 'postgis'")
            .fetch_optional(&state.db)
            .await
            .ok()
            .flatten();
    let redis = state
        .redis
        .run::<String>(redis::cmd("INFO").arg("server"))
        .await
        .ok()
        .and_then(|i| {
            i.lines()
                .find_map(|l| l.strip_prefix("redis_version:"))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default();
    Machine {
        nproc: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        memory_total_kib: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_default(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os,
        rustc,
        hereabouts: env!("CARGO_PKG_VERSION").to_string(),
        postgres,
        postgis_available: postgis,
        redis,
        server_workers: settings.workers,
        load_average_start: read("/proc/loadavg").trim().to_string(),
        load_average_end: String::new(),
    }
}

impl Report {
    pub fn new(args: &Args, world: &World, generate_s: f64, degrees: &[u32]) -> Self {
        let now = time::OffsetDateTime::now_utc();
        Report {
            tool: "hereabouts-loadgen".into(),
            generated_at: now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            settings: RunSettings {
                base_url: args.base_url.clone(),
                seed: args.seed,
                radius_m: args.radius_m,
                limit: args.limit,
                concurrency: args.concurrency.clone(),
                store_concurrency: args.store_concurrency.clone(),
                step_secs: args.step_secs,
                phase_secs: args.phase_secs,
                store_secs: args.store_secs,
                checkin_rate: args.checkin_rate,
                checkin_concurrency: args.checkin_concurrency,
            },
            world: WorldSummary {
                users: world.ids.len(),
                live: world.live_users(),
                connections: world.graph.directed_edges() / 2,
                directed_edges: world.graph.directed_edges(),
                degree_p10: quantile_sorted(degrees, 0.1),
                degree_median: quantile_sorted(degrees, 0.5),
                degree_p90: quantile_sorted(degrees, 0.9),
                degree_p99: quantile_sorted(degrees, 0.99),
                degree_max: degrees.last().copied().unwrap_or(0),
                degree_mean: world.graph.directed_edges() as f64 / world.ids.len().max(1) as f64,
                hub_degrees: world.hubs.iter().map(|h| world.graph.degree(*h as usize)).collect(),
                hall: world.hall_members.len(),
                hall_hubs: world
                    .hall_members
                    .iter()
                    .filter(|m| world.people[**m as usize].hub)
                    .count(),
                hall_cell: world.hall_cell.to_string(),
                cities: world.cities.len(),
                generate_s,
                graph_heap_bytes: world.graph.heap_bytes(),
            },
            ..Default::default()
        }
    }

    /// Evaluates the targets.
    pub fn finish(&mut self, total_s: f64) {
        self.total_s = total_s;
        self.machine.load_average_end = read("/proc/loadavg").trim().to_string();
        let mut t = Vec::new();
        let at_most = |name: &str, goal: f64, measured: Option<f64>, unit: &str, note: String| Target {
            name: name.into(),
            goal: format!("<= {goal} {unit}"),
            measured,
            unit: unit.into(),
            met: measured.map(|m| m <= goal),
            note: match measured {
                Some(m) if m > goal => format!(
                    "missed by {:.0} % ({:.2}x the goal). {note}",
                    (m / goal - 1.0) * 100.0,
                    m / goal
                ),
                _ => note,
            },
        };
        let at_least = |name: &str, goal: f64, measured: Option<f64>, unit: &str, note: String| Target {
            name: name.into(),
            goal: format!(">= {goal} {unit}"),
            measured,
            unit: unit.into(),
            met: measured.map(|m| m >= goal),
            note: match measured {
                Some(m) if m < goal => format!(
                    "missed by {:.0} % (reached {:.2} of the goal). {note}",
                    (1.0 - m / goal) * 100.0,
                    m / goal
                ),
                _ => note,
            },
        };
        let http = self.http.as_ref();
        let p70 = http.and_then(|h| h.phases.iter().find(|p| p.name == "nearby @70% peak"));
        t.push(at_most(
            "HTTP nearby p99 at 70 % of peak",
            10.0,
            p70.map(|p| p.run.total.p99_ms),
            "ms",
            format!(
                "peak {:.0}/s at c={}",
                http.map(|h| h.nearby_peak_rps).unwrap_or(0.0),
                http.map(|h| h.nearby_peak_concurrency).unwrap_or(0)
            ),
        ));
        let summary = |w: &str| {
            self.store
                .as_ref()
                .and_then(|s| s.summary.iter().find(|r| r.workload == w && r.baseline == "postgis"))
        };
        for (w, goal) in [("typical", 3.0), ("super-connector", 20.0), ("hall", 20.0)] {
            let s = summary(w);
            t.push(at_least(
                &format!("store-level vs PostGIS, {w} (peak throughput ratio)"),
                goal,
                s.map(|s| s.peak_throughput_ratio),
                "x",
                s.map(|s| {
                    format!(
                        "p50 speed-up at the lowest concurrency {:.1}x; CPU per query (all processes) {:.1}x less",
                        1.0 / s.p50_ratio_lowest_concurrency,
                        s.cpu_ratio_highest_concurrency
                    )
                })
                .unwrap_or_else(|| "PostGIS baseline not run".into()),
            ));
        }
        let checkins = http.and_then(|h| h.phases.iter().find(|p| p.name == "checkins"));
        t.push(at_least(
            "HTTP check-ins",
            5_000.0,
            checkins.map(|p| p.run.total.throughput),
            "/s",
            checkins
                .map(|p| {
                    format!(
                        "offered {:.0}/s, p99 {:.1} ms",
                        p.run.target_rate.unwrap_or(0.0),
                        p.run.total.p99_ms
                    )
                })
                .unwrap_or_default(),
        ));
        let lag = http.and_then(|h| h.detect_lag_mixed.as_ref().or(h.detect_lag.as_ref()));
        t.push(at_most(
            "check-in → arrival decided, p99 (mixed phase)",
            1_000.0,
            lag.map(|l| l.p99_ms_at_most),
            "ms",
            lag.map(|l| {
                format!(
                    "{} decided; p50 ≤ {} ms (histogram bucket bounds)",
                    l.decided, l.p50_ms_at_most
                )
            })
            .unwrap_or_else(|| "not measured (no --metrics-url)".into()),
        ));
        let mem = self.memory.as_ref().map(|m| &m.redis);
        t.push(at_most(
            "Redis bytes per live user per indexed resolution",
            150.0,
            mem.map(|m| m.index_bytes_per_live_user_per_resolution),
            "B",
            mem.map(|m| {
                let per: Vec<String> = m
                    .per_resolution
                    .iter()
                    .map(|r| format!("res {}: {:.0} B", r.resolution, r.bytes_per_live_user))
                    .collect();
                format!(
                    "(cells + record) / 4; {}, record {:.0} B",
                    per.join(", "),
                    m.record_bytes_mean
                )
            })
            .unwrap_or_default(),
        ));
        self.targets = t;
    }
}

/// A plain text table with aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            let pad = w.saturating_sub(c.chars().count());
            if i == 0 {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            } else {
                s.push_str("  ");
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        s.trim_end().to_string()
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * widths.len().saturating_sub(1)));
    out.push('\n');
    for r in rows {
        out.push_str(&line(r.clone()));
        out.push('\n');
    }
    out
}

/// `loadgen/server/redis/pg = total` CPU µs per operation (`-` where not measured).
fn cpu_text(c: &super::cpu::PerOp) -> String {
    let o = |x: Option<f64>| x.map(f0).unwrap_or_else(|| "-".into());
    format!(
        "{}/{}/{}/{} = {}",
        f0(c.loadgen_us),
        o(c.server_us),
        o(c.redis_us),
        o(c.postgres_us),
        f0(c.total_us)
    )
}

fn f0(x: f64) -> String {
    format!("{x:.0}")
}
fn f2(x: f64) -> String {
    format!("{x:.2}")
}

/// Prints every table on stdout.
pub fn print(r: &Report) {
    let w = &r.world;
    println!("\n== hereabouts loadgen: Social Shake-Up, {} users ==", w.users);
    println!(
        "machine: {} cores, {:.1} GiB, {}; PostgreSQL {}; Redis {}; server workers {}; load average at start {}, at end {}",
        r.machine.nproc,
        r.machine.memory_total_kib as f64 / 1_048_576.0,
        r.machine.cpu_model,
        r.machine.postgres.split_whitespace().nth(1).unwrap_or("?"),
        r.machine.redis,
        r.machine.server_workers,
        r.machine.load_average_start,
        r.machine.load_average_end
    );
    println!(
        "world: {} live, {} connections ({} rows), degree p10/p50/p90/p99/max {}/{}/{}/{}/{} (mean {:.0}), super-connectors {:?}, hall {} ({} super-connectors) in {}; generated in {:.1} s",
        w.live,
        w.connections,
        w.directed_edges,
        w.degree_p10,
        w.degree_median,
        w.degree_p90,
        w.degree_p99,
        w.degree_max,
        w.degree_mean,
        w.hub_degrees,
        w.hall,
        w.hall_hubs,
        w.hall_cell,
        w.generate_s
    );
    if let Some(s) = &r.seeding {
        println!("\n-- seeding ({:.1} s) --", s.total_s);
        let rows: Vec<Vec<String>> = s
            .steps
            .iter()
            .map(|st| {
                vec![
                    st.name.clone(),
                    st.rows.to_string(),
                    format!("{:.1}", st.seconds),
                    f0(st.rows_per_s),
                ]
            })
            .collect();
        print!("{}", table(&["step", "rows", "s", "rows/s"], &rows));
    }
    if let Some(m) = &r.memory {
        println!("\n-- memory --");
        let mut rows: Vec<Vec<String>> = m
            .redis
            .per_resolution
            .iter()
            .map(|x| {
                vec![
                    format!("redis cells res {}", x.resolution),
                    x.keys.to_string(),
                    x.members.to_string(),
                    x.bytes.to_string(),
                    f0(x.bytes_per_live_user),
                ]
            })
            .collect();
        rows.push(vec![
            "redis live record (mean)".into(),
            "-".into(),
            m.redis.records_sampled.to_string(),
            "-".into(),
            f0(m.redis.record_bytes_mean),
        ]);
        rows.push(vec![
            "redis index total".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            f0(m.redis.index_bytes_per_live_user),
        ]);
        print!("{}", table(&["what", "keys", "members", "bytes", "B/live user"], &rows));
        println!(
            "redis index per live user per indexed resolution: {:.0} B; INFO used_memory delta per live user: {}; adjacency {:.0} B/member (~{:.0} MB for the live users' sets)",
            m.redis.index_bytes_per_live_user_per_resolution,
            m.redis
                .used_memory_delta_per_live_user
                .map(|x| format!("{x:.0} B"))
                .unwrap_or_else(|| "-".into()),
            m.redis.adjacency_bytes_per_member,
            m.redis.adjacency_bytes_total_estimate / 1e6
        );
        let rows: Vec<Vec<String>> = m
            .postgres
            .iter()
            .map(|t| {
                vec![
                    t.table.clone(),
                    t.rows.to_string(),
                    t.total_bytes.to_string(),
                    f0(t.bytes_per_user),
                ]
            })
            .collect();
        print!("{}", table(&["postgres table", "rows", "bytes", "B/user"], &rows));
        println!("postgres bytes per user: {:.0}", m.postgres_bytes_per_user);
    }
    if let Some(h) = &r.http {
        println!("\n-- HTTP API --");
        let mut rows = Vec::new();
        for p in &h.phases {
            let kinds: Vec<(String, &super::stats::Stats)> = if p.run.by_kind.len() > 1 {
                std::iter::once(("all".to_string(), &p.run.total))
                    .chain(p.run.by_kind.iter().map(|(k, s)| (k.clone(), s)))
                    .collect()
            } else {
                vec![(String::new(), &p.run.total)]
            };
            for (k, s) in kinds {
                rows.push(vec![
                    if k.is_empty() {
                        p.name.clone()
                    } else {
                        format!("{} [{k}]", p.name)
                    },
                    p.run.concurrency.to_string(),
                    p.run.target_rate.map(f0).unwrap_or_else(|| "-".into()),
                    f0(s.throughput),
                    f2(s.p50_ms),
                    f2(s.p95_ms),
                    f2(s.p99_ms),
                    f2(s.max_ms),
                    s.errors_text(),
                    if k.is_empty() || k == "all" {
                        cpu_text(&p.cpu)
                    } else {
                        String::new()
                    },
                ]);
            }
        }
        print!(
            "{}",
            table(
                &[
                    "phase",
                    "conc",
                    "offered/s",
                    "req/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "errors",
                    "CPU µs/req loadgen/server/redis/pg = total"
                ],
                &rows
            )
        );
        for p in h.phases.iter().filter(|p| !p.cpu.redis_commands.is_empty()) {
            let top: Vec<String> = p
                .cpu
                .redis_commands
                .iter()
                .map(|c| format!("{} {}×{}", c.command, f0(c.us), f2(c.calls)))
                .collect();
            println!("redis µs/req by command, {}: {}", p.name, top.join(", "));
        }
        for s in &h.skipped {
            println!("skipped: {s}");
        }
    }
    if let Some(s) = &r.store {
        println!("\n-- store level (radius {} m, limit {}) --", s.radius_m, s.limit);
        let rows: Vec<Vec<String>> = s
            .workloads
            .iter()
            .map(|w| {
                vec![
                    w.name.clone(),
                    w.callers.to_string(),
                    f0(w.mean_degree),
                    format!(
                        "res {}, {} cells, {} live",
                        w.cover_resolution, w.cover_cells, w.cover_population
                    ),
                ]
            })
            .collect();
        print!(
            "{}",
            table(&["workload", "callers", "mean degree", "H3 cover of a caller"], &rows)
        );
        let rows: Vec<Vec<String>> = s
            .runs
            .iter()
            .map(|x| {
                vec![
                    x.workload.clone(),
                    x.implementation.clone(),
                    x.concurrency.to_string(),
                    f0(x.stats.throughput),
                    f2(x.stats.p50_ms),
                    f2(x.stats.p95_ms),
                    f2(x.stats.p99_ms),
                    f2(x.stats.max_ms),
                    format!("{:.1}", x.mean_hits),
                    x.stats.errors_text(),
                    cpu_text(&x.cpu),
                    x.plans
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(k, n)| format!("{k}:{n}"))
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "workload",
                    "impl",
                    "conc",
                    "q/s",
                    "p50 ms",
                    "p95 ms",
                    "p99 ms",
                    "max ms",
                    "hits",
                    "errors",
                    "CPU µs/q client/-/redis/pg = total",
                    "plans"
                ],
                &rows
            )
        );
        let rows: Vec<Vec<String>> = s
            .summary
            .iter()
            .map(|x| {
                let agree = s
                    .agreement
                    .iter()
                    .find(|a| a.workload == x.workload && a.baseline == x.baseline)
                    .map(|a| f2(a.mean_jaccard))
                    .unwrap_or_else(|| "-".into());
                vec![
                    x.workload.clone(),
                    x.baseline.clone(),
                    format!("{:.1}x", x.peak_throughput_ratio),
                    format!("{:.3}", x.p50_ratio_lowest_concurrency),
                    format!("{:.1}x", 1.0 / x.p50_ratio_lowest_concurrency),
                    format!("{:.1}x", x.cpu_ratio_highest_concurrency),
                    agree,
                ]
            })
            .collect();
        println!("Hereabouts ÷ baseline:");
        print!(
            "{}",
            table(
                &[
                    "workload",
                    "baseline",
                    "peak q/s ratio",
                    "p50 ratio (lowest c)",
                    "p50 speed-up",
                    "CPU/query ratio (highest c)",
                    "answers agree (Jaccard)"
                ],
                &rows
            )
        );
        println!("Redis GEO set: {:.0} B per live user", s.geo_set_bytes_per_live_user);
        for k in &s.skipped {
            println!("skipped: {k}");
        }
    }
    if let Some(t) = &r.trips {
        print_trips(t);
    }
    println!("\n-- targets --");
    let rows: Vec<Vec<String>> = r
        .targets
        .iter()
        .map(|t| {
            vec![
                t.name.clone(),
                t.goal.clone(),
                t.measured
                    .map(|m| format!("{m:.1} {}", t.unit))
                    .unwrap_or_else(|| "-".into()),
                match t.met {
                    Some(true) => "met".into(),
                    Some(false) => "MISSED".into(),
                    None => "not measured".into(),
                },
                t.note.clone(),
            ]
        })
        .collect();
    print!("{}", table(&["target", "goal", "measured", "", "note"], &rows));
    println!("total {:.0} s", r.total_s);
}

/// The trips workload: the plan's facts, the answers' sizes, the crowded plan, the store runs.
fn print_trips(t: &TripsReport) {
    println!(
        "\n-- trips (overlaps: tolerance {} d, radius {} km) --\n{} trips ({} visible, {} in the crowded city), {} home bases ({} visible), crowded caller's connections {}",
        t.tolerance_days,
        t.radius_km,
        t.trips,
        t.visible_trips,
        t.crowded_city_trips,
        t.home_bases,
        t.visible_home_bases,
        t.super_connector_degree
    );
    for a in &t.answers {
        println!(
            "{}: {} answers, {:.1} items each (max {}, {} at the cap)",
            a.phase, a.answers, a.mean_items, a.max_items, a.at_cap
        );
    }
    if let Some(ms) = t.crowded_plan_execution_ms {
        println!("crowded caller's candidates query: {ms:.2} ms (EXPLAIN ANALYZE; plan in the JSON report)");
    }
    let rows: Vec<Vec<String>> = t
        .store
        .iter()
        .map(|q| {
            vec![
                q.workload.clone(),
                q.implementation.clone(),
                q.concurrency.to_string(),
                f0(q.stats.throughput),
                f2(q.stats.p50_ms),
                f2(q.stats.p99_ms),
                format!("{:.1}", q.mean_rows),
                f0(q.cpu.total_us),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            table(
                &[
                    "workload",
                    "query",
                    "conc",
                    "q/s",
                    "p50 ms",
                    "p99 ms",
                    "rows",
                    "CPU µs/q (pg + loadgen)"
                ],
                &rows
            )
        );
    }
    if let Some(same) = t.store_same_rows {
        println!("both queries return the same rows: {same}");
    }
    for k in &t.skipped {
        println!("skipped: {k}");
    }
}

// ---------------------------------------------------------------------------------------------
// SVG

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub color: String,
    /// (throughput, p99 ms, label)
    pub points: Vec<(f64, f64, String)>,
}

/// One panel of a chart.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
}

/// Escapes text for XML.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn color(imp: &str) -> &'static str {
    match imp {
        "hereabouts" => "#1b9e77",
        "postgis" => "#d95f02",
        "redis-geo" => "#7570b3",
        _ => "#e7298a",
    }
}

/// The panels of a report: HTTP nearby, then one per store-level workload.
pub fn panels(r: &Report) -> Vec<Panel> {
    let mut out = Vec::new();
    if let Some(h) = &r.http {
        let points: Vec<(f64, f64, String)> = h
            .phases
            .iter()
            .filter(|p| p.name.starts_with("nearby c="))
            .map(|p| {
                (
                    p.run.total.throughput,
                    p.run.total.p99_ms,
                    format!("c={}", p.run.concurrency),
                )
            })
            .collect();
        let paced: Vec<(f64, f64, String)> = h
            .phases
            .iter()
            .filter(|p| p.name == "nearby @70% peak")
            .map(|p| (p.run.total.throughput, p.run.total.p99_ms, "70%".to_string()))
            .collect();
        out.push(Panel {
            title: "HTTP GET /v1/nearby (all callers)".into(),
            series: vec![
                Series {
                    name: "hereabouts HTTP (closed loop)".into(),
                    color: "#e7298a".into(),
                    points,
                },
                Series {
                    name: "paced at 70 % of peak".into(),
                    color: "#666666".into(),
                    points: paced,
                },
            ],
        });
    }
    if let Some(s) = &r.store {
        for w in &s.workloads {
            let mut series = Vec::new();
            for imp in ["hereabouts", "postgis", "redis-geo"] {
                let mut points: Vec<(usize, (f64, f64, String))> = s
                    .runs
                    .iter()
                    .filter(|x| x.workload == w.name && x.implementation == imp)
                    .map(|x| {
                        (
                            x.concurrency,
                            (x.stats.throughput, x.stats.p99_ms, format!("c={}", x.concurrency)),
                        )
                    })
                    .collect();
                points.sort_by_key(|p| p.0);
                if !points.is_empty() {
                    series.push(Series {
                        name: imp.into(),
                        color: color(imp).into(),
                        points: points.into_iter().map(|p| p.1).collect(),
                    });
                }
            }
            out.push(Panel {
                title: format!("store level: {} (mean degree {:.0})", w.name, w.mean_degree),
                series,
            });
        }
    }
    out
}

fn log_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in values.filter(|v| v.is_finite() && *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    let (a, mut b) = (lo.log10().floor(), hi.log10().ceil());
    if b <= a {
        b = a + 1.0;
    }
    (a, b)
}

/// Draws the panels side by side, two per row, log–log axes.
pub fn svg_chart(title: &str, panels: &[Panel]) -> String {
    const PW: f64 = 560.0;
    const PH: f64 = 380.0;
    const ML: f64 = 70.0;
    const MR: f64 = 20.0;
    const MT: f64 = 40.0;
    const MB: f64 = 90.0;
    let cols = 2usize;
    let rows = panels.len().div_ceil(cols).max(1);
    let width = PW * cols as f64 + 20.0;
    let height = PH * rows as f64 + 50.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="24" font-size="15" font-weight="bold">{}</text>"#,
        xml_escape(title)
    );
    for (n, p) in panels.iter().enumerate() {
        let ox = 10.0 + PW * (n % cols) as f64;
        let oy = 40.0 + PH * (n / cols) as f64;
        let (x0, y0) = (ox + ML, oy + MT);
        let (w, h) = (PW - ML - MR, PH - MT - MB);
        let all = p.series.iter().flat_map(|s| s.points.iter());
        let (xa, xb) = log_range(all.clone().map(|p| p.0));
        let (ya, yb) = log_range(all.map(|p| p.1));
        let px = |v: f64| x0 + (v.max(1e-9).log10() - xa) / (xb - xa) * w;
        let py = |v: f64| y0 + h - (v.max(1e-9).log10() - ya) / (yb - ya) * h;
        let _ = writeln!(s, r#"<g>"#);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="13" font-weight="bold">{}</text>"#,
            x0,
            oy + 20.0,
            xml_escape(&p.title)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" fill="none" stroke="#333"/>"##
        );
        // decade grid and ticks
        for e in (xa as i32)..=(xb as i32) {
            let v = 10f64.powi(e);
            let x = px(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                y0 + h,
                y0 + h + 14.0,
                tick(v)
            );
        }
        // light 2x and 5x lines inside each decade
        for e in (xa as i32)..(xb as i32) {
            for m in [2.0, 5.0] {
                let x = px(m * 10f64.powi(e));
                let _ = writeln!(
                    s,
                    r##"<line x1="{x:.1}" y1="{y0:.1}" x2="{x:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
                    y0 + h
                );
            }
        }
        for e in (ya as i32)..(yb as i32) {
            for m in [2.0, 5.0] {
                let y = py(m * 10f64.powi(e));
                let _ = writeln!(
                    s,
                    r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#f0f0f0"/>"##,
                    x0 + w
                );
            }
        }
        for e in (ya as i32)..=(yb as i32) {
            let v = 10f64.powi(e);
            let y = py(v);
            let _ = writeln!(
                s,
                r##"<line x1="{x0:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                x0 + w,
                x0 - 4.0,
                y + 4.0,
                tick(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">throughput (requests/s, log)</text>"#,
            x0 + w / 2.0,
            y0 + h + 30.0
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" transform="rotate(-90 {:.1} {:.1})">p99 latency (ms, log)</text>"#,
            ox + 16.0,
            y0 + h / 2.0,
            ox + 16.0,
            y0 + h / 2.0
        );
        for (k, se) in p.series.iter().enumerate() {
            let pts: Vec<(f64, f64, &str)> = se
                .points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite() && p.0 > 0.0 && p.1 > 0.0)
                .map(|p| (px(p.0), py(p.1), p.2.as_str()))
                .collect();
            let color = xml_escape(&se.color);
            if pts.len() > 1 {
                let path: Vec<String> = pts.iter().map(|(x, y, _)| format!("{x:.1},{y:.1}")).collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                    path.join(" ")
                );
            }
            for (x, y, label) in &pts {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="3.5" fill="{color}"/><text x="{:.1}" y="{:.1}" fill="{color}" font-size="9">{}</text>"#,
                    x + 5.0,
                    y - 5.0,
                    xml_escape(label)
                );
            }
            let ly = y0 + h + 48.0 + 14.0 * (k / 2) as f64;
            let lx = x0 + (k % 2) as f64 * w / 2.0;
            let _ = writeln!(
                s,
                r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="8" fill="{color}"/><text x="{:.1}" y="{ly:.1}">{}</text>"#,
                ly - 8.0,
                lx + 16.0,
                xml_escape(&se.name)
            );
        }
        let _ = writeln!(s, "</g>");
    }
    s.push_str("</svg>\n");
    s
}

fn tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let d = (-v.log10()).ceil() as usize;
        format!("{v:.d$}")
    }
}

/// Writes the JSON report and the SVG chart next to it; returns both paths.
pub fn write(r: &Report, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let stamp = time::OffsetDateTime::now_utc();
    let stem = format!(
        "loadgen-{}u-{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        r.world.users,
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    let json = dir.join(format!("{stem}.json"));
    let svg = dir.join(format!("{stem}.svg"));
    std::fs::write(&json, serde_json::to_string_pretty(r)?).with_context(|| format!("writing {}", json.display()))?;
    let title = format!(
        "Hereabouts loadgen — {} users, {} live, {} cores — throughput vs p99 latency",
        r.world.users, r.world.live, r.machine.nproc
    );
    std::fs::write(&svg, svg_chart(&title, &panels(r))).with_context(|| format!("writing {}", svg.display()))?;
    Ok((json, svg))
}

// ---------------------------------------------------------------------------------------------
// Scaling summary

fn num(v: &Value, ptr: &str) -> f64 {
    v.pointer(ptr).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn find(arr: Option<&Value>, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    arr.and_then(Value::as_array).and_then(|a| a.iter().find(|x| pred(x)))
}

/// The figures of several reports side by side (one row per report, by users), on stdout and
/// in `DIR/summary.md`.
pub fn summarize(dir: &Path) -> anyhow::Result<()> {
    let mut reports: Vec<Value> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if v.get("tool").and_then(Value::as_str) == Some("hereabouts-loadgen") {
            reports.push(v);
        }
    }
    if reports.is_empty() {
        anyhow::bail!("no loadgen reports (*.json) in {}", dir.display());
    }
    reports.sort_by(|a, b| num(a, "/world/users").total_cmp(&num(b, "/world/users")));
    let store_p50 = |v: &Value, w: &str, imp: &str| {
        let runs = v.pointer("/store/runs").and_then(Value::as_array);
        let lowest = runs
            .into_iter()
            .flatten()
            .filter(|r| r["workload"] == w && r["implementation"] == imp)
            .min_by_key(|r| r["concurrency"].as_u64().unwrap_or(u64::MAX));
        lowest.map(|r| num(r, "/stats/p50_ms")).unwrap_or(f64::NAN)
    };
    let ratio = |v: &Value, w: &str, base: &str| {
        find(v.pointer("/store/summary"), |r| {
            r["workload"] == w && r["baseline"] == base
        })
        .map(|r| num(r, "/peak_throughput_ratio"))
        .unwrap_or(f64::NAN)
    };
    let header = [
        "users",
        "live",
        "edges",
        "deg p50",
        "max deg",
        "hall",
        "seed s",
        "http peak/s",
        "p99@70% ms",
        "checkins/s",
        "p50 typ hb/pg/geo ms",
        "p50 super hb/pg/geo ms",
        "p50 hall hb/pg/geo ms",
        "x PG typ/super/hall",
        "redis B/user/res",
        "pg B/user",
        "overlaps/s typ/crowded",
        "overlaps p50 c=1 typ/crowded ms",
    ];
    let mut rows = Vec::new();
    for v in &reports {
        let phase = |name: &str| find(v.pointer("/http/phases"), |p| p["name"] == name);
        // the trips phases at one client (p50) and at the most clients (throughput)
        let overlaps = |w: &str, one: bool| {
            let prefix = format!("trip_overlaps {w} c=");
            let runs = v
                .pointer("/http/phases")
                .and_then(Value::as_array)
                .into_iter()
                .flatten();
            let mut of: Vec<&Value> = runs
                .filter(|p| p["name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
                .collect();
            of.sort_by_key(|p| p["run"]["concurrency"].as_u64().unwrap_or(0));
            let p = if one { of.first() } else { of.last() };
            p.map(|p| {
                if one {
                    f2(num(p, "/run/total/p50_ms"))
                } else {
                    f0(num(p, "/run/total/throughput"))
                }
            })
            .unwrap_or_else(|| "-".into())
        };
        let trio = |w: &str| {
            format!(
                "{:.2}/{:.2}/{:.2}",
                store_p50(v, w, "hereabouts"),
                store_p50(v, w, "postgis"),
                store_p50(v, w, "redis-geo")
            )
        };
        rows.push(vec![
            f0(num(v, "/world/users")),
            f0(num(v, "/world/live")),
            f0(num(v, "/world/connections")),
            f0(num(v, "/world/degree_median")),
            f0(num(v, "/world/degree_max")),
            f0(num(v, "/world/hall")),
            format!("{:.0}", num(v, "/seeding/total_s")),
            f0(num(v, "/http/nearby_peak_rps")),
            phase("nearby @70% peak")
                .map(|p| f2(num(p, "/run/total/p99_ms")))
                .unwrap_or_else(|| "-".into()),
            phase("checkins")
                .map(|p| f0(num(p, "/run/total/throughput")))
                .unwrap_or_else(|| "-".into()),
            trio("typical"),
            trio("super-connector"),
            trio("hall"),
            format!(
                "{:.1}/{:.1}/{:.1}",
                ratio(v, "typical", "postgis"),
                ratio(v, "super-connector", "postgis"),
                ratio(v, "hall", "postgis")
            ),
            f0(num(v, "/memory/redis/index_bytes_per_live_user_per_resolution")),
            f0(num(v, "/memory/postgres_bytes_per_user")),
            format!("{}/{}", overlaps("typical", false), overlaps("crowded", false)),
            format!("{}/{}", overlaps("typical", true), overlaps("crowded", true)),
        ]);
    }
    let text = table(&header, &rows);
    print!("{text}");
    let mut md = String::from("| ");
    md.push_str(&header.join(" | "));
    md.push_str(" |\n|");
    md.push_str(&"---|".repeat(header.len()));
    md.push('\n');
    for r in &rows {
        md.push_str("| ");
        md.push_str(&r.join(" | "));
        md.push_str(" |\n");
    }
    let path = dir.join("summary.md");
    std::fs::write(&path, md).with_context(|| format!("writing {}", path.display()))?;
    println!("\nsummary: {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny XML well-formedness check: balanced tags, quoted attributes, escaped text.
    fn well_formed(xml: &str) -> Result<(), String> {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = xml;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            if text.contains('>') {
                return Err(format!("stray > in text {text:?}"));
            }
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                if !["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("bad entity in {text:?}"));
                }
            }
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            if !tag.matches('"').count().is_multiple_of(2) || tag.contains('<') {
                return Err(format!("bad tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("closing {name} with nothing open"))?;
                if open != name.trim() {
                    return Err(format!("closing {name} but {open} is open"));
                }
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().ok_or("empty tag")?;
                stack.push(name.to_string());
            }
            rest = &rest[gt + 1..];
        }
        if !rest.trim().is_empty() {
            return Err("text after the root".into());
        }
        if stack.is_empty() {
            Ok(())
        } else {
            Err(format!("unclosed {stack:?}"))
        }
    }

    #[test]
    fn the_chart_is_well_formed_svg() {
        let panels = vec![
            Panel {
                title: "store level: hall <5,000 & co>".into(),
                series: vec![
                    Series {
                        name: "hereabouts".into(),
                        color: "#1b9e77".into(),
                        points: vec![(1_200.0, 1.1, "c=1".into()), (3_000.0, 4.0, "c=4".into())],
                    },
                    Series {
                        name: "postgis \"best\"".into(),
                        color: "#d95f02".into(),
                        points: vec![(40.0, 60.0, "c=1".into()), (f64::NAN, 3.0, "bad".into())],
                    },
                ],
            },
            Panel {
                title: "empty".into(),
                series: vec![],
            },
            Panel {
                title: "one point".into(),
                series: vec![Series {
                    name: "x".into(),
                    color: "red".into(),
                    points: vec![(0.5, 0.02, "c=1".into())],
                }],
            },
        ];
        let svg = svg_chart("title & <more>", &panels);
        well_formed(&svg).expect("well-formed");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert!(svg.contains("&lt;5,000 &amp; co&gt;"));
        assert!(well_formed("<a><b></a></b>").is_err());
        assert!(well_formed("<a>x & y</a>").is_err());
    }

    #[test]
    fn ticks_and_ranges() {
        assert_eq!(tick(1_000.0), "1000");
        assert_eq!(tick(0.1), "0.1");
        assert_eq!(tick(0.01), "0.01");
        assert_eq!(log_range([3.0, 250.0].into_iter()), (0.0, 3.0));
        assert_eq!(log_range([10.0].into_iter()), (1.0, 2.0));
        assert_eq!(log_range(std::iter::empty()), (0.0, 1.0));
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["a", "bb"],
            &[vec!["xyz".into(), "1".into()], vec!["q".into(), "100".into()]],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "a     bb");
        assert_eq!(lines[2], "xyz    1");
        assert_eq!(lines[3], "q    100");
    }

    #[test]
    fn targets_say_by_how_much() {
        let mut r = Report {
            memory: Some(Memory {
                redis: crate::seed::RedisMemory {
                    index_bytes_per_live_user_per_resolution: 187.5,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        r.finish(1.0);
        let mem = r.targets.iter().find(|t| t.name.starts_with("Redis")).expect("target");
        assert_eq!(mem.met, Some(false));
        assert!(mem.note.starts_with("missed by 25 %"), "{}", mem.note);
        let http = r
            .targets
            .iter()
            .find(|t| t.name.starts_with("HTTP nearby"))
            .expect("target");
        assert_eq!(http.met, None);
    }
}
