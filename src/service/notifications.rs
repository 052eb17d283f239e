//! What the caller was notified of, and whether it reached a device.

use super::{Ctx, ServiceResult};
use crate::store::outbox::{self, NotificationRecord};
use crate::store::paging::{Cursor, Page};
use uuid::Uuid;

/// The caller's notifications, newest first, with their delivery state.
pub async fn list(ctx: &Ctx, me: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<NotificationRecord>> {
    Ok(outbox::list(&ctx.db, me, limit, cursor).await?)
}
