//! The service layer's one error type and the table of stable error codes.
//!
//! A use case either answers or refuses with a [`ServiceError`]; a refusal carries a [`Code`]
//! (machine-readable, stable: clients branch on it) and a human detail. The HTTP layer turns each
//! code into a status in one place (`http::error`); nothing below it knows HTTP.

use crate::domain::FieldError;
use crate::store::StoreError;
use std::borrow::Cow;

macro_rules! codes {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal,)*) => {
        /// Every error code the API answers with, declared once.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $($(#[doc = $doc])* $name,)*
        }

        impl Code {
            /// All codes, in declaration order (the README's table is checked against it).
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code as written in problem documents.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => $text,)*
                }
            }

            /// What the code means (its doc comment; the spec's and `/docs`' table of codes).
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$name => concat!($($doc),*).trim_ascii(),)*
                }
            }
        }
    };
}

codes! {
    /// A body or query that cannot be parsed.
    BadRequest = "bad_request",
    /// Missing, malformed, expired or revoked credentials; a bad login.
    Unauthorized = "unauthorized",
    /// Authenticated but not allowed (not an admin, suspended).
    Forbidden = "forbidden",
    /// No such resource for this caller.
    NotFound = "not_found",
    /// A known path with another method (the answer says which in `Allow`).
    MethodNotAllowed = "method_not_allowed",
    /// The email is already registered.
    EmailTaken = "email_taken",
    /// Sharing is off or paused for the account, or disabled by the operator.
    SharingDisabled = "sharing_disabled",
    /// Nearby needs the caller's own live check-in.
    NoActiveCheckin = "no_active_checkin",
    /// The caller's live check-in is not indexed (a restricted zone).
    NotIndexed = "not_indexed",
    /// Event people are shown only to an attendee checked in inside the venue during the event.
    NotAtEvent = "not_at_event",
    /// The two users are already connected.
    AlreadyConnected = "already_connected",
    /// One of the two blocked the other (told to the blocker only: the blocked party gets 404 as for an unknown user).
    Blocked = "blocked",
    /// An administrator acted on their own account where that would lock them out.
    SelfAction = "self_action",
    /// A `client_id` used again with another request.
    IdempotencyConflict = "idempotency_conflict",
    /// The user already has the most devices allowed (`HEREABOUTS_PUSH_MAX_DEVICES_PER_USER`).
    TooManyDevices = "too_many_devices",
    /// The body is over the limit.
    PayloadTooLarge = "payload_too_large",
    /// The request's headers are over the limit (128 KiB).
    HeadersTooLarge = "headers_too_large",
    /// The body's content type is not accepted.
    UnsupportedMediaType = "unsupported_media_type",
    /// Well-formed but invalid values; `errors[]` names the fields.
    ValidationFailed = "validation_failed",
    /// Coordinates out of range or not finite.
    InvalidCoordinates = "invalid_coordinates",
    /// Too many requests; retry after `Retry-After` seconds.
    RateLimited = "rate_limited",
    /// PostgreSQL or Redis did not answer in time.
    Unavailable = "unavailable",
    /// A bug on our side (the body says nothing more).
    Internal = "internal",
}

/// Why a use case did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Refused: the request cannot be served as it is.
    #[error("{detail}")]
    Refused {
        code: Code,
        detail: Cow<'static, str>,
        errors: Vec<FieldError>,
    },
    /// Over a rate limit.
    #[error("rate limited")]
    RateLimited { retry_after_s: u64 },
    /// A store did not answer (the cause starts with which: "redis: …", "postgres: …").
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or an unexpected answer.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

/// Result of a use case.
pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    /// A refusal with a code and a detail.
    pub fn refused(code: Code, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
            errors: vec![],
        }
    }

    /// 404 `not_found`: no such resource for this caller.
    pub fn not_found() -> Self {
        Self::refused(Code::NotFound, "no such resource")
    }

    /// 401 `unauthorized`.
    pub fn unauthorized() -> Self {
        Self::refused(Code::Unauthorized, "missing or invalid credentials")
    }

    /// 403 `forbidden` with a reason.
    pub fn forbidden(detail: &'static str) -> Self {
        Self::refused(Code::Forbidden, detail)
    }

    /// The account is suspended.
    pub fn suspended() -> Self {
        Self::forbidden("this account is suspended")
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::refused(Code::BadRequest, detail)
    }

    /// 400 `bad_request` about one field (a value of the wrong type, a missing field).
    pub fn bad_request_in(field: &str, message: impl Into<String>) -> Self {
        let message: String = message.into().chars().take(200).collect();
        Self::Refused {
            code: Code::BadRequest,
            detail: format!("{field}: {message}").into(),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// 422 with a code of its own and the invalid fields.
    pub fn invalid_as(code: Code, detail: impl Into<Cow<'static, str>>, errors: Vec<FieldError>) -> Self {
        Self::Refused {
            code,
            detail: detail.into(),
            errors,
        }
    }

    /// 422 `validation_failed` listing every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::invalid_as(Code::ValidationFailed, "some fields are invalid", errors)
    }

    /// 422 `validation_failed` with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Refused { code, .. } => *code,
            Self::RateLimited { .. } => Code::RateLimited,
            Self::Unavailable(_) => Code::Unavailable,
            Self::Internal(_) => Code::Internal,
        }
    }

    /// An unexpected failure.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            StoreError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<FieldError> for ServiceError {
    fn from(e: FieldError) -> Self {
        Self::invalid(vec![e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_code_is_distinct_snake_case() {
        let texts: HashSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(texts.len(), Code::ALL.len());
        assert!(
            texts
                .iter()
                .all(|t| t.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }
}
