//! Where the caller's notifications go: registering, listing and deleting devices.

use super::{Code, Ctx, ServiceError, ServiceResult, net};
use crate::domain::FieldError;
use crate::domain::device::{Platform, parse_locale, parse_token};
use crate::store::devices::{self, DeviceRecord, Registered};
use crate::store::paging::{Cursor, Page};
use uuid::Uuid;

/// Checks a token for its platform and returns it normalised (APNs tokens lowercase).
/// Webhook URLs are resolved: every address must be public unless the settings allow private ones.
pub async fn validate_token(ctx: &Ctx, platform: Platform, token: &str) -> ServiceResult<String> {
    let token = parse_token(platform, token)?;
    if platform != Platform::Webhook {
        return Ok(token);
    }
    let url = net::check_webhook_url(&token, ctx.settings.push.webhook_allow_private)
        .await
        .map_err(|m| FieldError::new("token", m))?;
    Ok(url.to_string())
}

/// Registers (or re-registers) a device for the caller.
pub async fn register(
    ctx: &Ctx,
    me: Uuid,
    platform: Platform,
    token: &str,
    locale: Option<&str>,
) -> ServiceResult<DeviceRecord> {
    let locale = parse_locale(locale)?;
    let token = validate_token(ctx, platform, token).await?;
    let max = ctx.settings.push.max_devices_per_user;
    match devices::register(&ctx.db, me, platform, &token, locale.as_deref(), max).await? {
        Registered::Device(d) => {
            tracing::info!(user_id = %me, device = %d.id, platform = platform.as_str(), "device registered");
            Ok(d)
        }
        Registered::UserGone => Err(ServiceError::unauthorized()),
        Registered::TooMany => Err(ServiceError::refused(
            Code::TooManyDevices,
            "this account has as many devices as allowed; delete one first",
        )),
    }
}

/// The caller's devices, newest first.
pub async fn list(ctx: &Ctx, me: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<DeviceRecord>> {
    Ok(devices::list(&ctx.db, me, limit, cursor).await?)
}

/// Deletes one of the caller's devices (404 for another user's).
pub async fn delete(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    if devices::delete(&ctx.db, me, id).await? {
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}
