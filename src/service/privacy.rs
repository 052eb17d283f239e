//! The user's own privacy controls and their immediate effect on the live index.

use super::Ctx;
use super::{ServiceError, ServiceResult};
use crate::domain::FieldError;
use crate::domain::policy::Precision;
use crate::domain::quiet;
use crate::store::{StoreError, privacy};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// Most users one can hide from.
pub const MAX_HIDDEN: usize = 1_000;

/// The user's privacy settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Privacy {
    /// Master opt-in; false for every new account.
    pub sharing: bool,
    pub precision: Precision,
    /// Users who never see the caller.
    #[schema(max_items = 1000)]
    pub hidden_from: Vec<Uuid>,
    /// How long a check-in stays live by default (60 .. policy max).
    #[schema(example = 14400, minimum = 60)]
    pub default_ttl_s: i32,
    /// While in the future, the user is treated as not sharing.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paused_until: Option<OffsetDateTime>,
    pub notify_nearby: bool,
    #[schema(example = 5000, minimum = 50, maximum = 200000)]
    pub notify_radius_m: i32,
    pub discoverable_by_email: bool,
    /// The home base as others may learn it (its resolution-5 cell), or null.
    pub home: Option<HomeCell>,
    /// Whether connections see the home cell in their trips' overlaps (default false).
    pub home_visible: bool,
    /// The caller's IANA time zone (default `UTC`): quiet hours are in its local time.
    #[schema(example = "Europe/Paris")]
    pub time_zone: String,
    /// Pushes due inside this daily window wait for its end (`delivery: "held"`); null: none.
    pub quiet_hours: Option<QuietHoursText>,
}

/// A daily window of local time, `HH:MM` to `HH:MM` (may cross midnight).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursText {
    #[schema(example = "22:00", pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub from: String,
    #[schema(example = "07:00", pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    pub to: String,
}

/// A home base as shown: its resolution-5 cell only.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HomeCell {
    #[schema(example = "851fb467fffffff")]
    pub h3_cell: String,
}

/// A home base as set.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub struct HomePoint {
    #[schema(minimum = -90, maximum = 90)]
    pub lat: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub lng: f64,
}

impl Privacy {
    fn with_home(mut self, (cell, visible): (Option<String>, bool)) -> Self {
        self.home = cell.map(|h3_cell| HomeCell { h3_cell });
        self.home_visible = visible;
        self
    }

    fn with_quiet(mut self, (tz, quiet): (String, Option<(time::Time, time::Time)>)) -> Self {
        let hhmm = |t: time::Time| format!("{:02}:{:02}", t.hour(), t.minute());
        self.time_zone = tz;
        self.quiet_hours = quiet.map(|(f, t)| QuietHoursText {
            from: hhmm(f),
            to: hhmm(t),
        });
        self
    }
}

/// The stored form of a quiet-hours window, checked (422 on `quiet_hours.from` / `.to`).
fn parse_quiet(q: &QuietHoursText) -> Result<(time::Time, time::Time), Vec<FieldError>> {
    let civil = |field: &str, s: &str| {
        quiet::parse_hhmm(field, s).and_then(|t| {
            time::Time::from_hms(t.hour() as u8, t.minute() as u8, 0)
                .map_err(|_| FieldError::new(field, "must be a time of day as HH:MM"))
        })
    };
    match (civil("quiet_hours.from", &q.from), civil("quiet_hours.to", &q.to)) {
        (Ok(f), Ok(t)) => Ok((f, t)),
        (f, t) => Err([f.err(), t.err()].into_iter().flatten().collect()),
    }
}

impl From<&privacy::PrivacyRecord> for Privacy {
    fn from(p: &privacy::PrivacyRecord) -> Self {
        Self {
            sharing: p.sharing,
            precision: p.precision,
            hidden_from: p.hidden_from.clone(),
            default_ttl_s: p.default_ttl_s,
            // a pause that has ended is no pause
            paused_until: p.paused_until.filter(|t| *t > OffsetDateTime::now_utc()),
            notify_nearby: p.notify_nearby,
            notify_radius_m: p.notify_radius_m,
            discoverable_by_email: p.discoverable_by_email,
            home: None,
            home_visible: false,
            time_zone: quiet::DEFAULT_TIME_ZONE.into(),
            quiet_hours: None,
        }
    }
}

fn some_home<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<HomePoint>>, D::Error> {
    Option::<HomePoint>::deserialize(d).map(Some)
}

fn some_quiet<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<QuietHoursText>>, D::Error> {
    Option::<QuietHoursText>::deserialize(d).map(Some)
}

fn some_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    let raw: Option<String> = Option::deserialize(d)?;
    match raw {
        None => Ok(Some(None)),
        Some(s) => OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
            .map(|t| Some(Some(t)))
            .map_err(|_| serde::de::Error::custom("paused_until must be an RFC 3339 time or null")),
    }
}

/// Any subset of the settings.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct PrivacyPatch {
    pub sharing: Option<bool>,
    pub precision: Option<Precision>,
    #[schema(max_items = 1000)]
    pub hidden_from: Option<Vec<Uuid>>,
    /// At least 60 and at most the policy's `max_ttl_s` (86400 unless the operator changed it).
    #[schema(minimum = 60, maximum = 86400)]
    pub default_ttl_s: Option<i64>,
    /// RFC 3339 time (`2026-12-24T18:00:00Z`), or null to end a pause.
    #[serde(default, deserialize_with = "some_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paused_until: Option<Option<OffsetDateTime>>,
    pub notify_nearby: Option<bool>,
    #[schema(minimum = 50, maximum = 200000)]
    pub notify_radius_m: Option<i64>,
    pub discoverable_by_email: Option<bool>,
    /// The home base `{lat, lng}`, or null to clear it; only its resolution-5 cell is shown.
    #[serde(default, deserialize_with = "some_home")]
    #[schema(value_type = Option<HomePoint>)]
    pub home: Option<Option<HomePoint>>,
    pub home_visible: Option<bool>,
    /// An IANA time zone name (`Europe/Paris`); 422 for an unknown one.
    #[schema(example = "Europe/Paris", max_length = 64)]
    pub time_zone: Option<String>,
    /// `{"from": "HH:MM", "to": "HH:MM"}` in the time zone's local time, or null for none.
    #[serde(default, deserialize_with = "some_quiet")]
    #[schema(value_type = Option<QuietHoursText>)]
    pub quiet_hours: Option<Option<QuietHoursText>>,
}

pub async fn get(ctx: &Ctx, user: Uuid) -> ServiceResult<Privacy> {
    let p = privacy::get(&ctx.db, user)
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    let home = crate::store::trips::home(&ctx.db, user).await?;
    let quiet = privacy::quiet_hours(&ctx.db, user).await?;
    Ok(Privacy::from(&p).with_home(home).with_quiet(quiet))
}

/// Applies a patch; leaving sharing or pausing takes the user out of the index at once, and a
/// change of precision, hidden list or name re-publishes the live entry.
pub async fn update(ctx: &Ctx, user: Uuid, patch: PrivacyPatch) -> ServiceResult<Privacy> {
    let max_ttl = i64::from(ctx.controls.get().policy.max_ttl_s);
    let mut errors = vec![];
    if let Some(t) = patch.default_ttl_s
        && !(60..=max_ttl).contains(&t)
    {
        errors.push(FieldError::new("default_ttl_s", format!("must be in [60, {max_ttl}]")));
    }
    if let Some(r) = patch.notify_radius_m
        && !(50..=200_000).contains(&r)
    {
        errors.push(FieldError::new("notify_radius_m", "must be in [50, 200000]"));
    }
    if let Some(h) = &patch.hidden_from
        && h.len() > MAX_HIDDEN
    {
        errors.push(FieldError::new("hidden_from", format!("at most {MAX_HIDDEN} users")));
    }
    let time_zone = match patch.time_zone.as_deref() {
        // stored by its canonical name (`europe/paris` → `Europe/Paris`)
        Some(z) => match quiet::parse_time_zone("time_zone", z) {
            Ok(tz) => Some(tz.iana_name().map_or_else(|| z.trim().to_string(), str::to_string)),
            Err(e) => {
                errors.push(e);
                None
            }
        },
        None => None,
    };
    let quiet_hours = match &patch.quiet_hours {
        Some(Some(q)) => match parse_quiet(q) {
            Ok(w) => Some(Some(w)),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        Some(None) => Some(None),
        None => None,
    };
    if !errors.is_empty() {
        return Err(ServiceError::invalid(errors));
    }
    let home = match patch.home {
        Some(Some(h)) => Some(Some(super::trips::home_write(h.lat, h.lng)?)),
        Some(None) => Some(None),
        None => None,
    };
    let mut tx = ctx.db.begin().await.map_err(StoreError::from)?;
    let mut p = privacy::get_for_update(&mut tx, user)
        .await?
        .ok_or_else(ServiceError::unauthorized)?;
    let before = p.clone();
    if let Some(v) = patch.sharing {
        p.sharing = v;
    }
    if let Some(v) = patch.precision {
        p.precision = v;
    }
    if let Some(mut v) = patch.hidden_from {
        v.sort();
        v.dedup();
        v.retain(|id| *id != user);
        p.hidden_from = v;
    }
    if let Some(v) = patch.default_ttl_s {
        p.default_ttl_s = v as i32;
    }
    if let Some(v) = patch.paused_until {
        p.paused_until = v.filter(|t| *t > OffsetDateTime::now_utc());
    }
    if let Some(v) = patch.notify_nearby {
        p.notify_nearby = v;
    }
    if let Some(v) = patch.notify_radius_m {
        p.notify_radius_m = v as i32;
    }
    if let Some(v) = patch.discoverable_by_email {
        p.discoverable_by_email = v;
    }
    privacy::put(&mut tx, &p, p.sharing != before.sharing).await?;
    tx.commit().await.map_err(StoreError::from)?;
    if p.notify_nearby && p.sharing {
        ctx.controls.widen_notify_radius(f64::from(p.notify_radius_m));
    }
    let affects_index = p.is_sharing(OffsetDateTime::now_utc()) != before.is_sharing(OffsetDateTime::now_utc())
        || p.precision != before.precision
        || p.hidden_from != before.hidden_from
        || !p.is_sharing(OffsetDateTime::now_utc());
    if affects_index {
        super::live::sync_user(ctx, user).await?;
    }
    // a pause, sharing off or hiding from a recipient ends the exact shares at once
    let now = OffsetDateTime::now_utc();
    if !p.is_sharing(now) {
        crate::store::shares::end_given(&ctx.db, &ctx.redis, user, None).await?;
    } else if p.hidden_from != before.hidden_from && !p.hidden_from.is_empty() {
        crate::store::shares::end_given(&ctx.db, &ctx.redis, user, Some(&p.hidden_from)).await?;
    }
    if home.is_some() || patch.home_visible.is_some() {
        crate::store::trips::set_home(&ctx.db, user, home.as_ref().map(|h| h.as_ref()), patch.home_visible).await?;
    }
    if time_zone.is_some() || quiet_hours.is_some() {
        privacy::set_quiet_hours(&ctx.db, user, time_zone.as_deref(), quiet_hours).await?;
        // what was held under the old hours is decided again by the worker
        crate::store::outbox::release_held(&ctx.db, user).await?;
    }
    let home = crate::store::trips::home(&ctx.db, user).await?;
    let quiet = privacy::quiet_hours(&ctx.db, user).await?;
    Ok(Privacy::from(&p).with_home(home).with_quiet(quiet))
}
