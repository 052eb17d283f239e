//! Sharing exactly with one connection for a while: until `expires_at` the recipient sees the
//! giver at `exact` precision in nearby, whatever the giver's own precision (the policy's
//! minimum precision still wins). Either side ends it; so do expiry, a block, a removed
//! connection, the recipient joining the giver's hidden list, a pause and sharing off.

use super::{Ctx, ServiceError, ServiceResult};
use crate::domain::geo::Coord;
use crate::domain::nearby::LiveRecord;
use crate::domain::policy::Precision;
use crate::store::shares::{self as store, ShareRecord};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Shortest and longest share, in seconds.
pub const DURATION_S: (i64, i64) = (300, 86_400);

/// A share as both sides see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Share {
    pub id: Uuid,
    pub from_user_id: Uuid,
    pub to_user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<ShareRecord> for Share {
    fn from(s: ShareRecord) -> Self {
        Self {
            id: s.id,
            from_user_id: s.from_user_id,
            to_user_id: s.to_user_id,
            expires_at: s.expires_at,
            created_at: s.created_at,
        }
    }
}

/// A new share.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewShare {
    pub to_user_id: Uuid,
    /// 300 to 86400.
    #[schema(minimum = 300, maximum = 86400, example = 3600)]
    pub duration_s: i64,
}

/// Starts a share with a connection (404 for anyone else); a share to the same person again
/// replaces the running one.
pub async fn create(ctx: &Ctx, me: Uuid, s: NewShare) -> ServiceResult<Share> {
    if !(DURATION_S.0..=DURATION_S.1).contains(&s.duration_s) {
        return Err(ServiceError::field("duration_s", "must be in [300, 86400]"));
    }
    if s.to_user_id == me {
        return Err(ServiceError::not_found());
    }
    let expires_at = OffsetDateTime::now_utc() + time::Duration::seconds(s.duration_s);
    let share = store::start(&ctx.db, &ctx.redis, me, s.to_user_id, expires_at)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    // the recipient's radars (and those that show the giver) look again
    ctx.checkins.changed(me, None);
    ctx.checkins.changed(s.to_user_id, None);
    Ok(share.into())
}

/// The caller's active shares, given or received.
pub async fn list(ctx: &Ctx, me: Uuid, given: bool) -> ServiceResult<Vec<Share>> {
    Ok(store::list(&ctx.db, me, given)
        .await?
        .into_iter()
        .map(Share::from)
        .collect())
}

/// Ends a share the caller gave or received (404 otherwise).
pub async fn end(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    if store::end(&ctx.db, &ctx.redis, me, id).await? {
        // the caller's radars look again, and those that show the caller: the recipient's, when
        // the caller gave it
        ctx.checkins.changed(me, None);
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}

/// Whether exact shares show anything now: not when the policy's minimum precision is coarser.
pub fn exact_shares_apply(ctx: &Ctx) -> bool {
    ctx.controls.get().policy.min_precision == Precision::Exact
}

/// Nearby for a recipient of shares: the records of the givers among `records` whose share is
/// active (checked in PostgreSQL) carry the giver's own point, at `exact` precision, unless
/// the policy's minimum precision is coarser. Without givers (almost everyone) nothing is read.
pub async fn exact_for_recipient(
    ctx: &Ctx,
    recipient: Uuid,
    givers: Vec<Uuid>,
    records: Vec<(Uuid, LiveRecord)>,
) -> ServiceResult<Vec<(Uuid, LiveRecord)>> {
    if givers.is_empty() || !exact_shares_apply(ctx) {
        return Ok(records);
    }
    let listed: Vec<Uuid> = records
        .iter()
        .filter(|(id, _)| givers.contains(id))
        .map(|(id, _)| *id)
        .collect();
    if listed.is_empty() {
        return Ok(records);
    }
    let points = store::exact_points(&ctx.db, recipient, &listed).await?;
    let records = records
        .into_iter()
        .map(|(id, r)| match points.iter().find(|(g, _, _)| *g == id) {
            Some((_, lat, lng)) => (id, r.shown_exactly(Coord::stored(*lat, *lng))),
            None => (id, r),
        })
        .collect();
    Ok(records)
}
