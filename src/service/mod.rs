//! Use cases that span both stores (PostgreSQL first, then the Redis index), called by handlers,
//! background jobs and the CLI.

pub mod admin;
pub mod controls;
pub mod live;
pub mod nearby;
pub mod privacy;

use crate::startup::AppState;
use crate::store::{StoreResult, audit, graph, users};
use uuid::Uuid;

/// Refreshes what the index holds about a user after their profile changed (display name).
pub async fn profile_changed(state: &AppState, user: Uuid) -> StoreResult<()> {
    live::sync_user(state, user).await
}

/// Erases a user and everything about them from both stores; false when no such user.
pub async fn erase_user(state: &AppState, user: Uuid) -> StoreResult<bool> {
    live::leave(state, user).await?;
    graph::forget_user(&state.db, &state.redis, user).await?;
    state
        .redis
        .run::<()>(redis::cmd("DEL").arg(state.redis.key(format_args!("rl:checkin:{user}"))))
        .await?;
    let mut tx = state.db.begin().await?;
    audit::forget(&mut *tx, user).await?;
    let existed = users::delete(&mut *tx, user).await?;
    tx.commit().await?;
    // after the user row is gone: an arrival detection still in flight cannot write its outbox
    // rows any more and gives its cooldown keys back, so nothing is left behind
    crate::push::forget_user(state, user).await?;
    Ok(existed)
}
