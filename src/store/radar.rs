//! The live radar's fan-out on Redis pub/sub (sharded pub/sub on Redis Cluster: `SPUBLISH` /
//! `SSUBSCRIBE`, each channel hash-tagged so that it lives on one shard).
//!
//! Channels:
//! - one per resolution-3 H3 cell (a region of ~12,000 km²), `<prefix>:radar:{<cell>}`: the users
//!   whose published point moved inside it, with that point and its precision; an instance
//!   subscribes to the regions its streams' circles reach;
//! - `<prefix>:radar:{ids}`: the ids of every user who moved or changed, one message per batch;
//!   every instance subscribes, and wakes only the streams that show (or belong to) one of them.
//!
//! Messages are postcard bytes of `Vec<Change>`. A publisher sends one message per channel per
//! batch of check-ins. Subscriptions use a dedicated RESP3 connection whose pushes arrive on a
//! channel; the client subscribes again by itself after a reconnect.

use super::StoreResult;
use super::redis::Redis;
use h3o::{CellIndex, LatLng, Resolution};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{PushInfo, PushKind, Value};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;
use uuid::Uuid;

/// The resolution of region channels.
pub const REGION: Resolution = Resolution::Three;

/// One user's change as published.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub user: Uuid,
    /// The published point (`lat`, `lng`) and precision (0 exact, 1 approximate, 2 city), or
    /// none when the user left or changed what others see.
    pub point: Option<(f64, f64, u8)>,
}

/// The region (resolution-3 cell) of a point, if it is a valid one.
pub fn region_of(lat: f64, lng: f64) -> Option<CellIndex> {
    LatLng::new(lat, lng).ok().map(|p| p.to_cell(REGION))
}

/// The channel of a region.
pub fn region_channel(redis: &Redis, cell: CellIndex) -> String {
    redis.key(format_args!("radar:{{{cell}}}"))
}

/// The channel of every change's user id.
pub fn ids_channel(redis: &Redis) -> String {
    redis.key(format_args!("radar:{{ids}}"))
}

pub fn encode(changes: &[Change]) -> Vec<u8> {
    postcard::to_allocvec(changes).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Vec<Change> {
    postcard::from_bytes(bytes).unwrap_or_default()
}

/// Publishes each (channel, message) in one round trip (a pipeline of `PUBLISH` on one
/// server; concurrent `SPUBLISH` on a cluster, each routed to its channel's shard).
pub async fn publish(redis: &Redis, messages: Vec<(String, Vec<u8>)>) -> StoreResult<()> {
    let verb = if redis.is_cluster() { "SPUBLISH" } else { "PUBLISH" };
    let cmds = messages
        .into_iter()
        .map(|(channel, bytes)| {
            let mut c = redis::cmd(verb);
            c.arg(channel).arg(bytes);
            c
        })
        .collect();
    redis.run_many(cmds).await?;
    Ok(())
}

/// A subscribing connection (its pushes go to the sender it was made with).
pub enum Subscriber {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// Opens a subscribing RESP3 connection to the configured Redis; pushes (messages, and the
/// library's disconnection notices) go to `pushes`.
pub async fn subscriber(redis: &Redis, pushes: UnboundedSender<PushInfo>) -> StoreResult<Subscriber> {
    let t = redis.timeout();
    if redis.is_cluster() {
        let client = redis::cluster::ClusterClientBuilder::new(redis.urls().to_vec())
            .use_protocol(redis::ProtocolVersion::RESP3)
            .push_sender(pushes)
            .connection_timeout(t)
            .response_timeout(t)
            .build()?;
        let conn = super::bounded(t, "redis subscribe", client.get_async_connection()).await?;
        return Ok(Subscriber::Cluster(conn));
    }
    let mut info: redis::ConnectionInfo = redis.urls()[0].as_str().parse()?;
    info.redis.protocol = redis::ProtocolVersion::RESP3;
    let client = redis::Client::open(info)?;
    let cfg = ConnectionManagerConfig::new()
        .set_push_sender(pushes)
        .set_automatic_resubscription()
        .set_connection_timeout(t)
        .set_response_timeout(t);
    let conn = super::bounded(t, "redis subscribe", ConnectionManager::new_with_config(client, cfg)).await?;
    Ok(Subscriber::Single(conn))
}

impl Subscriber {
    /// Subscribes to `channels` (nothing to do for none).
    pub async fn subscribe(&mut self, channels: &[String], timeout: std::time::Duration) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Subscriber::Single(c) => super::bounded(timeout, "redis subscribe", c.subscribe(channels)).await,
            Subscriber::Cluster(c) => {
                // one command per channel: each goes to its own shard
                for ch in channels {
                    super::bounded(timeout, "redis subscribe", c.ssubscribe(ch)).await?;
                }
                Ok(())
            }
        }
    }

    /// Unsubscribes from `channels`.
    pub async fn unsubscribe(&mut self, channels: &[String], timeout: std::time::Duration) -> StoreResult<()> {
        if channels.is_empty() {
            return Ok(());
        }
        match self {
            Subscriber::Single(c) => super::bounded(timeout, "redis unsubscribe", c.unsubscribe(channels)).await,
            Subscriber::Cluster(c) => {
                for ch in channels {
                    super::bounded(timeout, "redis unsubscribe", c.sunsubscribe(ch)).await?;
                }
                Ok(())
            }
        }
    }
}

/// The channel and payload of a pushed message; `None` for other pushes.
pub fn message(push: &PushInfo) -> Option<(String, Vec<u8>)> {
    if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
        return None;
    }
    let text = |v: &Value| match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    };
    let channel = String::from_utf8(text(push.data.first()?)?).ok()?;
    Some((channel, text(push.data.get(1)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip() {
        let c = vec![
            Change {
                user: Uuid::new_v4(),
                point: Some((48.85, 2.35, 1)),
            },
            Change {
                user: Uuid::new_v4(),
                point: None,
            },
        ];
        assert_eq!(decode(&encode(&c)), c);
        assert!(decode(b"garbage").is_empty());
    }
}
