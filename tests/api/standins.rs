//! Local stand-ins for the push providers, on 127.0.0.1:0, checking what the real ones check:
//!
//! - APNs (HTTP/2 only, h2c): the ES256 provider token verified with the public key (`kid`,
//!   `iss`, fresh `iat`), `apns-topic`, `apns-push-type: alert`, `apns-priority`,
//!   `apns-expiration`, `apns-collapse-id` (at most 64 bytes), the `/3/device/<hex>` path;
//! - FCM: the token endpoint verifies the RS256 service-account assertion (`iss`, `scope`, `aud`,
//!   `exp` within an hour) and the `jwt-bearer` grant, and issues access tokens; the send
//!   endpoint accepts only a token it issued, for the right project;
//! - a webhook receiver that verifies the HMAC-SHA256 signature and the timestamp.
//!
//! A request that fails a check is answered as the real service would (403/401/400) and its
//! problems are recorded; tests assert that there were none. Each stand-in answers sends from a
//! script (status codes, or hanging) and then with success.

use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

pub const TEAM_ID: &str = "TEAM123456";
pub const KEY_ID: &str = "KEY1234567";
pub const TOPIC: &str = "dev.hereabouts.app";
pub const PROJECT: &str = "hereabouts-test";
pub const CLIENT_EMAIL: &str = "push@hereabouts-test.iam.gserviceaccount.com";
pub const SA_KEY_ID: &str = "sa-key-1";
pub const WEBHOOK_SECRET: &str = "webhook-secret-0123456789abcdef";
const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";

/// Key material made once per test process with the `openssl` CLI.
pub struct Keys {
    pub dir: PathBuf,
    /// PKCS#8 P-256 private key (what Apple hands out as a .p8).
    pub apns_key_file: PathBuf,
    pub ec_public_pem: String,
    pub rsa_private_pem: String,
    pub rsa_public_pem: String,
}

fn openssl(args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!(
            "hb-push-keys-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).expect("key dir");
        let p = |n: &str| dir.join(n).display().to_string();
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &p("apns.p8"),
        ]);
        openssl(&["pkey", "-in", &p("apns.p8"), "-pubout", "-out", &p("apns.pub")]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            &p("sa.pem"),
        ]);
        openssl(&["pkey", "-in", &p("sa.pem"), "-pubout", "-out", &p("sa.pub")]);
        let read = |n: &str| std::fs::read_to_string(dir.join(n)).expect("key file");
        Keys {
            apns_key_file: dir.join("apns.p8"),
            ec_public_pem: read("apns.pub"),
            rsa_private_pem: read("sa.pem"),
            rsa_public_pem: read("sa.pub"),
            dir,
        }
    })
}

/// How a stand-in answers the next send.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status with this JSON body.
    Status(u16, Value),
    /// Never answers (until the client gives up or goes away).
    Hang,
}

/// One send request as received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub raw: String,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Inner {
    url: String,
    hits: Mutex<Vec<Hit>>,
    problems: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Reply>>,
    delay: Mutex<Duration>,
    token_calls: AtomicUsize,
    issued: Mutex<HashSet<String>>,
}

/// A running stand-in.
#[derive(Clone)]
pub struct StandIn {
    pub url: String,
    inner: Arc<Inner>,
}

impl StandIn {
    /// Send requests received (verified or not).
    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().expect("lock").clone()
    }
    /// Checks that failed.
    pub fn problems(&self) -> Vec<String> {
        self.inner.problems.lock().expect("lock").clone()
    }
    /// Answers for the next sends, in order (then success).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().expect("lock").extend(replies);
    }
    /// Wait this long before answering each send.
    pub fn set_delay(&self, d: Duration) {
        *self.inner.delay.lock().expect("lock") = d;
    }
    /// Access tokens issued by the FCM token endpoint.
    pub fn token_calls(&self) -> usize {
        self.inner.token_calls.load(Ordering::SeqCst)
    }
    fn problem(&self, p: String) {
        self.inner.problems.lock().expect("lock").push(p);
    }
    fn next_reply(&self) -> Option<Reply> {
        self.inner.script.lock().expect("lock").pop_front()
    }
}

type Resp = Response<Full<Bytes>>;

fn json_response(status: u16, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn empty(status: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r
}

async fn read(req: Request<Incoming>) -> (hyper::http::request::Parts, String) {
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    (parts, String::from_utf8_lossy(&bytes).into_owned())
}

fn headers_of(parts: &hyper::http::request::Parts) -> HashMap<String, String> {
    parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

async fn record_and_answer(s: &StandIn, parts: &hyper::http::request::Parts, raw: String, ok: Resp) -> Resp {
    s.inner.hits.lock().expect("lock").push(Hit {
        at: Instant::now(),
        path: parts.uri.path().to_string(),
        headers: headers_of(parts),
        body: serde_json::from_str(&raw).unwrap_or(Value::Null),
        raw,
    });
    let delay = *s.inner.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match s.next_reply() {
        Some(Reply::Status(code, body)) => json_response(code, &body),
        Some(Reply::Hang) => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            empty(504)
        }
        None => ok,
    }
}

enum Proto {
    Http2Only,
    Auto,
}

async fn serve<F, Fut>(proto: Proto, handler: F) -> StandIn
where
    F: Fn(StandIn, Request<Incoming>) -> Fut + Send + Sync + 'static + Clone,
    Fut: std::future::Future<Output = Resp> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind stand-in");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let s = StandIn {
        url: url.clone(),
        inner: Arc::new(Inner {
            url,
            ..Default::default()
        }),
    };
    let server = s.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let s = server.clone();
            let handler = handler.clone();
            let svc = hyper::service::service_fn(move |req| {
                let s = s.clone();
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(s, req).await) }
            });
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if matches!(proto, Proto::Http2Only) {
                builder = builder.http2_only();
            }
            tokio::spawn(async move {
                let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
            });
        }
    });
    s
}

// ---------------------------------------------------------------------------------------------
// APNs

#[derive(Deserialize)]
struct ApnsClaims {
    iss: String,
    iat: i64,
}

fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn check_apns(parts: &hyper::http::request::Parts, raw: &str) -> Result<(), (u16, &'static str, String)> {
    if parts.version != Version::HTTP_2 {
        return Err((400, "BadRequest", format!("not HTTP/2 but {:?}", parts.version)));
    }
    if parts.method != hyper::Method::POST {
        return Err((405, "MethodNotAllowed", "not a POST".into()));
    }
    let token = parts.uri.path().strip_prefix("/3/device/").unwrap_or("");
    if token.len() < 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((400, "BadDeviceToken", format!("path {}", parts.uri.path())));
    }
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let jwt = h("authorization");
    let Some(jwt) = jwt.strip_prefix("bearer ").or_else(|| jwt.strip_prefix("Bearer ")) else {
        return Err((403, "MissingProviderToken", "no bearer token".into()));
    };
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| (403, "InvalidProviderToken", format!("header: {e}")))?;
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(KEY_ID) {
        return Err((
            403,
            "InvalidProviderToken",
            format!("alg {:?} kid {:?}", header.alg, header.kid),
        ));
    }
    let key = DecodingKey::from_ec_pem(keys().ec_public_pem.as_bytes()).expect("public key");
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_aud = false;
    let claims = jsonwebtoken::decode::<ApnsClaims>(jwt, &key, &v)
        .map_err(|e| (403, "InvalidProviderToken", format!("signature: {e}")))?
        .claims;
    if claims.iss != TEAM_ID {
        return Err((403, "InvalidProviderToken", format!("iss {}", claims.iss)));
    }
    if (now_s() - claims.iat).abs() > 3_600 {
        return Err((403, "ExpiredProviderToken", format!("iat {}", claims.iat)));
    }
    if h("apns-topic") != TOPIC {
        return Err((400, "BadTopic", format!("topic {:?}", h("apns-topic"))));
    }
    if h("apns-push-type") != "alert" {
        return Err((400, "InvalidPushType", format!("push type {:?}", h("apns-push-type"))));
    }
    if !matches!(h("apns-priority").as_str(), "5" | "10") {
        return Err((400, "BadPriority", format!("priority {:?}", h("apns-priority"))));
    }
    if h("apns-expiration").parse::<i64>().is_err() {
        return Err((
            400,
            "BadExpirationDate",
            format!("expiration {:?}", h("apns-expiration")),
        ));
    }
    let collapse = h("apns-collapse-id");
    if collapse.is_empty() || collapse.len() > 64 {
        return Err((400, "BadCollapseId", format!("collapse id {collapse:?}")));
    }
    let body: Value = serde_json::from_str(raw).map_err(|_| (400, "PayloadEmpty", "body is not JSON".to_string()))?;
    if !body["aps"]["alert"]["body"].is_string() {
        return Err((400, "PayloadEmpty", "no aps.alert.body".into()));
    }
    if raw.len() > 4_096 {
        return Err((413, "PayloadTooLarge", "over 4 KiB".into()));
    }
    Ok(())
}

/// An APNs stand-in (HTTP/2 prior knowledge only).
pub async fn apns() -> StandIn {
    serve(Proto::Http2Only, |s: StandIn, req: Request<Incoming>| async move {
        let (parts, raw) = read(req).await;
        if let Err((status, reason, why)) = check_apns(&parts, &raw) {
            s.problem(format!("apns: {why}"));
            return json_response(status, &json!({ "reason": reason }));
        }
        let mut ok = empty(200);
        if let Some(id) = parts.headers.get("apns-id") {
            ok.headers_mut().insert("apns-id", id.clone());
        }
        record_and_answer(&s, &parts, raw, ok).await
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// FCM

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    scope: String,
    aud: String,
    iat: i64,
    exp: i64,
}

fn form(raw: &str) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://x/?{raw}"))
        .map(|u| u.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

fn check_assertion(s: &StandIn, parts: &hyper::http::request::Parts, raw: &str) -> Result<(), String> {
    let ct = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Err(format!("content type {ct:?}"));
    }
    let f = form(raw);
    if f.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err(format!("grant_type {:?}", f.get("grant_type")));
    }
    let jwt = f.get("assertion").ok_or("no assertion")?;
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("header: {e}"))?;
    if header.alg != Algorithm::RS256 || header.kid.as_deref() != Some(SA_KEY_ID) {
        return Err(format!("alg {:?} kid {:?}", header.alg, header.kid));
    }
    let key = DecodingKey::from_rsa_pem(keys().rsa_public_pem.as_bytes()).expect("public key");
    let aud = format!("{}/token", s.inner.url);
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud.as_str()]);
    v.set_required_spec_claims(&["exp", "aud", "iss"]);
    v.set_issuer(&[CLIENT_EMAIL]);
    let c = jsonwebtoken::decode::<Assertion>(jwt, &key, &v)
        .map_err(|e| format!("assertion: {e}"))?
        .claims;
    if c.scope != FCM_SCOPE || c.aud != aud || c.iss != CLIENT_EMAIL {
        return Err(format!("claims scope {} aud {}", c.scope, c.aud));
    }
    if c.exp - c.iat > 3_600 || (now_s() - c.iat).abs() > 300 {
        return Err(format!("lifetime iat {} exp {}", c.iat, c.exp));
    }
    Ok(())
}

/// An FCM stand-in: `POST /token` (OAuth2 jwt-bearer) and `POST /v1/projects/{p}/messages:send`.
pub async fn fcm() -> StandIn {
    serve(Proto::Auto, |s: StandIn, req: Request<Incoming>| async move {
        let (parts, raw) = read(req).await;
        let path = parts.uri.path().to_string();
        if path == "/token" {
            if let Err(why) = check_assertion(&s, &parts, &raw) {
                s.problem(format!("fcm token: {why}"));
                return json_response(400, &json!({"error": "invalid_grant", "error_description": why}));
            }
            s.inner.token_calls.fetch_add(1, Ordering::SeqCst);
            let token = format!("ya29.{}", uuid::Uuid::new_v4().simple());
            s.inner.issued.lock().expect("lock").insert(token.clone());
            return json_response(
                200,
                &json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
            );
        }
        if path != format!("/v1/projects/{PROJECT}/messages:send") {
            s.problem(format!("fcm: unknown path {path}"));
            return json_response(
                404,
                &json!({"error": {"code": 404, "status": "NOT_FOUND", "message": "no such path"}}),
            );
        }
        let bearer = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("")
            .to_string();
        if !s.inner.issued.lock().expect("lock").contains(&bearer) {
            s.problem("fcm: send without a valid access token".into());
            return json_response(
                401,
                &json!({"error": {"code": 401, "status": "UNAUTHENTICATED", "message": "bad token"}}),
            );
        }
        let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
        if !body["message"]["token"].is_string() || !body["message"]["notification"]["body"].is_string() {
            s.problem(format!("fcm: bad message {raw}"));
            return json_response(
                400,
                &json!({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad message"}}),
            );
        }
        let name = format!("projects/{PROJECT}/messages/{}", uuid::Uuid::new_v4().simple());
        record_and_answer(&s, &parts, raw, json_response(200, &json!({ "name": name }))).await
    })
    .await
}

/// The FCM error body for an unregistered token.
pub fn fcm_unregistered() -> Value {
    json!({"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
        "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}})
}

/// A service-account key file for the FCM stand-in.
pub fn service_account_file(fcm: &StandIn) -> PathBuf {
    let path = keys().dir.join(format!("sa-{}.json", uuid::Uuid::new_v4().simple()));
    let sa = json!({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": SA_KEY_ID,
        "private_key": keys().rsa_private_pem,
        "client_email": CLIENT_EMAIL,
        "token_uri": format!("{}/token", fcm.url),
    });
    std::fs::write(&path, sa.to_string()).expect("write service account");
    path
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// A webhook receiver verifying `x-hereabouts-signature` over `"{timestamp}.{body}"`.
pub async fn webhook() -> StandIn {
    serve(Proto::Auto, |s: StandIn, req: Request<Incoming>| async move {
        let (parts, raw) = read(req).await;
        let h = |n: &str| {
            parts
                .headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let ts = h("x-hereabouts-timestamp");
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("hmac");
        mac.update(format!("{ts}.{raw}").as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let fresh = ts.parse::<i64>().is_ok_and(|t| (now_s() - t).abs() <= 300);
        if h("x-hereabouts-signature") != expected || !fresh || h("x-hereabouts-delivery").is_empty() {
            s.problem(format!("webhook: bad signature or timestamp ({ts})"));
            return empty(401);
        }
        if parts.method != hyper::Method::POST || !h("content-type").starts_with("application/json") {
            s.problem("webhook: not a JSON POST".into());
            return empty(400);
        }
        record_and_answer(&s, &parts, raw, empty(204)).await
    })
    .await
}

/// The three stand-ins and the settings pointing the server at them.
pub struct Providers {
    pub apns: StandIn,
    pub fcm: StandIn,
    pub webhook: StandIn,
    pub service_account: PathBuf,
}

impl Providers {
    pub async fn start() -> Self {
        let apns = apns().await;
        let fcm = fcm().await;
        let webhook = webhook().await;
        let service_account = service_account_file(&fcm);
        Self {
            apns,
            fcm,
            webhook,
            service_account,
        }
    }

    /// `HEREABOUTS_*` settings for these stand-ins (with quick polling, backoff and timeouts).
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            ("HEREABOUTS_APNS_BASE_URL", self.apns.url.clone()),
            ("HEREABOUTS_APNS_TEAM_ID", TEAM_ID.into()),
            ("HEREABOUTS_APNS_KEY_ID", KEY_ID.into()),
            ("HEREABOUTS_APNS_KEY_FILE", keys().apns_key_file.display().to_string()),
            ("HEREABOUTS_APNS_TOPIC", TOPIC.into()),
            ("HEREABOUTS_FCM_BASE_URL", self.fcm.url.clone()),
            (
                "HEREABOUTS_FCM_SERVICE_ACCOUNT_FILE",
                self.service_account.display().to_string(),
            ),
            ("HEREABOUTS_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
            ("HEREABOUTS_WEBHOOK_ALLOW_PRIVATE", "true".into()),
            ("HEREABOUTS_PUSH_POLL_INTERVAL_MS", "25".into()),
            ("HEREABOUTS_PUSH_BACKOFF_BASE_MS", "200".into()),
            ("HEREABOUTS_PUSH_BACKOFF_MAX_MS", "2000".into()),
            ("HEREABOUTS_PUSH_MAX_ATTEMPTS", "5".into()),
            ("HEREABOUTS_PUSH_REQUEST_TIMEOUT_MS", "10000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// An app pointed at these stand-ins whose deliveries the test drives itself; `extra`
    /// overrides settings (`HEREABOUTS_PUSH_WORKER_ENABLED=true` turns its own worker back on).
    pub async fn app(&self, extra: &[(&str, &str)]) -> crate::helpers::TestApp {
        let mut settings = self.settings();
        settings.push(("HEREABOUTS_PUSH_WORKER_ENABLED".into(), "false".into()));
        for (k, v) in extra {
            settings.retain(|(a, _)| a != k);
            settings.push((k.to_string(), v.to_string()));
        }
        let refs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::helpers::spawn_app_with(&refs).await
    }
}

// ---------------------------------------------------------------------------------------------
// Web Push

/// A browser's side of a push subscription: its P-256 key pair and auth secret (RFC 8291), and
/// the application server key it subscribed with.
pub struct Browser {
    secret: p256::SecretKey,
    pub auth: [u8; 16],
    /// The VAPID public key (base64url) given to `PushManager.subscribe()`.
    pub application_server_key: Mutex<String>,
}

impl Browser {
    fn new() -> Self {
        let mut auth = [0u8; 16];
        let mut bytes = [0u8; 32];
        loop {
            rand::Rng::fill(&mut rand::rng(), &mut bytes);
            if let Ok(secret) = p256::SecretKey::from_slice(&bytes) {
                rand::Rng::fill(&mut rand::rng(), &mut auth);
                return Self {
                    secret,
                    auth,
                    application_server_key: Mutex::new(String::new()),
                };
            }
        }
    }

    /// `p256dh`, base64url of the uncompressed point.
    pub fn p256dh(&self) -> String {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        b64(self.secret.public_key().to_encoded_point(false).as_bytes())
    }

    /// Decrypts an `aes128gcm` body as RFC 8291 says a user agent does.
    fn decrypt(&self, body: &[u8]) -> Result<Vec<u8>, String> {
        use aes_gcm::aead::{Aead, KeyInit};
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        if body.len() < 21 {
            return Err("shorter than the aes128gcm header".into());
        }
        let (salt, rest) = body.split_at(16);
        let rs = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let idlen = rest[4] as usize;
        if idlen != 65 || rest.len() < 5 + idlen {
            return Err(format!("keyid of {idlen} bytes, not the sender's 65-byte public key"));
        }
        let as_public = &rest[5..5 + idlen];
        let record = &rest[5 + idlen..];
        if record.len() > rs || rs < 18 {
            return Err(format!("record of {} bytes with rs {rs}", record.len()));
        }
        let sender = p256::PublicKey::from_sec1_bytes(as_public).map_err(|_| "keyid is not a P-256 point")?;
        let shared = p256::ecdh::diffie_hellman(self.secret.to_nonzero_scalar(), sender.as_affine());
        let ua_public = self.secret.public_key().to_encoded_point(false);
        let mut info = b"WebPush: info\0".to_vec();
        info.extend_from_slice(ua_public.as_bytes());
        info.extend_from_slice(as_public);
        let mut ikm = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(&self.auth), shared.raw_secret_bytes())
            .expand(&info, &mut ikm)
            .map_err(|_| "hkdf ikm")?;
        let prk = hkdf::Hkdf::<Sha256>::new(Some(salt), &ikm);
        let (mut cek, mut nonce) = ([0u8; 16], [0u8; 12]);
        prk.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
            .map_err(|_| "cek")?;
        prk.expand(b"Content-Encoding: nonce\0", &mut nonce)
            .map_err(|_| "nonce")?;
        let plain = aes_gcm::Aes128Gcm::new_from_slice(&cek)
            .map_err(|_| "cek length")?
            .decrypt(&aes_gcm::Nonce::from(nonce), record)
            .map_err(|_| "the record does not decrypt (wrong keys or tampered)")?;
        // padding: zeros after the delimiter; the last record's delimiter is 2
        let end = plain.iter().rposition(|b| *b != 0).ok_or("no delimiter")?;
        if plain[end] != 2 {
            return Err(format!("delimiter {} instead of 2 (the last record)", plain[end]));
        }
        Ok(plain[..end].to_vec())
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

#[derive(Deserialize)]
struct VapidClaims {
    aud: String,
    exp: i64,
    sub: String,
}

/// What a push service checks of a message (RFC 8030, 8291, 8292) before accepting it.
fn check_webpush(
    browser: &Browser,
    origin: &str,
    parts: &hyper::http::request::Parts,
    body: &[u8],
) -> Result<Vec<u8>, (u16, String)> {
    let h = |n: &str| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    if parts.method != hyper::Method::POST {
        return Err((405, "not a POST".into()));
    }
    if h("ttl").parse::<u32>().is_err() {
        return Err((400, format!("TTL header {:?}", h("ttl"))));
    }
    if !matches!(h("urgency").as_str(), "" | "very-low" | "low" | "normal" | "high") {
        return Err((400, format!("urgency {:?}", h("urgency"))));
    }
    if h("content-encoding") != "aes128gcm" {
        return Err((400, format!("content-encoding {:?}", h("content-encoding"))));
    }
    // Authorization: vapid t=<jwt>, k=<key>
    let auth = h("authorization");
    let rest = auth
        .strip_prefix("vapid ")
        .ok_or((401, format!("not a vapid scheme: {auth:?}")))?;
    let (mut t, mut k) = (None, None);
    for part in rest.split(',').map(str::trim) {
        if let Some(v) = part.strip_prefix("t=") {
            t = Some(v.to_string());
        } else if let Some(v) = part.strip_prefix("k=") {
            k = Some(v.to_string());
        }
    }
    let (Some(t), Some(k)) = (t, k) else {
        return Err((401, "vapid without t= and k=".into()));
    };
    if k != *browser.application_server_key.lock().expect("lock") {
        return Err((403, "k is not the key the subscription was made with".into()));
    }
    let point = unb64(&k)
        .filter(|p| p.len() == 65 && p[0] == 4)
        .ok_or((401, "k is not an uncompressed point".to_string()))?;
    let key = DecodingKey::from_ec_components(&b64(&point[1..33]), &b64(&point[33..65]))
        .map_err(|e| (401, format!("k: {e}")))?;
    let header = jsonwebtoken::decode_header(&t).map_err(|e| (401, format!("jwt header: {e}")))?;
    if header.alg != Algorithm::ES256 {
        return Err((401, format!("alg {:?}", header.alg)));
    }
    let mut v = Validation::new(Algorithm::ES256);
    v.set_audience(&[origin]);
    v.set_required_spec_claims(&["exp", "aud"]);
    let claims = jsonwebtoken::decode::<VapidClaims>(&t, &key, &v)
        .map_err(|e| (403, format!("jwt: {e}")))?
        .claims;
    if claims.aud != origin {
        return Err((403, format!("aud {}", claims.aud)));
    }
    if claims.exp > now_s() + 24 * 3_600 {
        return Err((403, "exp more than 24 hours ahead".into()));
    }
    if !(claims.sub.starts_with("mailto:") || claims.sub.starts_with("https://")) {
        return Err((403, format!("sub {:?}", claims.sub)));
    }
    if body.len() > 4_096 {
        return Err((413, "over 4096 bytes".into()));
    }
    browser.decrypt(body).map_err(|e| (400, format!("payload: {e}")))
}

/// A push service stand-in for one browser: it verifies the VAPID JWT and decrypts each
/// message with the browser's keys; a hit's `body` is the decrypted JSON.
pub async fn webpush() -> (StandIn, Arc<Browser>) {
    let browser = Arc::new(Browser::new());
    let b = browser.clone();
    let s = serve(Proto::Auto, move |s: StandIn, req: Request<Incoming>| {
        let b = b.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let origin = s.inner.url.clone();
            match check_webpush(&b, &origin, &parts, &bytes) {
                Ok(plain) => {
                    let raw = String::from_utf8_lossy(&plain).into_owned();
                    record_and_answer(&s, &parts, raw, empty(201)).await
                }
                Err((status, problem)) => {
                    s.problem(format!("web push: {problem}"));
                    empty(status)
                }
            }
        }
    })
    .await;
    (s, browser)
}
