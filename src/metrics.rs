//! Prometheus text metrics, kept in memory by each process: request counts and latency
//! histograms by route and status, counters and histograms that the features add, and gauges
//! read at scrape time (pool sizes, queue depth).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    n: u64,
}

impl Histogram {
    fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, b) in BUCKETS.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.n += 1;
    }
}

/// A metric series: name plus rendered labels (`route="/x",status="200"`).
type Series = (String, String);

/// The registry of one process.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<BTreeMap<Series, f64>>,
    histograms: Mutex<BTreeMap<Series, Histogram>>,
    help: Mutex<BTreeMap<String, (&'static str, &'static str)>>,
}

/// Renders label pairs, escaping values.
pub fn labels(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}=\"{}\"",
                v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl Metrics {
    fn describe(&self, name: &str, kind: &'static str, help: &'static str) {
        if let Ok(mut h) = self.help.lock() {
            h.entry(name.to_string()).or_insert((kind, help));
        }
    }

    /// Adds `v` to a counter.
    pub fn count(&self, name: &str, help: &'static str, label_pairs: &[(&str, &str)], v: f64) {
        self.describe(name, "counter", help);
        if let Ok(mut c) = self.counters.lock() {
            *c.entry((name.to_string(), labels(label_pairs))).or_default() += v;
        }
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &str, help: &'static str, label_pairs: &[(&str, &str)], v: f64) {
        self.describe(name, "histogram", help);
        if let Ok(mut h) = self.histograms.lock() {
            h.entry((name.to_string(), labels(label_pairs))).or_default().observe(v);
        }
    }

    /// The Prometheus text exposition, with `gauges` (name, help, labels, value) appended.
    pub fn render(&self, gauges: &[(&str, &str, String, f64)]) -> String {
        let mut out = String::new();
        let help = self.help.lock().map(|h| h.clone()).unwrap_or_default();
        let mut last = String::new();
        let header = |out: &mut String, last: &mut String, name: &str| {
            if last != name {
                if let Some((kind, text)) = help.get(name) {
                    let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
                }
                *last = name.to_string();
            }
        };
        if let Ok(c) = self.counters.lock() {
            for ((name, l), v) in c.iter() {
                header(&mut out, &mut last, name);
                let _ = writeln!(out, "{name}{{{l}}} {v}");
            }
        }
        if let Ok(h) = self.histograms.lock() {
            for ((name, l), hist) in h.iter() {
                header(&mut out, &mut last, name);
                let sep = if l.is_empty() { "" } else { "," };
                for (i, b) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{name}_bucket{{{l}{sep}le=\"{b}\"}} {}",
                        hist.counts.get(i).copied().unwrap_or(0)
                    );
                }
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"+Inf\"}} {}", hist.n);
                let _ = writeln!(out, "{name}_sum{{{l}}} {}", hist.sum);
                let _ = writeln!(out, "{name}_count{{{l}}} {}", hist.n);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (name, text, l, v) in gauges {
            if seen.insert(*name) {
                let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} gauge");
            }
            let _ = writeln!(out, "{name}{{{l}}} {v}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        m.observe("x_seconds", "x", &[("route", "/a")], 0.003);
        m.observe("x_seconds", "x", &[("route", "/a")], 0.3);
        let text = m.render(&[]);
        assert!(text.contains("x_seconds_bucket{route=\"/a\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("x_seconds_bucket{route=\"/a\",le=\"0.5\"} 2"), "{text}");
        assert!(text.contains("x_seconds_count{route=\"/a\"} 2"), "{text}");
        assert!(text.contains("# TYPE x_seconds histogram"));
    }
}
