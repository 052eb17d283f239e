//! `/v1/nearby`: connections near the caller's own live point.

use super::error::ApiResult;
use super::extract::AuthUser;
use crate::domain::FieldError;
use crate::domain::cover::{MAX_RADIUS_M, MIN_RADIUS_M};
use crate::domain::nearby::Hit;
use crate::domain::policy::Precision;
use crate::service::Ctx;
use crate::service::ServiceError;
use crate::service::{nearby, stream};
use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{CacheControl, CacheDirective, ContentEncoding};
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_stream).service(get_nearby);
}

#[derive(OpenApi)]
#[openapi(
    paths(get_nearby, get_stream),
    components(schemas(NearbyResponse, NearbyItem, RadarEvent, RadarEventName))
)]
pub struct Doc;

#[derive(Debug, Deserialize, IntoParams)]
pub struct NearbyQuery {
    /// Radius in metres, [50, 200000], default 5000.
    #[param(minimum = 50, maximum = 200000, example = 5000)]
    pub radius_m: Option<i64>,
    /// At most this many items, [1, 500], default 50.
    #[param(minimum = 1, maximum = 500, example = 50)]
    pub limit: Option<i64>,
}

/// A connection near the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyItem {
    pub user_id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
    /// Geodesic distance to the published point, rounded to 10 / 100 / 1,000 m by precision.
    #[schema(example = 1230)]
    pub distance_m: u64,
    /// The least and greatest distance to the published cell, rounded down and up to the
    /// precision's step; both equal `distance_m` for `exact`.
    #[schema(example = json!([1200, 1300]))]
    pub distance_range_m: [u64; 2],
    pub precision: Precision,
    #[schema(example = "8928308280fffff")]
    pub h3_cell: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NearbyResponse {
    #[schema(example = 5000)]
    pub radius_m: i64,
    pub items: Vec<NearbyItem>,
}

/// Connections whose published point lies within `radius_m` of the caller's own live check-in,
/// nearest first. 409 `no_active_checkin` without one.
#[utoipa::path(tag = "nearby", security(("bearer" = [])), params(NearbyQuery), responses(
    (status = 200, body = NearbyResponse),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[get("/v1/nearby")]
pub async fn get_nearby(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<NearbyQuery>,
) -> ApiResult<web::Json<NearbyResponse>> {
    let radius = q.radius_m.unwrap_or(5_000);
    let limit = q.limit.unwrap_or(50);
    let mut errors = vec![];
    if !(MIN_RADIUS_M as i64..=MAX_RADIUS_M as i64).contains(&radius) {
        errors.push(FieldError::new("radius_m", "must be in [50, 200000]"));
    }
    if !(1..=500).contains(&limit) {
        errors.push(FieldError::new("limit", "must be in [1, 500]"));
    }
    if !errors.is_empty() {
        return Err(ServiceError::invalid(errors).into());
    }
    let answer = nearby::nearby(&ctx, me.id, radius as f64, limit as usize).await?;
    Ok(web::Json(NearbyResponse {
        radius_m: radius,
        items: answer.hits.iter().map(NearbyItem::from).collect(),
    }))
}

impl From<&Hit> for NearbyItem {
    fn from(h: &Hit) -> Self {
        NearbyItem {
            user_id: h.user_id,
            display_name: h.record.display_name.clone(),
            headline: h.record.profile.headline.clone(),
            company: h.record.profile.company.clone(),
            title: h.record.profile.title.clone(),
            avatar_url: h.record.profile.avatar_url.clone(),
            distance_m: h.distance_m,
            distance_range_m: [h.distance_range_m.0, h.distance_range_m.1],
            precision: h.record.precision,
            h3_cell: h.record.cell.clone(),
            last_seen_at: OffsetDateTime::from_unix_timestamp(h.record.recorded_at)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            expires_at: OffsetDateTime::from_unix_timestamp_nanos(i128::from(h.record.expires_at_ms) * 1_000_000)
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct StreamQuery {
    /// Radius in metres, [50, 200000], default 5000.
    #[param(minimum = 50, maximum = 200000, example = 5000)]
    pub radius_m: Option<i64>,
}

/// The live radar (Server-Sent Events). First an event `snapshot` (data: the `/v1/nearby`
/// body), then `enter` (an item), `move` (an item whose distance or cell changed) and `leave`
/// (`{"user_id"}`), each with an increasing `id`; finally `end`
/// (`{"reason"}`: `not_sharing`, `kill_switch`, `session_ended`). A keep-alive comment every 5 s
/// also tells the server soon when the client has gone (its slot is then given back). A reconnect with
/// `Last-Event-ID` starts with a fresh snapshot. 409 `no_active_checkin` without a live
/// check-in; 429 past `HEREABOUTS_MAX_STREAMS_PER_USER` open streams.
#[utoipa::path(tag = "nearby", security(("bearer" = [])), params(StreamQuery), responses(
    (status = 200, description = "an event stream", content_type = "text/event-stream", body = RadarEvent),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 429, response = crate::http::error::Problem),
))]
#[get("/v1/nearby/stream")]
pub async fn get_stream(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    req: actix_web::HttpRequest,
    q: super::extract::Query<StreamQuery>,
) -> ApiResult<HttpResponse> {
    let radius = q.radius_m.unwrap_or(5_000);
    if !(MIN_RADIUS_M as i64..=MAX_RADIUS_M as i64).contains(&radius) {
        return Err(ServiceError::field("radius_m", "must be in [50, 200000]").into());
    }
    let after = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let radar = stream::open(ctx.into_inner(), me.id, me.session, radius as f64, after).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(ContentEncoding::Identity)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(RadarBody {
            radar,
            radius_m: radius,
            rest: Bytes::new(),
            given: 0,
        }))
}

/// Bytes the radar's body gives the connection before it lets it write them: actix-http's
/// write buffer starts at 8 KiB and keeps whatever it grew to for the connection's life, so a
/// snapshot given whole (or many events at once) would make every open stream hold more.
const CHUNK: usize = 4 * 1024;

/// The radar's response body: it drives the stream ([`stream::Radar`] is polled here, no task
/// of its own) and frames each item as the event-stream format does, in chunks of at most
/// [`CHUNK`] bytes (cut between characters). Its drop — the client went — ends the stream.
struct RadarBody {
    radar: stream::Radar,
    radius_m: i64,
    /// What is left of the item being sent.
    rest: Bytes,
    /// Bytes given since the connection last wrote.
    given: usize,
}

impl MessageBody for RadarBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        if this.given >= CHUNK {
            // the connection writes what it holds (it polls again at once)
            this.given = 0;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if this.rest.is_empty() {
            match Pin::new(&mut this.radar).poll_next(cx) {
                Poll::Pending => {
                    this.given = 0;
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(item)) => this.rest = sse_bytes(item, this.radius_m),
            }
        }
        let mut n = this.rest.len().min(CHUNK - this.given);
        // a chunk ends between characters (clients that decode each chunk stay right)
        while n < this.rest.len() && n > 0 && (this.rest[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        if n == 0 {
            n = this.rest.len().min(CHUNK);
        }
        this.given += n;
        Poll::Ready(Some(Ok(this.rest.split_to(n))))
    }
}

/// One event of the live radar as the event-stream format frames it.
#[derive(ToSchema)]
pub struct RadarEvent {
    pub event: RadarEventName,
    /// JSON: the `/v1/nearby` body (`snapshot`), an item (`enter`, `move`), `{"user_id"}`
    /// (`leave`) or `{"reason"}` (`end`: `not_sharing`, `kill_switch`, `session_ended`).
    #[schema(content_media_type = "application/json")]
    pub data: String,
    /// Increasing; send the last one seen as `Last-Event-ID` when reconnecting.
    #[schema(pattern = "^[0-9]+$")]
    pub id: String,
}

/// The kinds of radar events.
#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RadarEventName {
    Snapshot,
    Enter,
    Move,
    Leave,
    End,
}

impl RadarEventName {
    fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Enter => "enter",
            Self::Move => "move",
            Self::Leave => "leave",
            Self::End => "end",
        }
    }
}

/// One stream item as the event-stream format frames it: `event`, `id`, one line of JSON
/// `data`; a keep-alive is a comment.
fn sse_bytes(item: stream::Item, radius_m: i64) -> Bytes {
    use RadarEventName as N;
    let (id, event) = match item {
        stream::Item::KeepAlive => return Bytes::from_static(b": keep-alive\n\n"),
        stream::Item::Event(id, event) => (id, event),
    };
    let name = match &event {
        stream::Event::Snapshot(_) => N::Snapshot,
        stream::Event::Enter(_) => N::Enter,
        stream::Event::Move(_) => N::Move,
        stream::Event::Leave(_) => N::Leave,
        stream::Event::End(_) => N::End,
    };
    let data = match event {
        stream::Event::Snapshot(hits) => serde_json::to_vec(&NearbyResponse {
            radius_m,
            items: hits.iter().map(NearbyItem::from).collect(),
        }),
        stream::Event::Enter(h) | stream::Event::Move(h) => serde_json::to_vec(&NearbyItem::from(&*h)),
        stream::Event::Leave(user_id) => serde_json::to_vec(&serde_json::json!({"user_id": user_id})),
        stream::Event::End(reason) => serde_json::to_vec(&serde_json::json!({"reason": reason.as_str()})),
    }
    .unwrap_or_else(|_| b"{}".to_vec());
    let head = format!("event: {}\nid: {id}\ndata: ", name.as_str());
    let mut out = Vec::with_capacity(head.len() + data.len() + 2);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(&data);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}
