//! CPU time spent per operation by each process involved: this tool, the server under test
//! (when its pid is given), Redis (`INFO cpu`), and the PostgreSQL backends serving given
//! application names (`/proc/<pid>/stat`, local servers only). Unlike throughput, CPU per
//! operation hardly moves when other work shares the machine, so it is the robust comparison.

use hereabouts::store::redis::Redis;
use serde::Serialize;
use sqlx::PgPool;
use std::collections::BTreeMap;

/// Linux reports utime/stime in USER_HZ, which is 100 on every architecture's userland ABI.
const USER_HZ: f64 = 100.0;

/// user + system CPU seconds of a process, from `/proc/<pid>/stat`.
pub fn process_cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_s(&stat)
}

/// Fields 14 and 15 (utime, stime) of a stat line; the command name may hold spaces and parens.
pub fn parse_stat_cpu_s(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, stime 15
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// One reading of every counter.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub loadgen_s: f64,
    pub server_s: Option<f64>,
    pub redis_s: Option<f64>,
    /// Redis's `INFO commandstats`: (calls, microseconds) per command.
    pub redis_commands: BTreeMap<String, (u64, u64)>,
    /// CPU seconds per PostgreSQL backend pid.
    pub postgres: BTreeMap<i32, f64>,
    pub postgres_readable: bool,
}

/// CPU microseconds per operation, by process.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PerOp {
    pub loadgen_us: f64,
    pub server_us: Option<f64>,
    pub redis_us: Option<f64>,
    pub postgres_us: Option<f64>,
    /// Sum of the measured ones.
    pub total_us: f64,
    /// Where Redis's time went, by command, most first (a profile of the phase; commands a
    /// script runs count both in the script's time and in their own, and every client of the
    /// Redis server counts).
    pub redis_commands: Vec<CommandCost>,
}

/// One Redis command's share of a phase, per operation of the phase.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommandCost {
    pub command: String,
    pub calls: f64,
    pub us: f64,
}

/// Commands listed in [`PerOp::redis_commands`] at most.
const TOP_COMMANDS: usize = 8;

/// `cmdstat_<name>:calls=<n>,usec=<n>,…` lines of `INFO commandstats`.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, (u64, u64)> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |k: &str| -> Option<u64> {
                rest.split(',')
                    .find_map(|f| f.strip_prefix(k))
                    .and_then(|v| v.parse().ok())
            };
            Some((name.to_string(), (field("calls=")?, field("usec=")?)))
        })
        .collect()
}

/// What to read.
#[derive(Clone)]
pub struct Meter {
    pub server_pid: Option<u32>,
    pub redis: Option<Redis>,
    pub pg: Option<(PgPool, Vec<String>)>,
}

async fn redis_cpu_s(redis: &Redis) -> Option<f64> {
    let info: String = redis.run(redis::cmd("INFO").arg("cpu")).await.ok()?;
    let get = |k: &str| -> Option<f64> {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse().ok())
    };
    Some(get("used_cpu_sys:")? + get("used_cpu_user:")?)
}

async fn redis_commandstats(redis: &Redis) -> BTreeMap<String, (u64, u64)> {
    let info: Option<String> = redis.run(redis::cmd("INFO").arg("commandstats")).await.ok();
    info.map(|i| parse_commandstats(&i)).unwrap_or_default()
}

impl Meter {
    pub async fn sample(&self) -> Sample {
        let mut s = Sample {
            loadgen_s: process_cpu_s("self").unwrap_or(0.0),
            server_s: self.server_pid.and_then(|p| process_cpu_s(&p.to_string())),
            ..Default::default()
        };
        if let Some(r) = &self.redis {
            s.redis_s = redis_cpu_s(r).await;
            s.redis_commands = redis_commandstats(r).await;
        }
        if let Some((pool, apps)) = &self.pg {
            let pids: Vec<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = ANY($1)",
            )
            .bind(apps)
            .fetch_all(pool)
            .await
            .unwrap_or_default();
            for pid in pids {
                if let Some(c) = process_cpu_s(&pid.to_string()) {
                    s.postgres.insert(pid, c);
                    s.postgres_readable = true;
                }
            }
        }
        s
    }
}

/// CPU per operation between two samples (backends that appeared in between count from zero).
pub fn per_op(a: &Sample, b: &Sample, ops: u64) -> PerOp {
    let ops = ops.max(1) as f64;
    let us = |x: f64| (x * 1e6 / ops).max(0.0);
    let loadgen_us = us(b.loadgen_s - a.loadgen_s);
    let server_us = a.server_s.zip(b.server_s).map(|(x, y)| us(y - x));
    let redis_us = a.redis_s.zip(b.redis_s).map(|(x, y)| us(y - x));
    let postgres_us = b.postgres_readable.then(|| {
        us(b.postgres
            .iter()
            .map(|(pid, end)| end - a.postgres.get(pid).copied().unwrap_or(0.0))
            .filter(|d| *d > 0.0)
            .sum())
    });
    let total_us = loadgen_us + server_us.unwrap_or(0.0) + redis_us.unwrap_or(0.0) + postgres_us.unwrap_or(0.0);
    let mut redis_commands: Vec<CommandCost> = b
        .redis_commands
        .iter()
        .map(|(name, (calls, usec))| {
            let (c0, u0) = a.redis_commands.get(name).copied().unwrap_or((0, 0));
            CommandCost {
                command: name.clone(),
                calls: calls.saturating_sub(c0) as f64 / ops,
                us: usec.saturating_sub(u0) as f64 / ops,
            }
        })
        .filter(|c| c.calls > 0.0)
        .collect();
    redis_commands.sort_by(|x, y| y.us.total_cmp(&x.us));
    redis_commands.truncate(TOP_COMMANDS);
    PerOp {
        loadgen_us,
        server_us,
        redis_us,
        postgres_us,
        total_us,
        redis_commands,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat_cpu_s(line), Some(3.0));
        assert!(parse_stat_cpu_s("garbage").is_none());
        assert!(process_cpu_s("self").is_some());
    }

    #[test]
    fn per_op_subtracts_and_divides() {
        let a = Sample {
            loadgen_s: 1.0,
            redis_s: Some(2.0),
            postgres: [(1, 1.0)].into_iter().collect(),
            postgres_readable: true,
            ..Default::default()
        };
        let b = Sample {
            loadgen_s: 1.5,
            redis_s: Some(2.25),
            postgres: [(1, 1.5), (2, 0.25)].into_iter().collect(),
            postgres_readable: true,
            ..Default::default()
        };
        let p = per_op(&a, &b, 1_000);
        assert_eq!(p.loadgen_us, 500.0);
        assert_eq!(p.redis_us, Some(250.0));
        assert_eq!(p.postgres_us, Some(750.0));
        assert_eq!(p.server_us, None);
        assert_eq!(p.total_us, 1_500.0);
    }

    #[test]
    fn command_costs_are_deltas_per_op_most_first() {
        let info = "# Commandstats\r\ncmdstat_get:calls=10,usec=20,usec_per_call=2.00,rejected_calls=0\r\ncmdstat_evalsha:calls=1,usec=300,usec_per_call=300.00\r\n";
        let a = Sample {
            redis_commands: parse_commandstats(info),
            ..Default::default()
        };
        assert_eq!(a.redis_commands.get("get"), Some(&(10, 20)));
        let later = "cmdstat_get:calls=30,usec=60\ncmdstat_evalsha:calls=11,usec=4300\ncmdstat_set:calls=2,usec=8\n";
        let b = Sample {
            redis_commands: parse_commandstats(later),
            ..Default::default()
        };
        let p = per_op(&a, &b, 10);
        let names: Vec<&str> = p.redis_commands.iter().map(|c| c.command.as_str()).collect();
        assert_eq!(names, ["evalsha", "get", "set"]);
        assert_eq!(
            p.redis_commands[0],
            CommandCost {
                command: "evalsha".into(),
                calls: 1.0,
                us: 400.0
            }
        );
        assert_eq!(p.redis_commands[1].calls, 2.0);
    }
}
