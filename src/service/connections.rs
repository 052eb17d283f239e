//! The connection graph: requests, connections, blocks and contact matching (PostgreSQL, with
//! the adjacency cache in Redis kept in step by the store).

use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::account::Email;
use crate::store::graph::{self, BlockRecord, ConnectionRecord, ContactMatch, Direction, RequestRecord};
use crate::store::paging::{Cursor, Page};
use uuid::Uuid;

/// Most hashes per contact match.
pub const MAX_CONTACT_HASHES: usize = 1_000;

/// Whom a request is for, as sent: exactly one of an id and an email.
pub enum Addressee {
    Id(Uuid),
    Email(String),
}

/// What asking did: a pending request, or a connection when the other had asked already.
pub enum Asked {
    /// The pending request (new, or the one already pending).
    Pending(RequestRecord),
    /// The other user had asked the caller: connected now.
    Connected(ConnectionRecord),
}

/// Asks another user for a connection, or connects at once when they already asked.
pub async fn request(ctx: &Ctx, me: Uuid, to: Addressee) -> ServiceResult<Asked> {
    let target = match to {
        Addressee::Id(id) => graph::Target::Id(id),
        Addressee::Email(e) => graph::Target::Email(Email::parse(&e)?),
    };
    use graph::RequestOutcome as O;
    match graph::request_connection(&ctx.db, &ctx.redis, me, &target).await? {
        O::Created(r) | O::Existing(r) => Ok(Asked::Pending(r)),
        O::Connected(c) => {
            announce(ctx, me, c.user_id);
            Ok(Asked::Connected(c))
        }
        O::UnknownUser => Err(ServiceError::not_found()),
        O::ToSelf => Err(ServiceError::field("to_user_id", "cannot connect with oneself")),
        O::Blocked => Err(ServiceError::refused(Code::Blocked, "one of you blocked the other")),
        O::AlreadyConnected => Err(ServiceError::refused(
            Code::AlreadyConnected,
            "you are already connected",
        )),
        O::CallerGone => Err(ServiceError::unauthorized()),
    }
}

/// Asks each of `targets` for a connection in bulk (a few statements per 500, never one round
/// trip per target); skips whoever is connected with the caller or has a request pending either
/// way, suspended users and blocked pairs. The users asked.
pub async fn request_many(ctx: &Ctx, me: Uuid, targets: &[Uuid]) -> ServiceResult<Vec<Uuid>> {
    Ok(graph::request_many(&ctx.db, me, targets).await?)
}

/// Pending requests addressed to the caller or sent by them, newest first.
pub async fn requests(
    ctx: &Ctx,
    me: Uuid,
    direction: Direction,
    limit: i64,
    cursor: Option<Cursor>,
) -> ServiceResult<Page<RequestRecord>> {
    Ok(graph::list_requests(&ctx.db, me, direction, limit, cursor).await?)
}

/// Accepts a request addressed to the caller (404 for anyone else).
pub async fn accept(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<ConnectionRecord> {
    let c = graph::accept_request(&ctx.db, &ctx.redis, me, id)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    announce(ctx, me, c.user_id);
    Ok(c)
}

/// Tells the live radars of both users (and those that show either) that who sees whom changed.
fn announce(ctx: &Ctx, a: Uuid, b: Uuid) {
    ctx.checkins.changed(a, None);
    ctx.checkins.changed(b, None);
}

/// Declines a request addressed to the caller (404 for anyone else).
pub async fn decline(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    found(graph::decline_request(&ctx.db, me, id).await?)
}

/// The caller's connections, newest first.
pub async fn list(ctx: &Ctx, me: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<ConnectionRecord>> {
    Ok(graph::list_connections(&ctx.db, me, limit, cursor).await?)
}

/// Removes a connection, for both users.
pub async fn remove(ctx: &Ctx, me: Uuid, peer: Uuid) -> ServiceResult<()> {
    found(graph::remove_connection(&ctx.db, &ctx.redis, me, peer).await?)?;
    // an exact share is between connections only
    crate::store::shares::end_between(&ctx.db, &ctx.redis, me, peer).await?;
    announce(ctx, me, peer);
    Ok(())
}

/// Blocks a user (idempotent).
pub async fn block(ctx: &Ctx, me: Uuid, other: Uuid) -> ServiceResult<()> {
    if other == me {
        return Err(ServiceError::field("user_id", "cannot block oneself"));
    }
    match graph::block(&ctx.db, &ctx.redis, me, other).await? {
        // a block ends the exact shares between the two at once
        graph::BlockOutcome::Blocked => {
            crate::store::shares::end_between(&ctx.db, &ctx.redis, me, other).await?;
            announce(ctx, me, other);
            Ok(())
        }
        graph::BlockOutcome::UnknownUser => Err(ServiceError::not_found()),
        graph::BlockOutcome::CallerGone => Err(ServiceError::unauthorized()),
    }
}

/// Lifts a block.
pub async fn unblock(ctx: &Ctx, me: Uuid, other: Uuid) -> ServiceResult<()> {
    found(graph::unblock(&ctx.db, me, other).await?)
}

/// The users the caller blocked, newest first.
pub async fn blocks(ctx: &Ctx, me: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<BlockRecord>> {
    Ok(graph::list_blocks(&ctx.db, me, limit, cursor).await?)
}

/// A hash as sent and the user it matched.
pub struct Matched {
    pub email_sha256: String,
    pub user: ContactMatch,
}

/// Which of the caller's contacts (SHA-256 hex of their normalised email) use the app and
/// allow being found by email.
pub async fn match_contacts(ctx: &Ctx, me: Uuid, sent: &[String]) -> ServiceResult<Vec<Matched>> {
    if sent.len() > MAX_CONTACT_HASHES {
        return Err(ServiceError::field("email_sha256", "at most 1000 hashes"));
    }
    // hash bytes -> the text the client sent (first one wins)
    let mut asked: std::collections::HashMap<Vec<u8>, &str> = std::collections::HashMap::with_capacity(sent.len());
    for (i, text) in sent.iter().enumerate() {
        match hex::decode(text) {
            Ok(bytes) if bytes.len() == 32 => {
                asked.entry(bytes).or_insert(text.as_str());
            }
            _ => {
                return Err(ServiceError::field(
                    &format!("email_sha256[{i}]"),
                    "must be 64 hexadecimal digits",
                ));
            }
        }
    }
    let hashes: Vec<Vec<u8>> = asked.keys().cloned().collect();
    let found = graph::match_contacts(&ctx.db, me, &hashes).await?;
    Ok(found
        .into_iter()
        .map(|m| Matched {
            email_sha256: asked
                .get(&m.email_sha256)
                .map_or_else(|| hex::encode(&m.email_sha256), |t| (*t).to_string()),
            user: m,
        })
        .collect())
}

fn found(existed: bool) -> ServiceResult<()> {
    if existed {
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}
