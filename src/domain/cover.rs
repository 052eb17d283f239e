//! The H3 cover of a circle: a resolution from the index and a disk of cells around the centre
//! that holds every point within the radius — across the antimeridian, at the poles and around
//! pentagons (H3's own topology handles all three; the disk size accounts for local cell size).

use super::geo::{Coord, INDEX_RESOLUTIONS, unit};
use h3o::{CellIndex, LatLng, Resolution};
use rustc_hash::FxHashMap;
use std::cell::RefCell;
use std::thread::LocalKey;

/// Smallest and largest radius the nearby query accepts, in metres.
pub const MIN_RADIUS_M: f64 = 50.0;
pub const MAX_RADIUS_M: f64 = 200_000.0;

/// Largest disk (in rings) we accept before moving to a coarser resolution: 3k(k+1)+1 = 217
/// cells, of which the corners beyond the circle are dropped (about 60 % are kept). A finer
/// resolution reads far fewer members than a coarser one: at 5 km, res 7 covers ~8× the
/// circle's area where res 5 would cover ~100×.
const MAX_K: u32 = 8;

/// The cells that cover a circle, all at one resolution.
#[derive(Debug, Clone)]
pub struct Cover {
    pub resolution: Resolution,
    pub cells: Vec<CellIndex>,
}

#[cfg(test)]
impl Cover {
    /// True when `cell` (at the cover's resolution) is part of the cover (the tests' question:
    /// the queries read the cells, they never ask).
    pub fn contains(&self, cell: CellIndex) -> bool {
        self.cells.contains(&cell)
    }

    /// True when the point's cell at the cover's resolution is in the cover.
    pub fn contains_point(&self, p: Coord) -> bool {
        self.contains(p.cell(self.resolution))
    }
}

/// Local cell size around a point at a resolution: the shortest and longest edge of the cell
/// holding it, and whether a pentagon is within one ring (its neighbourhood is distorted).
#[derive(Debug, Clone, Copy)]
struct Local {
    min_edge: f64,
    max_edge: f64,
    pentagon: bool,
}

/// Cells whose [`Local`] each thread remembers at most (a few MB; cleared when full). Edge
/// lengths are a pure function of the cell and cost most of a cover's time, while queries
/// come again and again from the same few thousand cells.
const LOCAL_MEMO: usize = 16_384;

/// Cells whose centre (as a unit vector) each thread remembers at most (~0.3 MB; cleared when
/// full): the corner test of every cover measures the centre of each cell of its disk, up to
/// 217 of them, and the disks of queries overlap from one query to the next (the bench's 20
/// cities touch a few thousand cells).
const CENTRE_MEMO: usize = 8_192;

/// The radius of the sphere the corner test measures on (the mean radius, as `geo`'s haversine).
const MEAN_RADIUS_M: f64 = 6_371_008.8;

thread_local! {
    static LOCALS: RefCell<FxHashMap<CellIndex, Local>> = RefCell::new(FxHashMap::default());
    static CENTRES: RefCell<FxHashMap<CellIndex, [f64; 3]>> = RefCell::new(FxHashMap::default());
}

/// What `measure` says of `cell`, from this thread's `memo` (at most `cap` cells; cleared when
/// full) or measured and remembered.
fn remembered<V: Copy>(
    memo: &'static LocalKey<RefCell<FxHashMap<CellIndex, V>>>,
    cap: usize,
    cell: CellIndex,
    measure: impl FnOnce(CellIndex) -> V,
) -> V {
    memo.with(|m| {
        if let Some(v) = m.borrow().get(&cell) {
            return *v;
        }
        let v = measure(cell);
        let mut m = m.borrow_mut();
        if m.len() >= cap {
            m.clear();
        }
        m.insert(cell, v);
        v
    })
}

/// The centre of `cell` on the unit sphere, remembered.
fn centre_unit(cell: CellIndex) -> [f64; 3] {
    remembered(&CENTRES, CENTRE_MEMO, cell, |c| unit(LatLng::from(c)))
}

fn local(centre: Coord, res: Resolution) -> Local {
    remembered(&LOCALS, LOCAL_MEMO, centre.cell(res), measure_local)
}

fn measure_local(origin: CellIndex) -> Local {
    let (mut min_edge, mut max_edge) = (f64::MAX, 0.0f64);
    for e in origin.edges() {
        let l = e.length_m();
        min_edge = min_edge.min(l);
        max_edge = max_edge.max(l);
    }
    let pentagon = origin.grid_disk::<Vec<_>>(1).iter().any(|c| c.is_pentagon());
    Local {
        min_edge,
        max_edge,
        pentagon,
    }
}

/// Rings needed around the centre cell at `res` so that the disk holds the whole circle.
///
/// A point q within r of p lies in a cell whose centre is within r + 2R of p's cell centre (R:
/// circumradius = edge length). Cell centres k rings apart are at least 1.5·k·a apart (a: edge).
/// Edge lengths vary across the globe and, slowly, across a neighbourhood, so we take the shortest
/// edge of the centre cell with a 20 % margin for `a`, the longest with 25 % for `R`, and one more
/// ring near a pentagon. (Six edge lengths per call: this runs on every query.)
pub fn rings(centre: Coord, radius_m: f64, res: Resolution) -> u32 {
    rings_for(&local(centre, res), radius_m)
}

fn rings_for(l: &Local, radius_m: f64) -> u32 {
    let a = l.min_edge * 0.8;
    let big_r = l.max_edge * 1.25;
    let k = ((radius_m + 2.0 * big_r) / (1.5 * a)).ceil() as u32;
    k + u32::from(l.pentagon)
}

/// The cover nearby reads from: the circle widened by how far a coarse user's cell reaches
/// beyond its published centre (a res-5 cell's circumradius, its longest local edge, with 50 %
/// margin), so that a user whose cell the circle touches is read even when the centre is outside.
pub fn fetch_cover(centre: Coord, radius_m: f64) -> Cover {
    let l = local(centre, Resolution::Five);
    cover(centre, radius_m + l.max_edge * 1.5)
}

/// The cover of the circle of `radius_m` around `centre`: the finest indexed resolution whose
/// disk stays within `MAX_K` rings (the coarsest resolution otherwise).
pub fn cover(centre: Coord, radius_m: f64) -> Cover {
    let radius_m = radius_m.clamp(0.0, MAX_RADIUS_M);
    let mut chosen = None;
    for res in INDEX_RESOLUTIONS {
        // a resolution too fine even if its cells here were twice the average size (H3's
        // hexagons stay well within that) is passed over without measuring them (the coarsest
        // is always measured); skipping one only ever picks a coarser, still complete, cover
        let avg = res.edge_length_m();
        if res != Resolution::Three && (radius_m + 5.0 * avg) / (2.4 * avg) > f64::from(MAX_K) {
            continue;
        }
        let l = local(centre, res);
        let k = rings_for(&l, radius_m);
        let done = k <= MAX_K;
        chosen = Some((res, k, l));
        if done {
            break;
        }
    }
    let Some((resolution, k, l)) = chosen else {
        return Cover {
            resolution: Resolution::Three,
            cells: vec![],
        };
    };
    // a cell's circumradius, generously: cells far from the centre may be a little larger
    let reach = l.max_edge * 2.0 + 10.0;
    let disk: Vec<(CellIndex, u32)> = centre.cell(resolution).grid_disk_distances(k);
    // drop the disk's corners: a cell whose centre is farther than the radius plus its own
    // circumradius (longest edge, with margins for the spherical approximation) holds no point
    // of the circle. Measured on the sphere as the angle between unit vectors (a dot product
    // against the cosine of the largest angle kept, no trigonometry per cell)
    let angle = ((radius_m + reach) / 0.995 / MEAN_RADIUS_M).min(std::f64::consts::PI);
    let (u0, min_cos) = (unit(centre.latlng()), angle.cos());
    // the inner rings are kept without measuring: a cell d rings out has its centre within d
    // steps between neighbouring centres (√3 edges, an edge taken as 1.25 of the longest here)
    // and one circumradius of the point, which stays within the radius plus `reach`; near a
    // pentagon every cell is measured
    let big_r = l.max_edge * 1.25;
    let sure = (!l.pentagon).then(|| ((radius_m + reach - big_r) / (1.75 * big_r)).floor());
    let cells: Vec<CellIndex> = disk
        .into_iter()
        .filter(|(c, d)| {
            if sure.is_some_and(|s| f64::from(*d) <= s) {
                return true;
            }
            let u = centre_unit(*c);
            u0[0] * u[0] + u0[1] * u[1] + u0[2] * u[2] >= min_cos
        })
        .map(|(c, _)| c)
        .collect();
    Cover { resolution, cells }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::geo::distance_m;
    use geo::{Destination, Geodesic, Point};
    use proptest::prelude::*;

    fn c(lat: f64, lng: f64) -> Coord {
        Coord::new(lat, lng).expect("valid point")
    }

    fn centre() -> impl Strategy<Value = Coord> {
        let c2 = c;
        let pentagons: Vec<CellIndex> = Resolution::Nine
            .pentagons()
            .chain(Resolution::Five.pentagons())
            .collect();
        prop_oneof![
            4 => (-90.0f64..=90.0, -180.0f64..=180.0).prop_map(|(lat, lng)| c(lat, lng)),
            2 => (-85.0f64..=85.0, prop_oneof![179.0f64..=180.0, -180.0f64..=-179.0]).prop_map(|(lat, lng)| c(lat, lng)),
            2 => (prop_oneof![88.0f64..=90.0, -90.0f64..=-88.0], -180.0f64..=180.0).prop_map(|(lat, lng)| c(lat, lng)),
            2 => (0..pentagons.len(), -0.01f64..0.01, -0.01f64..0.01).prop_map(move |(i, a, b)| {
                let p = LatLng::from(pentagons[i]);
                c2((p.lat() + a).clamp(-90.0, 90.0), (p.lng() + b).clamp(-180.0, 180.0))
            }),
        ]
    }

    fn radius() -> impl Strategy<Value = f64> {
        prop_oneof![
            50.0f64..500.0,
            500.0f64..5_000.0,
            5_000.0f64..50_000.0,
            50_000.0f64..=200_000.0
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Brute force: points at random bearings and distances up to the radius (and on its
        /// edge) must all fall in cells of the cover.
        #[test]
        fn no_point_within_the_radius_is_missed(c in centre(), r in radius(), bearings in prop::collection::vec(0.0f64..360.0, 24), fracs in prop::collection::vec(0.0f64..=1.0, 24)) {
            let cov = cover(c, r);
            prop_assert!(cov.cells.len() <= 3 * 8 * 9 + 1 || cov.resolution == Resolution::Three, "disk stays small: {} cells", cov.cells.len());
            for (b, f) in bearings.iter().zip(fracs.iter()) {
                for frac in [*f, 1.0] {
                    let d = r * frac * 0.999_999;
                    let q = Geodesic.destination(Point::new(c.lng(), c.lat()), *b, d);
                    let q = Coord::new(q.y(), q.x()).expect("valid point");
                    prop_assert!(distance_m(c, q) <= r + 0.01);
                    prop_assert!(cov.contains_point(q), "missed point at {d:.0} m bearing {b:.0} (res {:?}, {} cells)", cov.resolution, cov.cells.len());
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// The corner test by unit vectors keeps the cells the haversine distance keeps (but
        /// for a cell within a millionth of the bound, where rounding may tell them apart).
        #[test]
        fn the_corner_test_is_the_haversine_one(c in centre(), r in radius()) {
            use geo::{Distance, Haversine};
            let cov = cover(c, r);
            let res = cov.resolution;
            let l = local(c, res);
            let (reach, radius) = (l.max_edge * 2.0 + 10.0, r.clamp(0.0, MAX_RADIUS_M));
            for cell in c.cell(res).grid_disk::<Vec<_>>(rings_for(&l, radius)) {
                let at = LatLng::from(cell);
                let d = Haversine.distance(Point::new(c.lng(), c.lat()), Point::new(at.lng(), at.lat())) * 0.995;
                let bound = radius + reach;
                if (d - bound).abs() > bound * 1e-6 {
                    prop_assert_eq!(cov.contains(cell), d <= bound, "cell {} at {:.0} m, bound {:.0} m", cell, d, bound);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Arrival detection reads coarse users from `fetch_cover` of the notify radius: a user
        /// whose own point lies within the radius is published at the centre of their res-5 or
        /// res-7 cell, which the cover must hold.
        #[test]
        fn fetch_cover_holds_the_published_point_of_every_own_point_within_the_radius(c in centre(), r in radius(), bearings in prop::collection::vec(0.0f64..360.0, 16), fracs in prop::collection::vec(0.0f64..=1.0, 16)) {
            let cov = fetch_cover(c, r);
            for (b, f) in bearings.iter().zip(fracs.iter()) {
                let q = Geodesic.destination(Point::new(c.lng(), c.lat()), *b, r * f * 0.999_999);
                let q = Coord::new(q.y(), q.x()).expect("valid point");
                for res in [Resolution::Five, Resolution::Seven] {
                    let published = Coord::from(LatLng::from(q.cell(res)));
                    prop_assert!(cov.contains_point(published), "missed the res-{res} centre of a point {:.0} m away", distance_m(c, q));
                }
            }
        }
    }

    #[test]
    fn resolution_follows_the_radius() {
        let c = c(40.7128, -74.006);
        assert_eq!(cover(c, 50.0).resolution, Resolution::Nine);
        assert_eq!(cover(c, 5_000.0).resolution, Resolution::Seven);
        assert_eq!(cover(c, 200_000.0).resolution, Resolution::Three);
        for r in [50.0, 300.0, 1_000.0, 5_000.0, 20_000.0, 60_000.0, 200_000.0] {
            let n = cover(c, r).cells.len();
            assert!(n <= 217, "radius {r}: {n} cells");
        }
        // the corners of the disk are dropped
        let cov = cover(c, 5_000.0);
        let disk = c
            .cell(cov.resolution)
            .grid_disk::<Vec<_>>(rings(c, 5_000.0, cov.resolution))
            .len();
        assert!(cov.cells.len() < disk, "{} of {disk}", cov.cells.len());
    }
}
