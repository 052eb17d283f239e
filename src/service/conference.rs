//! Events (conference mode): create, join with a code, leave, delete, and the people at the
//! event now. Who is "at" the event is decided on the server from each attendee's own live
//! check-in (the raw point, within the venue's radius, while the event runs); the answer says
//! only "here": no distance, no cell, no point.

use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::event::{self, NewEvent};
use crate::domain::geo::Coord;
use crate::domain::profile::ConnectionState;
use crate::store::conference::{self, EventRow, PresentRow};
use crate::store::paging::{Cursor, Page, page};
use crate::store::users::ProfileFields;
use crate::store::{live, privacy};
use rand::RngCore;
use time::OffsetDateTime;
use uuid::Uuid;

/// Join attempts per user a minute (a code is 8 characters of 31: guessing is hopeless at this rate).
const JOINS_PER_MIN: u32 = 30;

/// An event as stored; `join_code` is for its organiser's eyes only (the HTTP layer hides it
/// from everyone else).
pub type Event = EventRow;

/// A new event as sent.
pub struct EventInput {
    pub name: String,
    pub lat: f64,
    pub lng: f64,
    pub radius_m: i64,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

/// A person at the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub user_id: Uuid,
    pub display_name: String,
    pub fields: ProfileFields,
    pub connection: ConnectionState,
    /// When their live check-in (inside the venue) was recorded.
    pub since: OffsetDateTime,
}

fn new_join_code() -> ServiceResult<String> {
    let mut bytes = [0u8; 64];
    rand::rng().fill_bytes(&mut bytes);
    event::join_code(bytes).ok_or_else(|| ServiceError::internal(anyhow::anyhow!("join code: random bytes ran out")))
}

/// Creates an event organised by the caller, who attends it from the start.
pub async fn create(ctx: &Ctx, me: Uuid, input: EventInput) -> ServiceResult<Event> {
    let e: NewEvent = event::validate(
        &input.name,
        input.lat,
        input.lng,
        input.radius_m,
        input.starts_at,
        input.ends_at,
    )
    .map_err(ServiceError::invalid)?;
    let code = new_join_code()?;
    let row = conference::create(&ctx.db, me, &e, &code).await?;
    tracing::info!(event_id = %row.id, "event created");
    Ok(row)
}

/// The event for its organiser and attendees; 404 for anyone else.
pub async fn get(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<Event> {
    conference::visible(&ctx.db, me, id)
        .await?
        .ok_or_else(ServiceError::not_found)
}

/// The events the caller organises or attends, newest first.
pub async fn list(ctx: &Ctx, me: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<Event>> {
    Ok(conference::list(&ctx.db, me, limit, cursor).await?)
}

/// Joins an event with its code; an unknown event and a wrong code answer the same 404.
pub async fn join(ctx: &Ctx, me: Uuid, id: Uuid, code: &str) -> ServiceResult<()> {
    ctx.rate_limit(&format!("eventjoin:{me}"), JOINS_PER_MIN).await?;
    let code = event::normalise_join_code(code);
    if code.is_empty() || !conference::join(&ctx.db, me, id, &code).await? {
        return Err(ServiceError::not_found());
    }
    Ok(())
}

/// Stops attending an event (404 when the caller did not attend it).
pub async fn leave(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    if conference::leave(&ctx.db, me, id).await? {
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}

/// Deletes an event the caller organises (404 for anyone else).
pub async fn delete(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    if conference::delete(&ctx.db, me, id).await? {
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}

/// The attendees inside the venue now, newest check-in first, as the caller may see them: they
/// share, are not suspended, do not hide from the caller, and neither blocked the other. Only
/// for an attendee who is inside the venue during the event (409 `not_at_event` otherwise; 404
/// for whoever neither attends nor organises it).
pub async fn people(ctx: &Ctx, me: Uuid, id: Uuid, limit: i64, cursor: Option<Cursor>) -> ServiceResult<Page<Person>> {
    let ev = get(ctx, me, id).await?;
    let venue = Coord::stored(ev.lat, ev.lng);
    let radius = f64::from(ev.radius_m);
    let now = OffsetDateTime::now_utc();
    let here = |point: Coord| event::inside(venue, radius, ev.starts_at, ev.ends_at, point, now);
    let not_here = || {
        ServiceError::refused(
            Code::NotAtEvent,
            "only an attendee checked in inside the venue during the event sees who is there",
        )
    };
    if !ev.attending {
        return Err(not_here());
    }
    let (own, settings) = futures_util::try_join!(live::get(&ctx.db, me), privacy::get(&ctx.db, me))?;
    let sharing = settings.is_some_and(|p| p.is_sharing(now));
    match own {
        Some(row) if sharing && row.indexed && here(Coord::stored(row.lat, row.lng)) => {}
        _ => return Err(not_here()),
    }
    let bbox = event::bounding_box(venue, radius);
    // the box is a little wider than the venue: read batches until the page is full
    let want = usize::try_from(limit).unwrap_or(0) + 1;
    let mut kept: Vec<PresentRow> = Vec::with_capacity(want);
    let mut after = cursor;
    loop {
        let batch = conference::present(&ctx.db, me, id, bbox, after, limit + 1).await?;
        let full = batch.len() as i64 == limit + 1;
        after = batch.last().map(|r| Cursor {
            at: r.since,
            id: r.user_id,
        });
        kept.extend(batch.into_iter().filter(|r| here(Coord::stored(r.lat, r.lng))));
        if kept.len() >= want || !full {
            break;
        }
    }
    kept.truncate(want);
    let p = page(kept, limit, |r| Cursor {
        at: r.since,
        id: r.user_id,
    });
    Ok(Page {
        next: p.next,
        items: p
            .items
            .into_iter()
            .map(|r| Person {
                connection: ConnectionState::of(r.connected, r.incoming, r.outgoing),
                user_id: r.user_id,
                display_name: r.display_name,
                fields: r.profile,
                since: r.since,
            })
            .collect(),
    })
}
