//! The HTTP layer's error: a [`ServiceError`] (or a 405) written as RFC 9457 problem+json.
//!
//! Each [`Code`] maps to a status in [`status_of`], the one place where codes meet HTTP. Server-side failures (500) log their cause and answer an opaque body; a store that
//! does not answer in time is a 503 with `Retry-After`, never a hang or a 500.

use crate::domain::FieldError;
use crate::service::{Code, ServiceError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// Errors a handler answers with: a service refusal, or one of the few that only HTTP knows.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// A known path with another method: 405 with `Allow`.
    #[error("method not allowed")]
    MethodNotAllowed(String),
}

/// Problem details as written on the wire.
#[derive(Debug, Serialize, ToSchema, utoipa::ToResponse)]
#[response(
    description = "RFC 9457 problem details; `code` is stable",
    content_type = "application/problem+json"
)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "https://hereabouts.dev/problems/validation_failed")]
    pub type_: String,
    pub title: String,
    #[schema(example = 422)]
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    #[schema(example = "validation_failed")]
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

impl ApiError {
    /// 422 `validation_failed` with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        ServiceError::field(field, message).into()
    }

    /// 400 `bad_request`.
    pub fn bad_request(detail: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ServiceError::bad_request(detail).into()
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        ServiceError::not_found().into()
    }

    /// A refusal with a code of its own.
    pub fn refused(code: Code, detail: &'static str) -> Self {
        ServiceError::refused(code, detail).into()
    }

    /// The stable code of this error.
    pub fn code(&self) -> Code {
        match self {
            Self::Service(e) => e.code(),
            Self::MethodNotAllowed(_) => Code::MethodNotAllowed,
        }
    }

    fn detail(&self) -> String {
        match self {
            // the cause starts with what failed ("redis: ...", "postgres: ..."); only that part is shown
            Self::Service(ServiceError::Unavailable(cause)) => format!(
                "{} is not available; retry shortly",
                cause.split(':').next().unwrap_or("a store")
            ),
            Self::Service(ServiceError::RateLimited { retry_after_s }) => {
                format!("too many requests; retry in {retry_after_s} s")
            }
            Self::Service(ServiceError::Internal(_)) => "something went wrong on our side".into(),
            other => other.to_string(),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            type_: format!("https://hereabouts.dev/problems/{}", self.code().as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().as_str().to_string(),
            errors: match self {
                Self::Service(ServiceError::Refused { errors, .. }) if !errors.is_empty() => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

/// The status of each code: the one place where the service's codes meet HTTP.
pub fn status_of(code: Code) -> StatusCode {
    match code {
        Code::BadRequest => StatusCode::BAD_REQUEST,
        Code::Unauthorized => StatusCode::UNAUTHORIZED,
        Code::Forbidden => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        Code::EmailTaken
        | Code::SharingDisabled
        | Code::NoActiveCheckin
        | Code::NotIndexed
        | Code::NotAtEvent
        | Code::AlreadyConnected
        | Code::Blocked
        | Code::TooManyDevices
        | Code::SelfAction
        | Code::IdempotencyConflict => StatusCode::CONFLICT,
        Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::ValidationFailed | Code::InvalidCoordinates => StatusCode::UNPROCESSABLE_ENTITY,
        Code::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        status_of(self.code())
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Service(ServiceError::Internal(e)) => tracing::error!(error = ?e, "internal error"),
            Self::Service(ServiceError::Unavailable(cause)) => tracing::warn!(%cause, "store unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            Self::Service(ServiceError::RateLimited { retry_after_s }) => {
                res.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            Self::Service(ServiceError::Unavailable(_)) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::MethodNotAllowed(allow) => {
                res.insert_header((header::ALLOW, allow.as_str()));
            }
            _ if self.code() == Code::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            _ => {}
        }
        res.json(self.problem())
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
