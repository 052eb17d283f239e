//! What the caller was notified of, and whether it reached a device.

use super::{Ctx, ServiceResult};
use crate::store::outbox::{self, NotificationRecord};
use crate::store::paging::{Cursor, Page};
use uuid::Uuid;

/// The caller's notifications, newest first, with their delivery state.
pub async fn list(
    ctx: &Ctx,
    me: Uuid,
    unread: bool,
    limit: i64,
    cursor: Option<Cursor>,
) -> ServiceResult<Page<NotificationRecord>> {
    Ok(outbox::list(&ctx.db, me, unread, limit, cursor).await?)
}

/// Marks notifications read: by id (at most 500), or every one up to and including `up_to`.
pub async fn mark_read(ctx: &Ctx, me: Uuid, ids: Vec<Uuid>, up_to: Option<Uuid>) -> ServiceResult<()> {
    if ids.is_empty() && up_to.is_none() {
        return Err(super::ServiceError::field("ids", "give ids or up_to"));
    }
    if ids.len() > 500 {
        return Err(super::ServiceError::field("ids", "at most 500 ids"));
    }
    outbox::mark_read(&ctx.db, me, &ids, up_to).await?;
    Ok(())
}

/// Mutes or unmutes a connection: no notifications about them while muted. 404 for a
/// non-connection (muting only).
pub async fn set_muted(ctx: &Ctx, me: Uuid, other: Uuid, on: bool) -> ServiceResult<()> {
    if !outbox::set_muted(&ctx.db, me, other, on).await? {
        return Err(super::ServiceError::not_found());
    }
    Ok(())
}
