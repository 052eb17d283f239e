//! Quiet hours: a daily window, in the user's IANA time zone, during which pushes wait. The
//! window may cross midnight (`22:00`–`07:00`); `from == to` is an empty window. Local times
//! that a DST change skips or repeats resolve as jiff's "compatible" rule says (a skipped end
//! moves forward by the gap, a repeated one is its first occurrence).

use super::FieldError;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};

/// The zone of a user who never chose one.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// A daily window of local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub from: Time,
    pub to: Time,
}

/// An IANA time-zone name known to the bundled tz database (`Europe/Paris`, `UTC`), else 422
/// on `field`.
pub fn parse_time_zone(field: &str, name: &str) -> Result<TimeZone, FieldError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 {
        return Err(FieldError::new(field, "must be an IANA time zone such as Europe/Paris"));
    }
    TimeZone::get(name).map_err(|_| FieldError::new(field, "unknown time zone (an IANA name such as Europe/Paris)"))
}

/// Every time-zone name of the bundled database, sorted (the spec's enum; the server also takes
/// them in another case and gives back the canonical one).
pub fn time_zone_names() -> &'static [String] {
    static NAMES: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        let mut v: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_string()).collect();
        v.sort();
        v
    });
    &NAMES
}

/// `HH:MM` (24-hour clock), else 422 on `field`.
pub fn parse_hhmm(field: &str, s: &str) -> Result<Time, FieldError> {
    let bad = || FieldError::new(field, "must be a time of day as HH:MM (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// `HH:MM` of a time of day.
pub fn format_hhmm(t: Time) -> String {
    format!("{:02}:{:02}", t.hour(), t.minute())
}

/// When the quiet hours holding `now` end (the next local `to`), or `None` when `now` is
/// outside them.
pub fn held_until(now: Timestamp, tz: &TimeZone, q: QuietHours) -> Option<Timestamp> {
    if q.from == q.to {
        return None;
    }
    let local: ZonedDateTime = now.to_zoned_datetime(tz.clone());
    let t = local.time();
    let end_day = if q.from < q.to {
        // same-day window
        if !(q.from <= t && t < q.to) {
            return None;
        }
        local.date()
    } else if t >= q.from {
        // the evening part of an overnight window: it ends tomorrow
        local.date().tomorrow().ok()?
    } else if t < q.to {
        local.date()
    } else {
        return None;
    };
    let end = end_day
        .to_datetime(q.to)
        .to_zoned_datetime(tz.clone())
        .ok()?
        .timestamp();
    // a DST change may put the local end at or before now: never hold for nothing
    (end > now).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn q(from: &str, to: &str) -> QuietHours {
        QuietHours {
            from: parse_hhmm("from", from).expect("from"),
            to: parse_hhmm("to", to).expect("to"),
        }
    }

    #[test]
    fn an_overnight_window_in_paris_ends_at_seven_local() {
        let paris = parse_time_zone("time_zone", "Europe/Paris").expect("zone");
        let night = q("22:00", "07:00");
        // 23:30 in Paris (winter, UTC+1): held until 07:00 Paris the next day
        assert_eq!(
            held_until(ts("2026-12-01T22:30:00Z"), &paris, night),
            Some(ts("2026-12-02T06:00:00Z"))
        );
        // 03:00 in Paris: the same morning
        assert_eq!(
            held_until(ts("2026-12-02T02:00:00Z"), &paris, night),
            Some(ts("2026-12-02T06:00:00Z"))
        );
        // noon, and 07:00 sharp: not quiet
        assert_eq!(held_until(ts("2026-12-02T11:00:00Z"), &paris, night), None);
        assert_eq!(held_until(ts("2026-12-02T06:00:00Z"), &paris, night), None);
        // summer time (UTC+2): the same local hours, other UTC hours
        assert_eq!(
            held_until(ts("2026-07-01T21:00:00Z"), &paris, night),
            Some(ts("2026-07-02T05:00:00Z"))
        );
    }

    #[test]
    fn a_day_window_an_empty_one_and_a_dst_gap() {
        let utc = parse_time_zone("time_zone", "UTC").expect("utc");
        assert_eq!(
            held_until(ts("2026-12-01T13:00:00Z"), &utc, q("12:00", "14:00")),
            Some(ts("2026-12-01T14:00:00Z"))
        );
        assert_eq!(held_until(ts("2026-12-01T15:00:00Z"), &utc, q("12:00", "14:00")), None);
        assert_eq!(held_until(ts("2026-12-01T13:00:00Z"), &utc, q("09:00", "09:00")), None);
        // New York springs forward on 2026-03-08 at 02:00: a 02:30 end does not exist that
        // night and resolves to 03:30 EDT (07:30 UTC)
        let ny = parse_time_zone("time_zone", "America/New_York").expect("ny");
        assert_eq!(
            held_until(ts("2026-03-08T06:00:00Z"), &ny, q("23:00", "02:30")),
            Some(ts("2026-03-08T07:30:00Z"))
        );
    }

    #[test]
    fn names_and_times_are_checked() {
        assert!(parse_time_zone("time_zone", "Mars/Olympus_Mons").is_err());
        assert!(parse_time_zone("time_zone", "").is_err());
        assert!(parse_time_zone("time_zone", "Asia/Kolkata").is_ok());
        for bad in ["7:00", "24:00", "12:60", "ab:cd", "12:00:00", "", "+1:00"] {
            assert!(parse_hhmm("f", bad).is_err(), "{bad}");
        }
        assert_eq!(format_hhmm(parse_hhmm("f", "07:05").expect("t")), "07:05");
    }
}
