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

/// A JSON body of type `T`. Read as actix reads JSON (the app's `JsonConfig`: size limit,
/// content type, syntax), then typed with `serde_path_to_error`, so that a value of the wrong
/// type or a missing field answers 400 `bad_request` naming the field in `errors[]`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, actix_web::Error>>;
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move { Ok(Json(typed_json(body.await?.into_inner())?)) })
    }
}

/// Types a JSON value; a mismatch is a 400 naming the field (a JSON object only: serde would
/// also read a struct from an array of its fields).
pub fn typed_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ServiceError::bad_request_in("body", "the body must be a JSON object").into());
    }
    let mut value = value;
    integral_floats_as_integers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|e| {
        let field = field_of(&e.path().to_string(), &e.inner().to_string(), "body");
        ServiceError::bad_request_in(&field, e.inner().to_string()).into()
    })
}

/// `956.0` is the integer 956 in JSON Schema (what the spec's `type: integer` promises), while
/// serde reads only `956` into an integer: whole floats of magnitude below 2^53 become integers
/// (a float field reads them back unchanged).
fn integral_floats_as_integers(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() < 9_007_199_254_740_992.0
            {
                *v = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

/// The query string typed as `T`: a value that does not parse (`limit=abc`, an unknown enum
/// value) answers 400 `bad_request` naming the parameter in `errors[]`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T> Query<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::ops::Deref for Query<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: serde::de::DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(req.query_string().as_bytes()));
        ready(serde_path_to_error::deserialize(de).map(Query).map_err(|e| {
            let field = field_of(&e.path().to_string(), &e.inner().to_string(), "query");
            ServiceError::bad_request_in(&field, e.inner().to_string()).into()
        }))
    }
}

/// The field a deserialisation error is about: its path, or the field that serde names as
/// missing or unknown, or `whole` (the body, the query) when it is about no one field.
fn field_of(path: &str, message: &str, whole: &str) -> String {
    if !path.is_empty() && path != "." && path != "?" {
        return path.to_string();
    }
    ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.split_once(p).and_then(|(_, rest)| rest.split_once('`')))
        .map_or_else(|| whole.to_string(), |(name, _)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        limit: i64,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        lat: f64,
    }

    fn field(r: Result<Body, ApiError>) -> String {
        match r {
            Err(ApiError::Service(ServiceError::Refused { errors, .. })) => errors[0].field.clone(),
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn type_errors_name_their_field() {
        assert_eq!(field(typed_json(serde_json::json!({"limit": "x"}))), "limit");
        assert_eq!(
            field(typed_json(serde_json::json!({"limit": 1, "inner": {"lat": "x"}}))),
            "inner.lat"
        );
        assert_eq!(field(typed_json(serde_json::json!({}))), "limit");
        assert_eq!(field(typed_json(serde_json::json!([1]))), "body");
        assert_eq!(field_of(".", "invalid type", "query"), "query");
        let body: Body = typed_json(serde_json::json!({"limit": 956.0, "inner": {"lat": 48.0}})).expect("whole floats");
        assert_eq!(body.limit, 956);
        assert_eq!(field(typed_json(serde_json::json!({"limit": 1.5}))), "limit");
    }
}
