//! Devices that receive pushes: their platform and the syntax of their tokens.

use super::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a device receives notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Hash, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Platform {
    Ios,
    Android,
    Webhook,
    /// A browser's Web Push subscription (RFC 8030; the token is its endpoint).
    Web,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::Webhook => "webhook",
            Platform::Web => "web",
        }
    }
}

fn token_error(message: &str) -> FieldError {
    FieldError::new("token", message)
}

/// Checks a provider token's syntax and gives its stored form. Webhook URLs and Web Push
/// endpoints are checked by the service (they need DNS); here they pass unchanged.
pub fn parse_token(platform: Platform, token: &str) -> Result<String, FieldError> {
    let token = token.trim();
    match platform {
        Platform::Ios => {
            // APNs tokens are hex (64 digits today); anything else Apple answers BadDeviceToken for
            if !(16..=200).contains(&token.len()) || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(token_error(
                    "an APNs device token is 16 to 200 letters and digits (hex)",
                ));
            }
            if token.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(token.to_ascii_lowercase())
            } else {
                Ok(token.to_string())
            }
        }
        Platform::Android => {
            if !(8..=4_096).contains(&token.len())
                || !token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':' | b'.'))
            {
                return Err(token_error(
                    "an FCM registration token is 8 to 4096 characters of [A-Za-z0-9-_:.]",
                ));
            }
            Ok(token.to_string())
        }
        Platform::Webhook | Platform::Web => Ok(token.to_string()),
    }
}

/// A language tag such as `en` or `fr-CA` (or none).
pub fn parse_locale(locale: Option<&str>) -> Result<Option<String>, FieldError> {
    match locale.map(str::trim) {
        None | Some("") => Ok(None),
        Some(l) if l.len() <= 35 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {
            Ok(Some(l.to_string()))
        }
        Some(_) => Err(FieldError::new("locale", "must be a language tag such as en or fr-CA")),
    }
}
