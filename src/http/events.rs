//! `/v1/events*`: conference mode — events with a venue and times, joined with a code, and the
//! attendees inside the venue now.

use super::error::ApiResult;
use super::extract::AuthUser;
use super::page_params;
use crate::domain::profile::ConnectionState;
use crate::service::Ctx;
use crate::service::conference::{self, EventInput};
use crate::store::paging::{Cursor, Page};
use actix_web::{HttpResponse, delete, get, post, web};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub fn config(cfg: &mut web::ServiceConfig) {
    cfg.service(create_event)
        .service(list_events)
        .service(get_event)
        .service(delete_event)
        .service(join_event)
        .service(leave_event)
        .service(event_people);
}

/// The OpenAPI paths of this module (merged into the whole document).
#[derive(OpenApi)]
#[openapi(
    paths(
        create_event,
        list_events,
        get_event,
        delete_event,
        join_event,
        leave_event,
        event_people
    ),
    components(schemas(CreateEvent, Event, EventList, JoinEvent, Person, PeopleList))
)]
pub struct Doc;

/// A new event.
#[derive(Deserialize, ToSchema)]
pub struct CreateEvent {
    #[schema(example = "Social Shake-Up", max_length = 100)]
    pub name: String,
    #[schema(example = 38.2527, minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(example = -85.7585, minimum = -180, maximum = 180)]
    pub lng: f64,
    /// The venue: this many metres around the point, 50 to 5000.
    #[schema(example = 300, minimum = 50, maximum = 5000)]
    pub radius_m: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// After `starts_at`, at most 14 days later.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
}

/// An event. `join_code` is shown to its organiser only.
#[derive(Serialize, ToSchema)]
pub struct Event {
    pub id: Uuid,
    #[schema(example = "Social Shake-Up")]
    pub name: String,
    pub lat: f64,
    pub lng: f64,
    pub radius_m: i32,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    pub organizer_id: Uuid,
    /// The code attendees join with (organiser only; absent for everyone else).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "K7QX2MPD")]
    pub join_code: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl Event {
    fn seen_by(e: conference::Event, viewer: Uuid) -> Self {
        Self {
            join_code: (e.organizer_id == viewer).then_some(e.join_code),
            id: e.id,
            name: e.name,
            lat: e.lat,
            lng: e.lng,
            radius_m: e.radius_m,
            starts_at: e.starts_at,
            ends_at: e.ends_at,
            organizer_id: e.organizer_id,
            created_at: e.created_at,
        }
    }
}

/// A page of events; `next_cursor` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct EventList {
    pub items: Vec<Event>,
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, ToSchema)]
pub struct JoinEvent {
    #[schema(example = "K7QX2MPD")]
    pub join_code: String,
}

/// An attendee inside the venue now. No distance, no cell, no point: only "here".
#[derive(Serialize, ToSchema)]
pub struct Person {
    pub user_id: Uuid,
    #[schema(example = "Alex")]
    pub display_name: String,
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
    pub connection: ConnectionState,
    /// When their check-in inside the venue was recorded.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub since: OffsetDateTime,
}

/// A page of people; `next_cursor` is null on the last page.
#[derive(Serialize, ToSchema)]
pub struct PeopleList {
    pub items: Vec<Person>,
    pub next_cursor: Option<String>,
}

/// `?limit=&cursor=`
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Items per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([A-Za-z0-9_-]{32})?$")]
    pub cursor: Option<String>,
}

fn next_cursor<T>(page: &Page<T>) -> Option<String> {
    page.next.as_ref().map(Cursor::encode)
}

/// Creates an event organised by the caller (who attends it from the start). The answer holds
/// the join code to hand out.
#[utoipa::path(tag = "events", security(("bearer" = [])), request_body = CreateEvent, responses(
    (status = 201, body = Event),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/events")]
pub async fn create_event(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<CreateEvent>,
) -> ApiResult<HttpResponse> {
    let b = body.into_inner();
    let e = conference::create(
        &ctx,
        me.id,
        EventInput {
            name: b.name,
            lat: b.lat,
            lng: b.lng,
            radius_m: b.radius_m,
            starts_at: b.starts_at,
            ends_at: b.ends_at,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(Event::seen_by(e, me.id)))
}

/// The events the caller organises or attends, newest first.
#[utoipa::path(tag = "events", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = EventList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/events")]
pub async fn list_events(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<EventList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = conference::list(&ctx, me.id, limit, cursor).await?;
    Ok(web::Json(EventList {
        next_cursor: next_cursor(&page),
        items: page.items.into_iter().map(|e| Event::seen_by(e, me.id)).collect(),
    }))
}

/// An event, for its attendees and organiser (anyone else: 404).
#[utoipa::path(tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "event id")),
    responses(
        (status = 200, body = Event),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/events/{id}")]
pub async fn get_event(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<web::Json<Event>> {
    let e = conference::get(&ctx, me.id, id.into_inner()).await?;
    Ok(web::Json(Event::seen_by(e, me.id)))
}

/// Deletes an event (its organiser only; anyone else: 404). Every attendance goes with it.
#[utoipa::path(tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "event id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/events/{id}")]
pub async fn delete_event(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    conference::delete(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Joins an event with its code (joining again changes nothing). A wrong code answers 404,
/// like an unknown event. Rate-limited per user.
#[utoipa::path(tag = "events", security(("bearer" = [])), request_body = JoinEvent,
    params(("id" = Uuid, Path, description = "event id")),
    responses(
        (status = 204, description = "attending"),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 429, response = crate::http::error::Problem),
))]
#[post("/v1/events/{id}/join")]
pub async fn join_event(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    id: web::Path<Uuid>,
    body: super::extract::Json<JoinEvent>,
) -> ApiResult<HttpResponse> {
    conference::join(&ctx, me.id, id.into_inner(), &body.join_code).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Stops attending an event (404 when the caller did not attend it).
#[utoipa::path(tag = "events", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "event id")),
    responses(
        (status = 204, description = "no longer attending"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/events/{id}/attendance")]
pub async fn leave_event(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    conference::leave(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The attendees inside the venue now (their own live check-in within `radius_m` of the event's
/// point, decided on the server, while the event runs) who share and neither hide from nor
/// block the caller, nor are blocked by the caller; newest check-in first. No distance, no cell.
/// Only for an attendee who is inside the venue during the event: 409 `not_at_event` otherwise.
#[utoipa::path(tag = "events", security(("bearer" = [])), params(("id" = Uuid, Path, description = "event id"), ListQuery),
    responses(
        (status = 200, body = PeopleList),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 409, response = crate::http::error::Problem),
        (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/events/{id}/people")]
pub async fn event_people(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    id: web::Path<Uuid>,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<PeopleList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let page = conference::people(&ctx, me.id, id.into_inner(), limit, cursor).await?;
    Ok(web::Json(PeopleList {
        next_cursor: next_cursor(&page),
        items: page
            .items
            .into_iter()
            .map(|p| Person {
                user_id: p.user_id,
                display_name: p.display_name,
                headline: p.fields.headline,
                company: p.fields.company,
                title: p.fields.title,
                avatar_url: p.fields.avatar_url,
                connection: p.connection,
                since: p.since,
            })
            .collect(),
    }))
}
