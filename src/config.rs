//! Settings: defaults < optional TOML file (`HEREABOUTS_CONFIG`) < `HEREABOUTS_*` environment.
//!
//! Every setting has one name in all three layers (`jwt_secret` in the file is
//! `HEREABOUTS_JWT_SECRET` in the environment). Secrets are `SecretString` and never printed.
//! An invalid setting fails at start with one line naming it.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// A settings error: names the setting and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {name}: {message}")]
pub struct ConfigError {
    pub name: String,
    pub message: String,
}

fn cfg_err(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_string(),
        message: message.into(),
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (development).
    Pretty,
}

/// Algorithm of the access-token signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtAlgorithm {
    Hs256,
    Es256,
    EdDsa,
}

/// The whole configuration of one process.
#[derive(Clone)]
pub struct Settings {
    pub listen: String,
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
    pub rate_login_per_email_per_min: u32,
    pub rate_login_per_ip_per_min: u32,
    pub rate_register_per_ip_per_min: u32,
    pub rate_checkins_per_user_per_min: u32,
    /// Argon2 memory cost in KiB (OWASP: 19456 with t=2, p=1).
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    /// How often the policy, zones and index health are re-read.
    pub refresh_interval: Duration,
    /// Trust `X-Forwarded-For` for client IPs (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// Push notifications (see `crate::push`): run the delivery worker inside `serve`.
    pub push: PushSettings,
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
    /// Accept webhook URLs on loopback/private addresses (and plain http to loopback): tests only.
    pub webhook_allow_private: bool,
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

/// Raw layers are string maps; this is the file layer's shape.
type Layer = BTreeMap<String, String>;

const KNOWN: &[&str] = &[
    "listen",
    "database_url",
    "redis_url",
    "redis_prefix",
    "jwt_secret",
    "jwt_algorithm",
    "jwt_private_key_file",
    "jwt_kid",
    "jwt_previous_secrets",
    "jwt_public_keys",
    "jwt_issuer",
    "jwt_audience",
    "access_token_ttl_s",
    "refresh_token_ttl_s",
    "store_timeout_ms",
    "request_timeout_ms",
    "log_format",
    "migrate_on_start",
    "db_max_connections",
    "max_body_bytes",
    "max_concurrent_requests",
    "max_connections",
    "workers",
    "shutdown_grace_s",
    "rate_login_per_email_per_min",
    "rate_login_per_ip_per_min",
    "rate_register_per_ip_per_min",
    "rate_checkins_per_user_per_min",
    "argon2_memory_kib",
    "argon2_iterations",
    "refresh_interval_ms",
    "trust_forwarded_for",
    "push_worker_enabled",
    "push_poll_interval_ms",
    "push_batch_size",
    "push_concurrency",
    "push_max_attempts",
    "push_lease_s",
    "push_backoff_base_ms",
    "push_backoff_max_ms",
    "push_request_timeout_ms",
    "push_default_locale",
    "push_max_devices_per_user",
    "push_daily_cap",
    "apns_base_url",
    "apns_team_id",
    "apns_key_id",
    "apns_key_file",
    "apns_topic",
    "fcm_base_url",
    "fcm_token_uri",
    "fcm_project_id",
    "fcm_service_account_file",
    "webhook_secret",
    "webhook_allow_private",
];

#[derive(Deserialize)]
#[serde(transparent)]
struct FileLayer(BTreeMap<String, toml::Value>);

impl Settings {
    /// Reads the file named by `HEREABOUTS_CONFIG` (if any) and the process environment.
    pub fn load() -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::from_sources(&env)
    }

    /// Builds settings from environment pairs (the file is named by `HEREABOUTS_CONFIG` among them).
    pub fn from_sources(env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut layer = Layer::new();
        if let Some((_, path)) = env.iter().find(|(k, _)| k == "HEREABOUTS_CONFIG") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| cfg_err("HEREABOUTS_CONFIG", format!("cannot read {path}: {e}")))?;
            let file: FileLayer = toml::from_str(&text)
                .map_err(|e| cfg_err("HEREABOUTS_CONFIG", format!("{path} is not valid TOML: {e}")))?;
            for (k, v) in file.0 {
                if !KNOWN.contains(&k.as_str()) {
                    return Err(cfg_err(&k, format!("unknown setting in {path}")));
                }
                let s = match v {
                    toml::Value::String(s) => s,
                    other => other.to_string(),
                };
                layer.insert(k, s);
            }
        }
        for (k, v) in env {
            if let Some(name) = k.strip_prefix("HEREABOUTS_") {
                let name = name.to_ascii_lowercase();
                if KNOWN.contains(&name.as_str()) {
                    layer.insert(name, v.clone());
                }
            }
        }
        Self::from_layer(&layer)
    }

    fn from_layer(l: &Layer) -> Result<Self, ConfigError> {
        let get = |k: &str| l.get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let num = |k: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match get(k) {
                None => Ok(default),
                Some(s) => {
                    let v: u64 = s
                        .parse()
                        .map_err(|_| cfg_err(&env_name(k), format!("{s:?} is not a whole number")))?;
                    if v < min || v > max {
                        return Err(cfg_err(&env_name(k), format!("{v} is outside [{min}, {max}]")));
                    }
                    Ok(v)
                }
            }
        };
        let boolean = |k: &str, default: bool| -> Result<bool, ConfigError> {
            match get(k).as_deref() {
                None => Ok(default),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(s) => Err(cfg_err(&env_name(k), format!("{s:?} is not true/false"))),
            }
        };

        let listen = get("listen").unwrap_or_else(|| "127.0.0.1:8080".into());
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(cfg_err(
                "HEREABOUTS_LISTEN",
                format!("{listen:?} is not host:port (an IP address and a port)"),
            ));
        }
        let database_url = get("database_url")
            .ok_or_else(|| cfg_err("HEREABOUTS_DATABASE_URL", "is required (postgres://user@host:port/db)"))?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(cfg_err(
                "HEREABOUTS_DATABASE_URL",
                "must start with postgres:// or postgresql://",
            ));
        }
        let redis_url = get("redis_url").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let redis_urls: Vec<String> = redis_url
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if redis_urls.is_empty()
            || redis_urls
                .iter()
                .any(|u| !(u.starts_with("redis://") || u.starts_with("rediss://")))
        {
            return Err(cfg_err(
                "HEREABOUTS_REDIS_URL",
                "must be redis://host:port (comma-separated for a cluster)",
            ));
        }
        let redis_prefix = get("redis_prefix").unwrap_or_else(|| "hb".into());
        if redis_prefix.len() > 64 || redis_prefix.contains(['{', '}', ' ']) {
            return Err(cfg_err(
                "HEREABOUTS_REDIS_PREFIX",
                "at most 64 characters, no braces or spaces",
            ));
        }
        let jwt_algorithm = match get("jwt_algorithm").as_deref().map(str::to_ascii_uppercase).as_deref() {
            None | Some("HS256") => JwtAlgorithm::Hs256,
            Some("ES256") => JwtAlgorithm::Es256,
            Some("EDDSA") => JwtAlgorithm::EdDsa,
            Some(other) => {
                return Err(cfg_err(
                    "HEREABOUTS_JWT_ALGORITHM",
                    format!("{other:?}: use HS256, ES256 or EdDSA"),
                ));
            }
        };
        let jwt_secret = get("jwt_secret")
            .ok_or_else(|| cfg_err("HEREABOUTS_JWT_SECRET", "is required (at least 32 characters)"))?;
        if jwt_secret.len() < 32 {
            return Err(cfg_err("HEREABOUTS_JWT_SECRET", "must be at least 32 characters"));
        }
        let jwt_private_key_pem = match get("jwt_private_key_file") {
            None if jwt_algorithm != JwtAlgorithm::Hs256 => {
                return Err(cfg_err(
                    "HEREABOUTS_JWT_PRIVATE_KEY_FILE",
                    "is required for ES256/EdDSA",
                ));
            }
            None => None,
            Some(path) => Some(SecretString::from(std::fs::read_to_string(&path).map_err(|e| {
                cfg_err("HEREABOUTS_JWT_PRIVATE_KEY_FILE", format!("cannot read {path}: {e}"))
            })?)),
        };
        let pairs = |k: &str| -> Result<Vec<(String, String)>, ConfigError> {
            let Some(s) = get(k) else { return Ok(vec![]) };
            s.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.split_once('=')
                        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                        .ok_or_else(|| cfg_err(&env_name(k), "expected kid=value pairs separated by commas"))
                })
                .collect()
        };
        let jwt_previous_secrets = pairs("jwt_previous_secrets")?
            .into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect();
        let jwt_public_keys = pairs("jwt_public_keys")?;
        let log_format = match get("log_format").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(cfg_err(
                    "HEREABOUTS_LOG_FORMAT",
                    format!("{other:?}: use json or pretty"),
                ));
            }
        };
        let push = push_settings(&get, &num, &boolean)?;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2) as u64;
        Ok(Settings {
            listen,
            database_url: SecretString::from(database_url),
            redis_urls,
            redis_prefix,
            jwt_secret: SecretString::from(jwt_secret),
            jwt_algorithm,
            jwt_private_key_pem,
            jwt_kid: get("jwt_kid").unwrap_or_else(|| "k1".into()),
            jwt_previous_secrets,
            jwt_public_keys,
            jwt_issuer: get("jwt_issuer").unwrap_or_else(|| "hereabouts".into()),
            jwt_audience: get("jwt_audience").unwrap_or_else(|| "hereabouts-app".into()),
            access_token_ttl: Duration::from_secs(num("access_token_ttl_s", 900, 30, 86_400)?),
            refresh_token_ttl: Duration::from_secs(num("refresh_token_ttl_s", 30 * 86_400, 60, 365 * 86_400)?),
            store_timeout: Duration::from_millis(num("store_timeout_ms", 2_000, 10, 60_000)?),
            request_timeout: Duration::from_millis(num("request_timeout_ms", 15_000, 100, 300_000)?),
            log_format,
            migrate_on_start: boolean("migrate_on_start", true)?,
            db_max_connections: num("db_max_connections", 20, 1, 1_000)? as u32,
            max_body_bytes: num("max_body_bytes", 64 * 1024, 1_024, 16 * 1024 * 1024)? as usize,
            max_concurrent_requests: num("max_concurrent_requests", 1_024, 1, 1_000_000)? as usize,
            max_connections: num("max_connections", 10_000, 1, 1_000_000)? as usize,
            workers: num("workers", cores, 1, 256)? as usize,
            shutdown_grace: Duration::from_secs(num("shutdown_grace_s", 10, 0, 600)?),
            rate_login_per_email_per_min: num("rate_login_per_email_per_min", 10, 1, 1_000_000)? as u32,
            rate_login_per_ip_per_min: num("rate_login_per_ip_per_min", 60, 1, 1_000_000)? as u32,
            rate_register_per_ip_per_min: num("rate_register_per_ip_per_min", 30, 1, 1_000_000)? as u32,
            rate_checkins_per_user_per_min: num("rate_checkins_per_user_per_min", 30, 1, 1_000_000)? as u32,
            argon2_memory_kib: num("argon2_memory_kib", 19_456, 8, 1 << 22)? as u32,
            argon2_iterations: num("argon2_iterations", 2, 1, 100)? as u32,
            refresh_interval: Duration::from_millis(num("refresh_interval_ms", 2_000, 50, 600_000)?),
            trust_forwarded_for: boolean("trust_forwarded_for", false)?,
            push,
        })
    }

    /// The database URL, for connecting (never log it).
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// Reads a whole number setting: name, default, min, max.
type NumSetting<'a> = &'a dyn Fn(&str, u64, u64, u64) -> Result<u64, ConfigError>;

/// The push settings (defaults: Apple's and Google's production endpoints, no credentials).
fn push_settings(
    get: &dyn Fn(&str) -> Option<String>,
    num: NumSetting<'_>,
    boolean: &dyn Fn(&str, bool) -> Result<bool, ConfigError>,
) -> Result<PushSettings, ConfigError> {
    let url = |k: &str, default: &str| -> Result<String, ConfigError> {
        let v = get(k).unwrap_or_else(|| default.to_string());
        if !(v.starts_with("https://") || v.starts_with("http://")) {
            return Err(cfg_err(&env_name(k), "must be an http:// or https:// URL"));
        }
        Ok(v.trim_end_matches('/').to_string())
    };
    let file = |k: &str| -> Result<Option<SecretString>, ConfigError> {
        get(k)
            .map(|path| {
                std::fs::read_to_string(&path)
                    .map(SecretString::from)
                    .map_err(|e| cfg_err(&env_name(k), format!("cannot read {path}: {e}")))
            })
            .transpose()
    };
    let default_locale = get("push_default_locale").unwrap_or_else(|| "en".into());
    if !crate::push::templates::LOCALES.contains(&default_locale.as_str()) {
        return Err(cfg_err(
            "HEREABOUTS_PUSH_DEFAULT_LOCALE",
            format!("use one of {}", crate::push::templates::LOCALES.join(", ")),
        ));
    }
    let fcm_token_uri = get("fcm_token_uri");
    if let Some(u) = &fcm_token_uri
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        return Err(cfg_err(
            "HEREABOUTS_FCM_TOKEN_URI",
            "must be an http:// or https:// URL",
        ));
    }
    let backoff_base = Duration::from_millis(num("push_backoff_base_ms", 2_000, 1, 3_600_000)?);
    let backoff_max = Duration::from_millis(num("push_backoff_max_ms", 600_000, 1, 86_400_000)?);
    if backoff_max < backoff_base {
        return Err(cfg_err(
            "HEREABOUTS_PUSH_BACKOFF_MAX_MS",
            "must not be below HEREABOUTS_PUSH_BACKOFF_BASE_MS",
        ));
    }
    let webhook_secret = get("webhook_secret");
    if webhook_secret.as_ref().is_some_and(|s| s.len() < 16) {
        return Err(cfg_err("HEREABOUTS_WEBHOOK_SECRET", "must be at least 16 characters"));
    }
    Ok(PushSettings {
        worker_enabled: boolean("push_worker_enabled", true)?,
        poll_interval: Duration::from_millis(num("push_poll_interval_ms", 1_000, 10, 600_000)?),
        batch_size: num("push_batch_size", 32, 1, 1_000)? as u32,
        concurrency: num("push_concurrency", 16, 1, 1_024)? as usize,
        max_attempts: num("push_max_attempts", 8, 1, 100)? as u32,
        lease: Duration::from_secs(num("push_lease_s", 60, 1, 3_600)?),
        backoff_base,
        backoff_max,
        request_timeout: Duration::from_millis(num("push_request_timeout_ms", 5_000, 100, 60_000)?),
        default_locale,
        max_devices_per_user: num("push_max_devices_per_user", 10, 1, 1_000)? as u32,
        daily_cap: num("push_daily_cap", 0, 0, 100_000)? as u32,
        apns_base_url: url("apns_base_url", "https://api.push.apple.com")?,
        apns_team_id: get("apns_team_id"),
        apns_key_id: get("apns_key_id"),
        apns_key_pem: file("apns_key_file")?,
        apns_topic: get("apns_topic"),
        fcm_base_url: url("fcm_base_url", "https://fcm.googleapis.com")?,
        fcm_token_uri,
        fcm_project_id: get("fcm_project_id"),
        fcm_service_account_json: file("fcm_service_account_file")?,
        webhook_secret: webhook_secret.map(SecretString::from),
        webhook_allow_private: boolean("webhook_allow_private", false)?,
    })
}

fn env_name(k: &str) -> String {
    format!("HEREABOUTS_{}", k.to_ascii_uppercase())
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
}
