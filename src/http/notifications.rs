//! `/v1/notifications`: what the caller was notified of, and whether it reached a device.

use super::error::ApiResult;
use super::extract::AuthUser;
use super::page_params;
use crate::service::{Ctx, notifications};
use crate::store::outbox::NotificationRecord;
use actix_web::{HttpResponse, delete, get, post, put, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(list_notifications)
        .service(mark_read)
        .service(mute)
        .service(unmute);
}

#[derive(OpenApi)]
#[openapi(
    paths(list_notifications, mark_read, mute, unmute),
    components(schemas(Notification, NotificationList, NotificationKind, DeliveryState, MarkRead))
)]
pub struct Doc;

#[derive(Debug, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A connection's check-in brought them within the caller's `notify_radius_m`.
    ConnectionNearby,
    /// Someone asked the caller for a connection (`request_id`: accept or decline it).
    ConnectionRequest,
    /// Someone accepted the caller's request, or asked back (`request_id`: the caller's request).
    ConnectionAccepted,
    /// A connection's visible trip overlaps one of the caller's (`trip_id` is the caller's).
    TripOverlap,
}

/// Where a notification is: `delivered` once any device accepted it, `pending` while a delivery
/// is waiting or being retried, `held` while it waits for the end of the caller's quiet hours,
/// `failed` when every delivery gave up (`delivery_error` says why), `no_device` when the caller
/// had no active device at the time.
#[derive(Debug, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
    Held,
    Delivered,
    Failed,
    NoDevice,
}

/// A notification sent to the caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Notification {
    pub id: Uuid,
    pub kind: NotificationKind,
    pub actor_user_id: Uuid,
    #[schema(example = "Alex")]
    pub actor_display_name: String,
    /// Distance the caller's nearby list showed at the time, rounded by the actor's precision
    /// (`trip_overlap`: between the trips' cell centres; 0 for the connection kinds).
    #[schema(example = 1230)]
    pub distance_m: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub delivery: DeliveryState,
    /// Why the last attempt did not reach a device (a failed delivery, or one waiting for a
    /// retry), in the provider's words without addresses or tokens; null otherwise.
    #[schema(example = "webhook 500")]
    pub delivery_error: Option<String>,
    /// `trip_overlap`: the caller's own trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trip_id: Option<Uuid>,
    /// `trip_overlap`: the first shared date (on a near miss, the nearest pair's first).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2027-03-02")]
    pub overlap_from: Option<String>,
    /// `trip_overlap`: the last shared date.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "2027-03-04")]
    pub overlap_to: Option<String>,
    /// `connection_request` / `connection_accepted`: the request it is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
    /// When the caller marked it read; null until then.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub read_at: Option<OffsetDateTime>,
}

impl From<NotificationRecord> for Notification {
    fn from(n: NotificationRecord) -> Self {
        Self {
            id: n.id,
            kind: match n.kind.as_str() {
                "trip_overlap" => NotificationKind::TripOverlap,
                "connection_request" => NotificationKind::ConnectionRequest,
                "connection_accepted" => NotificationKind::ConnectionAccepted,
                _ => NotificationKind::ConnectionNearby,
            },
            actor_user_id: n.actor_user_id,
            actor_display_name: n.actor_display_name,
            distance_m: i64::from(n.distance_m),
            created_at: n.created_at,
            delivery: match n.delivery.as_str() {
                "delivered" => DeliveryState::Delivered,
                "pending" => DeliveryState::Pending,
                "held" => DeliveryState::Held,
                "no_device" => DeliveryState::NoDevice,
                _ => DeliveryState::Failed,
            },
            delivery_error: n.delivery_error,
            trip_id: n.trip_id,
            overlap_from: n.overlap_from.map(crate::domain::trips::format_date),
            overlap_to: n.overlap_to.map(crate::domain::trips::format_date),
            read_at: n.read_at,
            request_id: n.request_id,
        }
    }
}

/// A page of notifications; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationList {
    pub items: Vec<Notification>,
    pub next_cursor: Option<String>,
}

/// The caller's notifications, newest first, with their delivery state.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(NotificationQuery), responses(
    (status = 200, body = NotificationList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/notifications")]
pub async fn list_notifications(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<NotificationQuery>,
) -> ApiResult<web::Json<NotificationList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = notifications::list(&ctx, me.id, q.unread.unwrap_or(false), limit, cursor).await?;
    Ok(web::Json(NotificationList {
        next_cursor: page.next.as_ref().map(|c| c.encode()),
        items: page.items.into_iter().map(Notification::from).collect(),
    }))
}

/// `?unread=&limit=&cursor=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationQuery {
    /// Only notifications not yet read.
    pub unread: Option<bool>,
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

/// Which notifications to mark read: `ids`, or every one up to and including `up_to`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRead {
    #[serde(default)]
    #[schema(max_items = 500)]
    pub ids: Vec<Uuid>,
    pub up_to: Option<Uuid>,
}

/// Marks notifications read (the caller's own; other ids are ignored).
#[utoipa::path(tag = "notifications", security(("bearer" = [])), request_body = MarkRead, responses(
    (status = 204, description = "marked read"),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/notifications/read")]
pub async fn mark_read(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<MarkRead>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    notifications::mark_read(&ctx, me.id, b.ids, b.up_to).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Mutes a connection: no notifications about them until unmuted. 404 for a non-connection.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(("user_id" = Uuid, Path)), responses(
    (status = 204, description = "muted"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[put("/v1/connections/{user_id}/mute")]
pub async fn mute(ctx: web::Data<Ctx>, me: AuthUser, user_id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    notifications::set_muted(&ctx, me.id, user_id.into_inner(), true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Unmutes a connection.
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(("user_id" = Uuid, Path)), responses(
    (status = 204, description = "not muted"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/connections/{user_id}/mute")]
pub async fn unmute(ctx: web::Data<Ctx>, me: AuthUser, user_id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    notifications::set_muted(&ctx, me.id, user_id.into_inner(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}
