//! Metrics of one process, each family declared once and typed (`prometheus-client`, the
//! Prometheus project's own Rust client: atomic counters, no global lock on the request path),
//! rendered as text at `/metrics`. Gauges that describe the stores (pool sizes, queue depth) are
//! set just before rendering by whoever serves the scrape.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const COUNT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1_000.0, 5_000.0,
];

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// Labels of a nearby query: its plan.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub plan: &'static str,
}

/// Labels of a push delivery: the provider's platform.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlatformLabels {
    pub platform: &'static str,
}

/// Labels of a delivery that failed for good, and why.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub platform: &'static str,
    pub reason: &'static str,
}

/// Labels of the database pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn latency() -> Histogram {
    Histogram::new(LATENCY_BUCKETS.iter().copied())
}

fn counts() -> Histogram {
    Histogram::new(COUNT_BUCKETS.iter().copied())
}

macro_rules! metrics {
    ($($(#[$doc:meta])* $field:ident: $ty:ty = $make:expr, $name:literal, $help:literal;)*) => {
        /// Every metric of the process.
        pub struct Metrics {
            registry: Registry,
            $($(#[$doc])* pub $field: $ty,)*
        }

        impl Metrics {
            /// A registry with every family registered once.
            pub fn new() -> Self {
                let mut registry = Registry::default();
                $(
                    let $field: $ty = $make;
                    registry.register($name, $help, $field.clone());
                )*
                Self { registry, $($field,)* }
            }
        }
    };
}

metrics! {
    http_requests: Family<HttpLabels, Counter> = Family::default(),
        "http_requests", "HTTP requests by route, method and status";
    http_duration: Family<HttpLabels, Histogram> = Family::new_with_constructor(latency),
        "http_request_duration_seconds", "HTTP request latency by route, method and status";
    nearby_queries: Family<PlanLabels, Counter> = Family::default(),
        "nearby_queries", "nearby queries by plan";
    nearby_candidates: Family<PlanLabels, Histogram> = Family::new_with_constructor(counts),
        "nearby_candidates", "records examined by the exact filter per nearby query, by plan";
    detect_lag: Histogram = latency(),
        "push_detect_lag_seconds", "from a check-in's commit to its arrival detection's decision";
    detect_batch: Histogram = counts(),
        "push_detect_batch_size", "check-ins decided together by one arrival detection batch";
    detect_errors: Counter = Counter::default(),
        "push_detect_errors", "arrival detections that failed";
    detect_dropped: Counter = Counter::default(),
        "push_detect_dropped", "check-ins not examined for arrivals because the queue was full";
    notifications: Counter = Counter::default(),
        "push_notifications", "notifications decided (connection_nearby)";
    push_sent: Family<PlatformLabels, Counter> = Family::default(),
        "push_sent", "deliveries a provider accepted, by platform";
    push_retried: Family<PlatformLabels, Counter> = Family::default(),
        "push_retried", "deliveries to try again later, by platform";
    push_failed: Family<FailureLabels, Counter> = Family::default(),
        "push_failed", "deliveries that failed for good, by platform and reason";
    radar_published: Counter = Counter::default(),
        "radar_changes_published", "check-ins and changes published to the live radars (Redis pub/sub)";
    radar_reads: Counter = Counter::default(),
        "radar_reads", "full nearby re-reads of live radar streams (their owner changed, a new subscription, the safety pace, an expiry)";
    radar_partial_reads: Counter = Counter::default(),
        "radar_partial_reads", "reads by live radar streams of only the users a message named";
    push_held: Counter = Counter::default(),
        "push_held", "deliveries held until the end of their recipient's quiet hours";
    push_deactivated: Family<PlatformLabels, Counter> = Family::default(),
        "push_devices_deactivated", "devices the provider no longer knows, by platform";
    push_send_duration: Family<PlatformLabels, Histogram> = Family::new_with_constructor(latency),
        "push_send_duration_seconds", "time of one provider call, by platform";
    index_rebuilds: Counter = Counter::default(),
        "index_rebuilds", "live index rebuilds from PostgreSQL";
    index_checked: Counter = Counter::default(),
        "index_reconcile_checked", "live users compared between PostgreSQL and the index";
    index_repaired: Counter = Counter::default(),
        "index_reconcile_repaired", "index entries found missing, stale or orphaned and repaired";
    index_range_losses: Counter = Counter::default(),
        "index_slot_range_losses", "slot ranges found emptied or failed over (lost writes possible)";
    db_pool: Family<PoolLabels, Gauge> = Family::default(),
        "db_pool_connections", "PostgreSQL pool connections";
    request_capacity: Gauge = Gauge::default(),
        "http_requests_in_flight_capacity", "configured cap on concurrent requests";
    push_queue_depth: Gauge = Gauge::default(),
        "push_queue_depth", "deliveries pending or being sent";
    push_oldest_pending: FloatGauge = FloatGauge::default(),
        "push_oldest_pending_age_seconds", "age of the oldest pending delivery";
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Records one HTTP request.
    pub fn http(&self, route: String, method: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            route,
            method: method.to_string(),
            status,
        };
        self.http_duration.get_or_create(&labels).observe(seconds);
        self.http_requests.get_or_create(&labels).inc();
    }

    /// Records one nearby query.
    pub fn nearby(&self, plan: &'static str, candidates: usize) {
        let labels = PlanLabels { plan };
        self.nearby_queries.get_or_create(&labels).inc();
        self.nearby_candidates.get_or_create(&labels).observe(candidates as f64);
    }

    /// The text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    /// Every series and its value, read back from the text exposition (the registry keeps its
    /// families opaque; the exposition is the one view of all their series).
    pub fn samples(&self) -> Vec<Sample> {
        self.render().lines().filter_map(Sample::parse).collect()
    }
}

/// One series of the exposition: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// One exposition line; `None` for comments and anything it cannot read.
    fn parse(line: &str) -> Option<Self> {
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let name_end = line.find(['{', ' '])?;
        let name = line[..name_end].to_string();
        let mut labels = vec![];
        let mut rest = &line[name_end..];
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '}' => break i,
                    ',' | ' ' => {}
                    '=' => {
                        if chars.next()?.1 != '"' {
                            return None;
                        }
                        let mut value = String::new();
                        loop {
                            match chars.next()?.1 {
                                '"' => break,
                                '\\' => match chars.next()?.1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                other => value.push(other),
                            }
                        }
                        labels.push((std::mem::take(&mut key), value));
                    }
                    other => key.push(other),
                }
            };
            rest = &body[end + 1..];
        }
        let value = rest.split_whitespace().next()?.parse().ok()?;
        Some(Self { name, labels, value })
    }

    /// The value of label `key`, if the series has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// The sum of the series named `name` whose labels `keep` accepts.
pub fn sum(samples: &[Sample], name: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counters_are_typed() {
        let m = Metrics::new();
        m.http("/a".into(), "GET", 200, 0.003);
        m.http("/a".into(), "GET", 200, 0.3);
        m.nearby("cell_first", 3);
        let text = m.render();
        let series = "route=\"/a\",method=\"GET\",status=\"200\"";
        assert!(
            text.contains(&format!(
                "http_request_duration_seconds_bucket{{le=\"0.005\",{series}}} 1"
            )) || text.contains(&format!(
                "http_request_duration_seconds_bucket{{{series},le=\"0.005\"}} 1"
            )),
            "{text}"
        );
        assert!(text.contains(&format!("http_requests_total{{{series}}} 2")), "{text}");
        assert!(text.contains("nearby_queries_total{plan=\"cell_first\"} 1"), "{text}");
        assert!(
            text.contains("# TYPE http_request_duration_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn samples_read_back_every_series_with_its_labels() {
        let m = Metrics::new();
        m.http("/v1/checkins".into(), "POST", 201, 0.01);
        m.http("/v1/checkins".into(), "POST", 201, 0.01);
        m.http("/v1/checkins".into(), "POST", 409, 0.01);
        m.nearby("cell_first", 1);
        m.nearby("graph_first", 1);
        m.push_failed
            .get_or_create(&FailureLabels {
                platform: "ios",
                reason: "a \"quoted\" reason",
            })
            .inc();
        let s = m.samples();
        let created = sum(&s, "http_requests_total", |x| {
            x.label("route") == Some("/v1/checkins") && x.label("status") == Some("201")
        });
        assert_eq!(created, 2.0);
        assert_eq!(sum(&s, "nearby_queries_total", |_| true), 2.0);
        assert_eq!(
            sum(&s, "push_failed_total", |x| x.label("reason")
                == Some("a \"quoted\" reason")),
            1.0
        );
        assert_eq!(sum(&s, "push_sent_total", |_| true), 0.0);
        assert_eq!(Sample::parse("# HELP x y"), None);
        assert_eq!(
            Sample::parse("up 1").map(|x| (x.name, x.value)),
            Some(("up".to_string(), 1.0))
        );
    }
}
