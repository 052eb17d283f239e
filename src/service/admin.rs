//! The operator's controls. Every call writes an audit entry — reads of personal data included —
//! in the same transaction as the change it records.

use super::Ctx;
use super::live;
use super::{ServiceError, ServiceResult};
use crate::domain::FieldError;
use crate::domain::policy::{COOLDOWN_RANGE, MAX_TTL_RANGE, Policy, Precision, RETENTION_RANGE};
use crate::domain::zones::parse_geometry;
use crate::store::{StoreError, admin, audit, jobs, policy};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Any subset of the policy.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PolicyPatch {
    pub location_sharing_enabled: Option<bool>,
    #[schema(minimum = 60, maximum = 604800)]
    pub max_ttl_s: Option<i64>,
    pub min_precision: Option<Precision>,
    #[schema(minimum = 0, maximum = 2592000)]
    pub notification_cooldown_s: Option<i64>,
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: Option<i64>,
}

/// A restricted zone.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneView {
    pub id: Uuid,
    pub name: String,
    /// GeoJSON Polygon or MultiPolygon.
    #[schema(value_type = Object)]
    pub geometry: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

/// A user as an administrator sees them: `User` plus account state.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: crate::domain::account::Role,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    pub suspended: bool,
    pub sharing: bool,
    pub has_live_location: bool,
}

impl From<admin::AdminUserRow> for AdminUser {
    fn from(r: admin::AdminUserRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            display_name: r.display_name,
            role: r.role,
            created_at: r.created_at,
            suspended: r.suspended,
            sharing: r.sharing,
            has_live_location: r.has_live_location,
        }
    }
}

/// An audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    #[schema(example = "1042")]
    pub id: String,
    pub actor_user_id: Option<Uuid>,
    #[schema(example = "user.suspend")]
    pub action: String,
    pub target_user_id: Option<Uuid>,
    /// For an erased target: one pseudonym for all entries about that user.
    #[schema(example = "erased-5b7c0d8e-3c2f-4a55-9f7e-0d1b2c3a4f5e")]
    pub target_ref: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// What a change did to the live users: one pass over all of them under the new controls.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Effect {
    /// Live users published under the new controls (moved, coarsened, shortened, or unchanged).
    pub republished: i64,
    /// Live users taken out of the index (kill switch, inside a restricted zone, not sharing).
    pub removed: i64,
}

/// The policy after a change, and what the change did to live users.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyChange {
    #[serde(flatten)]
    pub policy: Policy,
    /// `null` when the change cannot affect live users (cooldown, retention, a higher maximum
    /// TTL), so that no pass was made.
    pub effect: Option<Effect>,
}

/// A zone after it was created or changed, and what that did to live users.
#[derive(Debug, Serialize, ToSchema)]
pub struct ZoneChange {
    #[serde(flatten)]
    pub zone: ZoneView,
    pub effect: Effect,
}

/// Live figures: this instance's counters since it started (rates come from two readings),
/// and the deployment's live users and push queue from PostgreSQL.
#[derive(Debug, Serialize, ToSchema)]
pub struct Stats {
    /// When the figures were read.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
    /// Users live and indexed now (all instances).
    pub live_users: i64,
    /// Check-ins accepted by this instance since it started.
    pub checkins_total: u64,
    /// Nearby queries answered by this instance since it started.
    pub nearby_total: u64,
    /// Deliveries pending or being sent (all instances).
    pub push_queue_depth: i64,
    /// Age of the oldest pending delivery, in seconds (0 when none waits).
    pub push_oldest_pending_age_s: f64,
    /// Deliveries a provider accepted, by this instance since it started.
    pub push_sent_total: u64,
    /// Deliveries to try again later, by this instance since it started.
    pub push_retried_total: u64,
    /// Deliveries that failed for good, by this instance since it started.
    pub push_failed_total: u64,
    /// Deliveries that failed for good in the last hour (all instances).
    pub push_failed_last_hour: i64,
}

/// A page of items and the cursor of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

async fn begin(ctx: &Ctx) -> ServiceResult<Tx> {
    Ok(ctx.db.begin().await.map_err(StoreError::from)?)
}

async fn commit(tx: Tx) -> ServiceResult<()> {
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

pub async fn get_policy(ctx: &Ctx, actor: Uuid) -> ServiceResult<Policy> {
    let mut tx = begin(ctx).await?;
    audit::record(&mut *tx, actor, "policy.read", None, json!({})).await?;
    let p = policy::get(&ctx.db).await?;
    commit(tx).await?;
    Ok(p)
}

/// Runs a re-publishing pass now and tells what it did.
async fn republish(ctx: &Ctx, job: Uuid) -> ServiceResult<Effect> {
    live::republish_now(ctx, job).await?;
    let (republished, removed) = jobs::counts(&ctx.db, job).await?.unwrap_or((0, 0));
    Ok(Effect { republished, removed })
}

/// Changes the policy; its effects on live users apply at once on this instance and within the
/// refresh interval on every other.
pub async fn patch_policy(ctx: &Ctx, actor: Uuid, patch: PolicyPatch) -> ServiceResult<PolicyChange> {
    let mut errors = vec![];
    let mut check = |name: &str, v: Option<i64>, (lo, hi): (i32, i32)| -> Option<i32> {
        let v = v?;
        if v < i64::from(lo) || v > i64::from(hi) {
            errors.push(FieldError::new(name, format!("must be in [{lo}, {hi}]")));
            return None;
        }
        Some(v as i32)
    };
    let max_ttl = check("max_ttl_s", patch.max_ttl_s, MAX_TTL_RANGE);
    let cooldown = check("notification_cooldown_s", patch.notification_cooldown_s, COOLDOWN_RANGE);
    let retention = check("retention_days", patch.retention_days, RETENTION_RANGE);
    if !errors.is_empty() {
        return Err(ServiceError::invalid(errors));
    }
    let mut tx = begin(ctx).await?;
    let before = policy::get(&ctx.db).await?;
    let mut p = before.clone();
    if let Some(v) = patch.location_sharing_enabled {
        p.location_sharing_enabled = v;
    }
    if let Some(v) = max_ttl {
        p.max_ttl_s = v;
    }
    if let Some(v) = patch.min_precision {
        p.min_precision = v;
    }
    if let Some(v) = cooldown {
        p.notification_cooldown_s = v;
    }
    if let Some(v) = retention {
        p.retention_days = v;
    }
    policy::put(&mut *tx, &p).await?;
    audit::record(
        &mut *tx,
        actor,
        "policy.update",
        None,
        json!({"before": before, "after": p}),
    )
    .await?;
    let live_affected = p.location_sharing_enabled != before.location_sharing_enabled
        || p.max_ttl_s < before.max_ttl_s
        || p.min_precision != before.min_precision;
    let job = if live_affected {
        Some(jobs::enqueue(&mut *tx, "policy.update").await?)
    } else {
        None
    };
    commit(tx).await?;
    ctx.controls.reload(&ctx.db).await?;
    let effect = match job {
        Some(job) => Some(republish(ctx, job).await?),
        None => None,
    };
    Ok(PolicyChange { policy: p, effect })
}

/// A zone's name (trimmed) and geometry, or the field errors.
fn check_zone<'a>(name: &'a str, geometry: &serde_json::Value) -> ServiceResult<&'a str> {
    let name = name.trim();
    let mut errors = vec![];
    if name.is_empty() || name.chars().count() > 200 {
        errors.push(FieldError::new("name", "must be 1 to 200 characters"));
    }
    if let Err(e) = parse_geometry(geometry) {
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(ServiceError::invalid(errors));
    }
    Ok(name)
}

pub async fn create_zone(ctx: &Ctx, actor: Uuid, name: &str, geometry: serde_json::Value) -> ServiceResult<ZoneChange> {
    let name = check_zone(name, &geometry)?;
    let mut tx = begin(ctx).await?;
    let z = policy::insert_zone(&mut *tx, name, &geometry).await?;
    zone_changed(ctx, tx, actor, "zone.create", z).await
}

/// Replaces a zone's name and geometry; live users are re-published under the new shape at once.
pub async fn update_zone(
    ctx: &Ctx,
    actor: Uuid,
    id: Uuid,
    name: &str,
    geometry: serde_json::Value,
) -> ServiceResult<ZoneChange> {
    let name = check_zone(name, &geometry)?;
    let mut tx = begin(ctx).await?;
    let z = policy::update_zone(&mut *tx, id, name, &geometry)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    zone_changed(ctx, tx, actor, "zone.update", z).await
}

/// The end of a zone change: the audit entry and a re-publishing job in its transaction, then
/// the zones reloaded and live users re-published under them.
async fn zone_changed(
    ctx: &Ctx,
    mut tx: Tx,
    actor: Uuid,
    action: &str,
    z: policy::ZoneRow,
) -> ServiceResult<ZoneChange> {
    audit::record(&mut *tx, actor, action, None, json!({"zone_id": z.id, "name": z.name})).await?;
    let job = jobs::enqueue(&mut *tx, action).await?;
    commit(tx).await?;
    ctx.controls.reload(&ctx.db).await?;
    let effect = republish(ctx, job).await?;
    Ok(ZoneChange {
        zone: zone_view(z),
        effect,
    })
}

fn zone_view(z: policy::ZoneRow) -> ZoneView {
    ZoneView {
        id: z.id,
        name: z.name,
        geometry: z.geometry,
        created_at: z.created_at,
    }
}

pub async fn list_zones(ctx: &Ctx, actor: Uuid) -> ServiceResult<Page<ZoneView>> {
    let mut tx = begin(ctx).await?;
    audit::record(&mut *tx, actor, "zone.list", None, json!({})).await?;
    let zones = policy::zones(&ctx.db).await?;
    commit(tx).await?;
    Ok(Page {
        items: zones.into_iter().map(zone_view).collect(),
        next_cursor: None,
    })
}

pub async fn delete_zone(ctx: &Ctx, actor: Uuid, id: Uuid) -> ServiceResult<()> {
    let mut tx = begin(ctx).await?;
    if !policy::delete_zone(&mut *tx, id).await? {
        return Err(ServiceError::not_found());
    }
    audit::record(&mut *tx, actor, "zone.delete", None, json!({"zone_id": id})).await?;
    let job = jobs::enqueue(&mut *tx, "zone.delete").await?;
    commit(tx).await?;
    ctx.controls.reload(&ctx.db).await?;
    live::republish_now(ctx, job).await?;
    Ok(())
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

pub async fn search_users(
    ctx: &Ctx,
    actor: Uuid,
    email: &str,
    limit: i64,
    cursor: Option<&str>,
) -> ServiceResult<Page<AdminUser>> {
    let after = match cursor {
        None => None,
        Some(c) => Some(
            b64()
                .decode(c)
                .ok()
                .and_then(|b| serde_json::from_slice::<(String, Uuid)>(&b).ok())
                .ok_or_else(|| ServiceError::bad_request_in("cursor", "not a cursor of this list"))?,
        ),
    };
    let mut tx = begin(ctx).await?;
    audit::record(&mut *tx, actor, "user.search", None, json!({"email_prefix": email})).await?;
    let rows = admin::search(&mut *tx, email.trim(), after, limit + 1).await?;
    commit(tx).await?;
    let mut items: Vec<AdminUser> = rows.into_iter().map(AdminUser::from).collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .and_then(|u| serde_json::to_vec(&(u.email.to_lowercase(), u.id)).ok())
            .map(|b| b64().encode(b))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

pub async fn get_user(ctx: &Ctx, actor: Uuid, id: Uuid) -> ServiceResult<AdminUser> {
    let mut tx = begin(ctx).await?;
    let user = admin::user(&mut *tx, id).await?.ok_or_else(ServiceError::not_found)?;
    audit::record(&mut *tx, actor, "user.read", Some(id), json!({})).await?;
    commit(tx).await?;
    Ok(user.into())
}

/// Suspends (out of the index, sessions revoked, invisible everywhere) or reinstates a user.
pub async fn set_suspended(ctx: &Ctx, actor: Uuid, id: Uuid, suspended: bool) -> ServiceResult<()> {
    if suspended && id == actor {
        return Err(self_action());
    }
    let mut tx = begin(ctx).await?;
    if !admin::set_suspended(&mut *tx, id, suspended).await? {
        return Err(ServiceError::not_found());
    }
    if suspended {
        admin::revoke_all_tokens(&mut *tx, id).await?;
    }
    let action = if suspended { "user.suspend" } else { "user.unsuspend" };
    audit::record(&mut *tx, actor, action, Some(id), json!({})).await?;
    commit(tx).await?;
    // this instance refuses the account at once; the others within a poll
    ctx.sessions.set_suspended(id, suspended);
    if suspended {
        live::leave(ctx, id).await?;
    }
    Ok(())
}

/// Purges a user's live location and check-in history.
pub async fn purge_location(ctx: &Ctx, actor: Uuid, id: Uuid) -> ServiceResult<()> {
    let mut tx = begin(ctx).await?;
    admin::user(&mut *tx, id).await?.ok_or_else(ServiceError::not_found)?;
    admin::purge_history(&mut *tx, id).await?;
    audit::record(&mut *tx, actor, "user.purge_location", Some(id), json!({})).await?;
    commit(tx).await?;
    live::leave(ctx, id).await?;
    Ok(())
}

pub async fn export_user(ctx: &Ctx, actor: Uuid, id: Uuid) -> ServiceResult<serde_json::Value> {
    let doc = admin::export(&ctx.db, id).await?.ok_or_else(ServiceError::not_found)?;
    // what was read: each section, and how many items the lists held (never their contents)
    let read: serde_json::Map<String, serde_json::Value> = doc
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| !matches!(k.as_str(), "format" | "exported_at"))
        .map(|(k, v)| {
            let n = match v {
                serde_json::Value::Array(a) => json!(a.len()),
                serde_json::Value::Null => json!(0),
                _ => json!(1),
            };
            (k.clone(), n)
        })
        .collect();
    let detail = json!({"format": doc["format"], "sections": read});
    audit::record(&ctx.db, actor, "user.export", Some(id), detail).await?;
    Ok(doc)
}

/// Erases a user. The audit entry keeps no id of theirs (erasure is about forgetting them).
/// 409 `self_action`: an administrator cannot lock themself out through the admin API.
fn self_action() -> ServiceError {
    ServiceError::refused(
        super::Code::SelfAction,
        "administrators cannot suspend or erase their own account here",
    )
}

pub async fn erase_user(ctx: &Ctx, actor: Uuid, id: Uuid) -> ServiceResult<()> {
    if id == actor {
        return Err(self_action());
    }
    if admin::user(&ctx.db, id).await?.is_none() {
        return Err(ServiceError::not_found());
    }
    if let Some(pseudonym) = super::erase_user(ctx, id).await? {
        audit::record_about_erased(&ctx.db, actor, "user.erase", &pseudonym).await?;
    }
    Ok(())
}

/// The live figures (an audited read, as every admin read).
pub async fn stats(ctx: &Ctx, actor: Uuid) -> ServiceResult<Stats> {
    use crate::metrics::sum;
    let mut tx = begin(ctx).await?;
    audit::record(&mut *tx, actor, "stats.read", None, json!({})).await?;
    commit(tx).await?;
    let live_users = crate::store::live::count_indexed(&ctx.db).await?;
    let (push_queue_depth, push_oldest_pending_age_s) = crate::store::outbox::stats(&ctx.db).await?;
    let push_failed_last_hour = crate::store::outbox::failed_within(&ctx.db, 3_600.0).await?;
    let m = ctx.metrics.samples();
    let count = |v: f64| v.max(0.0) as u64;
    Ok(Stats {
        at: OffsetDateTime::now_utc(),
        live_users,
        checkins_total: count(sum(&m, "http_requests_total", |s| {
            s.label("route") == Some("/v1/checkins")
                && s.label("method") == Some("POST")
                && s.label("status").is_some_and(|c| c.starts_with('2'))
        })),
        nearby_total: count(sum(&m, "nearby_queries_total", |_| true)),
        push_queue_depth,
        push_oldest_pending_age_s,
        push_sent_total: count(sum(&m, "push_sent_total", |_| true)),
        push_retried_total: count(sum(&m, "push_retried_total", |_| true)),
        push_failed_total: count(sum(&m, "push_failed_total", |_| true)),
        push_failed_last_hour,
    })
}

/// The audit log, newest first, narrowed by `filter`; the read itself is audited with the filter.
pub async fn audit_log(
    ctx: &Ctx,
    actor: Uuid,
    filter: &audit::AuditFilter,
    limit: i64,
    cursor: Option<&str>,
) -> ServiceResult<Page<AuditEntry>> {
    let before = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ServiceError::bad_request_in("cursor", "not a cursor of this list"))?,
        ),
    };
    let mut detail = serde_json::Map::new();
    if let Some(a) = filter.actor {
        detail.insert("actor_user_id".into(), json!(a));
    }
    if let Some(a) = &filter.action {
        detail.insert("action".into(), json!(a));
    }
    for (key, t) in [("since", filter.since), ("until", filter.until)] {
        if let Some(t) = t.and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()) {
            detail.insert(key.into(), json!(t));
        }
    }
    let mut tx = begin(ctx).await?;
    audit::record(&mut *tx, actor, "audit.read", filter.target, detail.into()).await?;
    let rows = audit::list(&mut *tx, filter, before, limit + 1).await?;
    commit(tx).await?;
    let more = rows.len() as i64 > limit;
    let items: Vec<AuditEntry> = rows
        .into_iter()
        .take(limit as usize)
        .map(|r| AuditEntry {
            id: r.id.to_string(),
            actor_user_id: r.actor_user_id,
            action: r.action,
            target_user_id: r.target_user_id,
            target_ref: r.target_ref,
            detail: r.detail,
            at: r.at,
        })
        .collect();
    let next_cursor = if more { items.last().map(|e| e.id.clone()) } else { None };
    Ok(Page { items, next_cursor })
}
