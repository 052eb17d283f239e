//! Travel plans, pure: dates as the contract validates them, how two date ranges meet (gap,
//! shared or nearest dates), the resolution-5 cell others learn, and the search box around a
//! cell centre that the overlap query hands to PostgreSQL's GiST index.

use super::FieldError;
use super::geo::Coord;
use geo::{Distance, Geodesic, Point};
use h3o::{CellIndex, LatLng, Resolution};
use time::{Date, Duration, Month};

/// The resolution of trip and home cells: all that others ever learn of the place.
pub const TRIP_RESOLUTION: Resolution = Resolution::Five;

/// Longest trip: `ends_on` at most this many days after `starts_on`.
pub const MAX_TRIP_DAYS: i64 = 90;

/// Longest trip name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Overlap tolerance in days (the query's bounds and default).
pub const TOLERANCE_DAYS: (i64, i64, i64) = (0, 7, 1);

/// Overlap radius in km (the query's bounds and default).
pub const RADIUS_KM: (i64, i64, i64) = (1, 500, 50);

/// `YYYY-MM-DD`.
const DATE_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Parses a calendar date as the API writes it (`2026-12-24`).
pub fn parse_date(field: &str, s: &str) -> Result<Date, FieldError> {
    Date::parse(s, DATE_FORMAT).map_err(|_| FieldError::new(field, "must be a date YYYY-MM-DD"))
}

/// Writes a date as the API does.
pub fn format_date(d: Date) -> String {
    d.format(DATE_FORMAT).unwrap_or_default()
}

/// An inclusive range of dates, `starts_on <= ends_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dates {
    pub starts_on: Date,
    pub ends_on: Date,
}

/// The same day two years later (29 February becomes 28 February).
fn two_years_after(d: Date) -> Date {
    let year = d.year() + 2;
    Date::from_calendar_date(year, d.month(), d.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .unwrap_or(Date::MAX)
}

impl Dates {
    /// Checks a trip's dates against today (UTC): `ends_on` not before `starts_on`, at most
    /// [`MAX_TRIP_DAYS`] long, not over, and starting at most two years ahead.
    pub fn new(starts_on: Date, ends_on: Date, today: Date) -> Result<Dates, Vec<FieldError>> {
        let mut errors = vec![];
        if ends_on < starts_on {
            errors.push(FieldError::new("ends_on", "must not be before starts_on"));
        } else if (ends_on - starts_on).whole_days() > MAX_TRIP_DAYS {
            errors.push(FieldError::new("ends_on", "a trip lasts at most 90 days"));
        }
        if ends_on < today {
            errors.push(FieldError::new("ends_on", "must not be in the past"));
        }
        if starts_on > two_years_after(today) {
            errors.push(FieldError::new("starts_on", "must be at most 2 years ahead"));
        }
        if errors.is_empty() {
            Ok(Dates { starts_on, ends_on })
        } else {
            Err(errors)
        }
    }

    /// Dates as stored (no checks: they were checked when written).
    pub fn stored(starts_on: Date, ends_on: Date) -> Dates {
        Dates {
            starts_on,
            ends_on: ends_on.max(starts_on),
        }
    }

    /// Widened by `days` on each side (saturating at the calendar's ends).
    pub fn widened(self, days: i64) -> Dates {
        let d = Duration::days(days);
        Dates {
            starts_on: self.starts_on.checked_sub(d).unwrap_or(Date::MIN),
            ends_on: self.ends_on.checked_add(d).unwrap_or(Date::MAX),
        }
    }
}

/// How two date ranges meet: the days between them (0 when they overlap) and the shared dates,
/// or on a near miss the nearest pair of dates (the earlier range's last day, the later one's first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meeting {
    pub gap_days: i64,
    pub from: Date,
    pub to: Date,
}

/// How `a` and `b` meet, whatever their distance in time.
pub fn meeting(a: Dates, b: Dates) -> Meeting {
    if b.starts_on > a.ends_on {
        Meeting {
            gap_days: (b.starts_on - a.ends_on).whole_days(),
            from: a.ends_on,
            to: b.starts_on,
        }
    } else if a.starts_on > b.ends_on {
        Meeting {
            gap_days: (a.starts_on - b.ends_on).whole_days(),
            from: b.ends_on,
            to: a.starts_on,
        }
    } else {
        Meeting {
            gap_days: 0,
            from: a.starts_on.max(b.starts_on),
            to: a.ends_on.min(b.ends_on),
        }
    }
}

/// The resolution-5 cell of a point.
pub fn trip_cell(p: Coord) -> CellIndex {
    p.cell(TRIP_RESOLUTION)
}

/// The centre of a cell.
pub fn centre(cell: CellIndex) -> Coord {
    Coord::from(LatLng::from(cell))
}

/// The centre of a stored cell string (the origin if it no longer parses).
pub fn centre_of(cell: &str) -> Coord {
    cell.parse::<CellIndex>().map(centre).unwrap_or(Coord::ORIGIN)
}

/// Geodesic distance between two points, rounded to whole km (the API's `distance_km`).
pub fn distance_km(a: Coord, b: Coord) -> i64 {
    let m = Geodesic.distance(Point::new(a.lng(), a.lat()), Point::new(b.lng(), b.lat()));
    (m / 1000.0).round() as i64
}

/// A box in degrees: (min_lng, min_lat, max_lng, max_lat).
pub type LngLatBox = (f64, f64, f64, f64);

/// At most two boxes (two when the circle crosses the antimeridian) that hold every point
/// within `radius_km` of `c`: the index's coarse filter; the exact distance decides after.
pub fn search_boxes(c: Coord, radius_km: f64) -> [LngLatBox; 2] {
    // a degree of latitude is at least 110.57 km; widen by 1 % for the ellipsoid and rounding
    let dlat = radius_km * 1.01 / 110.57 + 0.01;
    let (min_lat, max_lat) = ((c.lat() - dlat).max(-90.0), (c.lat() + dlat).min(90.0));
    let widest = min_lat.abs().max(max_lat.abs());
    if widest >= 89.0 {
        let all = (-180.0, min_lat, 180.0, max_lat);
        return [all, all];
    }
    let dlng = dlat / widest.to_radians().cos();
    if dlng >= 180.0 {
        let all = (-180.0, min_lat, 180.0, max_lat);
        return [all, all];
    }
    let (lo, hi) = (c.lng() - dlng, c.lng() + dlng);
    if lo < -180.0 {
        [(-180.0, min_lat, hi, max_lat), (lo + 360.0, min_lat, 180.0, max_lat)]
    } else if hi > 180.0 {
        [(lo, min_lat, 180.0, max_lat), (-180.0, min_lat, hi - 360.0, max_lat)]
    } else {
        let b = (lo, min_lat, hi, max_lat);
        [b, b]
    }
}

/// Whether a point lies in one of the boxes.
pub fn in_boxes(p: Coord, boxes: &[LngLatBox; 2]) -> bool {
    boxes
        .iter()
        .any(|b| (b.0..=b.2).contains(&p.lng()) && (b.1..=b.3).contains(&p.lat()))
}

/// A trip name as stored: trimmed, control characters dropped, at most [`MAX_NAME_CHARS`];
/// empty is none.
pub fn clean_name(name: Option<&str>) -> Option<String> {
    let n: String = name?
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    (!n.is_empty()).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::date;

    fn day(n: i32) -> Date {
        date!(2027 - 01 - 01) + Duration::days(i64::from(n))
    }

    #[test]
    fn validation_edges() {
        let today = date!(2027 - 01 - 01);
        assert!(Dates::new(today, today, today).is_ok());
        assert!(Dates::new(today, today + Duration::days(90), today).is_ok());
        let e = Dates::new(today, today + Duration::days(91), today).expect_err("invalid");
        assert_eq!(e[0].field, "ends_on");
        let e = Dates::new(today + Duration::days(2), today + Duration::days(1), today).expect_err("invalid");
        assert_eq!(e[0].field, "ends_on");
        let e = Dates::new(today - Duration::days(3), today - Duration::days(1), today).expect_err("invalid");
        assert_eq!(e[0].field, "ends_on");
        assert!(Dates::new(date!(2029 - 01 - 01), date!(2029 - 01 - 02), today).is_ok());
        let e = Dates::new(date!(2029 - 01 - 02), date!(2029 - 01 - 03), today).expect_err("invalid");
        assert_eq!(e[0].field, "starts_on");
        assert_eq!(two_years_after(date!(2028 - 02 - 29)), date!(2030 - 02 - 28));
    }

    #[test]
    fn near_miss_names_the_nearest_dates() {
        let a = Dates::stored(day(0), day(3));
        let b = Dates::stored(day(4), day(6));
        assert_eq!(
            meeting(a, b),
            Meeting {
                gap_days: 1,
                from: day(3),
                to: day(4)
            }
        );
        assert_eq!(
            meeting(b, a),
            Meeting {
                gap_days: 1,
                from: day(3),
                to: day(4)
            }
        );
        let c = Dates::stored(day(2), day(9));
        assert_eq!(
            meeting(a, c),
            Meeting {
                gap_days: 0,
                from: day(2),
                to: day(3)
            }
        );
    }

    #[test]
    fn boxes_cross_the_antimeridian() {
        let p = Coord::new(0.0, 179.9).expect("valid");
        let b = search_boxes(p, 50.0);
        assert!(in_boxes(Coord::new(0.0, -179.9).expect("valid"), &b));
        assert!(in_boxes(p, &b));
        assert!(!in_boxes(Coord::new(0.0, 0.0).expect("valid"), &b));
    }

    fn dates() -> impl Strategy<Value = Dates> {
        (0i32..400, 0i32..91).prop_map(|(s, len)| Dates::stored(day(s), day(s + len)))
    }

    proptest! {
        #[test]
        fn meeting_is_symmetric_and_ordered(a in dates(), b in dates()) {
            let m = meeting(a, b);
            prop_assert_eq!(m, meeting(b, a));
            prop_assert!(m.from <= m.to || m.gap_days == 0);
            prop_assert!(m.gap_days >= 0);
            if m.gap_days == 0 {
                // shared dates lie in both ranges
                prop_assert!(m.from <= m.to);
                for d in [m.from, m.to] {
                    prop_assert!(a.starts_on <= d && d <= a.ends_on);
                    prop_assert!(b.starts_on <= d && d <= b.ends_on);
                }
            } else {
                prop_assert_eq!((m.to - m.from).whole_days(), m.gap_days);
            }
        }

        #[test]
        fn widening_by_the_gap_is_exactly_enough(a in dates(), b in dates()) {
            let g = meeting(a, b).gap_days;
            let meets = |w: Dates| w.starts_on <= b.ends_on && b.starts_on <= w.ends_on;
            prop_assert!(meets(a.widened(g)));
            if g > 0 {
                prop_assert!(!meets(a.widened(g - 1)));
            }
        }

        #[test]
        fn every_point_within_the_radius_is_in_a_box(
            lat in -85.0f64..85.0, lng in -180.0f64..180.0, r in 1.0f64..500.0,
            bearing in 0.0f64..360.0, frac in 0.0f64..1.0,
        ) {
            use geo::Destination;
            let c = Coord::new(lat, lng).expect("valid");
            let q = Geodesic.destination(Point::new(lng, lat), bearing, r * 1000.0 * frac);
            let q = Coord::new(q.y(), ((q.x() + 540.0) % 360.0) - 180.0).expect("valid");
            prop_assert!(in_boxes(q, &search_boxes(c, r)));
        }

        #[test]
        fn validated_dates_hold_their_rules(s in -30i32..900, len in -5i32..120) {
            let today = day(0);
            let (a, b) = (day(s), day(s + len));
            match Dates::new(a, b, today) {
                Ok(d) => {
                    prop_assert!(d.starts_on <= d.ends_on);
                    prop_assert!((d.ends_on - d.starts_on).whole_days() <= MAX_TRIP_DAYS);
                    prop_assert!(d.ends_on >= today);
                }
                Err(e) => prop_assert!(!e.is_empty()),
            }
        }
    }
}
