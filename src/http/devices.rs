//! `/v1/devices*`: where the caller's notifications go.

use super::error::ApiResult;
use super::extract::AuthUser;
use super::page_params;
use crate::domain::device::Platform;
use crate::service::devices::{WebSubscription, WebSubscriptionKeys};
use crate::service::{Ctx, devices};
use crate::store::devices::DeviceRecord;
use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(register_device)
        .service(list_devices)
        .service(delete_device)
        .service(vapid_public_key);
}

#[derive(OpenApi)]
#[openapi(
    paths(register_device, list_devices, delete_device, vapid_public_key),
    components(schemas(
        DeviceRequest,
        Device,
        DeviceList,
        Platform,
        WebSubscription,
        WebSubscriptionKeys,
        VapidKey
    ))
)]
pub struct Doc;

/// The server's VAPID public key.
#[derive(Debug, Serialize, ToSchema)]
pub struct VapidKey {
    /// The uncompressed P-256 point, base64url: the `applicationServerKey` of
    /// `PushManager.subscribe()`.
    #[schema(example = "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8")]
    pub key: String,
}

/// The key a browser subscribes with (RFC 8292 VAPID), for `platform: "web"` devices.
#[utoipa::path(tag = "devices", security(("bearer" = [])), responses(
    (status = 200, body = VapidKey),
    (status = 401, response = crate::http::error::Problem),
))]
#[get("/v1/push/vapid-public-key")]
pub async fn vapid_public_key(ctx: web::Data<Ctx>, _me: AuthUser) -> web::Json<VapidKey> {
    web::Json(VapidKey {
        key: ctx.vapid.public_key().to_string(),
    })
}

/// A device to register.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeviceRequest {
    pub platform: Platform,
    /// `ios`: the APNs device token (hex); `android`: the FCM registration token; `webhook`: an
    /// `https` URL whose host resolves to public addresses only (requests are signed, see the
    /// `x-hereabouts-signature` header). Not for `web`.
    #[schema(
        example = "740f4707bebcf74f9b7c25d48e3358945f6aa01da5ddb387462c7eaf61bb78ad",
        max_length = 4096
    )]
    pub token: Option<String>,
    /// `web` only: the browser's push subscription (`PushSubscription.toJSON()`), made with the
    /// key of `GET /v1/push/vapid-public-key`.
    pub subscription: Option<WebSubscription>,
    /// Language of the texts sent to this device (`en`, `fr`, `de`, `es`; a tag like `fr-CA`
    /// picks its language). Default: the server's default locale.
    #[schema(example = "fr-CA", max_length = 35)]
    pub locale: Option<String>,
}

/// A registered device (its token is never shown back).
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub id: Uuid,
    pub platform: Platform,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// False once the provider said the token is no longer valid (registering it again reactivates it).
    pub active: bool,
    pub locale: Option<String>,
}

impl From<DeviceRecord> for Device {
    fn from(d: DeviceRecord) -> Self {
        Self {
            id: d.id,
            platform: d.platform,
            created_at: d.created_at,
            active: d.active,
            locale: d.locale,
        }
    }
}

/// A page of devices; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceList {
    pub items: Vec<Device>,
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

/// Registers a device for the caller's notifications. Registering the same token again is
/// idempotent (the same device, reactivated); a token registered by another user moves to the
/// caller. 409 `too_many_devices` past the per-user limit; 422 for a malformed token or a
/// webhook URL that is not `https` or resolves to a private address.
#[utoipa::path(tag = "devices", security(("bearer" = [])), request_body = DeviceRequest, responses(
    (status = 201, body = Device),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 409, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
    (status = 503, response = crate::http::error::Problem),
))]
#[post("/v1/devices")]
pub async fn register_device(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<DeviceRequest>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let d = devices::register(
        &ctx,
        me.id,
        b.platform,
        b.token.as_deref(),
        b.subscription.as_ref(),
        b.locale.as_deref(),
    )
    .await?;
    Ok(HttpResponse::Created().json(Device::from(d)))
}

/// The caller's devices, newest first.
#[utoipa::path(tag = "devices", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = DeviceList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/devices")]
pub async fn list_devices(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<DeviceList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = devices::list(&ctx, me.id, limit, cursor).await?;
    Ok(web::Json(DeviceList {
        next_cursor: page.next.as_ref().map(|c| c.encode()),
        items: page.items.into_iter().map(Device::from).collect(),
    }))
}

/// Deletes one of the caller's devices (its undelivered notifications are not sent). 404 for
/// another user's device, as for one that does not exist.
#[utoipa::path(tag = "devices", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "device id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/devices/{id}")]
pub async fn delete_device(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    devices::delete(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
