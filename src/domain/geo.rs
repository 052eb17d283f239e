//! Points, published points and distances: validation, precision snapping with H3, geodesic
//! distance on WGS84 and its rounding.

use super::FieldError;
use super::policy::Precision;
use geo::{Distance, Geodesic, Point};
use h3o::{CellIndex, LatLng, Resolution};

/// The resolutions the live index keeps, finest first: one sorted set per cell at each.
pub const INDEX_RESOLUTIONS: [Resolution; 4] =
    [Resolution::Nine, Resolution::Seven, Resolution::Five, Resolution::Three];

/// A WGS84 point, finite and in range: made only by [`Coord::new`] or from an H3 point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coord {
    lat: f64,
    lng: f64,
}

impl From<LatLng> for Coord {
    fn from(p: LatLng) -> Self {
        Coord {
            lat: p.lat(),
            lng: p.lng(),
        }
    }
}

impl Coord {
    /// (0, 0): what a stored point that no longer parses is read as.
    pub const ORIGIN: Coord = Coord { lat: 0.0, lng: 0.0 };

    /// Latitude in degrees, [-90, 90].
    pub fn lat(self) -> f64 {
        self.lat
    }

    /// Longitude in degrees, [-180, 180].
    pub fn lng(self) -> f64 {
        self.lng
    }

    /// A point read back from a store, which only ever held valid points.
    pub fn stored(lat: f64, lng: f64) -> Coord {
        Coord::new(lat, lng).unwrap_or(Coord::ORIGIN)
    }

    /// Checks ranges: lat in [-90, 90], lng in [-180, 180], both finite.
    pub fn new(lat: f64, lng: f64) -> Result<Coord, Vec<FieldError>> {
        let mut errors = vec![];
        if !lat.is_finite() || !(-90.0..=90.0).contains(&lat) {
            errors.push(FieldError::new("lat", "must be a number in [-90, 90]"));
        }
        if !lng.is_finite() || !(-180.0..=180.0).contains(&lng) {
            errors.push(FieldError::new("lng", "must be a number in [-180, 180]"));
        }
        if errors.is_empty() {
            Ok(Coord { lat, lng })
        } else {
            Err(errors)
        }
    }

    pub(crate) fn latlng(self) -> LatLng {
        // Coords come from `Coord::new` or from H3 itself, so they are finite.
        LatLng::new(self.lat, self.lng).unwrap_or_else(|_| LatLng::new(0.0, 0.0).expect("the origin is a valid point"))
    }

    /// The cell holding this point at a resolution.
    pub fn cell(self, res: Resolution) -> CellIndex {
        self.latlng().to_cell(res)
    }
}

/// What other users may learn of a check-in: a point and the cell it is published in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    pub point: Coord,
    pub cell: CellIndex,
    pub precision: Precision,
}

/// Snaps a raw point to what is published at a precision: the point itself (cell at res 9),
/// or the centre of its res-7 or res-5 cell.
pub fn publish(raw: Coord, precision: Precision) -> Published {
    let res = precision.resolution();
    let cell = raw.cell(res);
    let point = match precision {
        Precision::Exact => raw,
        Precision::Approximate | Precision::City => Coord::from(LatLng::from(cell)),
    };
    Published { point, cell, precision }
}

/// Geodesic distance in metres on the WGS84 ellipsoid (Karney's algorithm).
pub fn distance_m(a: Coord, b: Coord) -> f64 {
    Geodesic.distance(Point::new(a.lng, a.lat), Point::new(b.lng, b.lat))
}

/// How far the sphere's great-circle distance may stray from the ellipsoid's geodesic one, with
/// margin (the true bound is about 0.56 %).
const SPHERE_ERROR: f64 = 0.007;

/// Whether `a` and `b` are surely farther apart than `bound_m` (geodesically): by the sphere's
/// great-circle distance (haversine), within 0.6 % of the ellipsoid's and a tenth of its cost.
/// `false` says nothing: measure with [`distance_m`].
pub fn beyond_m(a: Coord, b: Coord, bound_m: f64) -> bool {
    sphere_m(a, b) * (1.0 - SPHERE_ERROR) > bound_m
}

/// Whether `a` and `b` lie within `bound_m` of each other, geodesically: told by the sphere's
/// distance when it is clear either way, by [`distance_m`] only when it is within 0.7 % of the
/// bound (the same answer as `distance_m(a, b) <= bound_m`, mostly at a tenth of its cost).
pub fn within_m(a: Coord, b: Coord, bound_m: f64) -> bool {
    let s = sphere_m(a, b);
    if s * (1.0 - SPHERE_ERROR) > bound_m {
        return false;
    }
    s * (1.0 + SPHERE_ERROR) < bound_m || distance_m(a, b) <= bound_m
}

/// The great-circle distance on the sphere of the Earth's mean radius (haversine).
fn sphere_m(a: Coord, b: Coord) -> f64 {
    use geo::Haversine;
    Haversine.distance(Point::new(a.lng, a.lat), Point::new(b.lng, b.lat))
}

/// Of two sphere distances, whether the first is surely the smaller geodesically (`Some(true)`),
/// surely the larger (`Some(false)`), or too close to tell (`None`).
fn surely_nearer(s1: f64, s2: f64) -> Option<bool> {
    if s1 * (1.0 + SPHERE_ERROR) < s2 * (1.0 - SPHERE_ERROR) {
        Some(true)
    } else if s2 * (1.0 + SPHERE_ERROR) < s1 * (1.0 - SPHERE_ERROR) {
        Some(false)
    } else {
        None
    }
}

/// A distance rounded to the precision of the user it is measured to (10 / 100 / 1,000 m).
pub fn round_distance(d: f64, precision: Precision) -> u64 {
    let step = precision.rounding_m();
    ((d / step).round() * step) as u64
}

/// A unit vector on the sphere for a point given in degrees.
pub(crate) fn unit(p: LatLng) -> [f64; 3] {
    let (lat, lng) = (p.lat_radians(), p.lng_radians());
    [lat.cos() * lng.cos(), lat.cos() * lng.sin(), lat.sin()]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The point of the great-circle arc from `a` to `b` nearest to `p` (on the sphere), as a
/// coordinate: the foot of the perpendicular when it falls inside the arc, else an endpoint.
fn nearest_on_arc(p: LatLng, a: LatLng, b: LatLng) -> Coord {
    let (pv, av, bv) = (unit(p), unit(a), unit(b));
    let n = cross(av, bv);
    let nn = dot(n, n).sqrt();
    if nn > 1e-15 {
        let n = n.map(|x| x / nn);
        let k = dot(pv, n);
        let foot = [pv[0] - k * n[0], pv[1] - k * n[1], pv[2] - k * n[2]];
        let fl = dot(foot, foot).sqrt();
        if fl > 1e-15 && dot(cross(av, foot), n) >= 0.0 && dot(cross(foot, bv), n) >= 0.0 {
            let f = foot.map(|x| x / fl);
            return Coord {
                lat: f[2].clamp(-1.0, 1.0).asin().to_degrees(),
                lng: f[1].atan2(f[0]).to_degrees(),
            };
        }
    }
    let (ca, cb) = (Coord::from(a), Coord::from(b));
    let pc = Coord::from(p);
    let nearer_a =
        surely_nearer(sphere_m(pc, ca), sphere_m(pc, cb)).unwrap_or_else(|| distance_m(pc, ca) <= distance_m(pc, cb));
    if nearer_a { ca } else { cb }
}

/// The least and the greatest geodesic distance from `p` to the area of `cell`: 0 for the least
/// when `p` lies inside it. The least is measured to the nearest point of the boundary (H3 edges
/// are great-circle arcs: the foot of the perpendicular on the sphere, then the geodesic distance
/// to it), the greatest to the farthest vertex (cells are convex).
/// The geodesic is measured only to the points that the sphere's distance cannot rule out (a
/// vertex surely nearer than another is not the farthest): the same answer at a fraction of the
/// cost.
pub fn cell_distance_range(p: Coord, cell: CellIndex) -> (f64, f64) {
    let boundary = cell.boundary();
    let vertices: Vec<(Coord, f64)> = boundary
        .iter()
        .map(|v| (Coord::from(*v), sphere_m(p, Coord::from(*v))))
        .collect();
    let far = extreme(p, &vertices, false);
    if p.cell(cell.resolution()) == cell || vertices.is_empty() {
        return (0.0, far);
    }
    let pl = p.latlng();
    let feet: Vec<(Coord, f64)> = (0..boundary.len())
        .map(|i| {
            let q = nearest_on_arc(pl, boundary[i], boundary[(i + 1) % boundary.len()]);
            (q, sphere_m(p, q))
        })
        .collect();
    let near = extreme(p, &feet, true);
    (near, far.max(near))
}

/// The least (`least`) or the greatest geodesic distance from `p` to `points` (each with its
/// sphere distance): the geodesic of only those the sphere's distance leaves in the running.
fn extreme(p: Coord, points: &[(Coord, f64)], least: bool) -> f64 {
    let pick = |a: f64, b: f64| if least { a.min(b) } else { a.max(b) };
    let start = if least { f64::MAX } else { 0.0 };
    let best = points.iter().map(|(_, s)| *s).fold(start, pick);
    points
        .iter()
        .filter(|(_, s)| surely_nearer(*s, best) != Some(!least))
        .map(|(q, _)| distance_m(p, *q))
        .fold(start, pick)
}

/// `(least, greatest)` rounded outwards to a precision's step: down and up.
pub fn round_range(range: (f64, f64), precision: Precision) -> (u64, u64) {
    let step = precision.rounding_m();
    (
        ((range.0 / step).floor() * step) as u64,
        ((range.1 / step).ceil() * step) as u64,
    )
}

/// The cells a published point is indexed in, at every index resolution.
pub fn index_cells(p: Coord) -> [CellIndex; 4] {
    INDEX_RESOLUTIONS.map(|r| p.cell(r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn coord() -> impl Strategy<Value = Coord> {
        prop_oneof![
            (-90.0f64..=90.0, -180.0f64..=180.0),
            // the antimeridian and the poles
            (-90.0f64..=90.0, prop_oneof![179.9f64..=180.0, -180.0f64..=-179.9]),
            (prop_oneof![89.9f64..=90.0, -90.0f64..=-89.9], -180.0f64..=180.0),
        ]
        .prop_map(|(lat, lng)| Coord { lat, lng })
    }

    fn pentagon_point() -> impl Strategy<Value = Coord> {
        let pentagons: Vec<CellIndex> = Resolution::Nine.pentagons().collect();
        (0..pentagons.len(), -0.001f64..0.001, -0.001f64..0.001).prop_map(move |(i, dlat, dlng)| {
            let c = LatLng::from(pentagons[i]);
            Coord {
                lat: (c.lat() + dlat).clamp(-90.0, 90.0),
                lng: (c.lng() + dlng).clamp(-180.0, 180.0),
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn snapping_lands_in_the_cell_of_the_point(p in prop_oneof![coord(), pentagon_point()]) {
            for precision in [Precision::Exact, Precision::Approximate, Precision::City] {
                let pubd = publish(p, precision);
                let res = precision.resolution();
                prop_assert_eq!(pubd.cell.resolution(), res);
                prop_assert_eq!(pubd.cell, p.cell(res), "published cell is the raw point's cell");
                // the published point lies in the published cell (snapping is stable)
                prop_assert_eq!(pubd.point.cell(res), pubd.cell);
                if precision != Precision::Exact {
                    // and it reveals nothing finer than the cell: every point of the cell publishes the same
                    let again = publish(pubd.point, precision);
                    prop_assert_eq!(again.point, pubd.point);
                }
            }
        }

        #[test]
        fn rounding_is_within_half_a_step(d in 0.0f64..400_000.0) {
            for precision in [Precision::Exact, Precision::Approximate, Precision::City] {
                let r = round_distance(d, precision) as f64;
                let step = precision.rounding_m();
                prop_assert!((r - d).abs() <= step / 2.0 + 1e-6);
                prop_assert_eq!(r % step, 0.0);
            }
        }

        #[test]
        fn coordinates_outside_the_range_are_rejected(lat in prop::num::f64::ANY, lng in prop::num::f64::ANY) {
            let ok = Coord::new(lat, lng).is_ok();
            prop_assert_eq!(ok, lat.is_finite() && lng.is_finite() && lat.abs() <= 90.0 && lng.abs() <= 180.0);
        }
    }

    /// A point near the cell's area: inside it, or up to a few cell sizes away.
    fn point_and_cell() -> impl Strategy<Value = (Coord, CellIndex)> {
        (
            prop_oneof![coord(), pentagon_point()],
            prop_oneof![Just(Resolution::Seven), Just(Resolution::Five)],
            -2.0f64..2.0,
            -2.0f64..2.0,
        )
            .prop_map(|(p, res, dx, dy)| {
                let cell = p.cell(res);
                // move the point by up to two edge lengths
                let edge = cell.edges().map(|e| e.length_m()).fold(0.0f64, f64::max);
                let dlat = dy * edge / 111_000.0;
                let dlng = dx * edge / (111_000.0 * p.lat().to_radians().cos().max(0.05));
                let lat = (p.lat() + dlat).clamp(-90.0, 90.0);
                let mut lng = p.lng() + dlng;
                if lng > 180.0 {
                    lng -= 360.0;
                }
                if lng < -180.0 {
                    lng += 360.0;
                }
                (
                    Coord {
                        lat,
                        lng: lng.clamp(-180.0, 180.0),
                    },
                    cell,
                )
            })
    }

    /// The range measured the long way: the geodesic to every vertex and to every edge's
    /// nearest point, nearer endpoints told apart by the geodesic alone.
    fn range_measured_fully(p: Coord, cell: CellIndex) -> (f64, f64) {
        let boundary: Vec<LatLng> = cell.boundary().iter().copied().collect();
        let far = boundary
            .iter()
            .map(|v| distance_m(p, Coord::from(*v)))
            .fold(0.0f64, f64::max);
        if p.cell(cell.resolution()) == cell {
            return (0.0, far);
        }
        let near = (0..boundary.len())
            .map(|i| {
                let (a, b) = (boundary[i], boundary[(i + 1) % boundary.len()]);
                let q = nearest_on_arc(p.latlng(), a, b);
                let ends = distance_m(p, Coord::from(a)).min(distance_m(p, Coord::from(b)));
                // the foot of the perpendicular, or else the nearer endpoint
                if q == Coord::from(a) || q == Coord::from(b) {
                    ends
                } else {
                    distance_m(p, q)
                }
            })
            .fold(f64::MAX, f64::min);
        (near, far.max(near))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// The sphere only spares geodesics: the answer is the geodesic's, to the bit.
        #[test]
        fn within_is_the_geodesic_comparison(
            a in prop_oneof![coord(), pentagon_point()],
            bearing in 0.0f64..360.0,
            d in prop_oneof![0.0f64..100.0, 0.0f64..300_000.0, 19_000_000.0f64..20_000_000.0],
            slack in -0.01f64..0.01,
        ) {
            use geo::{Destination, Geodesic};
            let q = Geodesic.destination(Point::new(a.lng(), a.lat()), bearing, d);
            let b = Coord::new(q.y(), q.x()).expect("a point on the ellipsoid");
            let bound = distance_m(a, b) * (1.0 + slack);
            prop_assert_eq!(within_m(a, b, bound), distance_m(a, b) <= bound);
            prop_assert!(!beyond_m(a, b, bound) || distance_m(a, b) > bound);
        }

        #[test]
        fn the_distance_range_is_the_one_measured_fully((p, cell) in point_and_cell()) {
            prop_assert_eq!(cell_distance_range(p, cell), range_measured_fully(p, cell));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Every point of the cell lies within the range; the least is 0 exactly when the point
        /// is inside, and some point of the cell comes close to the least and the greatest. The
        /// points of the cell are those H3 puts in it: the centres of the fine descendants of the
        /// cell and of its neighbours (a cell's own descendants fall short of some of its edges,
        /// by a tenth of an edge near the poles), so they reach every edge within one fine cell.
        #[test]
        fn the_distance_range_bounds_every_point_of_the_cell((p, cell) in point_and_cell()) {
            let (near, far) = cell_distance_range(p, cell);
            prop_assert!(near <= far);
            prop_assert_eq!(near == 0.0, p.cell(cell.resolution()) == cell);
            let fine = cell.resolution().succ().and_then(|r| r.succ()).and_then(|r| r.succ()).expect("finer");
            let mut samples: Vec<Coord> = cell
                .grid_disk::<Vec<_>>(1)
                .into_iter()
                .flat_map(|c| c.children(fine))
                .map(|c| Coord::from(LatLng::from(c)))
                .filter(|q| q.cell(cell.resolution()) == cell)
                .collect();
            samples.extend(cell.boundary().iter().map(|v| Coord::from(*v)));
            if near == 0.0 {
                samples.push(p);
            }
            // the spacing of the samples: a fine cell's diameter, with room for the ellipsoid
            let step = cell.children(fine).next().expect("a child").edges().map(|e| e.length_m()).fold(0.0f64, f64::max) * 2.5;
            let (mut lo, mut hi) = (f64::MAX, 0.0f64);
            for q in &samples {
                let d = distance_m(p, *q);
                lo = lo.min(d);
                hi = hi.max(d);
                prop_assert!(d + 1.0 >= near, "a point of the cell at {d} m is nearer than {near} m");
                prop_assert!(d <= far + 1.0, "a point of the cell at {d} m is beyond {far} m");
            }
            prop_assert!(far <= hi + 1.0, "no point of the cell is as far as {far} m (farthest {hi})");
            prop_assert!(lo <= near + step, "nothing of the cell comes near {near} m (nearest {lo})");
        }
    }

    #[test]
    fn a_city_user_three_km_away_is_within_five_km_of_its_cell() {
        let me = Coord {
            lat: 48.8566,
            lng: 2.3522,
        };
        let them = Coord {
            lat: 48.8566 + 3_000.0 / 111_000.0,
            lng: 2.3522,
        };
        let cell = them.cell(Resolution::Five);
        let (near, far) = cell_distance_range(me, cell);
        assert!(near <= 3_000.0, "least {near}");
        assert!(far >= 3_000.0, "greatest {far}");
        assert_eq!(round_range((1_234.0, 5_678.0), Precision::City), (1_000, 6_000));
        assert_eq!(round_range((1_234.0, 5_678.0), Precision::Approximate), (1_200, 5_700));
    }

    #[test]
    fn geodesic_distance_is_wgs84_not_a_sphere() {
        // one degree of latitude at the equator is 110,574 m on WGS84 (a sphere would say 111,195)
        let d = distance_m(Coord { lat: 0.0, lng: 0.0 }, Coord { lat: 1.0, lng: 0.0 });
        assert!((d - 110_574.0).abs() < 1.0, "{d}");
        // across the antimeridian the short way round
        let d = distance_m(
            Coord { lat: 0.0, lng: 179.999 },
            Coord {
                lat: 0.0,
                lng: -179.999,
            },
        );
        assert!(d < 300.0, "{d}");
    }
}
