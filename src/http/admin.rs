//! `/v1/admin/*`: the operator's privacy controls. Every call requires an unsuspended admin
//! (re-checked in PostgreSQL) and is written to the audit log.

use super::error::{ApiError, ApiResult};
use super::extract::AdminUser;
use crate::domain::policy::Policy;
use crate::service::Ctx;
use crate::service::admin::{
    self, AdminUser as AdminUserView, AuditEntry, Effect, Page, PolicyChange, PolicyPatch, Stats, ZoneChange, ZoneView,
};
use crate::store::audit::AuditFilter;
use actix_web::{HttpResponse, delete, get, patch, post, put, web};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(get_policy)
        .service(patch_policy)
        .service(create_zone)
        .service(update_zone)
        .service(list_zones)
        .service(delete_zone)
        .service(search_users)
        .service(get_user)
        .service(suspend_user)
        .service(unsuspend_user)
        .service(purge_location)
        .service(export_user)
        .service(erase_user)
        .service(audit_log)
        .service(stats);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        get_policy,
        patch_policy,
        create_zone,
        update_zone,
        list_zones,
        delete_zone,
        search_users,
        get_user,
        suspend_user,
        unsuspend_user,
        purge_location,
        export_user,
        erase_user,
        audit_log,
        stats
    ),
    components(schemas(
        Policy,
        PolicyPatch,
        PolicyChange,
        Effect,
        ZoneView,
        ZoneChange,
        NewZone,
        AdminUserView,
        AuditEntry,
        Stats
    ))
)]
pub struct Doc;

/// A new restricted zone.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewZone {
    #[schema(example = "Embassy district", min_length = 1, max_length = 200)]
    pub name: String,
    /// GeoJSON Polygon or MultiPolygon: closed rings of at least 4 [lng, lat] positions, no self-intersection.
    #[schema(value_type = Object, example = json!({"type": "Polygon", "coordinates": [[[2.0, 48.0], [3.0, 48.0], [3.0, 49.0], [2.0, 48.0]]]}))]
    pub geometry: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UserSearch {
    /// Email prefix, case-insensitive.
    #[param(max_length = 254)]
    pub email: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (base64url).
    #[param(pattern = "^[A-Za-z0-9_-]{0,400}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (an entry number).
    #[param(pattern = "^[0-9]{0,18}$")]
    pub cursor: Option<String>,
    /// Entries about this user.
    pub target_user_id: Option<Uuid>,
    /// Entries by this administrator.
    pub actor_user_id: Option<Uuid>,
    /// Entries of this action (`user.suspend`, `policy.update`, …).
    #[param(max_length = 100, example = "user.suspend")]
    pub action: Option<String>,
    /// Entries at or after this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
}

impl AuditQuery {
    /// The filter, or 422 naming the field that is not a time or an action.
    fn filter(&self) -> ApiResult<AuditFilter> {
        use time::format_description::well_known::Rfc3339;
        let at = |name: &str, v: &Option<String>| -> ApiResult<Option<time::OffsetDateTime>> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(t) => time::OffsetDateTime::parse(t, &Rfc3339)
                    .map(Some)
                    .map_err(|_| ApiError::field(name, "must be an RFC 3339 time, e.g. 2026-12-01T08:00:00Z")),
            }
        };
        let action = self.action.as_deref().map(str::trim).filter(|a| !a.is_empty());
        if action.is_some_and(|a| a.chars().count() > 100) {
            return Err(ApiError::field("action", "at most 100 characters"));
        }
        Ok(AuditFilter {
            actor: self.actor_user_id,
            target: self.target_user_id,
            action: action.map(str::to_string),
            since: at("since", &self.since)?,
            until: at("until", &self.until)?,
        })
    }
}

fn limit(l: Option<i64>) -> ApiResult<i64> {
    let l = l.unwrap_or(50);
    if !(1..=500).contains(&l) {
        return Err(ApiError::field("limit", "must be in [1, 500]"));
    }
    Ok(l)
}

/// The current policy.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Policy),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
))]
#[get("/v1/admin/policy")]
pub async fn get_policy(ctx: web::Data<Ctx>, a: AdminUser) -> ApiResult<web::Json<Policy>> {
    Ok(web::Json(admin::get_policy(&ctx, a.id).await?))
}

/// Changes the policy. `location_sharing_enabled: false` ends every live check-in at once and
/// refuses new ones (re-enabled, users appear again only with a new check-in); a lower `max_ttl_s` shortens live check-ins; a coarser `min_precision`
/// re-publishes live users at once. The answer is the policy plus `effect`: how many live users
/// were re-published and removed from the index.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = PolicyPatch, responses(
    (status = 200, body = PolicyChange),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[patch("/v1/admin/policy")]
pub async fn patch_policy(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    body: super::extract::Json<PolicyPatch>,
) -> ApiResult<web::Json<PolicyChange>> {
    Ok(web::Json(admin::patch_policy(&ctx, a.id, body.into_inner()).await?))
}

/// Creates a restricted zone; live users inside it leave the index at once (`effect` counts them).
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = NewZone, responses(
    (status = 201, body = ZoneChange),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/admin/restricted-zones")]
pub async fn create_zone(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    body: super::extract::Json<NewZone>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    Ok(HttpResponse::Created().json(admin::create_zone(&ctx, a.id, &b.name, b.geometry).await?))
}

/// Replaces a zone's name and geometry; live users are re-published under its new shape at once.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = NewZone, responses(
    (status = 200, body = ZoneChange),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[put("/v1/admin/restricted-zones/{id}")]
pub async fn update_zone(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    id: web::Path<Uuid>,
    body: super::extract::Json<NewZone>,
) -> ApiResult<web::Json<ZoneChange>> {
    let b = body.into_inner();
    Ok(web::Json(
        admin::update_zone(&ctx, a.id, id.into_inner(), &b.name, b.geometry).await?,
    ))
}

/// Every restricted zone.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Page<ZoneView>),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
))]
#[get("/v1/admin/restricted-zones")]
pub async fn list_zones(ctx: web::Data<Ctx>, a: AdminUser) -> ApiResult<web::Json<Page<ZoneView>>> {
    Ok(web::Json(admin::list_zones(&ctx, a.id).await?))
}

/// Deletes a zone; users inside it are indexed again at once.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "deleted"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/admin/restricted-zones/{id}")]
pub async fn delete_zone(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    admin::delete_zone(&ctx, a.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Users whose email starts with `email` (case-insensitive).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(UserSearch), responses(
    (status = 200, body = Page<AdminUserView>),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/admin/users")]
pub async fn search_users(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    q: super::extract::Query<UserSearch>,
) -> ApiResult<web::Json<Page<AdminUserView>>> {
    let email = q.email.clone().unwrap_or_default();
    if email.len() > 254 {
        return Err(ApiError::field("email", "at most 254 characters"));
    }
    Ok(web::Json(
        admin::search_users(&ctx, a.id, &email, limit(q.limit)?, q.cursor.as_deref()).await?,
    ))
}

/// One user.
#[utoipa::path(tag = "admin", operation_id = "admin_get_user", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = AdminUserView),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/admin/users/{id}")]
pub async fn get_user(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<web::Json<AdminUserView>> {
    Ok(web::Json(admin::get_user(&ctx, a.id, id.into_inner()).await?))
}

/// Suspends a user: out of the index, sessions revoked, no login or refresh, invisible everywhere.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "suspended"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[post("/v1/admin/users/{id}/suspend")]
pub async fn suspend_user(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    admin::set_suspended(&ctx, a.id, id.into_inner(), true).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Lifts a suspension.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "reinstated"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[post("/v1/admin/users/{id}/unsuspend")]
pub async fn unsuspend_user(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    admin::set_suspended(&ctx, a.id, id.into_inner(), false).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Purges a user's live location and check-in history.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "purged"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/admin/users/{id}/location")]
pub async fn purge_location(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    admin::purge_location(&ctx, a.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Everything stored about a user (as `/v1/me/export`).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 200, body = Object, description = "the export document"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/admin/users/{id}/export")]
pub async fn export_user(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    id: web::Path<Uuid>,
) -> ApiResult<web::Json<serde_json::Value>> {
    Ok(web::Json(admin::export_user(&ctx, a.id, id.into_inner()).await?))
}

/// Erases a user and everything about them, in both stores.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = Uuid, Path)), responses(
    (status = 204, description = "erased"),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/admin/users/{id}")]
pub async fn erase_user(ctx: web::Data<Ctx>, a: AdminUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    admin::erase_user(&ctx, a.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The audit log, newest first; every filter is optional and they combine.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(AuditQuery), responses(
    (status = 200, body = Page<AuditEntry>),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/admin/audit")]
pub async fn audit_log(
    ctx: web::Data<Ctx>,
    a: AdminUser,
    q: super::extract::Query<AuditQuery>,
) -> ApiResult<web::Json<Page<AuditEntry>>> {
    let filter = q.filter()?;
    Ok(web::Json(
        admin::audit_log(&ctx, a.id, &filter, limit(q.limit)?, q.cursor.as_deref()).await?,
    ))
}

/// Live figures for the operator's console: live users and the push queue (from PostgreSQL,
/// the whole deployment) and this instance's counters since it started (check-ins, nearby
/// queries, push deliveries sent, retried and failed); poll it and divide the differences by
/// the time between two readings for rates. Audited as every admin read.
#[utoipa::path(tag = "admin", security(("bearer" = [])), responses(
    (status = 200, body = Stats),
    (status = 401, response = crate::http::error::Problem),
    (status = 403, response = crate::http::error::Problem),
))]
#[get("/v1/admin/stats")]
pub async fn stats(ctx: web::Data<Ctx>, a: AdminUser) -> ApiResult<web::Json<Stats>> {
    Ok(web::Json(admin::stats(&ctx, a.id).await?))
}
