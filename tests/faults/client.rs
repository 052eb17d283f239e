//! The clients' side: API calls that never panic on a failure (a fault suite expects failures),
//! records of what every request got, and the counts each scenario prints.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// What one request got: an HTTP answer or a transport error.
#[derive(Debug, Clone)]
pub struct Answer {
    pub what: &'static str,
    pub start: Instant,
    pub end: Instant,
    /// `None`: the request failed without an HTTP answer (connection refused, reset, timeout).
    pub status: Option<u16>,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Value,
    pub error: String,
}

impl Answer {
    pub fn elapsed(&self) -> Duration {
        self.end - self.start
    }
    pub fn is(&self, status: u16) -> bool {
        self.status == Some(status)
    }
    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_string()
    }
    /// A 503 as the contract says: problem+json, code `unavailable`, `Retry-After`.
    pub fn is_proper_503(&self) -> bool {
        self.is(503)
            && self.content_type == "application/problem+json"
            && self.retry_after.is_some()
            && self.body["code"] == "unavailable"
    }
}

/// An HTTP client on the server under test.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    /// Where `/metrics` is scraped (the server's metrics listener).
    pub metrics_base: Option<String>,
    pub http: reqwest::Client,
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: Uuid,
    pub token: String,
    pub name: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self::with_client(
            base,
            reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
        )
    }

    pub fn with_client(base: &str, http: reqwest::Client) -> Self {
        Self {
            base: base.to_string(),
            metrics_base: None,
            http,
        }
    }

    /// The same client scraping metrics from `metrics_base`.
    pub fn with_metrics(mut self, metrics_base: &str) -> Self {
        self.metrics_base = Some(metrics_base.to_string());
        self
    }

    /// One request; never panics.
    pub async fn call(
        &self,
        what: &'static str,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let start = Instant::now();
        let mut rb = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let mut a = Answer {
            what,
            start,
            end: start,
            status: None,
            content_type: String::new(),
            retry_after: None,
            body: Value::Null,
            error: String::new(),
        };
        match rb.send().await {
            Ok(r) => {
                a.status = Some(r.status().as_u16());
                let h = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                a.content_type = h("content-type").unwrap_or_default();
                a.retry_after = h("retry-after");
                match r.text().await {
                    Ok(t) => a.body = serde_json::from_str(&t).unwrap_or(Value::String(t)),
                    Err(e) => {
                        a.status = None;
                        a.error = format!("reading the body: {e}");
                    }
                }
            }
            Err(e) => a.error = format!("{e:?}"),
        }
        a.end = Instant::now();
        a
    }

    pub async fn get(&self, what: &'static str, path: &str, token: Option<&str>) -> Answer {
        self.call(what, reqwest::Method::GET, path, token, None).await
    }

    pub async fn post(&self, what: &'static str, path: &str, token: Option<&str>, body: Value) -> Answer {
        self.call(what, reqwest::Method::POST, path, token, Some(body)).await
    }

    /// Registers `name` and returns the user (setup: panics on failure).
    pub async fn register(&self, name: &str) -> User {
        let a = self
            .post("register",
                "/v1/auth/register",
                None,
                json!({"email": format!("{name}@faults.test"), "password": "correct horse battery", "display_name": name}),
            )
            .await;
        assert!(a.is(201), "register {name}: {a:?}");
        User {
            id: a.body["user"]["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("user id"),
            token: a.body["access_token"].as_str().expect("token").to_string(),
            name: name.to_string(),
        }
    }

    /// Turns sharing on (setup).
    pub async fn share(&self, u: &User) {
        let a = self
            .call(
                "privacy",
                reqwest::Method::PATCH,
                "/v1/me/privacy",
                Some(&u.token),
                Some(json!({"sharing": true})),
            )
            .await;
        assert!(a.is(200), "share {}: {a:?}", u.name);
    }

    /// A check-in (load: the answer is returned whatever it is).
    pub async fn checkin(&self, u: &User, p: (f64, f64), client_id: Option<&str>) -> Answer {
        let mut body = json!({"lat": p.0, "lng": p.1});
        if let Some(c) = client_id {
            body["client_id"] = json!(c);
        }
        self.post("checkin", "/v1/checkins", Some(&u.token), body).await
    }

    /// A check-in that must succeed (setup).
    pub async fn checkin_ok(&self, u: &User, p: (f64, f64)) -> Value {
        let a = self.checkin(u, p, None).await;
        assert!(a.is(201), "check-in of {}: {a:?}", u.name);
        a.body
    }

    pub async fn nearby(&self, u: &User, radius_m: u32) -> Answer {
        self.get(
            "nearby",
            &format!("/v1/nearby?radius_m={radius_m}&limit=500"),
            Some(&u.token),
        )
        .await
    }

    /// `a` asks `b`, `b` accepts (setup).
    pub async fn connect(&self, a: &User, b: &User) {
        let r = self
            .post(
                "request",
                "/v1/connections/requests",
                Some(&a.token),
                json!({"to_user_id": b.id}),
            )
            .await;
        assert!(r.is(201), "request {} -> {}: {r:?}", a.name, b.name);
        let id = r.str("id");
        let r = self
            .post(
                "accept",
                &format!("/v1/connections/requests/{id}/accept"),
                Some(&b.token),
                json!({}),
            )
            .await;
        assert!(r.is(200), "accept by {}: {r:?}", b.name);
    }

    /// Registers a webhook device (setup).
    pub async fn add_webhook(&self, u: &User, url: &str) {
        let a = self
            .post(
                "device",
                "/v1/devices",
                Some(&u.token),
                json!({"platform": "webhook", "token": url}),
            )
            .await;
        assert!(a.is(201), "device of {}: {a:?}", u.name);
    }

    /// The sum over its label sets of one metric in `/metrics` (0 when absent, `None` when the
    /// scrape failed).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let base = self.metrics_base.as_deref().unwrap_or(&self.base);
        let r = self.http.get(format!("{base}/metrics")).send().await.ok()?;
        if r.status() != 200 {
            return None;
        }
        let text = r.text().await.ok()?;
        // a series with labels (`name{…} v`) or without (`name v`)
        let (labelled, bare) = (format!("{name}{{"), format!("{name} "));
        Some(
            text.lines()
                .filter(|l| l.starts_with(&labelled) || l.starts_with(&bare))
                .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
                .sum(),
        )
    }
}

/// Every answer of a scenario, shared by its load tasks.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Answer>>>);

impl Log {
    pub fn push(&self, a: Answer) {
        self.0.lock().expect("log").push(a);
    }
    pub fn all(&self) -> Vec<Answer> {
        self.0.lock().expect("log").clone()
    }
}

/// Counts by status, for the printed report.
pub struct Counts {
    pub sent: usize,
    pub by_status: BTreeMap<String, usize>,
    pub max_503: Duration,
}

impl Counts {
    pub fn of<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> Self {
        let mut c = Counts {
            sent: 0,
            by_status: BTreeMap::new(),
            max_503: Duration::ZERO,
        };
        for a in answers {
            c.sent += 1;
            let k = a.status.map_or("transport-error".to_string(), |s| s.to_string());
            *c.by_status.entry(k).or_default() += 1;
            if a.is(503) {
                c.max_503 = c.max_503.max(a.elapsed());
            }
        }
        c
    }
    pub fn n(&self, status: &str) -> usize {
        self.by_status.get(status).copied().unwrap_or(0)
    }
    /// Everything but these statuses.
    pub fn other(&self, expected: &[&str]) -> usize {
        self.by_status
            .iter()
            .filter(|(k, _)| !expected.contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum()
    }
    pub fn line(&self) -> String {
        let parts: Vec<String> = self.by_status.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        format!("sent {} ({})", self.sent, parts.join(", "))
    }
}

/// Prints a report line so that it shows with `--nocapture`.
pub fn say(scenario: &str, line: impl AsRef<str>) {
    println!("[faults] {scenario}: {}", line.as_ref());
}

/// Moves a point `north_m` metres north and `east_m` east (good enough at these distances).
pub fn offset(p: (f64, f64), north_m: f64, east_m: f64) -> (f64, f64) {
    let lat = p.0 + north_m / 111_200.0;
    let lng = p.1 + east_m / (111_200.0 * p.0.to_radians().cos());
    (lat, lng)
}

/// A random point within `r` metres (a square, good enough) of `p`.
pub fn around(p: (f64, f64), r: f64) -> (f64, f64) {
    use rand::Rng;
    let mut rng = rand::rng();
    offset(p, rng.random_range(-r..r), rng.random_range(-r..r))
}

/// Polls `check` every 50 ms until it holds or `limit` passes; how long it took.
pub async fn wait_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> u128 {
    d.as_millis()
}
