//! A private Redis Cluster of 3 masters and 3 replicas on free loopback ports (no persistence),
//! made with `redis-cli --cluster create` as `scripts/services.sh` makes the shared one, and
//! the commands a scenario needs to kill a master under load: find a master and its replica,
//! stop (SIGSTOP) and resume (SIGCONT) a node, SIGKILL one. Every node is stopped by its PID on
//! drop.

use crate::infra::{Bins, Scratch, free_port, redis_pong};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster's failure detection (`cluster-node-timeout`): a dead master is replaced about
/// this long plus an election (~1 s) after it died.
pub const NODE_TIMEOUT_MS: u64 = 1_000;

pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGKILL works on a stopped node too
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free port whose cluster bus port (+10000) is free too, clear of the ports already taken.
fn free_node_port(taken: &[u16]) -> u16 {
    for _ in 0..1_000 {
        let p = free_port();
        let clash = |q: u16| taken.iter().any(|t| *t == q || t + 10_000 == q || q + 10_000 == *t);
        if p < 55_000 && !clash(p) && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
    panic!("no free pair of loopback ports for a cluster node")
}

pub struct Cluster {
    pub nodes: Vec<Node>,
}

fn redis_cli() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("redis-cli"))
            .find(|p| p.is_file())
    })
}

/// `redis-cli -p port args…`, its output (empty on failure).
pub fn cli(port: u16, args: &[&str]) -> String {
    let Some(bin) = redis_cli() else {
        return String::new();
    };
    Command::new(bin)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// One line of `CLUSTER NODES`.
#[derive(Debug, Clone)]
pub struct NodeLine {
    pub id: String,
    pub port: u16,
    pub master: bool,
    pub failed: bool,
    /// For a replica: the id of its master.
    pub of: String,
    /// Slot ranges (masters).
    pub slots: Vec<(u16, u16)>,
}

impl NodeLine {
    pub fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

pub fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let port = f[1].split('@').next()?.rsplit(':').next()?.parse().ok()?;
            let slots = f[8..]
                .iter()
                .filter(|s| !s.starts_with('['))
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|a| (a, a)),
                })
                .collect();
            Some(NodeLine {
                id: f[0].to_string(),
                port,
                master: f[2].contains("master"),
                failed: f[2].contains("fail"),
                of: f[3].to_string(),
                slots,
            })
        })
        .collect()
}

impl Cluster {
    /// Six nodes, made a cluster of three masters with one replica each; returns once every
    /// node says `cluster_state:ok` and every master has its replica in sync.
    pub async fn start(bins: &Bins, scratch: &Scratch) -> Self {
        assert!(redis_cli().is_some(), "redis-cli (package redis-tools) not found");
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..6 {
            let taken: Vec<u16> = nodes.iter().map(|n| n.port).collect();
            let port = free_node_port(&taken);
            let dir = scratch.dir.join(format!("cluster-{i}"));
            std::fs::create_dir_all(&dir).expect("node directory");
            let child = Command::new(&bins.redis_server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", &dir.join("nodes.conf").display().to_string()])
                .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
                // a replica that lagged is promoted all the same: the loss this suite repairs
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--dir", &dir.display().to_string()])
                .args(["--logfile", &dir.join("redis.log").display().to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            std::fs::write(
                scratch.dir.join(format!("redis-cluster-{i}.pid")),
                child.id().to_string(),
            )
            .expect("pid file");
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let start = Instant::now();
        while !nodes.iter().all(|n| redis_pong(n.port)) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "cluster nodes did not answer"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        let out = Command::new(redis_cli().expect("redis-cli"))
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = Self { nodes };
        let start = Instant::now();
        while !c.healthy() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the cluster did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        c
    }

    /// Every live node says ok, 3 masters serve all slots, each with a replica in sync.
    fn healthy(&self) -> bool {
        let ok = self
            .nodes
            .iter()
            .all(|n| cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"));
        let topo = self.topology();
        let masters: Vec<&NodeLine> = topo.iter().filter(|n| n.master && !n.slots.is_empty()).collect();
        let synced = masters.iter().all(|m| {
            let info = cli(m.port, &["info", "replication"]);
            info.contains("connected_slaves:1") && info.contains("state=online")
        });
        ok && masters.len() == 3 && synced
    }

    /// The URL list the server takes (`HEREABOUTS_REDIS_URL`): every node.
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `CLUSTER NODES` as a live node sees it.
    pub fn topology(&self) -> Vec<NodeLine> {
        for n in self.nodes.iter().filter(|n| n.child.is_some()) {
            let text = cli(n.port, &["cluster", "nodes"]);
            if !text.is_empty() {
                return parse_nodes(&text);
            }
        }
        vec![]
    }

    /// The node on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.port == port)
            .expect("a node of this cluster")
    }

    /// Sends a signal (`STOP`, `CONT`) to the node on `port`.
    pub fn signal(&mut self, port: u16, sig: &str) {
        if let Some(pid) = self.node(port).pid() {
            let ok = Command::new("kill")
                .args([&format!("-{sig}"), &pid.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "kill -{sig} {pid}");
        }
    }

    /// SIGKILL: the node and everything only it held are gone.
    pub fn kill(&mut self, port: u16) {
        if let Some(mut c) = self.node(port).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
