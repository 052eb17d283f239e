//! Extractors: the authenticated user (JWT), the admin (role re-checked in PostgreSQL), the client IP.

use super::error::ApiError;
use crate::domain::account::Role;
use crate::service::{Ctx, ServiceError, accounts};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::{LocalBoxFuture, Ready, ready};
use std::net::IpAddr;
use uuid::Uuid;

/// The caller, from a valid bearer access token.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    pub id: Uuid,
    pub role: Role,
    /// The session the token belongs to (tokens minted before sessions were named have none).
    pub session: Option<Uuid>,
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let ctx = req
        .app_data::<web::Data<Ctx>>()
        .ok_or_else(ServiceError::unauthorized)?;
    let claims = bearer(req)
        .and_then(|t| ctx.tokens.verify(t))
        .ok_or_else(ServiceError::unauthorized)?;
    // a session that ended ends its tokens; a suspended account may only read itself
    if claims.sid.is_some_and(|sid| ctx.sessions.is_ended(sid)) {
        return Err(ServiceError::unauthorized().into());
    }
    if ctx.sessions.is_suspended(claims.sub) && !readable_while_suspended(req) {
        return Err(ServiceError::suspended().into());
    }
    Ok(AuthUser {
        id: claims.sub,
        role: claims.role,
        session: claims.sid,
    })
}

/// What a suspended account may still do: read its account and export its data.
fn readable_while_suspended(req: &HttpRequest) -> bool {
    req.method() == actix_web::http::Method::GET && matches!(req.path(), "/v1/me" | "/v1/me/export")
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

/// An administrator: a valid token whose user is, right now in PostgreSQL, an unsuspended admin.
#[derive(Debug, Clone, Copy)]
pub struct AdminUser {
    pub id: Uuid,
}

impl FromRequest for AdminUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let auth = authenticate(req);
        let ctx = req.app_data::<web::Data<Ctx>>().cloned();
        Box::pin(async move {
            let auth = auth?;
            // a token that does not even claim the role is refused without a database round trip
            if auth.role != Role::Admin {
                return Err(ServiceError::forbidden("administrators only").into());
            }
            let ctx = ctx.ok_or_else(ServiceError::unauthorized)?;
            let user = accounts::me(&ctx, auth.id).await?;
            if user.suspended {
                return Err(ServiceError::suspended().into());
            }
            if user.role != Role::Admin {
                return Err(ServiceError::forbidden("administrators only").into());
            }
            Ok(AdminUser { id: user.id })
        })
    }
}

/// The client's IP: the peer address, or the first `X-Forwarded-For` hop when configured to trust it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let trust = req
            .app_data::<web::Data<Ctx>>()
            .map(|c| c.settings.trust_forwarded_for)
            .unwrap_or(false);
        let forwarded = trust
            .then(|| req.headers().get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse::<IpAddr>().ok());
        let ip = forwarded
            .or_else(|| req.peer_addr().map(|a| a.ip()))
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        ready(Ok(ClientIp(ip)))
    }
}
