//! Travel plans: trips (validated, owner-only), the overlaps of a trip with the connections'
//! visible trips and home bases, `trip_overlap` notifications once per pair of trips, and the
//! calendar feed and import (RFC 5545).

use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::FieldError;
use crate::domain::geo::Coord;
use crate::domain::trips::{self as rules, Dates, RADIUS_KM, TOLERANCE_DAYS};
use crate::store::trips::{self as store, OverlapPair, TripRecord, TripWrite};
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use time::{Date, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who sees a trip (as its cell and dates): the owner's connections, or nobody.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Connections,
    Nobody,
}

impl Visibility {
    fn as_str(self) -> &'static str {
        match self {
            Self::Connections => "connections",
            Self::Nobody => "nobody",
        }
    }

    fn stored(s: &str) -> Self {
        if s == "nobody" { Self::Nobody } else { Self::Connections }
    }
}

/// A trip as its owner sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Trip {
    pub id: Uuid,
    #[schema(example = "Paris offsite")]
    pub name: Option<String>,
    pub lat: f64,
    pub lng: f64,
    /// The resolution-5 cell of the point: all that others ever learn of the place.
    #[schema(example = "851fb467fffffff")]
    pub h3_cell: String,
    #[schema(example = "2027-03-01")]
    pub starts_on: String,
    #[schema(example = "2027-03-05")]
    pub ends_on: String,
    pub visibility: Visibility,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<TripRecord> for Trip {
    fn from(t: TripRecord) -> Self {
        Self {
            id: t.id,
            name: t.name,
            lat: t.lat,
            lng: t.lng,
            h3_cell: t.h3_cell,
            starts_on: rules::format_date(t.starts_on),
            ends_on: rules::format_date(t.ends_on),
            visibility: Visibility::stored(&t.visibility),
            created_at: t.created_at,
        }
    }
}

/// A new trip.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTrip {
    pub name: Option<String>,
    #[schema(minimum = -90, maximum = 90, example = 38.7223)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180, example = -9.1393)]
    pub lng: f64,
    #[schema(example = "2027-03-01", format = Date, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub starts_on: String,
    #[schema(example = "2027-03-05", format = Date, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub ends_on: String,
    /// Default `connections`.
    pub visibility: Option<Visibility>,
}

fn some<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Any subset of a trip's fields (`name: null` clears the name).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TripPatch {
    #[serde(default, deserialize_with = "some")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[schema(minimum = -90, maximum = 90)]
    pub lat: Option<f64>,
    #[schema(minimum = -180, maximum = 180)]
    pub lng: Option<f64>,
    #[schema(format = Date, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub starts_on: Option<String>,
    #[schema(format = Date, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$")]
    pub ends_on: Option<String>,
    pub visibility: Option<Visibility>,
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

fn coord(lat: f64, lng: f64) -> ServiceResult<Coord> {
    Coord::new(lat, lng).map_err(|errors| {
        ServiceError::invalid_as(
            Code::InvalidCoordinates,
            "lat must be in [-90, 90] and lng in [-180, 180]",
            errors,
        )
    })
}

/// A home base to store: the point checked as a check-in's (422 `invalid_coordinates`), its
/// resolution-5 cell and that cell's centre.
pub fn home_write(lat: f64, lng: f64) -> ServiceResult<store::HomeWrite> {
    let p = coord(lat, lng)?;
    let cell = rules::trip_cell(p);
    let c = rules::centre(cell);
    Ok(store::HomeWrite {
        lat: p.lat(),
        lng: p.lng(),
        cell: cell.to_string(),
        centre_lat: c.lat(),
        centre_lng: c.lng(),
    })
}

fn write_of(name: Option<String>, p: Coord, dates: Dates, visibility: Visibility) -> TripWrite {
    let cell = rules::trip_cell(p);
    let c = rules::centre(cell);
    TripWrite {
        name: rules::clean_name(name.as_deref()),
        lat: p.lat(),
        lng: p.lng(),
        h3_cell: cell.to_string(),
        centre_lat: c.lat(),
        centre_lng: c.lng(),
        starts_on: dates.starts_on,
        ends_on: dates.ends_on,
        visibility: visibility.as_str().into(),
    }
}

fn parse_dates(starts_on: &str, ends_on: &str) -> ServiceResult<Dates> {
    let s = rules::parse_date("starts_on", starts_on);
    let e = rules::parse_date("ends_on", ends_on);
    match (s, e) {
        (Ok(s), Ok(e)) => Dates::new(s, e, today()).map_err(ServiceError::invalid),
        (s, e) => Err(ServiceError::invalid(
            [s.err(), e.err()].into_iter().flatten().collect::<Vec<FieldError>>(),
        )),
    }
}

/// Creates a trip; tells both owners of every overlapping visible trip of a connection.
pub async fn create(ctx: &Ctx, me: Uuid, t: NewTrip) -> ServiceResult<Trip> {
    let p = coord(t.lat, t.lng)?;
    let dates = parse_dates(&t.starts_on, &t.ends_on)?;
    let w = write_of(t.name, p, dates, t.visibility.unwrap_or(Visibility::Connections));
    let rec = store::insert(&ctx.db, me, &w).await?;
    notify_overlaps(ctx, me, std::slice::from_ref(&rec)).await;
    Ok(rec.into())
}

/// The caller's trips by `starts_on`, after `(starts_on, id)`.
pub async fn list(ctx: &Ctx, me: Uuid, limit: i64, after: Option<(Date, Uuid)>) -> ServiceResult<(Vec<Trip>, bool)> {
    let mut rows = store::list(&ctx.db, me, after, limit).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok((rows.into_iter().map(Trip::from).collect(), more))
}

/// One of the caller's trips (404 for anyone else's).
pub async fn get(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<Trip> {
    Ok(store::get(&ctx.db, me, id)
        .await?
        .ok_or_else(ServiceError::not_found)?
        .into())
}

/// Changes a trip; a change of dates or place (or becoming visible) looks for new overlaps.
pub async fn update(ctx: &Ctx, me: Uuid, id: Uuid, patch: TripPatch) -> ServiceResult<Trip> {
    let old = store::get(&ctx.db, me, id).await?.ok_or_else(ServiceError::not_found)?;
    let p = coord(patch.lat.unwrap_or(old.lat), patch.lng.unwrap_or(old.lng))?;
    let dates_changed = patch.starts_on.is_some() || patch.ends_on.is_some();
    let dates = if dates_changed {
        let s = patch.starts_on.unwrap_or_else(|| rules::format_date(old.starts_on));
        let e = patch.ends_on.unwrap_or_else(|| rules::format_date(old.ends_on));
        parse_dates(&s, &e)?
    } else {
        Dates::stored(old.starts_on, old.ends_on)
    };
    let visibility = patch.visibility.unwrap_or(Visibility::stored(&old.visibility));
    let name = match patch.name {
        Some(n) => n,
        None => old.name.clone(),
    };
    let w = write_of(name, p, dates, visibility);
    let rec = store::update(&ctx.db, me, id, &w)
        .await?
        .ok_or_else(ServiceError::not_found)?;
    let moved = rec.h3_cell != old.h3_cell;
    let newly_visible = rec.visibility != old.visibility;
    if moved || dates_changed || newly_visible {
        notify_overlaps(ctx, me, std::slice::from_ref(&rec)).await;
    }
    Ok(rec.into())
}

/// Deletes one of the caller's trips (404 for anyone else's).
pub async fn delete(ctx: &Ctx, me: Uuid, id: Uuid) -> ServiceResult<()> {
    if store::delete(&ctx.db, me, id).await? {
        Ok(())
    } else {
        Err(ServiceError::not_found())
    }
}

/// The place and dates of a connection's trip, as others may learn them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct OverlapTrip {
    pub h3_cell: String,
    #[schema(example = "2027-03-02")]
    pub starts_on: String,
    #[schema(example = "2027-03-06")]
    pub ends_on: String,
    pub name: Option<String>,
}

/// What kind of overlap: a connection's trip, or a connection who lives there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OverlapKind {
    Trip,
    Home,
}

/// A connection who will be there then.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overlap {
    pub user_id: Uuid,
    pub display_name: String,
    pub headline: Option<String>,
    pub company: Option<String>,
    pub kind: OverlapKind,
    /// The connection's trip (`kind: trip`), else null.
    pub trip: Option<OverlapTrip>,
    /// The first shared date; on a near miss, the earlier trip's last day.
    #[schema(example = "2027-03-02")]
    pub overlap_from: String,
    /// The last shared date; on a near miss, the later trip's first day.
    #[schema(example = "2027-03-05")]
    pub overlap_to: String,
    /// Days between the two date ranges, 0 when they overlap.
    pub gap_days: i64,
    /// Between the two cells' centres, rounded to 1 km.
    pub distance_km: i64,
}

/// `GET /v1/trips/{id}/overlaps` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Overlaps {
    pub items: Vec<Overlap>,
}

/// Most overlaps answered for one trip (the nearest in time, then space).
pub const MAX_OVERLAPS: usize = 1_000;

/// One overlap candidate with the pair of trips behind it (for notifications).
struct Found {
    item: Overlap,
    their_trip: Option<Uuid>,
}

async fn find(
    ctx: &Ctx,
    me: Uuid,
    trip: &TripRecord,
    tolerance: i64,
    radius_km: i64,
    homes: bool,
) -> ServiceResult<Vec<Found>> {
    let mine = Dates::stored(trip.starts_on, trip.ends_on);
    let here = rules::centre_of(&trip.h3_cell);
    let boxes = rules::search_boxes(here, radius_km as f64);
    let window = mine.widened(tolerance);
    let mut found = vec![];
    for c in store::candidates(&ctx.db, me, window.starts_on, window.ends_on, &boxes).await? {
        let d = rules::distance_km(here, rules::centre_of(&c.h3_cell));
        let m = rules::meeting(mine, Dates::stored(c.starts_on, c.ends_on));
        if d > radius_km || m.gap_days > tolerance {
            continue;
        }
        found.push(Found {
            their_trip: Some(c.id),
            item: Overlap {
                user_id: c.user_id,
                display_name: c.display_name,
                headline: None,
                company: None,
                kind: OverlapKind::Trip,
                trip: Some(OverlapTrip {
                    h3_cell: c.h3_cell,
                    starts_on: rules::format_date(c.starts_on),
                    ends_on: rules::format_date(c.ends_on),
                    name: c.name,
                }),
                overlap_from: rules::format_date(m.from),
                overlap_to: rules::format_date(m.to),
                gap_days: m.gap_days,
                distance_km: d,
            },
        });
    }
    if homes {
        for h in store::home_candidates(&ctx.db, me, &boxes).await? {
            let d = rules::distance_km(here, rules::centre_of(&h.home_cell));
            if d > radius_km {
                continue;
            }
            found.push(Found {
                their_trip: None,
                item: Overlap {
                    user_id: h.user_id,
                    display_name: h.display_name,
                    headline: None,
                    company: None,
                    kind: OverlapKind::Home,
                    trip: None,
                    overlap_from: rules::format_date(mine.starts_on),
                    overlap_to: rules::format_date(mine.ends_on),
                    gap_days: 0,
                    distance_km: d,
                },
            });
        }
    }
    found.sort_by(|a, b| {
        (a.item.gap_days, a.item.distance_km, a.item.user_id).cmp(&(
            b.item.gap_days,
            b.item.distance_km,
            b.item.user_id,
        ))
    });
    Ok(found)
}

/// Checks the overlap query's parameters (422 naming the field).
pub fn check_overlap_params(tolerance_days: Option<i64>, radius_km: Option<i64>) -> ServiceResult<(i64, i64)> {
    let t = tolerance_days.unwrap_or(TOLERANCE_DAYS.2);
    let r = radius_km.unwrap_or(RADIUS_KM.2);
    let mut errors = vec![];
    if !(TOLERANCE_DAYS.0..=TOLERANCE_DAYS.1).contains(&t) {
        errors.push(FieldError::new("tolerance_days", "must be in [0, 7]"));
    }
    if !(RADIUS_KM.0..=RADIUS_KM.1).contains(&r) {
        errors.push(FieldError::new("radius_km", "must be in [1, 500]"));
    }
    if errors.is_empty() {
        Ok((t, r))
    } else {
        Err(ServiceError::invalid(errors))
    }
}

/// The connections who will be near one of the caller's trips at about its dates.
pub async fn overlaps(ctx: &Ctx, me: Uuid, id: Uuid, tolerance_days: i64, radius_km: i64) -> ServiceResult<Overlaps> {
    let trip = store::get(&ctx.db, me, id).await?.ok_or_else(ServiceError::not_found)?;
    let mut items: Vec<Overlap> = find(ctx, me, &trip, tolerance_days, radius_km, true)
        .await?
        .into_iter()
        .map(|f| f.item)
        .collect();
    items.truncate(MAX_OVERLAPS);
    Ok(Overlaps { items })
}

/// Writes `trip_overlap` notifications for the new pairs of overlapping trips (tolerance 0,
/// 50 km) of these trips of `me`. Only visible trips take part, and never a connection the
/// owner hides from. A failure is logged: the trip itself was written.
async fn notify_overlaps(ctx: &Ctx, me: Uuid, trips: &[TripRecord]) {
    if let Err(e) = try_notify_overlaps(ctx, me, trips).await {
        tracing::warn!(error = %e, "trip_overlap notifications not written");
    }
}

async fn try_notify_overlaps(ctx: &Ctx, me: Uuid, trips: &[TripRecord]) -> ServiceResult<()> {
    let visible: Vec<&TripRecord> = trips.iter().filter(|t| t.visibility == "connections").collect();
    if visible.is_empty() {
        return Ok(());
    }
    let hidden = crate::store::privacy::get(&ctx.db, me)
        .await?
        .map(|p| p.hidden_from)
        .unwrap_or_default();
    let mut pairs = vec![];
    for t in visible {
        for f in find(ctx, me, t, 0, RADIUS_KM.2, false).await? {
            let Some(theirs) = f.their_trip else { continue };
            if hidden.contains(&f.item.user_id) {
                continue;
            }
            let (Ok(from), Ok(to)) = (
                rules::parse_date("from", &f.item.overlap_from),
                rules::parse_date("to", &f.item.overlap_to),
            ) else {
                continue;
            };
            pairs.push(OverlapPair {
                mine: t.id,
                me,
                theirs,
                them: f.item.user_id,
                from,
                to,
                distance_m: i32::try_from(f.item.distance_km * 1000).unwrap_or(i32::MAX),
            });
        }
    }
    let n = store::notify_overlaps(&ctx.db, &pairs).await?;
    if n > 0 {
        tracing::info!(pairs = n, "trip_overlap notifications written");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Calendars (RFC 5545)

/// The path of a feed with this secret.
fn feed_url(secret: &str) -> String {
    format!("/v1/calendar/{secret}.ics")
}

/// Makes (or rotates) the caller's secret feed URL; only a hash of the secret is kept.
pub async fn create_feed(ctx: &Ctx, me: Uuid) -> ServiceResult<String> {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    store::set_feed(&ctx.db, me, &Sha256::digest(secret.as_bytes())).await?;
    Ok(feed_url(&secret))
}

/// Ends the caller's feed (idempotent).
pub async fn delete_feed(ctx: &Ctx, me: Uuid) -> ServiceResult<()> {
    store::delete_feed(&ctx.db, me).await?;
    Ok(())
}

/// Most trips a feed or an import takes.
pub const MAX_CALENDAR_TRIPS: usize = 1_000;

fn naive(d: Date) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(d.year(), u32::from(u8::from(d.month())), u32::from(d.day())).unwrap_or_default()
}

fn from_naive(d: chrono::NaiveDate) -> Option<Date> {
    use chrono::Datelike;
    let month = time::Month::try_from(u8::try_from(d.month()).ok()?).ok()?;
    Date::from_calendar_date(d.year(), month, u8::try_from(d.day()).ok()?).ok()
}

/// An all-day event from `starts_on` through `ends_on` at a cell's centre.
fn vevent(uid: &str, summary: &str, cell: &str, dates: Dates) -> icalendar::Event {
    use icalendar::{Component, EventLike};
    let c = rules::centre_of(cell);
    let mut e = icalendar::Event::new();
    e.uid(uid)
        .summary(summary)
        .starts(naive(dates.starts_on))
        // DTEND of an all-day event is the day after the last (RFC 5545 §3.6.1)
        .ends(naive(dates.ends_on.next_day().unwrap_or(dates.ends_on)))
        .add_property("GEO", format!("{:.6};{:.6}", c.lat(), c.lng()));
    e.done()
}

/// The feed behind a secret: the owner's trips and the overlapping trips of connections; none
/// for an unknown (or rotated) secret.
pub async fn feed(ctx: &Ctx, secret: &str) -> ServiceResult<Option<String>> {
    if secret.is_empty() || secret.len() > 64 {
        return Ok(None);
    }
    let Some(owner) = store::feed_owner(&ctx.db, &Sha256::digest(secret.as_bytes())).await? else {
        return Ok(None);
    };
    let trips = store::all_of(&ctx.db, owner, MAX_CALENDAR_TRIPS as i64).await?;
    let mut cal = icalendar::Calendar::new();
    cal.name("Hereabouts trips");
    let mut seen = std::collections::HashSet::new();
    let today = today();
    for t in &trips {
        let dates = Dates::stored(t.starts_on, t.ends_on);
        let name = t.name.clone().unwrap_or_else(|| "Trip".into());
        cal.push(vevent(&format!("{}@hereabouts", t.id), &name, &t.h3_cell, dates));
        if t.ends_on < today {
            continue;
        }
        for f in find(ctx, owner, t, TOLERANCE_DAYS.2, RADIUS_KM.2, false).await? {
            let (Some(id), Some(trip)) = (f.their_trip, &f.item.trip) else {
                continue;
            };
            if !seen.insert(id) {
                continue;
            }
            let (Ok(s), Ok(e)) = (
                rules::parse_date("starts_on", &trip.starts_on),
                rules::parse_date("ends_on", &trip.ends_on),
            ) else {
                continue;
            };
            let summary = match &trip.name {
                Some(n) => format!("{}: {n}", f.item.display_name),
                None => format!("{} is in town", f.item.display_name),
            };
            cal.push(vevent(
                &format!("{id}@hereabouts"),
                &summary,
                &trip.h3_cell,
                Dates::stored(s, e),
            ));
        }
    }
    Ok(Some(cal.done().to_string()))
}

/// An event that did not become a trip, and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Skipped {
    pub uid: Option<String>,
    #[schema(example = "no GEO")]
    pub reason: String,
}

/// `POST /v1/trips/import` answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Imported {
    pub created: Vec<Trip>,
    pub updated: Vec<Trip>,
    pub skipped: Vec<Skipped>,
}

/// The date of a DTSTART/DTEND in UTC where the value says its offset; floating and zoned
/// times keep their own date.
fn utc_date(d: &icalendar::DatePerhapsTime) -> Option<Date> {
    use icalendar::{CalendarDateTime, DatePerhapsTime};
    match d {
        DatePerhapsTime::Date(d) => from_naive(*d),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => from_naive(t.date_naive()),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(t)) => from_naive(t.date()),
        DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, .. }) => from_naive(date_time.date()),
    }
}

/// `GEO:lat;lng` (RFC 5545 §3.8.1.6).
fn parse_geo(v: &str) -> Option<(f64, f64)> {
    let (a, b) = v.trim().split_once(';')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// One VEVENT as a trip to write, or why not.
fn event_trip(e: &icalendar::Event) -> Result<(String, TripWrite), String> {
    use icalendar::{Component, DatePerhapsTime};
    let uid = e.get_uid().map(str::trim).filter(|u| !u.is_empty()).ok_or("no UID")?;
    if uid.len() > 255 {
        return Err("UID longer than 255 characters".into());
    }
    let (lat, lng) = e.property_value("GEO").and_then(parse_geo).ok_or("no GEO")?;
    let p = Coord::new(lat, lng).map_err(|_| "GEO out of range".to_string())?;
    let start = e.get_start().ok_or("no DTSTART")?;
    let starts_on = utc_date(&start).ok_or("DTSTART out of range")?;
    let ends_on = match e.get_end() {
        // an all-day DTEND is exclusive
        Some(end @ DatePerhapsTime::Date(_)) => utc_date(&end).and_then(|d| d.previous_day()).map(|d| d.max(starts_on)),
        Some(end) => utc_date(&end).map(|d| d.max(starts_on)),
        None => Some(starts_on),
    }
    .ok_or("DTEND out of range")?;
    let dates = Dates::new(starts_on, ends_on, today()).map_err(|errs| {
        errs.iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((
        uid.to_string(),
        write_of(e.get_summary().map(str::to_string), p, dates, Visibility::Connections),
    ))
}

/// Imports the VEVENTs of an iCalendar text as trips; the same UID again updates its trip.
pub async fn import(ctx: &Ctx, me: Uuid, text: &str) -> ServiceResult<Imported> {
    let cal: icalendar::Calendar = text
        .parse()
        .map_err(|_| ServiceError::bad_request_in("body", "not an iCalendar (RFC 5545) text"))?;
    let mut out = Imported {
        created: vec![],
        updated: vec![],
        skipped: vec![],
    };
    let mut written = vec![];
    let mut uids = std::collections::HashSet::new();
    for e in cal.events().take(MAX_CALENDAR_TRIPS) {
        match event_trip(e) {
            Err(reason) => out.skipped.push(Skipped {
                uid: icalendar::Component::get_uid(e).map(str::to_string),
                reason,
            }),
            Ok((uid, _)) if !uids.insert(uid.clone()) => out.skipped.push(Skipped {
                uid: Some(uid),
                reason: "UID repeated in this calendar".into(),
            }),
            Ok((uid, w)) => {
                let (rec, created) = store::upsert_imported(&ctx.db, me, &uid, &w).await?;
                written.push(rec.clone());
                if created {
                    out.created.push(rec.into());
                } else {
                    out.updated.push(rec.into());
                }
            }
        }
    }
    notify_overlaps(ctx, me, &written).await;
    Ok(out)
}
