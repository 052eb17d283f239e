//! The development provider (`HEREABOUTS_PUSH_DEV_LOG=true`): every push is written to the log
//! instead of being sent, and counts as delivered, so that a newcomer without provider
//! credentials sees what would go out. The line names the platform, the device, the kind and
//! the texts (a name and a rounded distance, never a place).

use super::{Outcome, Payload};
use crate::domain::device::Platform;
use uuid::Uuid;

/// Logs one push as it would be sent.
pub fn send(platform: Platform, device: Uuid, p: &Payload) -> Outcome {
    tracing::info!(
        platform = platform.as_str(),
        device = %device,
        delivery = %p.delivery_id,
        kind = p.kind,
        title = %p.message.title,
        body = %p.message.body,
        locale = p.message.locale,
        "push (development log, not sent)"
    );
    Outcome::Delivered
}
