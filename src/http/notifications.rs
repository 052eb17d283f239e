//! `/v1/notifications`: what the caller was notified of, and whether it reached a device.

use super::devices::ListQuery;
use super::error::ApiResult;
use super::extract::AuthUser;
use super::page_params;
use crate::service::{Ctx, notifications};
use crate::store::outbox::NotificationRecord;
use actix_web::{get, web};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(list_notifications);
}

#[derive(OpenApi)]
#[openapi(
    paths(list_notifications),
    components(schemas(Notification, NotificationList, NotificationKind, DeliveryState))
)]
pub struct Doc;

#[derive(Debug, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A connection's check-in brought them within the caller's `notify_radius_m`.
    ConnectionNearby,
    /// A connection's visible trip overlaps one of the caller's (`trip_id` is the caller's).
    TripOverlap,
}

/// Where a notification is: `delivered` once any device accepted it, `pending` while a delivery
/// is waiting or being retried, `failed` when every delivery gave up, `no_device` when the caller
/// had no active device at the time.
#[derive(Debug, Serialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Pending,
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
    /// Distance the caller's nearby list showed at the time, rounded by the actor's precision.
    #[schema(example = 1230)]
    pub distance_m: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub delivery: DeliveryState,
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
}

impl From<NotificationRecord> for Notification {
    fn from(n: NotificationRecord) -> Self {
        Self {
            id: n.id,
            kind: match n.kind.as_str() {
                "trip_overlap" => NotificationKind::TripOverlap,
                _ => NotificationKind::ConnectionNearby,
            },
            actor_user_id: n.actor_user_id,
            actor_display_name: n.actor_display_name,
            distance_m: i64::from(n.distance_m),
            created_at: n.created_at,
            delivery: match n.delivery.as_str() {
                "delivered" => DeliveryState::Delivered,
                "pending" => DeliveryState::Pending,
                "no_device" => DeliveryState::NoDevice,
                _ => DeliveryState::Failed,
            },
            trip_id: n.trip_id,
            overlap_from: n.overlap_from.map(crate::domain::trips::format_date),
            overlap_to: n.overlap_to.map(crate::domain::trips::format_date),
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
#[utoipa::path(tag = "notifications", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = NotificationList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/notifications")]
pub async fn list_notifications(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: web::Query<ListQuery>,
) -> ApiResult<web::Json<NotificationList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = notifications::list(&ctx, me.id, limit, cursor).await?;
    Ok(web::Json(NotificationList {
        next_cursor: page.next.as_ref().map(|c| c.encode()),
        items: page.items.into_iter().map(Notification::from).collect(),
    }))
}
