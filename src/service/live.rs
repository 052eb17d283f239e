//! Check-ins and the live index: accepting a check-in, reading and leaving it, and keeping a
//! user's index entry in step with their settings, the policy and the zones (PostgreSQL first,
//! Redis while the row is still locked).

use super::Ctx;
use super::controls::Controls;
use super::{Code, ServiceError, ServiceResult};
use crate::domain::FieldError;
use crate::domain::geo::{Coord, publish};
use crate::domain::nearby::LiveRecord;
use crate::domain::policy::Precision;
use crate::store::live::{self, LiveRow};
use crate::store::privacy::{self, PrivacyRecord};
use crate::store::{StoreResult, index};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

/// How far in the future a `recorded_at` may be (clock skew of phones).
pub const MAX_FUTURE: Duration = Duration::minutes(5);

/// A check-in as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Checkin {
    pub id: Uuid,
    /// The cell the user is published in: res 9 (exact), 7 (approximate) or 5 (city).
    #[schema(example = "8928308280fffff")]
    pub h3_cell: String,
    pub precision: Precision,
    /// False when the point lies in a restricted zone.
    pub indexed: bool,
    /// Why the check-in is not indexed: `restricted_zone`.
    #[schema(example = json!(null))]
    pub reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub recorded_at: OffsetDateTime,
    /// The point as sent (only its owner ever sees it).
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f64>,
    /// What other users may learn: the published point.
    pub published_lat: f64,
    pub published_lng: f64,
}

impl From<&LiveRow> for Checkin {
    fn from(r: &LiveRow) -> Self {
        Self {
            id: r.checkin_id,
            h3_cell: r.h3_cell.clone(),
            precision: r.precision,
            indexed: r.indexed,
            reason: r.reason.clone(),
            expires_at: r.expires_at,
            recorded_at: r.recorded_at,
            lat: r.lat,
            lng: r.lng,
            accuracy_m: r.accuracy_m,
            published_lat: r.pub_lat,
            published_lng: r.pub_lng,
        }
    }
}

/// A check-in request, as parsed from the body.
#[derive(Debug, Clone)]
pub struct CheckinInput {
    pub lat: f64,
    pub lng: f64,
    pub accuracy_m: Option<f64>,
    pub recorded_at: Option<OffsetDateTime>,
    pub ttl_s: Option<i64>,
    pub client_id: Option<String>,
}

/// What a check-in did.
#[derive(Debug)]
pub enum Outcome {
    /// A new live check-in.
    Created(Checkin),
    /// The same `client_id` was seen within the TTL: the first answer, nothing done again.
    Replayed(Checkin),
    /// Older than the live check-in: ignored; the live one is returned.
    Ignored(Checkin),
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The index record of a live row.
pub fn record_for(row: &LiveRow, privacy: &PrivacyRecord) -> LiveRecord {
    LiveRecord {
        checkin_id: row.checkin_id,
        lat: row.pub_lat,
        lng: row.pub_lng,
        precision: row.precision,
        cell: row.h3_cell.clone(),
        recorded_at: row.recorded_at.unix_timestamp(),
        expires_at_ms: unix_ms(row.expires_at),
        display_name: privacy.display_name.clone(),
        hidden_from: privacy.hidden_from.clone(),
        own: (row.lat, row.lng),
        profile: crate::domain::nearby::Summary {
            headline: privacy.headline.clone(),
            company: privacy.company.clone(),
            title: privacy.title.clone(),
            avatar_url: privacy.avatar_url.clone(),
        },
    }
}

pub(super) fn published_of(row: &LiveRow) -> Coord {
    Coord::stored(row.pub_lat, row.pub_lng)
}

/// Recomputes what is published for a row from its raw point: the precision (user's choice,
/// coarsened by the policy) and the restricted zones.
pub(super) fn publish_row(row: &mut LiveRow, privacy: &PrivacyRecord, controls: &Controls) {
    let precision = privacy.precision.at_least(controls.policy.min_precision);
    let p = publish(Coord::stored(row.lat, row.lng), precision);
    row.pub_lat = p.point.lat();
    row.pub_lng = p.point.lng();
    row.precision = precision;
    row.h3_cell = p.cell.to_string();
    let in_zone = controls.zone_at(row.lat, row.lng).is_some();
    row.indexed = !in_zone;
    row.reason = in_zone.then(|| "restricted_zone".to_string());
}

/// Checks a check-in request: coordinates (422 `invalid_coordinates`), accuracy, TTL, client id.
pub fn validate_input(input: &CheckinInput) -> ServiceResult<Coord> {
    let coord = Coord::new(input.lat, input.lng).map_err(|errors| {
        ServiceError::invalid_as(
            Code::InvalidCoordinates,
            "lat must be in [-90, 90] and lng in [-180, 180]",
            errors,
        )
    })?;
    let mut errors = vec![];
    if let Some(a) = input.accuracy_m
        && (!a.is_finite() || !(0.0..=1_000_000.0).contains(&a))
    {
        errors.push(FieldError::new("accuracy_m", "must be a number in [0, 1000000]"));
    }
    if let Some(t) = input.ttl_s
        && t < 60
    {
        errors.push(FieldError::new("ttl_s", "must be at least 60"));
    }
    if let Some(c) = &input.client_id
        && (c.is_empty() || c.len() > 128 || c.chars().any(char::is_control))
    {
        errors.push(FieldError::new("client_id", "must be 1 to 128 printable characters"));
    }
    if errors.is_empty() {
        Ok(coord)
    } else {
        Err(ServiceError::invalid(errors))
    }
}

/// Accepts a check-in: validates it here, then hands it to the batched pipeline
/// ([`super::ingest`]), which applies precision, policy and zones, stores the live row and moves
/// the user in the index; answers once that is done.
pub async fn checkin(ctx: &Ctx, user: Uuid, input: CheckinInput) -> ServiceResult<Outcome> {
    let raw = validate_input(&input)?;
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Err(ServiceError::refused(
            Code::SharingDisabled,
            "location sharing is disabled by the operator",
        ));
    }
    ctx.ingest.submit(ctx, user, raw, input).await
}

/// The caller's live check-in.
pub async fn current(ctx: &Ctx, user: Uuid) -> ServiceResult<Checkin> {
    let row = live::get(&ctx.db, user).await?.ok_or_else(ServiceError::not_found)?;
    Ok(Checkin::from(&row))
}

/// Deletes a user's live location in both stores (leaving, sharing off, pause, suspension, purge).
pub async fn leave(ctx: &Ctx, user: Uuid) -> StoreResult<()> {
    let mut tx = ctx.db.begin().await?;
    let gone = live::delete(&mut *tx, user).await?;
    index::remove(&ctx.redis, user, gone.as_ref().filter(|r| r.indexed).map(published_of)).await?;
    tx.commit().await?;
    ctx.checkins.changed(user, None);
    Ok(())
}

/// Brings a user's live row and index entry in line with their current settings, the policy and
/// the zones: re-publishes at the right precision, drops the entry of a user who may not share,
/// takes out a point inside a zone, refreshes name and hidden list.
pub async fn sync_user(ctx: &Ctx, user: Uuid) -> StoreResult<()> {
    let controls = ctx.controls.get();
    let mut tx = ctx.db.begin().await?;
    let Some(privacy) = privacy::get_for_update(&mut tx, user).await? else {
        return Ok(());
    };
    let Some(row) = live::get_for_update(&mut tx, user).await? else {
        index::remove(&ctx.redis, user, None).await?;
        return Ok(());
    };
    let t = now();
    let mut republished = None;
    // the kill switch forgets: a check-in made before it is ended, not kept for later
    if !privacy.is_sharing(t) || row.expires_at <= t || !controls.policy.location_sharing_enabled {
        live::delete(&mut *tx, user).await?;
        index::remove(&ctx.redis, user, row.indexed.then(|| published_of(&row))).await?;
    } else {
        let mut next = row.clone();
        publish_row(&mut next, &privacy, &controls);
        let max_expiry = t + Duration::seconds(i64::from(controls.policy.max_ttl_s));
        next.expires_at = next.expires_at.min(max_expiry);
        live::upsert(&mut tx, &next).await?;
        let old = row.indexed.then(|| published_of(&row));
        if next.indexed {
            let record = record_for(&next, &privacy);
            index::put(&ctx.redis, user, &record, old).await?;
            republished = Some(record);
        } else {
            index::remove(&ctx.redis, user, old).await?;
        }
    }
    tx.commit().await?;
    // the radars that show the user (or are the user's) look again, and those around the
    // point published now (one it was hidden from may list the user again)
    ctx.checkins.changed(user, republished.as_ref());
    Ok(())
}

/// How long a runner holds a re-publishing job between two pages.
const JOB_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// Re-applies the policy (kill switch, minimum precision, maximum TTL) and the zones to every
/// live user as a durable job: queued with the change that needs it (`enqueue`), run here page
/// by page with its cursor saved after each, so that a pass cut short (crash, request deadline)
/// is resumed by [`run_republish`] on whichever instance comes next. Returns when the job is
/// done, by this caller or by another runner.
pub async fn republish_now(ctx: &Ctx, job: Uuid) -> StoreResult<()> {
    run_republish(ctx, Some(job)).await?;
    // another runner may hold it: wait for it (bounded by the request deadline above us)
    while !crate::store::jobs::is_done(&ctx.db, job).await? {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Runs `job` (or the oldest open one) when nobody holds it; false when there was none to take.
pub async fn run_republish(ctx: &Ctx, job: Option<Uuid>) -> StoreResult<bool> {
    use crate::store::jobs;
    let Some(mut job) = jobs::claim(&ctx.db, job, JOB_LEASE).await? else {
        return Ok(false);
    };
    ctx.controls.reload(&ctx.db).await?;
    loop {
        let Some((last, republished, removed)) = republish_page(ctx, job.after_user).await? else {
            break;
        };
        job.after_user = Some(last);
        job.republished += republished as i64;
        job.removed += removed as i64;
        if !jobs::advance(&ctx.db, &job, JOB_LEASE).await? {
            // superseded by a newer pass
            return Ok(true);
        }
    }
    jobs::finish(&ctx.db, &job).await?;
    tracing::info!(
        republished = job.republished,
        removed = job.removed,
        "live users re-published"
    );
    Ok(true)
}

/// The privacy settings of the users of `rows`, by user, in one query.
async fn privacies_of(ctx: &Ctx, rows: &[LiveRow]) -> StoreResult<std::collections::HashMap<Uuid, PrivacyRecord>> {
    let ids: Vec<Uuid> = rows.iter().map(|r| r.user_id).collect();
    Ok(privacy::get_many(&ctx.db, &ids)
        .await?
        .into_iter()
        .map(|p| (p.user_id, p))
        .collect())
}

/// One page of 1,000 live users after `after` (one transaction and two Redis round trips):
/// the last user of the page and how many were re-published and removed; `None` past the end.
async fn republish_page(ctx: &Ctx, after: Option<Uuid>) -> StoreResult<Option<(Uuid, u64, u64)>> {
    let controls = ctx.controls.get();
    let rows = live::live_page(&ctx.db, after, 1_000, false).await?;
    let Some(last) = rows.last().map(|r| r.user_id) else {
        return Ok(None);
    };
    let privacies = privacies_of(ctx, &rows).await?;
    let t = now();
    let max_expiry = t + Duration::seconds(i64::from(controls.policy.max_ttl_s));
    let mut tx = ctx.db.begin().await?;
    let (mut publish, mut unpublish, mut moves) = (vec![], vec![], vec![]);
    for row in rows {
        let old = row.indexed.then(|| published_of(&row));
        // not sharing, or the kill switch (which forgets): the check-in ends
        let Some(p) = privacies
            .get(&row.user_id)
            .filter(|p| p.is_sharing(t) && controls.policy.location_sharing_enabled)
        else {
            live::delete(&mut *tx, row.user_id).await?;
            unpublish.push((row.user_id, old));
            continue;
        };
        let mut next = row.clone();
        publish_row(&mut next, p, &controls);
        next.expires_at = next.expires_at.min(max_expiry);
        if next.pub_lat != row.pub_lat
            || next.pub_lng != row.pub_lng
            || next.indexed != row.indexed
            || next.expires_at != row.expires_at
        {
            live::upsert(&mut tx, &next).await?;
        }
        if next.indexed {
            if let Some(o) = old.filter(|o| *o != published_of(&next)) {
                moves.push((row.user_id, o, published_of(&next)));
            }
            publish.push((row.user_id, record_for(&next, p)));
        } else {
            unpublish.push((row.user_id, old));
        }
    }
    index::apply(&ctx.redis, &unpublish, &publish, &moves).await?;
    tx.commit().await?;
    Ok(Some((last, publish.len() as u64, unpublish.len() as u64)))
}

/// Rebuilds the whole live index from PostgreSQL (after Redis came back empty).
pub async fn rebuild_index(ctx: &Ctx) -> StoreResult<u64> {
    let mut after = None;
    let mut n = 0u64;
    if !ctx.controls.get().policy.location_sharing_enabled {
        index::mark_ready(&ctx.redis).await?;
        return Ok(0);
    }
    // the exact shares' sets lived in the same Redis: back before their givers are visible
    crate::store::shares::rebuild_received(&ctx.db, &ctx.redis).await?;
    loop {
        // the page stays locked until its users are in Redis (see `indexed_page_for_share`)
        let mut tx = ctx.db.begin().await?;
        let rows = live::indexed_page_for_share(&mut tx, after, 1_000).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.user_id);
        let privacies = privacies_of(ctx, &rows).await?;
        let t = now();
        let batch: Vec<(Uuid, LiveRecord)> = rows
            .iter()
            .filter_map(|row| {
                let p = privacies.get(&row.user_id).filter(|p| p.is_sharing(t))?;
                Some((row.user_id, record_for(row, p)))
            })
            .collect();
        n += batch.len() as u64;
        index::put_many(&ctx.redis, &batch).await?;
        tx.commit().await?;
    }
    index::mark_ready(&ctx.redis).await?;
    Ok(n)
}
