//! Events (conference mode), the pure parts: what a new event must satisfy, join codes, and
//! whether a check-in is inside the venue while the event runs.

use super::FieldError;
use super::account::visible_text;
use super::geo::{Coord, distance_m};
use time::{Duration, OffsetDateTime};

/// Smallest and largest venue radius, in metres.
pub const RADIUS_M: std::ops::RangeInclusive<i64> = 50..=5000;
/// Longest event.
pub const MAX_LENGTH: Duration = Duration::days(14);
/// Longest event name, in characters.
pub const MAX_NAME_CHARS: usize = 100;
/// Characters of a join code: no 0/O, 1/I/L, so that it can be read out in a hall.
pub const JOIN_CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Length of a join code (31^8 ≈ 8.5e11 codes; joining is rate-limited per user).
pub const JOIN_CODE_LEN: usize = 8;

/// A new event, valid.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub name: String,
    pub venue: Coord,
    pub radius_m: i32,
    pub starts_at: OffsetDateTime,
    pub ends_at: OffsetDateTime,
}

/// Checks a new event; every invalid field is named.
pub fn validate(
    name: &str,
    lat: f64,
    lng: f64,
    radius_m: i64,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
) -> Result<NewEvent, Vec<FieldError>> {
    let mut errors = vec![];
    let n = name.trim();
    let count = n.chars().count();
    if count == 0 || count > MAX_NAME_CHARS {
        errors.push(FieldError::new("name", "must be 1 to 100 characters"));
    } else if n.chars().any(char::is_control) {
        errors.push(FieldError::new("name", "must not contain control characters"));
    } else if let Err(e) = visible_text("name", n) {
        errors.push(e);
    }
    let venue = Coord::new(lat, lng).map_err(|e| errors.extend(e)).ok();
    if !RADIUS_M.contains(&radius_m) {
        errors.push(FieldError::new("radius_m", "must be between 50 and 5000"));
    }
    if ends_at <= starts_at {
        errors.push(FieldError::new("ends_at", "must be after starts_at"));
    } else if ends_at - starts_at > MAX_LENGTH {
        errors.push(FieldError::new("ends_at", "an event lasts at most 14 days"));
    }
    match venue {
        Some(venue) if errors.is_empty() => Ok(NewEvent {
            name: n.to_string(),
            venue,
            radius_m: radius_m as i32,
            starts_at,
            ends_at,
        }),
        _ => Err(errors),
    }
}

/// A join code from random bytes (one character per byte, by rejection so that every
/// character is equally likely); `None` when the bytes run out first.
pub fn join_code(random: impl IntoIterator<Item = u8>) -> Option<String> {
    let n = JOIN_CODE_ALPHABET.len();
    let limit = (256 / n * n) as u8;
    let code: String = random
        .into_iter()
        .filter(|b| *b < limit)
        .map(|b| JOIN_CODE_ALPHABET[usize::from(b) % n] as char)
        .take(JOIN_CODE_LEN)
        .collect();
    (code.len() == JOIN_CODE_LEN).then_some(code)
}

/// A join code as typed, in the form codes are stored (upper case, no spaces or dashes).
pub fn normalise_join_code(typed: &str) -> String {
    typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .take(64)
        .collect()
}

/// Whether a check-in at `point` is inside the venue (`radius_m` around `venue`, geodesic)
/// while the event runs (`starts_at <= now < ends_at`).
pub fn inside(
    venue: Coord,
    radius_m: f64,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    point: Coord,
    now: OffsetDateTime,
) -> bool {
    starts_at <= now && now < ends_at && distance_m(venue, point) <= radius_m
}

/// A box of (lat_min, lat_max, lng_min, lng_max) that holds every point within `radius_m` of
/// `venue` (with a margin), for a database to skip what cannot be inside; the whole longitude
/// range near the poles and across the antimeridian.
pub fn bounding_box(venue: Coord, radius_m: f64) -> (f64, f64, f64, f64) {
    // a degree of latitude is at least 110.5 km; take 100 km to be generous
    let dlat = radius_m / 100_000.0;
    let (lat_min, lat_max) = ((venue.lat() - dlat).max(-90.0), (venue.lat() + dlat).min(90.0));
    let widest = lat_min.abs().max(lat_max.abs());
    if widest >= 89.0 {
        return (lat_min, lat_max, -180.0, 180.0);
    }
    let dlng = dlat / widest.to_radians().cos();
    let (lng_min, lng_max) = (venue.lng() - dlng, venue.lng() + dlng);
    if lng_min < -180.0 || lng_max > 180.0 {
        return (lat_min, lat_max, -180.0, 180.0);
    }
    (lat_min, lat_max, lng_min, lng_max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + s).expect("time")
    }

    #[test]
    fn validation_edges() {
        let ok = validate(" Social Shake-Up ", 52.5, 13.4, 50, t(0), t(14 * 86_400)).expect("valid");
        assert_eq!(ok.name, "Social Shake-Up");
        assert!(validate("x", 52.5, 13.4, 5000, t(0), t(1)).is_ok());
        let fields = |r: Result<NewEvent, Vec<FieldError>>| -> Vec<String> {
            r.expect_err("invalid").into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields(validate("x", 52.5, 13.4, 49, t(0), t(1))), ["radius_m"]);
        assert_eq!(fields(validate("x", 52.5, 13.4, 5001, t(0), t(1))), ["radius_m"]);
        assert_eq!(fields(validate("x", 52.5, 13.4, 100, t(0), t(0))), ["ends_at"]);
        assert_eq!(
            fields(validate("x", 52.5, 13.4, 100, t(0), t(14 * 86_400 + 1))),
            ["ends_at"]
        );
        assert_eq!(fields(validate(" ", 52.5, 13.4, 100, t(0), t(1))), ["name"]);
        assert_eq!(fields(validate("a\u{202E}", 52.5, 13.4, 100, t(0), t(1))), ["name"]);
        assert_eq!(fields(validate("x", 91.0, 13.4, 100, t(0), t(1))), ["lat"]);
    }

    #[test]
    fn inside_the_venue_while_it_runs() {
        let venue = Coord::new(52.5, 13.4).expect("coord");
        let near = Coord::new(52.5009, 13.4).expect("coord"); // ~100 m north
        assert!(inside(venue, 150.0, t(0), t(10), near, t(5)));
        assert!(!inside(venue, 50.0, t(0), t(10), near, t(5)));
        assert!(!inside(venue, 150.0, t(0), t(10), near, t(10)));
        assert!(!inside(venue, 150.0, t(1), t(10), near, t(0)));
    }

    #[test]
    fn join_codes() {
        assert_eq!(normalise_join_code(" abcd-efgh "), "ABCDEFGH");
        assert_eq!(join_code([0u8; 4]), None);
        assert_eq!(join_code([255u8; 64]), None);
    }

    proptest! {
        #[test]
        fn the_box_holds_the_venue(
            lat in -90.0f64..=90.0, lng in -180.0f64..=180.0, radius in 50.0f64..=5000.0,
            bearing in 0.0f64..360.0, frac in 0.0f64..=1.0,
        ) {
            use geo::{Destination, Geodesic, Point};
            let venue = Coord::new(lat, lng).expect("coord");
            let p = Geodesic.destination(Point::new(lng, lat), bearing, radius * frac);
            let (a, b, c, d) = bounding_box(venue, radius);
            prop_assert!(p.y() >= a && p.y() <= b && p.x() >= c && p.x() <= d, "{p:?} outside {a} {b} {c} {d}");
        }

        #[test]
        fn join_codes_use_the_alphabet(bytes in prop::collection::vec(any::<u8>(), 64)) {
            if let Some(code) = join_code(bytes) {
                prop_assert_eq!(code.len(), JOIN_CODE_LEN);
                prop_assert!(code.bytes().all(|b| JOIN_CODE_ALPHABET.contains(&b)));
                prop_assert_eq!(normalise_join_code(&code.to_lowercase()), code);
            }
        }
    }
}
