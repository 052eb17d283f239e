//! `/v1/trips*` and `/v1/calendar/*`: travel plans, their overlaps with connections, and
//! calendars (a secret feed, and import of `.ics` files).

use super::devices::ListQuery;
use super::error::{ApiError, ApiResult};
use super::extract::AuthUser;
use super::page_params;
use crate::service::trips::{
    self, Imported, NewTrip, Overlap, OverlapKind, OverlapTrip, Overlaps, Skipped, Trip, TripPatch, Visibility,
};
use crate::service::{Code, Ctx, ServiceError};
use crate::store::paging::Cursor;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

/// Largest calendar accepted by `POST /v1/trips/import`.
pub const MAX_ICS_BYTES: usize = 1024 * 1024;

pub fn config(cfg: &mut web::ServiceConfig) {
    // the literal paths before `/v1/trips/{id}`
    cfg.service(create_feed)
        .service(delete_feed)
        .service(import_trips)
        .service(create_trip)
        .service(list_trips)
        .service(get_trip)
        .service(patch_trip)
        .service(delete_trip)
        .service(trip_overlaps)
        .service(calendar_feed);
}

#[derive(OpenApi)]
#[openapi(
    paths(
        create_trip,
        list_trips,
        get_trip,
        patch_trip,
        delete_trip,
        trip_overlaps,
        create_feed,
        delete_feed,
        calendar_feed,
        import_trips
    ),
    components(schemas(
        Trip,
        NewTrip,
        TripPatch,
        Visibility,
        TripList,
        Overlaps,
        Overlap,
        OverlapKind,
        OverlapTrip,
        FeedUrl,
        Imported,
        Skipped
    ))
)]
pub struct Doc;

/// A page of trips by `starts_on`; `next_cursor` is null on the last page.
#[derive(Debug, Serialize, ToSchema)]
pub struct TripList {
    pub items: Vec<Trip>,
    pub next_cursor: Option<String>,
}

/// Where the caller's calendar feed is (keep it secret: whoever has it reads the feed).
#[derive(Debug, Serialize, ToSchema)]
pub struct FeedUrl {
    #[schema(example = "/v1/calendar/3q2-7wHhT0mR8n9xJk2lQd5sYb1cVf4gUo6pEa0zXiM.ics")]
    pub url: String,
}

/// `?tolerance_days=&radius_km=`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OverlapQuery {
    /// Near misses up to this many days count, 0 to 7 (default 1).
    #[param(minimum = 0, maximum = 7)]
    pub tolerance_days: Option<i64>,
    /// Between cell centres, 1 to 500 km (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub radius_km: Option<i64>,
}

/// Plans a trip. Others only ever learn its resolution-5 cell and dates. 422 when `ends_on`
/// is before `starts_on`, the trip lasts more than 90 days, `ends_on` is past or `starts_on`
/// more than 2 years ahead (`validation_failed`), or for coordinates out of range
/// (`invalid_coordinates`). Connections whose visible trips overlap (same dates, 50 km) are
/// notified, once per pair of trips.
#[utoipa::path(tag = "trips", security(("bearer" = [])), request_body = NewTrip, responses(
    (status = 201, body = Trip),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 413, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[post("/v1/trips")]
pub async fn create_trip(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    body: super::extract::Json<NewTrip>,
) -> ApiResult<HttpResponse> {
    let t = trips::create(&ctx, me.id, body.into_inner()).await?;
    Ok(HttpResponse::Created().json(t))
}

fn trip_cursor(t: &Trip) -> Option<String> {
    let d = crate::domain::trips::parse_date("starts_on", &t.starts_on).ok()?;
    Some(
        Cursor {
            at: d.midnight().assume_utc(),
            id: t.id,
        }
        .encode(),
    )
}

/// The caller's trips, by `starts_on`.
#[utoipa::path(tag = "trips", security(("bearer" = [])), params(ListQuery), responses(
    (status = 200, body = TripList),
    (status = 400, response = crate::http::error::Problem),
    (status = 401, response = crate::http::error::Problem),
    (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/trips")]
pub async fn list_trips(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    q: super::extract::Query<ListQuery>,
) -> ApiResult<web::Json<TripList>> {
    let (limit, cursor) = page_params(q.limit, q.cursor.as_deref())?;
    let after = cursor.map(|c| (c.at.date(), c.id));
    let (items, more) = trips::list(&ctx, me.id, limit, after).await?;
    Ok(web::Json(TripList {
        next_cursor: if more { items.last().and_then(trip_cursor) } else { None },
        items,
    }))
}

/// One of the caller's trips; 404 for anyone else's.
#[utoipa::path(tag = "trips", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "trip id")),
    responses(
        (status = 200, body = Trip),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/trips/{id}")]
pub async fn get_trip(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<web::Json<Trip>> {
    Ok(web::Json(trips::get(&ctx, me.id, id.into_inner()).await?))
}

/// Changes any subset of one of the caller's trips (validated as on creation); 404 for anyone
/// else's. New overlaps after a change of dates or place are notified as on creation.
#[utoipa::path(tag = "trips", security(("bearer" = [])), request_body = TripPatch,
    params(("id" = Uuid, Path, description = "trip id")),
    responses(
        (status = 200, body = Trip),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 413, response = crate::http::error::Problem),
        (status = 422, response = crate::http::error::Problem),
))]
#[patch("/v1/trips/{id}")]
pub async fn patch_trip(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    id: web::Path<Uuid>,
    body: super::extract::Json<TripPatch>,
) -> ApiResult<web::Json<Trip>> {
    Ok(web::Json(
        trips::update(&ctx, me.id, id.into_inner(), body.into_inner()).await?,
    ))
}

/// Deletes one of the caller's trips; 404 for anyone else's.
#[utoipa::path(tag = "trips", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "trip id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
))]
#[delete("/v1/trips/{id}")]
pub async fn delete_trip(ctx: web::Data<Ctx>, me: AuthUser, id: web::Path<Uuid>) -> ApiResult<HttpResponse> {
    trips::delete(&ctx, me.id, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Connections who will be there then: their `connections`-visible trips whose cell centre
/// lies within `radius_km` of this trip's and whose dates meet this trip's widened by
/// `tolerance_days` (`kind: trip`), and connections whose visible home cell lies within
/// `radius_km` (`kind: home`). Same exclusions as nearby. Sorted by `gap_days`, then
/// `distance_km`. 404 for anyone else's trip.
#[utoipa::path(tag = "trips", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "trip id"), OverlapQuery),
    responses(
        (status = 200, body = Overlaps),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 404, response = crate::http::error::Problem),
        (status = 422, response = crate::http::error::Problem),
))]
#[get("/v1/trips/{id}/overlaps")]
pub async fn trip_overlaps(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    id: web::Path<Uuid>,
    q: super::extract::Query<OverlapQuery>,
) -> ApiResult<web::Json<Overlaps>> {
    let (t, r) = trips::check_overlap_params(q.tolerance_days, q.radius_km)?;
    Ok(web::Json(trips::overlaps(&ctx, me.id, id.into_inner(), t, r).await?))
}

/// Makes the caller's secret calendar feed, or rotates it: the previous URL stops working.
#[utoipa::path(tag = "trips", security(("bearer" = [])), responses(
    (status = 201, body = FeedUrl),
    (status = 401, response = crate::http::error::Problem),
))]
#[post("/v1/trips/calendar-feed")]
pub async fn create_feed(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<HttpResponse> {
    let url = trips::create_feed(&ctx, me.id).await?;
    Ok(HttpResponse::Created().json(FeedUrl { url }))
}

/// Ends the caller's calendar feed (its URL answers 404 from now on).
#[utoipa::path(tag = "trips", security(("bearer" = [])), responses(
    (status = 204, description = "ended"),
    (status = 401, response = crate::http::error::Problem),
))]
#[delete("/v1/trips/calendar-feed")]
pub async fn delete_feed(ctx: web::Data<Ctx>, me: AuthUser) -> ApiResult<HttpResponse> {
    trips::delete_feed(&ctx, me.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calendar feed behind a secret URL (no token: the secret is the credential), as
/// `text/calendar`: an all-day VEVENT per trip of the owner (SUMMARY = name, GEO = the cell
/// centre) and one per overlapping trip of a connection. 404 for an unknown or rotated secret.
#[utoipa::path(tag = "trips",
    params(("file" = String, Path, description = "`<secret>.ics`")),
    responses(
        (status = 200, description = "RFC 5545 calendar", content_type = "text/calendar", body = String),
        (status = 404, response = crate::http::error::Problem),
))]
#[get("/v1/calendar/{file}")]
pub async fn calendar_feed(ctx: web::Data<Ctx>, file: web::Path<String>) -> ApiResult<HttpResponse> {
    let Some(secret) = file.strip_suffix(".ics") else {
        return Err(ApiError::not_found());
    };
    let ics = trips::feed(&ctx, secret).await?.ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "private, max-age=300"))
        .body(ics))
}

/// Imports an iCalendar file (`Content-Type: text/calendar`, at most 1 MiB, 413 past it; 415
/// for another type): each VEVENT with a `GEO` and a `DTSTART` becomes a trip (all-day, dates
/// in UTC; DTEND of a date is exclusive), visible to connections; importing the same UID again
/// updates that trip. Events that cannot be trips are listed in `skipped` with the reason.
#[utoipa::path(tag = "trips", security(("bearer" = [])),
    request_body(content = String, content_type = "text/calendar", description = "RFC 5545 calendar"),
    responses(
        (status = 200, body = Imported),
        (status = 400, response = crate::http::error::Problem),
        (status = 401, response = crate::http::error::Problem),
        (status = 413, response = crate::http::error::Problem),
        (status = 415, response = crate::http::error::Problem),
))]
#[post("/v1/trips/import")]
pub async fn import_trips(
    ctx: web::Data<Ctx>,
    me: AuthUser,
    req: HttpRequest,
    mut payload: web::Payload,
) -> ApiResult<web::Json<Imported>> {
    let is_calendar = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/calendar"));
    if !is_calendar {
        return Err(ApiError::refused(
            Code::UnsupportedMediaType,
            "the body must be text/calendar",
        ));
    }
    let too_large = || ApiError::refused(Code::PayloadTooLarge, "a calendar of at most 1 MiB");
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_ICS_BYTES) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| ServiceError::bad_request_in("body", "cannot read the body"))?;
        if body.len() + chunk.len() > MAX_ICS_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let text =
        std::str::from_utf8(&body).map_err(|_| ServiceError::bad_request_in("body", "the calendar must be UTF-8"))?;
    Ok(web::Json(trips::import(&ctx, me.id, text).await?))
}
