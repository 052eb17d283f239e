//! Where the caller's notifications go: registering, listing and deleting devices.

use super::{Code, Ctx, ServiceError, ServiceResult, net};
use crate::domain::FieldError;
use crate::domain::device::{Platform, parse_locale, parse_token};
use crate::domain::webpush;
use crate::store::devices::{self, DeviceRecord, Registered};
use crate::store::paging::{Cursor, Page};
use base64::Engine;
use serde::Deserialize;
use utoipa::ToSchema;
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

/// A browser's push subscription, as `PushManager.subscribe()` gives it (`toJSON()`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct WebSubscription {
    /// The push service's URL for this browser (`https`).
    #[schema(example = "https://push.example.net/wpush/v2/gAAAAABk", max_length = 2048)]
    pub endpoint: String,
    pub keys: WebSubscriptionKeys,
}

/// The subscription's keys, base64url.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct WebSubscriptionKeys {
    /// The browser's P-256 public key (65 bytes, uncompressed).
    #[schema(example = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4")]
    pub p256dh: String,
    /// The 16-byte authentication secret.
    #[schema(example = "BTBZMqHH6r4Tts7J_aSIgg")]
    pub auth: String,
}

/// What identifies the device: a provider token, or (platform `web`) a push subscription.
pub enum Address<'a> {
    Token(Option<&'a str>),
    Web(Option<&'a WebSubscription>),
}

/// Registers (or re-registers) a device for the caller: `token` for `ios`, `android` and
/// `webhook`, `subscription` for `web` (its endpoint is checked as webhook URLs are).
pub async fn register(
    ctx: &Ctx,
    me: Uuid,
    platform: Platform,
    token: Option<&str>,
    subscription: Option<&WebSubscription>,
    locale: Option<&str>,
) -> ServiceResult<DeviceRecord> {
    let locale = parse_locale(locale)?;
    if platform != Platform::Web && subscription.is_some() {
        return Err(FieldError::new("subscription", "only for platform web").into());
    }
    let (token, keys) = if platform == Platform::Web {
        let s =
            subscription.ok_or_else(|| FieldError::new("subscription", "a web device needs its push subscription"))?;
        let keys = webpush::parse_keys(&s.keys.p256dh, &s.keys.auth)?;
        let url = net::check_webhook_url(&s.endpoint, ctx.settings.push.webhook_allow_private)
            .await
            .map_err(|m| FieldError::new("subscription.endpoint", m.replace("webhook URL", "push endpoint")))?;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        (url.to_string(), Some((b64(&keys.p256dh), b64(&keys.auth))))
    } else {
        let token = token.ok_or_else(|| FieldError::new("token", "required for this platform"))?;
        (validate_token(ctx, platform, token).await?, None)
    };
    let max = ctx.settings.push.max_devices_per_user;
    let keys = keys.as_ref().map(|(p, a)| (p.as_str(), a.as_str()));
    match devices::register(&ctx.db, me, platform, &token, locale.as_deref(), keys, max).await? {
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
