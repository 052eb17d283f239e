//! A webhook receiver on 127.0.0.1:0 standing in for a push provider: it checks the signature
//! (`x-hereabouts-signature` over `"{timestamp}.{body}"`) and answers according to its mode —
//! 204 at once, failing (500 and hanging past the client's timeout, alternately), or slowly.
//! It counts what it accepted by delivery id and by notification id, to find losses and
//! duplicates.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// 204 at once.
    Up,
    /// Alternately 500 and no answer for a minute.
    Failing,
    /// 204 after this long.
    Slow(Duration),
}

#[derive(Default)]
struct Inner {
    mode: Mutex<Option<Mode>>,
    /// Accepted (answered 204): delivery id → times.
    delivered: Mutex<HashMap<String, usize>>,
    /// Accepted: notification id → times.
    notifications: Mutex<HashMap<String, usize>>,
    /// When each accepted request was answered.
    accepted_at: Mutex<Vec<Instant>>,
    failed_500: AtomicUsize,
    hung: AtomicUsize,
    bad_signature: AtomicUsize,
    requests: AtomicUsize,
    /// Secrets accepted besides the suite's (one per sender, to tell senders apart), and the
    /// requests and acceptances signed with each.
    senders: Mutex<Vec<(String, usize, usize)>>,
}

/// A running receiver.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    inner: Arc<Inner>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let r = Self {
            url,
            inner: Arc::new(Inner::default()),
        };
        r.set_mode(mode);
        let me = r.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                let svc = hyper::service::service_fn(move |req| {
                    let me = me.clone();
                    async move { Ok::<_, Infallible>(me.handle(req).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        r
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().expect("mode") = Some(mode);
    }

    fn mode(&self) -> Mode {
        self.inner.mode.lock().expect("mode").unwrap_or(Mode::Up)
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let n = self.inner.requests.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = req.into_parts();
        let raw = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let h = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let ts: i64 = h("x-hereabouts-timestamp").parse().unwrap_or(0);
        let got = h("x-hereabouts-signature");
        let expected = hereabouts::push::webhook::signature(super::infra::WEBHOOK_SECRET.as_bytes(), ts, &raw);
        let sender = {
            let mut senders = self.inner.senders.lock().expect("senders");
            let i = senders
                .iter()
                .position(|(secret, _, _)| hereabouts::push::webhook::signature(secret.as_bytes(), ts, &raw) == got);
            if let Some(i) = i {
                senders[i].1 += 1;
            }
            i
        };
        if got != expected && sender.is_none() {
            self.inner.bad_signature.fetch_add(1, Ordering::SeqCst);
            return answer(401);
        }
        // the scenarios are about arrivals; setting up their connections notifies too: those
        // pushes are answered at once, whatever the mode, and not counted
        let kind = serde_json::from_slice::<Value>(&raw).ok().map(|b| b["kind"].clone());
        if kind.is_some_and(|k| k != "connection_nearby") {
            return answer(204);
        }
        match self.mode() {
            Mode::Failing if n.is_multiple_of(2) => {
                self.inner.failed_500.fetch_add(1, Ordering::SeqCst);
                return answer(500);
            }
            Mode::Failing => {
                self.inner.hung.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(60)).await;
                return answer(504);
            }
            Mode::Slow(d) => tokio::time::sleep(d).await,
            Mode::Up => {}
        }
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let notification = body["id"].as_str().unwrap_or_default().to_string();
        *self
            .inner
            .delivered
            .lock()
            .expect("delivered")
            .entry(h("x-hereabouts-delivery"))
            .or_default() += 1;
        *self
            .inner
            .notifications
            .lock()
            .expect("notifications")
            .entry(notification)
            .or_default() += 1;
        self.inner.accepted_at.lock().expect("accepted").push(Instant::now());
        if let Some(i) = sender {
            self.inner.senders.lock().expect("senders")[i].2 += 1;
        }
        answer(204)
    }

    /// Also accepts requests signed with these secrets, counting them per secret.
    pub fn add_senders(&self, secrets: &[String]) {
        let mut senders = self.inner.senders.lock().expect("senders");
        senders.extend(secrets.iter().map(|s| (s.clone(), 0, 0)));
    }

    /// (requests, accepted) signed with each secret of [`Receiver::add_senders`], in order.
    pub fn by_sender(&self) -> Vec<(usize, usize)> {
        let senders = self.inner.senders.lock().expect("senders");
        senders.iter().map(|(_, r, a)| (*r, *a)).collect()
    }

    /// Distinct deliveries accepted, and how many were accepted more than once.
    pub fn deliveries(&self) -> (usize, usize) {
        let d = self.inner.delivered.lock().expect("delivered");
        (d.len(), d.values().filter(|n| **n > 1).count())
    }

    /// Distinct notifications accepted, and how many were accepted more than once (one device each).
    pub fn notifications(&self) -> (usize, usize) {
        let d = self.inner.notifications.lock().expect("notifications");
        (d.len(), d.values().filter(|n| **n > 1).count())
    }

    /// Requests accepted between `from` and `to`.
    pub fn accepted_between(&self, from: Instant, to: Instant) -> usize {
        self.inner
            .accepted_at
            .lock()
            .expect("accepted")
            .iter()
            .filter(|t| **t >= from && **t <= to)
            .count()
    }

    /// (answered 500, left hanging, bad signatures, all requests)
    pub fn failures(&self) -> (usize, usize, usize, usize) {
        (
            self.inner.failed_500.load(Ordering::SeqCst),
            self.inner.hung.load(Ordering::SeqCst),
            self.inner.bad_signature.load(Ordering::SeqCst),
            self.inner.requests.load(Ordering::SeqCst),
        )
    }
}

fn answer(status: u16) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).expect("status");
    r
}
