//! A radar stream (`GET /v1/nearby/stream`) read event by event, never panicking on a failure:
//! a scenario asks for the next event of a name within a bound and gets `None` past it.

use crate::client::{Api, User};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct Radar {
    resp: Option<reqwest::Response>,
    buf: String,
}

impl Radar {
    /// Opens the stream of `u` (a failed open gives a radar that never sends anything).
    pub async fn open(api: &Api, u: &User, radius_m: u32) -> Self {
        let resp = api
            .http
            .get(format!("{}/v1/nearby/stream?radius_m={radius_m}", api.base))
            .bearer_auth(&u.token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .ok()
            .filter(|r| r.status() == 200);
        Self {
            resp,
            buf: String::new(),
        }
    }

    /// The next event (name, data), waiting at most until `deadline`.
    async fn next(&mut self, deadline: Instant) -> Option<(String, Value)> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut data) = (String::from("message"), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some((event, serde_json::from_str(&data).unwrap_or(Value::Null)));
                }
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let resp = self.resp.as_mut()?;
            match tokio::time::timeout(left, resp.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The data of the next event named `name` within `within`.
    pub async fn until(&mut self, name: &str, within: Duration) -> Option<Value> {
        self.until_matching(name, within, |_| true).await
    }

    /// The data of the next event named `name` whose data passes `check`, within `within`.
    pub async fn until_matching(
        &mut self,
        name: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = Instant::now() + within;
        loop {
            let (event, data) = self.next(deadline).await?;
            if event == name && check(&data) {
                return Some(data);
            }
        }
    }
}
