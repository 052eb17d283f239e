//! `spawn_app()`: the real server on a free port, a fresh migrated PostgreSQL database named
//! `hbt_<pid>_<uuid>` (dropped when the test ends), and a Redis key prefix of its own.
//!
//! Environment: `HEREABOUTS_TEST_DATABASE_URL` (an existing database to connect to for creating
//! others; default `postgres://postgres@127.0.0.1:5432/postgres`) and `HEREABOUTS_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`; comma-separated for a cluster).

use hereabouts::config::Settings;
use hereabouts::service::Ctx;
use hereabouts::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection, PgPool};
use std::sync::OnceLock;
use uuid::Uuid;

pub fn admin_db_url() -> String {
    std::env::var("HEREABOUTS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("HEREABOUTS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn db_url_for(name: &str) -> String {
    let base = admin_db_url();
    match base.rfind('/') {
        Some(i) if base[..i].contains("://") && base[i..].len() > 1 && !base[..i].ends_with('/') => {
            format!("{}/{name}", &base[..i])
        }
        _ => format!("{base}/{name}"),
    }
}

static SWEEP: OnceLock<()> = OnceLock::new();

/// Drops databases left behind by test processes that no longer run.
async fn sweep_stale_databases() {
    let Ok(mut conn) = PgConnection::connect(&admin_db_url()).await else {
        return;
    };
    let names: Vec<(String,)> = sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE 'hbt\\_%'")
        .fetch_all(&mut conn)
        .await
        .unwrap_or_default();
    for (name,) in names {
        let pid: Option<u32> = name.split('_').nth(1).and_then(|p| p.parse().ok());
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await;
        }
    }
}

/// A running server with its own database and Redis prefix.
pub struct TestApp {
    pub address: String,
    /// The metrics listener (`HEREABOUTS_METRICS_LISTEN`, never the API's).
    pub metrics_address: String,
    pub db_name: String,
    pub db: PgPool,
    pub ctx: Ctx,
    /// The delivery worker tests drive directly (made once: providers cache their tokens).
    pub worker: OnceLock<hereabouts::push::worker::Worker>,
    pub client: reqwest::Client,
    pub prefix: String,
}

/// Settings for a test app: env-style overrides applied over the test defaults.
pub fn test_settings(db_name: &str, prefix: &str, overrides: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("HEREABOUTS_LISTEN".into(), "127.0.0.1:0".into()),
        ("HEREABOUTS_DATABASE_URL".into(), db_url_for(db_name)),
        ("HEREABOUTS_REDIS_URL".into(), redis_url()),
        ("HEREABOUTS_REDIS_PREFIX".into(), prefix.into()),
        (
            "HEREABOUTS_JWT_SECRET".into(),
            "test-secret-test-secret-test-secret-0001".into(),
        ),
        ("HEREABOUTS_WORKERS".into(), "1".into()),
        ("HEREABOUTS_ARGON2_MEMORY_KIB".into(), "64".into()),
        ("HEREABOUTS_ARGON2_ITERATIONS".into(), "1".into()),
        ("HEREABOUTS_STORE_TIMEOUT_MS".into(), "2000".into()),
        ("HEREABOUTS_REFRESH_INTERVAL_MS".into(), "200".into()),
        ("HEREABOUTS_RATE_REGISTER_PER_IP_PER_MIN".into(), "10000".into()),
        ("HEREABOUTS_RATE_LOGIN_PER_IP_PER_MIN".into(), "10000".into()),
        ("HEREABOUTS_SHUTDOWN_GRACE_S".into(), "1".into()),
        ("HEREABOUTS_METRICS_LISTEN".into(), "127.0.0.1:0".into()),
    ];
    for (k, v) in overrides {
        env.retain(|(a, _)| a != k);
        env.push((k.to_string(), v.to_string()));
    }
    Settings::from_sources(&env).expect("test settings are valid")
}

/// Creates a fresh, empty database and returns its name.
pub async fn create_database() -> String {
    if SWEEP.set(()).is_ok() {
        sweep_stale_databases().await;
    }
    let name = format!("hbt_{}_{}", std::process::id(), Uuid::new_v4().simple());
    let mut conn = PgConnection::connect(&admin_db_url())
        .await
        .expect("connect to the admin database");
    conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .expect("create test database");
    name
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with setting overrides (`HEREABOUTS_*` names).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    hereabouts::telemetry::init_with_default(false, "warn,tracing_actix_web=error");
    let db_name = create_database().await;
    let prefix = format!("hbt:{}", Uuid::new_v4().simple());
    let settings = test_settings(&db_name, &prefix, overrides);
    let app = Application::build(settings).await.expect("build app");
    let port = app.port();
    let metrics_port = app.metrics_port().unwrap_or(0);
    let ctx = app.ctx().clone();
    tokio::spawn(app.run_until_stopped());
    let db = PgPool::connect(&db_url_for(&db_name)).await.expect("connect test db");
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        metrics_address: format!("http://127.0.0.1:{metrics_port}"),
        db_name,
        db,
        ctx,
        worker: OnceLock::new(),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        prefix,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let name = self.db_name.clone();
        if name.is_empty() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = PgConnection::connect(&admin_db_url()).await {
                    let _ = conn
                        .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

impl TestApp {
    /// Another instance on the same database and Redis prefix (a second server behind the same
    /// load balancer); it does not drop the database.
    pub async fn second_instance(&self) -> TestApp {
        let settings = test_settings(&self.db_name, &self.prefix, &[("HEREABOUTS_MIGRATE_ON_START", "false")]);
        let app = Application::build(settings).await.expect("second instance");
        let port = app.port();
        let metrics_port = app.metrics_port().unwrap_or(0);
        let ctx = app.ctx().clone();
        tokio::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            metrics_address: format!("http://127.0.0.1:{metrics_port}"),
            db_name: String::new(),
            db: self.db.clone(),
            ctx,
            worker: OnceLock::new(),
            client: self.client.clone(),
            prefix: self.prefix.clone(),
        }
    }
}

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
    /// Asserts a problem+json body with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/problem+json"),
            "body: {}",
            self.text
        );
        let v = self.json();
        assert_eq!(v["code"], code, "body: {}", self.text);
        assert_eq!(v["status"], status);
        v
    }
}

impl TestApp {
    /// The OpenMetrics text of the metrics listener.
    pub async fn metrics(&self) -> String {
        let r = self
            .client
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .expect("metrics listener answers");
        assert_eq!(r.status(), 200);
        r.text().await.expect("metrics text")
    }

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut rb = self.client.request(method, format!("{}{path}", self.address));
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = rb.send().await.expect("request sent");
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }
    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body)).await
    }
    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PATCH, path, token, Some(body)).await
    }
    pub async fn put(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::PUT, path, token, None).await
    }
    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None).await
    }
    /// Sends raw bytes with a content type.
    pub async fn post_raw(&self, path: &str, token: Option<&str>, content_type: &str, body: Vec<u8>) -> Resp {
        let mut rb = self
            .client
            .post(format!("{}{path}", self.address))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        let r = rb.send().await.expect("request sent");
        Resp {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().await.expect("body"),
        }
    }
}

/// A registered user with a live session.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub token: String,
    pub refresh: String,
}

impl TestUser {
    pub fn t(&self) -> Option<&str> {
        Some(&self.token)
    }
    pub fn uuid(&self) -> Uuid {
        self.id.parse().expect("uuid")
    }
}

impl TestApp {
    /// Registers `name@example.com` with a fixed password.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!("{name}@example.com");
        let r = self
            .post(
                "/v1/auth/register",
                None,
                json!({"email": email, "password": "correct horse battery", "display_name": name}),
            )
            .await;
        assert_eq!(r.status, 201, "register {name}: {}", r.text);
        let v = r.json();
        TestUser {
            id: v["user"]["id"].as_str().expect("id").to_string(),
            email,
            token: v["access_token"].as_str().expect("token").to_string(),
            refresh: v["refresh_token"].as_str().expect("refresh").to_string(),
        }
    }

    /// Makes a user admin in the database and returns a fresh token carrying the role.
    pub async fn make_admin(&self, user: &TestUser) -> TestUser {
        sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
            .bind(user.uuid())
            .execute(&self.db)
            .await
            .expect("grant");
        let r = self
            .post(
                "/v1/auth/login",
                None,
                json!({"email": user.email, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        TestUser {
            token: v["access_token"].as_str().expect("token").to_string(),
            refresh: v["refresh_token"].as_str().expect("refresh").to_string(),
            ..user.clone()
        }
    }
}

impl TestApp {
    /// `a` asks `b` for a connection and `b` accepts: they are connected.
    pub async fn connect(&self, a: &TestUser, b: &TestUser) {
        let r = self
            .post("/v1/connections/requests", a.t(), json!({"to_user_id": b.id}))
            .await;
        assert_eq!(r.status, 201, "request {} -> {}: {}", a.email, b.email, r.text);
        let id = r.json()["id"].as_str().expect("request id").to_string();
        let r = self
            .request(
                Method::POST,
                &format!("/v1/connections/requests/{id}/accept"),
                b.t(),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "accept by {}: {}", b.email, r.text);
        self.forget_connection_notes(a, b).await;
    }

    /// Deletes the `connection_request` / `connection_accepted` notifications between `a` and
    /// `b` (and their deliveries): tests that connect users to test something else see only the
    /// notifications they are about. The tests of those kinds connect through the API alone.
    pub async fn forget_connection_notes(&self, a: &TestUser, b: &TestUser) {
        sqlx::query(
            "DELETE FROM notifications WHERE kind IN ('connection_request', 'connection_accepted')
               AND user_id = ANY($1) AND actor_user_id = ANY($1)",
        )
        .bind(vec![a.uuid(), b.uuid()])
        .execute(&self.db)
        .await
        .expect("forget connection notifications");
    }

    /// Deletes every Redis key of this app's prefix (never FLUSHALL: other tests share the server).
    pub async fn flush_redis(&self) {
        let redis = &self.ctx.redis;
        let keys = redis.scan_keys(&format!("{}:*", self.prefix)).await.expect("scan keys");
        let cmds = keys
            .iter()
            .map(|k| {
                let mut c = redis::cmd("DEL");
                c.arg(k);
                c
            })
            .collect();
        redis.run_many(cmds).await.expect("delete keys");
    }
}
