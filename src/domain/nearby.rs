//! The nearby query's pure parts: the live record kept per user in the index, the planner that
//! picks the cheaper side, and the exact filter (geodesic distance, privacy, expiry, rounding,
//! order, limit).

use super::geo::{Coord, beyond_m, cell_distance_range, distance_m, round_distance, round_range};
use super::policy::Precision;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The format byte of stored records (2 adds the profile summary; 1 is still read).
const RECORD_FORMAT: u8 = 2;
/// Records written before the profile summary.
const RECORD_FORMAT_V1: u8 = 1;

/// What a nearby item shows of who the person is, kept in the live record so that a page of
/// nearby needs no read of PostgreSQL (a `None` costs one byte).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub headline: Option<String>,
    pub company: Option<String>,
    pub title: Option<String>,
    pub avatar_url: Option<String>,
}

/// What the index holds about one live user, stored compactly ([`LiveRecord::to_bytes`]).
/// Only the published point is ever used for other users; `own` is the user's raw point, read
/// only as the centre of their own query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub checkin_id: Uuid,
    pub lat: f64,
    pub lng: f64,
    pub precision: Precision,
    /// H3 cell the user is published in (res 9 / 7 / 5), canonical string.
    pub cell: String,
    /// Unix seconds.
    pub recorded_at: i64,
    /// Unix milliseconds.
    pub expires_at_ms: i64,
    pub display_name: String,
    /// Users this user hides from.
    pub hidden_from: Vec<Uuid>,
    /// The user's own raw point (the centre of their own nearby query).
    pub own: (f64, f64),
    /// Headline, company, title, avatar (last: records of format 1 end before it).
    pub profile: Summary,
}

/// A record of format 1 (before the profile summary).
#[derive(Deserialize)]
struct LiveRecordV1 {
    checkin_id: Uuid,
    lat: f64,
    lng: f64,
    precision: Precision,
    cell: String,
    recorded_at: i64,
    expires_at_ms: i64,
    display_name: String,
    hidden_from: Vec<Uuid>,
    own: (f64, f64),
}

impl LiveRecord {
    /// The record as stored in Redis: postcard (a compact serde format: varints and raw bytes),
    /// behind a format byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![RECORD_FORMAT];
        // serialising a plain struct into a Vec cannot fail
        if let Ok(body) = postcard::to_allocvec(self) {
            out.extend(body);
        }
        out
    }

    /// Reads a stored record; `None` for anything else (an older format included).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        match bytes.split_first() {
            Some((&RECORD_FORMAT, body)) => postcard::from_bytes(body).ok(),
            Some((&RECORD_FORMAT_V1, body)) => postcard::from_bytes::<LiveRecordV1>(body).ok().map(|r| Self {
                checkin_id: r.checkin_id,
                lat: r.lat,
                lng: r.lng,
                precision: r.precision,
                cell: r.cell,
                recorded_at: r.recorded_at,
                expires_at_ms: r.expires_at_ms,
                display_name: r.display_name,
                hidden_from: r.hidden_from,
                own: r.own,
                profile: Summary::default(),
            }),
            _ => None,
        }
    }

    pub fn published(&self) -> Coord {
        Coord::stored(self.lat, self.lng)
    }
    /// The record as the recipient of the user's exact share sees it: published at the user's
    /// own point `own`, at `exact` precision.
    pub fn shown_exactly(mut self, own: Coord) -> Self {
        self.lat = own.lat();
        self.lng = own.lng();
        self.precision = Precision::Exact;
        self.cell = own.cell(h3o::Resolution::Nine).to_string();
        self
    }
    pub fn centre(&self) -> Coord {
        Coord::stored(self.own.0, self.own.1)
    }
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }
}

/// Which side the planner scans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Members of the covering cells, intersected with the caller's adjacency.
    CellFirst,
    /// The live records of the caller's connections, kept when their cell is in the cover.
    GraphFirst,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::CellFirst => "cell_first",
            Plan::GraphFirst => "graph_first",
        }
    }
}

/// How many cell members cost as much as one connection's record: a member is 16 bytes and an
/// adjacency probe, a record a couple of hundred bytes decoded. The index's server-side query
/// (`store::index::nearby_in_one`) takes the same decision with the same weight.
pub const RECORD_WEIGHT: u64 = 2;

/// Cell-first when the cover's live population is at most [`RECORD_WEIGHT`] times the degree.
pub fn choose(cell_population: u64, degree: u64) -> Plan {
    if cell_population <= degree.saturating_mul(RECORD_WEIGHT) {
        Plan::CellFirst
    } else {
        Plan::GraphFirst
    }
}

/// One line of the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub user_id: Uuid,
    /// The distance to the published point, rounded by precision.
    pub distance_m: u64,
    /// The least and greatest distance to the published cell, rounded outwards (both equal
    /// `distance_m` for `exact`).
    pub distance_range_m: (u64, u64),
    exact_m: f64,
    pub record: LiveRecord,
}

impl Hit {
    /// A hit at `distance_m` (an exact one), for tests of what is built on hits.
    #[cfg(test)]
    pub fn for_tests(user_id: Uuid, distance_m: u64, record: LiveRecord) -> Self {
        Hit {
            user_id,
            distance_m,
            distance_range_m: (distance_m, distance_m),
            exact_m: distance_m as f64,
            record,
        }
    }
}

/// How far past the radius a candidate may lie and still be listed: an `exact` user is listed
/// iff the distance the caller sees (rounded to 10 m) is within the radius, so that probing the
/// radius reveals nothing finer than that distance. Covers are computed this much wider.
pub const PROBE_SLACK_M: f64 = 5.0;

/// Whether an `exact` user at geodesic distance `d` is within `radius_m`: by the rounded
/// distance the caller sees.
pub fn within(d: f64, precision: Precision, radius_m: f64) -> bool {
    round_distance(d, precision) as f64 <= radius_m
}

/// How far the published point of a coarse user can lie from the nearest point of its cell,
/// generously (res-7 cells reach ~1.3 km from their centre, res-5 cells ~10 km): a cheap bound
/// before the cell's geometry is looked at.
fn coarse_reach_m(precision: Precision) -> f64 {
    match precision {
        Precision::Exact => 0.0,
        Precision::Approximate => 5_000.0,
        Precision::City => 30_000.0,
    }
}

/// How far beyond its published point a user's published area reaches: 0 for an exact user,
/// the distance from the centre of a coarse user's cell to its farthest vertex otherwise. A
/// viewer lists a coarse user whenever their circle reaches that cell, so a viewer within
/// `radius + published_reach_m` of the published point may list them.
pub fn published_reach_m(record: &LiveRecord) -> f64 {
    if record.precision == Precision::Exact {
        return 0.0;
    }
    match record.cell.parse::<h3o::CellIndex>() {
        Ok(cell) => cell_distance_range(record.published(), cell).1,
        Err(_) => coarse_reach_m(record.precision),
    }
}

/// Whether the candidate is listed for a caller at `centre` with `radius_m`, and how far it is:
/// an `exact` user by the rounded distance to its point ([`within`]); a coarse user whenever the
/// circle reaches its published cell (the least distance to the cell is within the radius).
pub fn reach(centre: Coord, radius_m: f64, record: &LiveRecord) -> Option<(u64, (u64, u64), f64)> {
    // most candidates are far outside: the sphere's distance (within 0.6 % of the ellipsoid's,
    // and a tenth of its cost) rules them out before the geodesic is computed
    let bound = radius_m + PROBE_SLACK_M + coarse_reach_m(record.precision);
    if beyond_m(centre, record.published(), bound) {
        return None;
    }
    let d = distance_m(centre, record.published());
    let rounded = round_distance(d, record.precision);
    match record.precision {
        Precision::Exact => within(d, record.precision, radius_m).then_some((rounded, (rounded, rounded), d)),
        coarse => {
            if d > radius_m + coarse_reach_m(coarse) {
                return None;
            }
            let cell = record.cell.parse::<h3o::CellIndex>().ok()?;
            let range = cell_distance_range(centre, cell);
            (range.0 <= radius_m).then(|| (rounded, round_range(range, coarse), d))
        }
    }
}

/// Whether `viewer`, at `centre`, would list `record` in a nearby query of `radius_m` now — live,
/// not hiding from the viewer, [`reach`]ed by the circle — and the distance it would show: what
/// [`select`] decides for one candidate (arrival detection asks it once per
/// recipient).
pub fn listed_distance(viewer: Uuid, centre: Coord, radius_m: f64, now_ms: i64, record: &LiveRecord) -> Option<u64> {
    if !record.is_live(now_ms) || record.hidden_from.contains(&viewer) {
        return None;
    }
    reach(centre, radius_m, record).map(|(distance_m, _, _)| distance_m)
}

/// Keeps the candidates that are truly nearby for `caller`: live, not the caller, not hiding
/// from the caller, and [`reach`]ed by the circle; sorted by the distance shown (then the true
/// distance, then id), at most `limit`. (No cover is asked: an exact user reach lists is within
/// the radius plus [`PROBE_SLACK_M`], which every cover read holds.)
pub fn select(
    caller: Uuid,
    centre: Coord,
    radius_m: f64,
    now_ms: i64,
    candidates: impl IntoIterator<Item = (Uuid, LiveRecord)>,
    limit: usize,
) -> Vec<Hit> {
    let mut hits: Vec<Hit> = candidates
        .into_iter()
        .filter(|(id, r)| *id != caller && r.is_live(now_ms) && !r.hidden_from.contains(&caller))
        .filter_map(|(id, r)| {
            reach(centre, radius_m, &r).map(|(distance_m, distance_range_m, exact_m)| Hit {
                user_id: id,
                distance_m,
                distance_range_m,
                exact_m,
                record: r,
            })
        })
        .collect();
    hits.sort_by(|a, b| {
        a.distance_m
            .cmp(&b.distance_m)
            .then(a.exact_m.total_cmp(&b.exact_m))
            .then(a.user_id.cmp(&b.user_id))
    });
    hits.dedup_by(|a, b| a.user_id == b.user_id);
    hits.truncate(limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::cover::fetch_cover;
    use crate::domain::geo::{index_cells, publish};
    use h3o::{CellIndex, LatLng, Resolution};
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// An in-memory index with the Redis layout: members per cell at every index resolution.
    #[derive(Debug)]
    struct World {
        records: HashMap<Uuid, LiveRecord>,
        cells: HashMap<CellIndex, Vec<Uuid>>,
        adjacency: HashMap<Uuid, HashSet<Uuid>>,
    }

    fn record(p: Coord, precision: Precision, hidden: Vec<Uuid>, expires_at_ms: i64) -> LiveRecord {
        let pubd = publish(p, precision);
        LiveRecord {
            checkin_id: Uuid::new_v4(),
            lat: pubd.point.lat(),
            lng: pubd.point.lng(),
            precision,
            cell: pubd.cell.to_string(),
            recorded_at: 0,
            expires_at_ms,
            display_name: "x".into(),
            hidden_from: hidden,
            own: (p.lat(), p.lng()),
            profile: Summary::default(),
        }
    }

    proptest! {
        /// A viewer who lists a coarse user lies within the radius plus the user's published
        /// reach of the published point (arrival detection reads that far and no farther).
        #[test]
        fn whoever_lists_a_coarse_user_lies_within_the_published_reach(lat in -80.0f64..80.0, lng in -179.0f64..179.0, north in -20_000.0f64..20_000.0, east in -20_000.0f64..20_000.0, radius in 100.0f64..20_000.0, city in any::<bool>()) {
            let p = Coord::new(lat, lng).expect("point");
            let precision = if city { Precision::City } else { Precision::Approximate };
            let r = record(p, precision, vec![], i64::MAX);
            let viewer = Coord::new((lat + north / 111_000.0).clamp(-89.0, 89.0), lng + east / 111_000.0 / lat.to_radians().cos()).expect("point");
            if listed_distance(Uuid::new_v4(), viewer, radius, 0, &r).is_some() {
                prop_assert!(distance_m(viewer, r.published()) <= radius + published_reach_m(&r) + 1.0);
            }
            prop_assert_eq!(published_reach_m(&record(p, Precision::Exact, vec![], i64::MAX)), 0.0);
        }
    }

    impl World {
        fn run(&self, caller: Uuid, radius: f64, plan: Plan) -> Vec<Uuid> {
            let me = &self.records[&caller];
            let cov = fetch_cover(me.centre(), radius + PROBE_SLACK_M);
            let adj = self.adjacency.get(&caller).cloned().unwrap_or_default();
            let candidates: Vec<(Uuid, LiveRecord)> = match plan {
                Plan::CellFirst => cov
                    .cells
                    .iter()
                    .flat_map(|c| self.cells.get(c).cloned().unwrap_or_default())
                    .filter(|id| adj.contains(id))
                    .filter_map(|id| self.records.get(&id).map(|r| (id, r.clone())))
                    .collect(),
                Plan::GraphFirst => adj
                    .iter()
                    .filter_map(|id| self.records.get(id).map(|r| (*id, r.clone())))
                    .collect(),
            };
            select(caller, me.centre(), radius, 1_000, candidates, 500)
                .into_iter()
                .map(|h| h.user_id)
                .collect()
        }

        fn brute_force(&self, caller: Uuid, radius: f64) -> Vec<Uuid> {
            let me = &self.records[&caller];
            let adj = self.adjacency.get(&caller).cloned().unwrap_or_default();
            let mut v: Vec<(u64, f64, Uuid)> = self
                .records
                .iter()
                .filter(|(id, r)| {
                    **id != caller && adj.contains(id) && r.expires_at_ms > 1_000 && !r.hidden_from.contains(&caller)
                })
                .filter_map(|(id, r)| {
                    let d = distance_m(me.centre(), r.published());
                    let listed = match r.precision {
                        Precision::Exact => within(d, r.precision, radius),
                        _ => {
                            let cell: CellIndex = r.cell.parse().expect("a cell");
                            cell_distance_range(me.centre(), cell).0 <= radius
                        }
                    };
                    listed.then(|| (round_distance(d, r.precision), d, *id))
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
            v.into_iter().map(|x| x.2).take(500).collect()
        }
    }

    fn c(lat: f64, lng: f64) -> Coord {
        Coord::new(lat, lng).expect("valid point")
    }

    fn anchor() -> impl Strategy<Value = Coord> {
        let pent = LatLng::from(Resolution::Seven.pentagons().next().expect("pentagon"));
        prop_oneof![
            Just(c(40.7128, -74.006)),
            Just(c(0.0, 179.9995)),
            Just(c(89.999, 10.0)),
            Just(c(-89.99, -170.0)),
            Just(Coord::from(pent)),
            (-80.0f64..80.0, -180.0f64..180.0).prop_map(|(lat, lng)| c(lat, lng)),
        ]
    }

    fn world() -> impl Strategy<Value = (World, Uuid, f64)> {
        (
            anchor(),
            prop::collection::vec(
                (
                    -0.6f64..0.6,
                    -0.6f64..0.6,
                    0..3u8,
                    any::<bool>(),
                    any::<bool>(),
                    any::<bool>(),
                    0..10u8,
                ),
                2..60,
            ),
            prop_oneof![50.0f64..1_000.0, 1_000.0f64..20_000.0, 20_000.0f64..200_000.0],
            prop::bool::ANY,
        )
            .prop_map(|(a, people, radius, hall)| {
                let ids: Vec<Uuid> = people.iter().map(|_| Uuid::new_v4()).collect();
                let caller = ids[0];
                let mut w = World {
                    records: HashMap::new(),
                    cells: HashMap::new(),
                    adjacency: HashMap::new(),
                };
                for (i, (dlat, dlng, prec, connected, hides, expired, spread)) in people.iter().enumerate() {
                    // a dense hall: everyone within a few metres
                    let scale = if hall { 0.00005 } else { f64::from(*spread + 1) / 10.0 };
                    let lat = (a.lat() + dlat * scale).clamp(-90.0, 90.0);
                    let mut lng = a.lng() + dlng * scale;
                    if lng > 180.0 {
                        lng -= 360.0
                    }
                    if lng < -180.0 {
                        lng += 360.0
                    }
                    let p = c(lat, lng);
                    let precision = [Precision::Exact, Precision::Approximate, Precision::City][*prec as usize];
                    let hidden = if *hides && i > 0 { vec![caller] } else { vec![] };
                    let exp = if *expired && i > 0 { 500 } else { 10_000 };
                    let r = record(p, precision, hidden, exp);
                    for c in index_cells(r.published()) {
                        w.cells.entry(c).or_default().push(ids[i]);
                    }
                    w.records.insert(ids[i], r);
                    if i > 0 && *connected {
                        w.adjacency.entry(caller).or_default().insert(ids[i]);
                    }
                }
                (w, caller, radius)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// One candidate is listed as select lists it; and an exact user select lists lies in
        /// the cover the query reads exact users from (why select asks no cover).
        #[test]
        fn one_candidate_is_listed_as_select_lists_it((w, caller, radius) in world()) {
            let me = &w.records[&caller];
            let read = crate::domain::cover::cover(me.centre(), radius + PROBE_SLACK_M);
            for (id, r) in w.records.iter().filter(|(id, _)| **id != caller) {
                let by_select = select(caller, me.centre(), radius, 2_000, [(*id, r.clone())], 1)
                    .first()
                    .map(|h| h.distance_m);
                prop_assert_eq!(listed_distance(caller, me.centre(), radius, 2_000, r), by_select);
                if by_select.is_some() && r.precision == Precision::Exact {
                    prop_assert!(read.contains_point(r.published()), "listed {id} outside the cover read");
                }
            }
        }

        #[test]
        fn both_plans_equal_brute_force((w, caller, radius) in world()) {
            let truth = w.brute_force(caller, radius);
            prop_assert_eq!(&w.run(caller, radius, Plan::CellFirst), &truth);
            prop_assert_eq!(&w.run(caller, radius, Plan::GraphFirst), &truth);
        }
    }

    proptest! {
        /// What is stored reads back as it was, and nothing else reads as a record.
        #[test]
        fn records_read_back_from_their_bytes(lat in -90.0f64..=90.0, lng in -180.0f64..=180.0, hidden in 0..3usize, name in ".{0,100}") {
            let mut r = record(c(lat, lng), Precision::City, (0..hidden).map(|_| Uuid::new_v4()).collect(), 1_234);
            r.display_name = name;
            prop_assert_eq!(LiveRecord::from_bytes(&r.to_bytes()), Some(r.clone()));
            prop_assert_eq!(LiveRecord::from_bytes(br#"{"i":"x"}"#), None);
        }
    }

    /// Measures the record before (format 1) and after the profile summary, and reads records
    /// of format 1 still.
    #[test]
    fn record_size_with_the_profile_summary() {
        #[derive(Serialize)]
        struct V1<'a>(
            Uuid,
            f64,
            f64,
            Precision,
            &'a str,
            i64,
            i64,
            &'a str,
            &'a [Uuid],
            (f64, f64),
        );
        let p = Coord::new(52.52, 13.405).expect("coord");
        let mut r = record(p, Precision::Approximate, vec![], 1_800_000_000_000);
        r.display_name = "Alex Example".into();
        r.recorded_at = 1_800_000_000;
        let v1 = V1(
            r.checkin_id,
            r.lat,
            r.lng,
            r.precision,
            &r.cell,
            r.recorded_at,
            r.expires_at_ms,
            &r.display_name,
            &r.hidden_from,
            r.own,
        );
        let mut old = vec![RECORD_FORMAT_V1];
        old.extend(postcard::to_allocvec(&v1).expect("encode"));
        let empty = r.to_bytes();
        let mut full = r.clone();
        full.profile = Summary {
            headline: Some("Maps at scale".into()),
            company: Some("Acme, Inc.".into()),
            title: Some("CTO".into()),
            avatar_url: Some("https://cdn.example.com/avatars/alex.png".into()),
        };
        let filled = full.to_bytes();
        println!(
            "live record bytes: format 1 {}, with an empty profile summary {}, with a filled one {}",
            old.len(),
            empty.len(),
            filled.len()
        );
        assert_eq!(empty.len(), old.len() + 4, "an empty summary costs 4 bytes");
        assert_eq!(LiveRecord::from_bytes(&old), Some(r.clone()));
        assert_eq!(LiveRecord::from_bytes(&filled), Some(full));
    }

    #[test]
    fn planner_takes_the_cheaper_side() {
        assert_eq!(choose(5_000, 30_000), Plan::CellFirst);
        assert_eq!(choose(5_000, 150), Plan::GraphFirst);
        assert_eq!(choose(0, 0), Plan::CellFirst);
    }
}
