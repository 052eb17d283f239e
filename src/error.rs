//! The one error type of the HTTP layer.
//!
//! Every variant maps to a status and a stable machine-readable `code` and is written as RFC 9457
//! problem+json. Server-side failures (500) log their cause and answer an opaque body; a store that
//! does not answer in time is a 503 with `Retry-After`, never a hang or a 500.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Errors a handler can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("{1}")]
    Conflict(&'static str, &'static str),
    #[error("method not allowed")]
    MethodNotAllowed(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("{detail}")]
    Validation {
        code: &'static str,
        detail: String,
        errors: Vec<FieldError>,
    },
    #[error("rate limited")]
    RateLimited { retry_after_s: u64 },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
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
    /// A 422 `validation_failed` with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, message)])
    }

    /// A 422 `validation_failed` listing every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::Validation {
            code: "validation_failed",
            detail: "some fields are invalid".into(),
            errors,
        }
    }

    /// The stable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict(code, _) => code,
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Validation { code, .. } => code,
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Unauthorized => "missing or invalid credentials".into(),
            Self::NotFound => "no such resource".into(),
            Self::RateLimited { retry_after_s } => format!("too many requests; retry in {retry_after_s} s"),
            // the cause starts with what failed ("redis: ...", "postgres: ..."); only that part is shown
            Self::Unavailable(cause) => format!(
                "{} is not available; retry shortly",
                cause.split(':').next().unwrap_or("a store")
            ),
            Self::Internal(_) => "something went wrong on our side".into(),
            Self::Forbidden(d) => (*d).into(),
            other => other.to_string(),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let status = self.status_code();
        Problem {
            type_: format!("https://hereabouts.dev/problems/{}", self.code()),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_string(),
            errors: match self {
                Self::Validation { errors, .. } if !errors.is_empty() => Some(errors.clone()),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict(..) => StatusCode::CONFLICT,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::Internal(e) => tracing::error!(error = ?e, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "store unavailable"),
            _ => {}
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        match self {
            Self::RateLimited { retry_after_s } => {
                res.insert_header((header::RETRY_AFTER, retry_after_s.to_string()));
            }
            Self::Unavailable(_) => {
                res.insert_header((header::RETRY_AFTER, "1"));
            }
            Self::Unauthorized => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            Self::MethodNotAllowed(allow) => {
                res.insert_header((header::ALLOW, allow.as_str()));
            }
            _ => {}
        }
        res.json(self.problem())
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(cause) => Self::Unavailable(cause),
            crate::store::StoreError::Internal(e) => Self::Internal(e),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
