//! Settings: defaults < optional TOML file (`HEREABOUTS_CONFIG`) < `HEREABOUTS_*` environment.
//!
//! Each setting is one field of a `Raw*` struct: its key (`jwt_secret` in the file is
//! `HEREABOUTS_JWT_SECRET` in the environment), its type and, for numbers and flags, its default
//! and bounds (`Num<DEFAULT, MIN, MAX>`). Secrets are `SecretString` and never printed. An invalid
//! setting fails at start with one line naming it.
//!
//! Why serde derive and not figment: three string layers merge in a few lines, with no error translation.

use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_aux::serde_introspection::serde_introspect;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// The console's map tiles unless `HEREABOUTS_ADMIN_TILE_URL` says otherwise (OpenStreetMap's standard layer).
pub const DEFAULT_TILE_URL: &str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png";

/// Settings whose empty value is a value (not "unset"): an empty tile URL means no tiles.
const EMPTY_IS_A_VALUE: &[&str] = &["admin_tile_url", "metrics_listen"];

/// Locales with push templates; the first is the fallback of last resort.
pub const LOCALES: &[&str] = &["en", "fr", "de", "es"];

/// A settings error: names the setting and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    #[default]
    Pretty,
}

/// Algorithm of the access-token signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    #[default]
    Hs256,
    Es256,
    EdDsa,
}

/// The whole configuration of one process.
#[derive(Clone)]
pub struct Settings {
    pub listen: String,
    /// Where `/metrics` is served (never on the API listener); `None` serves it nowhere.
    pub metrics_listen: Option<String>,
    pub database_url: SecretString,
    /// One URL, or several (comma-separated) for Redis Cluster.
    pub redis_urls: Vec<String>,
    pub redis_prefix: String,
    /// HS256 secret (also the default signing key).
    pub jwt_secret: SecretString,
    /// Signing algorithm: `HS256` (default), `ES256` or `EdDSA`.
    pub jwt_algorithm: JwtAlgorithm,
    /// PEM private key for ES256/EdDSA signing.
    pub jwt_private_key_pem: Option<SecretString>,
    /// Key id put in the `kid` header of new tokens.
    pub jwt_kid: String,
    /// Extra verification keys, `kid=secret` pairs separated by commas (HS256), for rotation.
    pub jwt_previous_secrets: Vec<(String, SecretString)>,
    /// Extra public verification keys: `kid=path.pem` (ES256/EdDSA), comma-separated.
    pub jwt_public_keys: Vec<(String, String)>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Bound on every PostgreSQL and Redis call; past it the client gets 503.
    pub store_timeout: Duration,
    /// Whole-request deadline (503 past it).
    pub request_timeout: Duration,
    pub log_format: LogFormat,
    /// Apply pending migrations when `serve` starts.
    pub migrate_on_start: bool,
    pub db_max_connections: u32,
    pub max_body_bytes: usize,
    pub max_concurrent_requests: usize,
    pub max_connections: usize,
    pub workers: usize,
    pub shutdown_grace: Duration,
    /// Login attempts per minute for one email from one client.
    pub rate_login_per_email_per_min: u32,
    /// Login attempts per minute for one email from all clients together: far above the
    /// per-client limit, so that nobody locks the owner out from elsewhere.
    pub rate_login_per_email_ceiling_per_min: u32,
    pub rate_login_per_ip_per_min: u32,
    pub rate_register_per_ip_per_min: u32,
    pub rate_checkins_per_user_per_min: u32,
    /// Nearby queries per user a minute (bounds radius probing).
    pub rate_nearby_per_user_per_min: u32,
    /// Live radar streams one user may hold open at once (all instances together).
    pub max_streams_per_user: u32,
    /// Argon2 memory cost in KiB (OWASP: 19456 with t=2, p=1).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// How often the policy, zones and index health are re-read.
    pub refresh_interval: Duration,
    /// The paced reconciliation of the live index against PostgreSQL: one page of
    /// `reconcile_page` live users every `reconcile_interval` (zero: off), across all instances.
    pub reconcile_interval: Duration,
    pub reconcile_page: u32,
    /// Trust `X-Forwarded-For` for client IPs (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Push notifications (see `crate::push`): run the delivery worker inside `serve`.
    pub push: PushSettings,
    /// Map tiles of the operator console (`{z}/{x}/{y}` template); empty: no tiles.
    pub admin_tile_url: String,
    /// Origins (`https://app.example.com`) whose browser pages may call the API; none by default.
    pub cors_allowed_origins: Vec<String>,
}

/// Settings of push notifications: the outbox worker and the providers.
#[derive(Clone)]
pub struct PushSettings {
    /// Run the delivery worker inside `serve` (`hereabouts worker` runs it alone).
    pub worker_enabled: bool,
    /// How often an idle worker looks for due deliveries.
    pub poll_interval: Duration,
    /// Deliveries claimed per round.
    pub batch_size: u32,
    /// Sends in flight per worker.
    pub concurrency: usize,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// How long a claimed delivery belongs to its worker; past it another worker may take it.
    pub lease: Duration,
    /// First retry delay; doubles per attempt (with jitter) up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Bound on every provider call.
    pub request_timeout: Duration,
    /// Locale of the message templates when a device gives none (`en`, `fr`, `de`, `es`).
    pub default_locale: String,
    /// Most registered devices per user.
    pub max_devices_per_user: u32,
    /// Most notifications per user per 24 h (0: no cap).
    pub daily_cap: u32,
    pub apns_base_url: String,
    pub apns_team_id: Option<String>,
    pub apns_key_id: Option<String>,
    /// The `.p8` PEM of the APNs provider key.
    pub apns_key_pem: Option<SecretString>,
    /// The app's bundle id (`apns-topic`).
    pub apns_topic: Option<String>,
    pub fcm_base_url: String,
    /// Default: the service account's `token_uri`.
    pub fcm_token_uri: Option<String>,
    /// Default: the service account's `project_id`.
    pub fcm_project_id: Option<String>,
    /// The service-account JSON key file's contents.
    pub fcm_service_account_json: Option<SecretString>,
    /// HMAC-SHA256 key of webhook signatures; webhooks are not sent without it.
    pub webhook_secret: Option<SecretString>,
    /// Accept webhook URLs and Web Push endpoints on loopback/private addresses (and plain http
    /// to loopback): tests only.
    pub webhook_allow_private: bool,
    /// Log each push (platform, device, title, body) instead of sending it, and count it
    /// delivered: a development provider for every platform.
    pub dev_log: bool,
    /// The VAPID key of Web Push (RFC 8292): a P-256 private key, PEM (PKCS#8 or SEC1) or the
    /// base64url of its 32 bytes; unset: a development key derived from the token settings
    /// (shared by every process of a deployment, rotated with them).
    pub webpush_vapid_key: Option<SecretString>,
    /// The VAPID `sub` claim: a `mailto:` or `https:` contact for push services.
    pub webpush_vapid_subject: String,
}

/// What the commands that only touch PostgreSQL (`migrate`, `admin`) need.
#[derive(Clone, Debug)]
pub struct DatabaseSettings {
    pub database_url: SecretString,
    pub store_timeout: Duration,
    pub db_max_connections: u32,
    pub log_format: LogFormat,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("listen", &self.listen)
            .field("database_url", &"[redacted]")
            .field("redis_urls", &self.redis_urls.len())
            .field("redis_prefix", &self.redis_prefix)
            .field("jwt_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

// The keys. Each `Raw*` struct takes its own keys from the merged layers and ignores the others;
// `layers` rejects file keys that none of them declares. A value type's `FromStr` checks it.

/// Keys of the database: all that `migrate` and `admin` read.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawDb {
    database_url: Option<DbUrl>,
    store_timeout_ms: Num<2_000, 10, 60_000>,
    db_max_connections: Num<20, 1, 1_000>,
    log_format: LogFormat,
}

/// Keys of the server: Redis, tokens, HTTP, limits.
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawServer {
    listen: Option<Listen>,
    metrics_listen: Option<MetricsListen>,
    redis_url: Option<RedisUrls>,
    redis_prefix: Option<RedisPrefix>,
    jwt_secret: Option<Secret<32>>,
    jwt_algorithm: JwtAlgorithm,
    jwt_private_key_file: Option<FileText>,
    jwt_kid: Option<String>,
    jwt_previous_secrets: Pairs,
    jwt_public_keys: Pairs,
    jwt_issuer: Option<String>,
    jwt_audience: Option<String>,
    access_token_ttl_s: Num<900, 30, 86_400>,
    refresh_token_ttl_s: Num<{ 30 * 86_400 }, 60, { 365 * 86_400 }>,
    request_timeout_ms: Num<15_000, 100, 300_000>,
    migrate_on_start: Flag<true>,
    max_body_bytes: Num<{ 64 * 1024 }, 1_024, { 16 * 1024 * 1024 }>,
    max_concurrent_requests: Num<1_024, 1, 1_000_000>,
    max_connections: Num<10_000, 1, 1_000_000>,
    /// Unset: one per core.
    workers: Option<Num<1, 1, 256>>,
    shutdown_grace_s: Num<10, 0, 600>,
    rate_login_per_email_per_min: Num<10, 1, 1_000_000>,
    rate_login_per_email_ceiling_per_min: Num<300, 1, 1_000_000>,
    rate_login_per_ip_per_min: Num<60, 1, 1_000_000>,
    rate_register_per_ip_per_min: Num<30, 1, 1_000_000>,
    rate_checkins_per_user_per_min: Num<30, 1, 1_000_000>,
    rate_nearby_per_user_per_min: Num<120, 1, 1_000_000>,
    max_streams_per_user: Num<3, 1, 100>,
    argon2_memory_kib: Num<19_456, 8, { 1 << 22 }>,
    argon2_iterations: Num<2, 1, 100>,
    refresh_interval_ms: Num<2_000, 50, 600_000>,
    reconcile_interval_ms: Num<1_000, 0, 3_600_000>,
    reconcile_page: Num<500, 1, 10_000>,
    trust_forwarded_for: Flag<false>,
    /// Set but empty: the console draws no tiles (air-gapped sites, tests).
    admin_tile_url: Option<TileUrl>,
    cors_allowed_origins: Origins,
}

/// Keys of push notifications (defaults: Apple's and Google's production endpoints, no credentials).
#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPush {
    push_worker_enabled: Flag<true>,
    push_poll_interval_ms: Num<1_000, 10, 600_000>,
    push_batch_size: Num<32, 1, 1_000>,
    push_concurrency: Num<16, 1, 1_024>,
    push_max_attempts: Num<8, 1, 100>,
    push_lease_s: Num<60, 1, 3_600>,
    push_backoff_base_ms: Num<2_000, 1, 3_600_000>,
    push_backoff_max_ms: Num<600_000, 1, 86_400_000>,
    push_request_timeout_ms: Num<5_000, 100, 60_000>,
    push_default_locale: Option<Locale>,
    push_max_devices_per_user: Num<10, 1, 1_000>,
    push_daily_cap: Num<0, 0, 100_000>,
    apns_base_url: Option<HttpUrl>,
    apns_team_id: Option<String>,
    apns_key_id: Option<String>,
    apns_key_file: Option<FileText>,
    apns_topic: Option<String>,
    fcm_base_url: Option<HttpUrl>,
    fcm_token_uri: Option<HttpUrl>,
    fcm_project_id: Option<String>,
    fcm_service_account_file: Option<FileText>,
    webhook_secret: Option<Secret<16>>,
    webhook_allow_private: Flag<false>,
    push_dev_log: Flag<false>,
    webpush_vapid_private_key_file: Option<FileText>,
    webpush_vapid_subject: Option<VapidSubject>,
}

impl Settings {
    /// Reads the file named by `HEREABOUTS_CONFIG` (if any) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_sources(&std::env::vars().collect::<Vec<_>>())
    }

    /// Builds settings from environment pairs (the file is named by `HEREABOUTS_CONFIG` among them).
    pub fn from_sources(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let layers = layers(env)?;
        let db = extract::<RawDb>(&layers)?.settings()?;
        let push = extract::<RawPush>(&layers)?.settings()?;
        extract::<RawServer>(&layers)?.settings(db, push)
    }

    /// The database URL, for connecting (never log it).
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }

    /// The database part, for code shared with `migrate` and `admin`.
    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings {
            database_url: self.database_url.clone(),
            store_timeout: self.store_timeout,
            db_max_connections: self.db_max_connections,
            log_format: self.log_format,
        }
    }
}

impl DatabaseSettings {
    /// The database URL, for connecting (never log it).
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// The database settings from the file and the process environment (no other setting required).
pub fn load_database() -> Result<DatabaseSettings, ConfigError> {
    database_from_sources(&std::env::vars().collect::<Vec<_>>())
}

/// The database settings from environment pairs, layered as [`Settings::from_sources`].
pub fn database_from_sources(env: &[(String, String)]) -> Result<DatabaseSettings, ConfigError> {
    extract::<RawDb>(&layers(env)?)?.settings()
}

/// The environment name of every setting (`HEREABOUTS_CONFIG`, naming the file, is not one).
pub fn names() -> Vec<String> {
    keys().map(env_name).collect()
}

fn keys() -> impl Iterator<Item = &'static str> {
    [
        serde_introspect::<RawDb>(),
        serde_introspect::<RawServer>(),
        serde_introspect::<RawPush>(),
    ]
    .into_iter()
    .flatten()
    .copied()
}

fn env_name(key: &str) -> String {
    format!("HEREABOUTS_{}", key.to_ascii_uppercase())
}

/// The error of a setting, named as in the environment.
fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: env_name(key),
        message: message.into(),
    }
}

/// Defaults < file < environment, as text: trimmed, and an empty value means unset.
fn layers(env: &[(String, String)]) -> Result<toml::Table, ConfigError> {
    let known: Vec<&str> = keys().collect();
    let mut merged = BTreeMap::new();
    if let Some((_, path)) = env.iter().find(|(k, _)| k == "HEREABOUTS_CONFIG") {
        let config = |message| ConfigError {
            name: "HEREABOUTS_CONFIG".into(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| config(format!("cannot read {path}: {e}")))?;
        let file: toml::Table = toml::from_str(&text).map_err(|e| config(format!("{path} is not valid TOML: {e}")))?;
        for (key, value) in file {
            if !known.contains(&key.as_str()) {
                return Err(ConfigError {
                    message: format!("unknown setting in {path}"),
                    name: key,
                });
            }
            // Values as written (`2000`, `true`) parse like the environment's strings.
            let text = match value {
                toml::Value::String(s) => s,
                other => other.to_string(),
            };
            merged.insert(key, text);
        }
    }
    // Other `HEREABOUTS_*` variables belong to other tools (`HEREABOUTS_CONFIG`, test scripts).
    for (name, value) in env {
        if let Some(key) = name.strip_prefix("HEREABOUTS_").map(str::to_ascii_lowercase)
            && known.contains(&key.as_str())
        {
            merged.insert(key, value.clone());
        }
    }
    Ok(merged
        .into_iter()
        .map(|(k, v)| (k, v.trim().to_string()))
        .filter(|(k, v)| !v.is_empty() || EMPTY_IS_A_VALUE.contains(&k.as_str()))
        .map(|(k, v)| (k, toml::Value::String(v)))
        .collect())
}

/// One `Raw*` struct from the layers; a bad value's error names its key.
fn extract<T: DeserializeOwned>(layers: &toml::Table) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(layers.clone()))
        .map_err(|e| invalid(&e.path().to_string(), e.inner().message()))
}

/// A string setting's value, or its default.
fn or(value: Option<impl Into<String>>, default: &str) -> String {
    value.map_or_else(|| default.to_string(), Into::into)
}

impl RawDb {
    fn settings(self) -> Result<DatabaseSettings, ConfigError> {
        let url = self
            .database_url
            .ok_or_else(|| invalid("database_url", "is required (postgres://user@host:port/db)"))?;
        Ok(DatabaseSettings {
            database_url: String::from(url).into(),
            store_timeout: self.store_timeout_ms.ms(),
            db_max_connections: self.db_max_connections.0 as u32,
            log_format: self.log_format,
        })
    }
}

impl RawServer {
    fn settings(self, db: DatabaseSettings, push: PushSettings) -> Result<Settings, ConfigError> {
        let jwt_secret = self
            .jwt_secret
            .ok_or_else(|| invalid("jwt_secret", "is required (at least 32 characters)"))?;
        if self.jwt_algorithm != JwtAlgorithm::Hs256 && self.jwt_private_key_file.is_none() {
            return Err(invalid("jwt_private_key_file", "is required for ES256/EdDSA"));
        }
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Settings {
            listen: or(self.listen, "127.0.0.1:8080"),
            metrics_listen: Some(or(self.metrics_listen, "127.0.0.1:9464")).filter(|m| !m.is_empty()),
            database_url: db.database_url,
            redis_urls: self
                .redis_url
                .map_or_else(|| vec!["redis://127.0.0.1:6379".into()], |u| u.0),
            redis_prefix: or(self.redis_prefix, "hb"),
            jwt_secret: jwt_secret.0,
            jwt_algorithm: self.jwt_algorithm,
            jwt_private_key_pem: self.jwt_private_key_file.map(|f| f.0),
            jwt_kid: or(self.jwt_kid, "k1"),
            jwt_previous_secrets: (self.jwt_previous_secrets.0.into_iter())
                .map(|(kid, secret)| (kid, secret.into()))
                .collect(),
            jwt_public_keys: self.jwt_public_keys.0,
            jwt_issuer: or(self.jwt_issuer, "hereabouts"),
            jwt_audience: or(self.jwt_audience, "hereabouts-app"),
            access_token_ttl: self.access_token_ttl_s.secs(),
            refresh_token_ttl: self.refresh_token_ttl_s.secs(),
            store_timeout: db.store_timeout,
            request_timeout: self.request_timeout_ms.ms(),
            log_format: db.log_format,
            migrate_on_start: self.migrate_on_start.0,
            db_max_connections: db.db_max_connections,
            max_body_bytes: self.max_body_bytes.0 as usize,
            max_concurrent_requests: self.max_concurrent_requests.0 as usize,
            max_connections: self.max_connections.0 as usize,
            workers: self.workers.map_or(cores, |w| w.0 as usize),
            shutdown_grace: self.shutdown_grace_s.secs(),
            rate_login_per_email_per_min: self.rate_login_per_email_per_min.0 as u32,
            rate_login_per_email_ceiling_per_min: self.rate_login_per_email_ceiling_per_min.0 as u32,
            rate_login_per_ip_per_min: self.rate_login_per_ip_per_min.0 as u32,
            rate_register_per_ip_per_min: self.rate_register_per_ip_per_min.0 as u32,
            rate_checkins_per_user_per_min: self.rate_checkins_per_user_per_min.0 as u32,
            rate_nearby_per_user_per_min: self.rate_nearby_per_user_per_min.0 as u32,
            max_streams_per_user: self.max_streams_per_user.0 as u32,
            argon2_memory_kib: self.argon2_memory_kib.0 as u32,
            argon2_iterations: self.argon2_iterations.0 as u32,
            refresh_interval: self.refresh_interval_ms.ms(),
            reconcile_interval: self.reconcile_interval_ms.ms(),
            reconcile_page: self.reconcile_page.0 as u32,
            trust_forwarded_for: self.trust_forwarded_for.0,
            push,
            admin_tile_url: or(self.admin_tile_url, DEFAULT_TILE_URL),
            cors_allowed_origins: self.cors_allowed_origins.0,
        })
    }
}

impl RawPush {
    fn settings(self) -> Result<PushSettings, ConfigError> {
        if self.push_backoff_max_ms.0 < self.push_backoff_base_ms.0 {
            return Err(invalid(
                "push_backoff_max_ms",
                "must not be below HEREABOUTS_PUSH_BACKOFF_BASE_MS",
            ));
        }
        let base_url = |url: Option<HttpUrl>, default: &str| or(url, default).trim_end_matches('/').to_string();
        Ok(PushSettings {
            worker_enabled: self.push_worker_enabled.0,
            poll_interval: self.push_poll_interval_ms.ms(),
            batch_size: self.push_batch_size.0 as u32,
            concurrency: self.push_concurrency.0 as usize,
            max_attempts: self.push_max_attempts.0 as u32,
            lease: self.push_lease_s.secs(),
            backoff_base: self.push_backoff_base_ms.ms(),
            backoff_max: self.push_backoff_max_ms.ms(),
            request_timeout: self.push_request_timeout_ms.ms(),
            default_locale: or(self.push_default_locale, "en"),
            max_devices_per_user: self.push_max_devices_per_user.0 as u32,
            daily_cap: self.push_daily_cap.0 as u32,
            apns_base_url: base_url(self.apns_base_url, "https://api.push.apple.com"),
            apns_team_id: self.apns_team_id,
            apns_key_id: self.apns_key_id,
            apns_key_pem: self.apns_key_file.map(|f| f.0),
            apns_topic: self.apns_topic,
            fcm_base_url: base_url(self.fcm_base_url, "https://fcm.googleapis.com"),
            fcm_token_uri: self.fcm_token_uri.map(String::from),
            fcm_project_id: self.fcm_project_id,
            fcm_service_account_json: self.fcm_service_account_file.map(|f| f.0),
            webhook_secret: self.webhook_secret.map(|s| s.0),
            webhook_allow_private: self.webhook_allow_private.0,
            dev_log: self.push_dev_log.0,
            webpush_vapid_key: self.webpush_vapid_private_key_file.map(|f| f.0),
            webpush_vapid_subject: or(self.webpush_vapid_subject, "mailto:push@hereabouts.invalid"),
        })
    }
}

// The value types. Every value arrives as text (the environment's, or the file's as written).

/// Deserialises each listed type from a string through its `FromStr`.
macro_rules! deserialize_from_str {
    ($([$($generics:tt)*] $t:ty),* $(,)?) => {$(
        impl<'de, $($generics)*> Deserialize<'de> for $t {
            fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

deserialize_from_str!(
    [const DEFAULT: u64, const MIN: u64, const MAX: u64] Num<DEFAULT, MIN, MAX>,
    [const DEFAULT: bool] Flag<DEFAULT>,
    [const MIN: usize] Secret<MIN>,
    [] FileText, [] RedisUrls, [] Pairs, [] Origins, [] LogFormat, [] JwtAlgorithm,
    [] Listen, [] MetricsListen, [] DbUrl, [] RedisPrefix, [] HttpUrl, [] Locale, [] TileUrl, [] VapidSubject,
);

/// A whole number in `[MIN, MAX]`, `DEFAULT` when unset.
#[derive(Clone, Copy)]
struct Num<const DEFAULT: u64, const MIN: u64, const MAX: u64>(u64);

impl<const DEFAULT: u64, const MIN: u64, const MAX: u64> Num<DEFAULT, MIN, MAX> {
    fn ms(self) -> Duration {
        Duration::from_millis(self.0)
    }
    fn secs(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl<const DEFAULT: u64, const MIN: u64, const MAX: u64> Default for Num<DEFAULT, MIN, MAX> {
    fn default() -> Self {
        const { assert!(MIN <= DEFAULT && DEFAULT <= MAX, "a default outside its bounds") };
        Self(DEFAULT)
    }
}

impl<const DEFAULT: u64, const MIN: u64, const MAX: u64> FromStr for Num<DEFAULT, MIN, MAX> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v: u64 = s.parse().map_err(|_| format!("{s:?} is not a whole number"))?;
        if !(MIN..=MAX).contains(&v) {
            return Err(format!("{v} is outside [{MIN}, {MAX}]"));
        }
        Ok(Self(v))
    }
}

/// A flag, `DEFAULT` when unset.
#[derive(Clone, Copy)]
struct Flag<const DEFAULT: bool>(bool);

impl<const DEFAULT: bool> Default for Flag<DEFAULT> {
    fn default() -> Self {
        Self(DEFAULT)
    }
}

impl<const DEFAULT: bool> FromStr for Flag<DEFAULT> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1" | "true" | "yes" | "on" => Ok(Self(true)),
            "0" | "false" | "no" | "off" => Ok(Self(false)),
            _ => Err(format!("{s:?} is not true/false")),
        }
    }
}

/// A secret of at least `MIN` characters.
struct Secret<const MIN: usize>(SecretString);

impl<const MIN: usize> FromStr for Secret<MIN> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() < MIN {
            return Err(format!("must be at least {MIN} characters"));
        }
        Ok(Self(s.into()))
    }
}

/// The contents of the file that the setting names, read at start.
struct FileText(SecretString);

impl FromStr for FileText {
    type Err = String;
    fn from_str(path: &str) -> Result<Self, String> {
        std::fs::read_to_string(path)
            .map(|text| Self(text.into()))
            .map_err(|e| format!("cannot read {path}: {e}"))
    }
}

/// The trimmed, non-empty items of a comma-separated list.
fn items(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|item| !item.is_empty())
}

/// Comma-separated web origins (`scheme://host[:port]`, as browsers send them in `Origin`).
#[derive(Default)]
struct Origins(Vec<String>);

impl FromStr for Origins {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        items(s)
            .map(|o| {
                let origin = url::Url::parse(o).ok().map(|u| u.origin().ascii_serialization());
                match origin {
                    Some(serialised) if serialised == o && (o.starts_with("https://") || o.starts_with("http://")) => {
                        Ok(o.to_string())
                    }
                    _ => Err(format!(
                        "{o:?} is not an origin (scheme://host[:port], no path, no trailing slash)"
                    )),
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// One Redis URL, or several (comma-separated) for Redis Cluster.
struct RedisUrls(Vec<String>);

impl FromStr for RedisUrls {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let urls: Vec<String> = items(s).map(String::from).collect();
        let redis = |u: &String| u.starts_with("redis://") || u.starts_with("rediss://");
        if urls.is_empty() || !urls.iter().all(redis) {
            return Err("must be redis://host:port (comma-separated for a cluster)".into());
        }
        Ok(Self(urls))
    }
}

/// `kid=value` pairs separated by commas.
#[derive(Default)]
struct Pairs(Vec<(String, String)>);

impl FromStr for Pairs {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let pair = |p: &str| {
            p.split_once('=')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| "expected kid=value pairs separated by commas".to_string())
        };
        items(s).map(pair).collect::<Result<_, _>>().map(Self)
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(format!("{s:?}: use json or pretty")),
        }
    }
}

impl FromStr for JwtAlgorithm {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "HS256" => Ok(Self::Hs256),
            "ES256" => Ok(Self::Es256),
            "EDDSA" => Ok(Self::EdDsa),
            other => Err(format!("{other:?}: use HS256, ES256 or EdDSA")),
        }
    }
}

/// Declares string settings kept as given when `$ok` holds for the value `$s`.
macro_rules! checked_strings {
    ($($(#[$doc:meta])* $t:ident($s:ident): $ok:expr, else $message:expr;)*) => {$(
        $(#[$doc])*
        struct $t(String);
        impl FromStr for $t {
            type Err = String;
            fn from_str($s: &str) -> Result<Self, String> {
                if $ok { Ok(Self($s.to_string())) } else { Err($message.into()) }
            }
        }
        impl From<$t> for String {
            fn from(value: $t) -> String {
                value.0
            }
        }
    )*};
}

checked_strings! {
    /// `listen`: an IP address and a port.
    Listen(s): s.parse::<std::net::SocketAddr>().is_ok(),
        else format!("{s:?} is not host:port (an IP address and a port)");
    /// `metrics_listen`: host:port, or empty for no metrics listener.
    MetricsListen(s): s.is_empty() || s.parse::<std::net::SocketAddr>().is_ok(),
        else format!("{s:?} is not host:port (an IP address and a port), nor empty");
    DbUrl(s): s.starts_with("postgres://") || s.starts_with("postgresql://"),
        else "must start with postgres:// or postgresql://";
    /// Part of every Redis key: cluster hash tags (braces) are the code's to place.
    RedisPrefix(s): s.len() <= 64 && !s.contains(['{', '}', ' ']),
        else "at most 64 characters, no braces or spaces";
    HttpUrl(s): s.starts_with("https://") || s.starts_with("http://"),
        else "must be an http:// or https:// URL";
    Locale(s): LOCALES.contains(&s), else format!("use one of {}", LOCALES.join(", "));
    /// The VAPID contact (RFC 8292 `sub`).
    VapidSubject(s): (s.starts_with("mailto:") || s.starts_with("https://")) && s.len() > 8 && !s.contains(char::is_whitespace),
        else "must be a mailto: or https: URI";
    /// A tile URL template, or empty for none (its origin goes into the console's CSP).
    TileUrl(s): s.is_empty() || tile_origin(s).is_some(),
        else "must be empty or an http(s) URL template with {z}, {x} and {y} (a {s} subdomain allowed), e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png";
}

/// The origin a tile URL template loads from, as a Content-Security-Policy source: `{s}.host`
/// becomes `*.host`. `None` when the template is not an http(s) URL with `{z}`, `{x}` and `{y}`
/// or its host holds anything but letters, digits, dots, hyphens and a port.
pub fn tile_origin(template: &str) -> Option<String> {
    let (scheme, rest) = template.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let (authority, path) = rest.split_once('/')?;
    let host = authority
        .strip_prefix("{s}.")
        .map_or(authority.to_string(), |h| format!("*.{h}"));
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    let host_ok = !bare.is_empty()
        && bare
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    let path_ok = ["{z}", "{x}", "{y}"].iter().all(|p| path.contains(p))
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    (host_ok && path_ok).then(|| format!("{scheme}://{host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }
    const BASE: &[(&str, &str)] = &[
        ("HEREABOUTS_DATABASE_URL", "postgres://x@127.0.0.1/db"),
        ("HEREABOUTS_JWT_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn defaults_apply() {
        let s = Settings::from_sources(&env(BASE)).expect("valid");
        assert_eq!(s.listen, "127.0.0.1:8080");
        assert_eq!(s.redis_prefix, "hb");
        assert_eq!(s.store_timeout, Duration::from_secs(2));
        assert_eq!(s.redis_urls, vec!["redis://127.0.0.1:6379".to_string()]);
    }

    #[test]
    fn missing_secret_names_the_setting_and_hides_values() {
        let e = Settings::from_sources(&env(&BASE[..1])).expect_err("error");
        assert!(e.to_string().contains("HEREABOUTS_JWT_SECRET"));
        let s = Settings::from_sources(&env(BASE)).expect("valid");
        let printed = format!("{s:?}");
        assert!(!printed.contains("0123456789abcdef"));
        assert!(!printed.contains("postgres://"));
    }

    #[test]
    fn cluster_urls_and_bad_numbers() {
        let mut e = env(BASE);
        e.push(("HEREABOUTS_REDIS_URL".into(), "redis://a:1, redis://b:2".into()));
        let s = Settings::from_sources(&e).expect("valid");
        assert_eq!(s.redis_urls.len(), 2);
        e.push(("HEREABOUTS_STORE_TIMEOUT_MS".into(), "soon".into()));
        let err = Settings::from_sources(&e).expect_err("error").to_string();
        assert!(err.contains("HEREABOUTS_STORE_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn push_settings_have_defaults_and_name_bad_values() {
        let s = Settings::from_sources(&env(BASE)).expect("valid");
        assert!(s.push.worker_enabled);
        assert!(!s.push.webhook_allow_private);
        assert_eq!(s.push.apns_base_url, "https://api.push.apple.com");
        assert_eq!(s.push.default_locale, "en");
        for (k, v) in [
            ("HEREABOUTS_PUSH_DEFAULT_LOCALE", "xx"),
            ("HEREABOUTS_APNS_BASE_URL", "ftp://x"),
            ("HEREABOUTS_WEBHOOK_SECRET", "short"),
            ("HEREABOUTS_APNS_KEY_FILE", "/nonexistent/key.p8"),
            ("HEREABOUTS_PUSH_MAX_ATTEMPTS", "0"),
        ] {
            let mut e = env(BASE);
            e.push((k.into(), v.into()));
            let err = Settings::from_sources(&e).expect_err("error").to_string();
            assert!(err.contains(k), "{err}");
        }
    }

    #[test]
    fn file_layer_is_overridden_by_env_and_rejects_unknown_keys() {
        let dir = std::env::temp_dir().join(format!("hb-cfg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nredis_prefix = \"file\"\n").expect("write");
        let mut e = env(BASE);
        e.push(("HEREABOUTS_CONFIG".into(), path.display().to_string()));
        e.push(("HEREABOUTS_REDIS_PREFIX".into(), "env".into()));
        let s = Settings::from_sources(&e).expect("valid");
        assert_eq!(s.listen, "127.0.0.1:9000");
        assert_eq!(s.redis_prefix, "env");
        std::fs::write(&path, "colour = \"blue\"\n").expect("write");
        let err = Settings::from_sources(&e).expect_err("error").to_string();
        assert!(err.contains("colour"), "{err}");
    }

    #[test]
    #[rustfmt::skip]
    fn bad_values_fail_in_one_line_naming_the_variable() {
        for (k, v, want) in [
            ("HEREABOUTS_STORE_TIMEOUT_MS", "soon", "HEREABOUTS_STORE_TIMEOUT_MS: \"soon\" is not a whole number"),
            ("HEREABOUTS_STORE_TIMEOUT_MS", "5", "HEREABOUTS_STORE_TIMEOUT_MS: 5 is outside [10, 60000]"),
            ("HEREABOUTS_MIGRATE_ON_START", "maybe", "HEREABOUTS_MIGRATE_ON_START: \"maybe\" is not true/false"),
            ("HEREABOUTS_JWT_ALGORITHM", "ES256", "HEREABOUTS_JWT_PRIVATE_KEY_FILE: is required for ES256/EdDSA"),
            ("HEREABOUTS_LISTEN", "localhost", "HEREABOUTS_LISTEN: \"localhost\" is not host:port (an IP address and a port)"),
            ("HEREABOUTS_REDIS_PREFIX", "a{b}", "HEREABOUTS_REDIS_PREFIX: at most 64 characters, no braces or spaces"),
            ("HEREABOUTS_JWT_PREVIOUS_SECRETS", "k0", "HEREABOUTS_JWT_PREVIOUS_SECRETS: expected kid=value pairs separated by commas"),
            ("HEREABOUTS_PUSH_BACKOFF_MAX_MS", "1000", "HEREABOUTS_PUSH_BACKOFF_MAX_MS: must not be below HEREABOUTS_PUSH_BACKOFF_BASE_MS"),
        ] {
            let mut e = env(BASE);
            e.push((k.into(), v.into()));
            let err = Settings::from_sources(&e).expect_err("error").to_string();
            assert_eq!(err, format!("configuration: {want}"));
        }
    }

    #[test]
    fn file_takes_native_values_and_other_prefixed_variables_are_ignored() {
        let path = std::env::temp_dir().join(format!("hb-cfg-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, "store_timeout_ms = 500\nmigrate_on_start = false\nworkers = 3\n").expect("write");
        let mut e = env(BASE);
        e.push(("HEREABOUTS_CONFIG".into(), path.display().to_string()));
        e.push(("HEREABOUTS_BASE_URL".into(), "http://127.0.0.1:1".into()));
        e.push(("HEREABOUTS_TEST_DATABASE_URL".into(), "nonsense".into()));
        e.push(("HEREABOUTS_PUSH_WORKER_ENABLED".into(), "off".into()));
        let s = Settings::from_sources(&e).expect("valid");
        assert_eq!(
            (s.store_timeout, s.migrate_on_start, s.workers),
            (Duration::from_millis(500), false, 3)
        );
        assert!(!s.push.worker_enabled);
        // The database settings take the same layers; the file's other settings are fine there.
        let d = database_from_sources(&e).expect("valid");
        assert_eq!(d.store_timeout, Duration::from_millis(500));
        std::fs::remove_file(&path).expect("remove");
    }

    #[test]
    fn database_settings_need_only_the_database_url() {
        let d = database_from_sources(&env(&BASE[..1])).expect("valid");
        assert_eq!(d.database_url(), "postgres://x@127.0.0.1/db");
        assert_eq!((d.store_timeout, d.db_max_connections), (Duration::from_secs(2), 20));
        assert_eq!(d.log_format, LogFormat::Pretty);
        assert!(!format!("{d:?}").contains("postgres://"));
        let err = database_from_sources(&[]).expect_err("error").to_string();
        assert!(err.contains("HEREABOUTS_DATABASE_URL"), "{err}");
        let s = Settings::from_sources(&env(BASE)).expect("valid");
        assert_eq!(s.database().database_url(), s.database_url());
    }

    #[test]
    fn cors_origins_default_to_none_and_must_be_origins() {
        assert!(
            Settings::from_sources(&env(BASE))
                .expect("valid")
                .cors_allowed_origins
                .is_empty()
        );
        let mut e = env(BASE);
        e.push((
            "HEREABOUTS_CORS_ALLOWED_ORIGINS".into(),
            "https://app.example.com, http://127.0.0.1:3000".into(),
        ));
        let s = Settings::from_sources(&e).expect("valid");
        assert_eq!(
            s.cors_allowed_origins,
            ["https://app.example.com", "http://127.0.0.1:3000"]
        );
        for bad in [
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://x.example/path",
            "ftp://x.example",
        ] {
            let mut e = env(BASE);
            e.push(("HEREABOUTS_CORS_ALLOWED_ORIGINS".into(), bad.into()));
            let err = Settings::from_sources(&e).expect_err(bad).to_string();
            assert!(err.contains("HEREABOUTS_CORS_ALLOWED_ORIGINS"), "{err}");
        }
    }

    #[test]
    fn tile_url_defaults_to_openstreetmap_and_empty_means_none() {
        let s = Settings::from_sources(&env(BASE)).expect("valid");
        assert_eq!(s.admin_tile_url, DEFAULT_TILE_URL);
        let mut e = env(BASE);
        e.push(("HEREABOUTS_ADMIN_TILE_URL".into(), "".into()));
        assert_eq!(Settings::from_sources(&e).expect("valid").admin_tile_url, "");
        for bad in [
            "ftp://x/{z}/{x}/{y}",
            "https://x/tiles.png",
            "https://a b/{z}/{x}/{y}",
            "https://x;y/{z}/{x}/{y}",
        ] {
            let mut e = env(BASE);
            e.push(("HEREABOUTS_ADMIN_TILE_URL".into(), bad.into()));
            let err = Settings::from_sources(&e).expect_err(bad).to_string();
            assert!(err.contains("HEREABOUTS_ADMIN_TILE_URL"), "{err}");
        }
        assert_eq!(
            tile_origin(DEFAULT_TILE_URL).as_deref(),
            Some("https://tile.openstreetmap.org")
        );
        assert_eq!(
            tile_origin("https://{s}.tiles.example:8443/{z}/{x}/{y}@2x.png?key=k").as_deref(),
            Some("https://*.tiles.example:8443")
        );
    }

    #[test]
    fn names_list_every_setting() {
        let names = names();
        assert_eq!(names.len(), 66);
        for n in [
            "HEREABOUTS_DATABASE_URL",
            "HEREABOUTS_STORE_TIMEOUT_MS",
            "HEREABOUTS_WEBHOOK_ALLOW_PRIVATE",
        ] {
            assert!(names.iter().any(|x| x == n), "{n}");
        }
    }
}
