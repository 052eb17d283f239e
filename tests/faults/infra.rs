//! What the suite may kill: a private PostgreSQL (initdb into a temporary directory, `pg_ctl` on a
//! free loopback port; through `runuser -u postgres --` when running as root), a private Redis
//! (`redis-server` in the foreground, no persistence), and the real server binary as a child
//! process configured by `HEREABOUTS_*` variables. Never the shared instances on 5432/6379.
//!
//! Everything lives under `$TMPDIR/hb-faults-<pid>-<n>/` and is stopped and removed on drop; a
//! later run sweeps what a killed run left behind (by the pid files in those directories).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Where the PostgreSQL and Redis binaries are.
#[derive(Clone, Debug)]
pub struct Bins {
    pub initdb: PathBuf,
    pub pg_ctl: PathBuf,
    pub redis_server: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn pg_bin(name: &str) -> Option<PathBuf> {
    if let Some(p) = on_path(name) {
        return Some(p);
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let p = e.path().join("bin").join(name);
            p.is_file().then_some((version, p))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

/// The binaries, or why the suite cannot run.
pub fn find_bins() -> Result<Bins, String> {
    let initdb = pg_bin("initdb").ok_or("initdb (package postgresql) not found")?;
    let pg_ctl = pg_bin("pg_ctl").ok_or("pg_ctl (package postgresql) not found")?;
    let redis_server = on_path("redis-server").ok_or("redis-server (package redis-server) not found")?;
    Ok(Bins {
        initdb,
        pg_ctl,
        redis_server,
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn pid_alive_as(pid: u32, name: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(name))
        .unwrap_or(false)
}

/// Stops what runs killed earlier left behind: their PostgreSQL, Redis and server processes.
fn sweep(bins: &Bins) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix("hb-faults-")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let dir = e.path();
        if dir.join("data/postmaster.pid").exists() {
            let _ = pg_command(&bins.pg_ctl)
                .args(["-D", &dir.join("data").display().to_string(), "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // redis*.pid, server*.pid, haproxy*.pid: what each scenario started, by its pid
        let files: Vec<String> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        for file in files.iter().filter(|f| f.ends_with(".pid")) {
            let process = if file.starts_with("redis") {
                "redis-server"
            } else if file.starts_with("server") {
                "hereabouts"
            } else if file.starts_with("haproxy") {
                "haproxy"
            } else {
                continue;
            };
            if let Some(p) = std::fs::read_to_string(dir.join(file))
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                && pid_alive_as(p, process)
            {
                let _ = Command::new("kill").args(["-KILL", &p.to_string()]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn pg_command(bin: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

fn pg_tokio_command(bin: &Path) -> tokio::process::Command {
    if is_root() {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        tokio::process::Command::new(bin)
    }
}

/// A scratch directory for one scenario, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
}

impl Scratch {
    pub fn new(bins: &Bins) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        if N.load(Ordering::SeqCst) == 0 {
            sweep(bins);
        }
        let n = N.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("hb-faults-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Self { dir }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("  (kept {} for inspection)", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A private PostgreSQL cluster on 127.0.0.1:`port`.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    bins: Bins,
}

impl Postgres {
    /// initdb (as `postgres` when root) and start.
    pub async fn start(bins: &Bins, scratch: &Scratch) -> Self {
        let data = scratch.dir.join("data");
        std::fs::create_dir_all(&data).expect("data directory");
        if is_root() {
            if Command::new("id")
                .args(["-u", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                eprintln!("  creating the system user postgres (as scripts/services.sh does)");
                let ok = Command::new("useradd")
                    .args(["--system", "--no-create-home", "postgres"])
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false);
                assert!(ok, "cannot create the postgres user");
            }
            let ok = Command::new("chown")
                .args(["-R", "postgres", &scratch.dir.display().to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chown of the scratch directory to postgres");
        }
        let mut perms = std::fs::metadata(&data).expect("data dir").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(&data, perms).expect("chmod 700");
        let out = pg_command(&bins.initdb)
            .args(["-N", "-D", &data.display().to_string(), "-U", "postgres"])
            .args(["--auth=trust", "-E", "UTF8"])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Self {
            port: free_port(),
            data,
            bins: bins.clone(),
        };
        pg.start_again().await;
        pg
    }

    /// A URL of the `postgres` database (the suite gives the server that database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start -w`.
    pub async fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off",
            self.port,
            self.data.display()
        );
        let out = pg_tokio_command(&self.bins.pg_ctl)
            .args(["-D", &self.data.display().to_string()])
            .args(["-l", &self.data.join("server.log").display().to_string()])
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .await
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl -m fast stop -w`: sessions are terminated, open transactions roll back.
    pub async fn stop_fast(&self) {
        let out = pg_tokio_command(&self.bins.pg_ctl)
            .args(["-D", &self.data.display().to_string(), "-m", "fast", "-w", "stop"])
            .output()
            .await
            .expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bins.pg_ctl)
            .args(["-D", &self.data.display().to_string(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A private Redis on 127.0.0.1:`port`, without persistence (a restart comes back empty).
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    child: Option<std::process::Child>,
}

/// True when something on `port` answers PING with PONG.
pub fn redis_pong(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

impl Redis {
    pub async fn start(bins: &Bins, scratch: &Scratch) -> Self {
        let mut r = Self {
            port: free_port(),
            dir: scratch.dir.clone(),
            bin: bins.redis_server.clone(),
            child: None,
        };
        r.start_again().await;
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again, empty) on the same port; returns when it answers PING.
    pub async fn start_again(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .args(["--pidfile", &self.dir.join("redis.pid").display().to_string()])
            .args(["--logfile", &self.dir.join("redis.log").display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let start = Instant::now();
        while !redis_pong(self.port) {
            assert!(start.elapsed() < Duration::from_secs(10), "Redis did not answer PING");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: everything in memory is gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server binary (`hereabouts serve`) as a child process.
pub struct Server {
    pub base: String,
    /// The metrics listener (`HEREABOUTS_METRICS_LISTEN`).
    pub metrics_base: String,
    child: Option<tokio::process::Child>,
    pid: u32,
    log: PathBuf,
}

pub const JWT_SECRET: &str = "faults-suite-secret-0123456789abcdef";
pub const WEBHOOK_SECRET: &str = "faults-webhook-secret-0123456789";

/// The settings every scenario starts from (then overrides some).
pub fn base_env(pg: &Postgres, redis: &Redis) -> Vec<(String, String)> {
    [
        ("HEREABOUTS_DATABASE_URL", pg.url()),
        ("HEREABOUTS_REDIS_URL", redis.url()),
        ("HEREABOUTS_REDIS_PREFIX", "hbf".into()),
        ("HEREABOUTS_JWT_SECRET", JWT_SECRET.into()),
        ("HEREABOUTS_STORE_TIMEOUT_MS", "500".into()),
        ("HEREABOUTS_REFRESH_INTERVAL_MS", "200".into()),
        ("HEREABOUTS_ARGON2_MEMORY_KIB", "64".into()),
        ("HEREABOUTS_ARGON2_ITERATIONS", "1".into()),
        ("HEREABOUTS_RATE_LOGIN_PER_EMAIL_PER_MIN", "1000000".into()),
        ("HEREABOUTS_RATE_LOGIN_PER_IP_PER_MIN", "1000000".into()),
        ("HEREABOUTS_RATE_REGISTER_PER_IP_PER_MIN", "1000000".into()),
        ("HEREABOUTS_RATE_CHECKINS_PER_USER_PER_MIN", "1000000".into()),
        ("HEREABOUTS_RATE_NEARBY_PER_USER_PER_MIN", "1000000".into()),
        ("HEREABOUTS_WORKERS", "2".into()),
        ("HEREABOUTS_SHUTDOWN_GRACE_S", "10".into()),
        ("HEREABOUTS_LOG_FORMAT", "json".into()),
        ("HEREABOUTS_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ("HEREABOUTS_WEBHOOK_ALLOW_PRIVATE", "true".into()),
        ("HEREABOUTS_PUSH_POLL_INTERVAL_MS", "50".into()),
        ("HEREABOUTS_PUSH_BACKOFF_BASE_MS", "200".into()),
        ("HEREABOUTS_PUSH_BACKOFF_MAX_MS", "1000".into()),
        ("HEREABOUTS_PUSH_MAX_ATTEMPTS", "50".into()),
        ("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "1000".into()),
        ("HEREABOUTS_PUSH_LEASE_S", "30".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Replaces or adds settings.
pub fn with(mut env: Vec<(String, String)>, overrides: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in overrides {
        env.retain(|(a, _)| a != k);
        env.push((k.to_string(), v.to_string()));
    }
    env
}

impl Server {
    /// Starts `hereabouts serve` on a free port with exactly these `HEREABOUTS_*` settings (none
    /// inherited from the test's environment) and waits until `/readyz` answers 200.
    pub async fn start(scratch: &Scratch, env: &[(String, String)]) -> Self {
        let mut s = Self::spawn(scratch, env, "serve");
        s.wait_ready().await;
        s
    }

    /// Starts `hereabouts worker` (the push worker alone) and waits until it says it started.
    pub async fn start_worker(scratch: &Scratch, env: &[(String, String)]) -> Self {
        let mut s = Self::spawn(scratch, env, "worker");
        let start = Instant::now();
        while s.log_count("push worker started") == 0 {
            if let Some(c) = s.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("the worker exited with {status}:\n{}", s.log_tail(30));
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the worker did not start:\n{}",
                s.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s
    }

    fn spawn(scratch: &Scratch, env: &[(String, String)], command: &str) -> Self {
        let port = free_port();
        let metrics_port = free_port();
        let log = scratch.dir.join(format!("server-{port}.log"));
        let file = std::fs::File::create(&log).expect("server log");
        let err = file.try_clone().expect("server log");
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hereabouts"));
        cmd.arg(command);
        for (k, _) in std::env::vars() {
            if k.starts_with("HEREABOUTS_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("RUST_LOG", "warn,hereabouts::jobs=info,hereabouts::push::worker=info")
            .env("HEREABOUTS_LISTEN", format!("127.0.0.1:{port}"))
            .env("HEREABOUTS_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .kill_on_drop(true);
        let child = cmd.spawn().expect("the server binary starts");
        let pid = child.id().expect("server pid");
        let pid_file = if command == "serve" && !scratch.dir.join("server.pid").exists() {
            "server.pid".to_string()
        } else {
            format!("server-{port}.pid")
        };
        std::fs::write(scratch.dir.join(pid_file), pid.to_string()).expect("pid file");
        Self {
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            child: Some(child),
            pid,
            log,
        }
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("the server exited with {status}:\n{}", self.log_tail(30));
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the server did not become ready:\n{}",
                self.log_tail(30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM (graceful stop).
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -TERM {}", self.pid);
    }

    /// Waits for the process to exit; `None` past `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = tokio::time::timeout(limit, child.wait()).await.ok()?.ok();
        if status.is_some() {
            self.child = None;
        }
        status
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Resident memory of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() && std::thread::panicking() {
            eprintln!("--- server log (tail) ---\n{}\n---", self.log_tail(40));
        }
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
    }
}
