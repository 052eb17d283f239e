//! The "Social Shake-Up" world: users, a power-law connection graph, live check-ins spread over
//! 20 business-travel cities, and one conference hall inside a single resolution-9 cell.
//!
//! Pure and deterministic for a seed. Memory: about 4 bytes per directed edge (the graph is kept
//! as compressed adjacency lists of `u32` user indices) plus ~60 bytes per user, so 1,000,000 users
//! with a median degree of 150 take ~1 GB while PostgreSQL needs ~20 GB for the same edges.
//!
//! - Degrees: a Pareto body (tail exponent `alpha`, scaled so that the median is `median_degree`,
//!   capped at `body_cap`) plus a few super-connectors with degrees log-spaced up to
//!   `hub_max_degree`. Edges follow the Chung–Lu model: every user draws half its target degree
//!   of partners with probability proportional to their target degrees; self-loops and repeated
//!   pairs are dropped. Hall members also draw `hall_picks` partners among the hall (colleagues).
//! - Live users: `live_fraction` of the users (every super-connector among them), in a city drawn
//!   by the cities' weights, at a gaussian offset from its centre (a 2.5 km core and an 8 km
//!   metro area); 85 % publish exactly, 10 % approximately, 5 % at city precision.
//! - The hall: `hall` live users (with `hall_hubs` super-connectors) uniformly inside one
//!   resolution-9 cell (ExCeL London), all publishing exactly.
//!
//! User ids are random v4 UUIDs sorted ascending, so index order is id order: the bulk loads of
//! the connections table append to its primary key in order.

use h3o::{CellIndex, LatLng, Resolution};
use hereabouts::domain::geo::Coord;
use hereabouts::domain::policy::Precision;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// The 20 cities (name, latitude, longitude, weight = share of live users).
pub const CITIES_CSV: &str = "# 20 business-travel cities: name, latitude, longitude (city centre, WGS84), weight
name,lat,lng,weight
New York,40.7128,-74.0060,10
London,51.5074,-0.1278,9
San Francisco,37.7749,-122.4194,8
Paris,48.8566,2.3522,7
Tokyo,35.6762,139.6503,7
Singapore,1.3521,103.8198,5
Berlin,52.5200,13.4050,4
Chicago,41.8781,-87.6298,4
Sydney,-33.8688,151.2093,3
Toronto,43.6532,-79.3832,3
Dubai,25.2048,55.2708,3
Hong Kong,22.3193,114.1694,3
São Paulo,-23.5505,-46.6333,3
Mumbai,19.0760,72.8777,3
Amsterdam,52.3676,4.9041,2
Seoul,37.5665,126.9780,2
Austin,30.2672,-97.7431,2
Stockholm,59.3293,18.0686,2
Auckland,-36.8485,174.7633,1
Suva,-18.1248,178.4501,1
";

/// Where the hall is (London, ExCeL).
pub fn hall_centre() -> Coord {
    Coord::stored(51.5085, 0.0295)
}

/// `Spot::place` of the hall (cities are 0..).
pub const HALL_PLACE: u16 = u16::MAX;

/// A city of the world.
#[derive(Debug, Clone, PartialEq)]
pub struct City {
    pub name: String,
    pub lat: f64,
    pub lng: f64,
    pub weight: f64,
}

/// Parses `name,lat,lng,weight` lines (a header line and `#` comments are skipped).
pub fn parse_cities(text: &str) -> anyhow::Result<Vec<City>> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with("name,") {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() != 4 {
            anyhow::bail!("cities line {}: expected name,lat,lng,weight", n + 1);
        }
        let num = |s: &str| -> anyhow::Result<f64> {
            s.parse::<f64>()
                .map_err(|_| anyhow::anyhow!("cities line {}: {s:?} is not a number", n + 1))
        };
        let city = City {
            name: f[0].to_string(),
            lat: num(f[1])?,
            lng: num(f[2])?,
            weight: num(f[3])?,
        };
        if Coord::new(city.lat, city.lng).is_err() || !city.weight.is_finite() || city.weight <= 0.0 {
            anyhow::bail!("cities line {}: coordinates out of range or weight not positive", n + 1);
        }
        out.push(city);
    }
    if out.is_empty() || out.len() >= usize::from(HALL_PLACE) {
        anyhow::bail!("cities: expected between 1 and 65534 cities");
    }
    Ok(out)
}

/// Walker's alias table: draws an index with probability proportional to its weight in O(1).
#[derive(Debug, Clone)]
pub struct Alias {
    prob: Vec<f32>,
    alias: Vec<u32>,
}

impl Alias {
    /// `weights` must be non-empty, finite and non-negative with a positive sum.
    pub fn new(weights: &[f64]) -> Self {
        let n = weights.len().max(1);
        let total: f64 = weights.iter().sum();
        let mut scaled: Vec<f64> = if total > 0.0 {
            weights.iter().map(|w| w * n as f64 / total).collect()
        } else {
            vec![1.0; n]
        };
        let mut prob = vec![1.0f32; n];
        let mut alias: Vec<u32> = (0..n as u32).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) = (0..n).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            prob[s] = scaled[s] as f32;
            alias[s] = l as u32;
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        Self { prob, alias }
    }

    pub fn sample<R: Rng>(&self, rng: &mut R) -> usize {
        let i = rng.random_range(0..self.prob.len());
        if rng.random::<f32>() < self.prob[i] {
            i
        } else {
            self.alias[i] as usize
        }
    }
}

/// The body of the degree distribution: Pareto with tail exponent `alpha`, median `median`.
#[derive(Debug, Clone, Copy)]
pub struct DegreeModel {
    pub median: f64,
    pub alpha: f64,
    pub cap: u32,
}

impl DegreeModel {
    /// The Pareto scale: the smallest degree drawn.
    pub fn x_min(&self) -> f64 {
        self.median / 2f64.powf(1.0 / self.alpha)
    }

    /// The degree at quantile `u` in [0, 1).
    pub fn quantile(&self, u: f64) -> u32 {
        let u = u.clamp(0.0, 1.0 - 1e-12);
        let d = self.x_min() * (1.0 - u).powf(-1.0 / self.alpha);
        (d.round() as u32).clamp(1, self.cap.max(1))
    }
}

/// Degrees of `count` super-connectors, log-spaced between `lo` and `hi`.
pub fn hub_degrees(count: usize, lo: u32, hi: u32) -> Vec<u32> {
    let (lo, hi) = (f64::from(lo.max(1)), f64::from(hi.max(lo.max(1))));
    (0..count)
        .map(|i| {
            let t = if count <= 1 { 1.0 } else { i as f64 / (count - 1) as f64 };
            (lo * (hi / lo).powf(t)).round() as u32
        })
        .collect()
}

/// Everything that shapes a world.
#[derive(Debug, Clone)]
pub struct WorldSpec {
    pub users: usize,
    pub seed: u64,
    pub live_fraction: f64,
    pub degrees: DegreeModel,
    pub hubs: usize,
    pub hub_min_degree: u32,
    pub hub_max_degree: u32,
    pub hall: usize,
    pub hall_hubs: usize,
    pub hall_picks: u32,
    pub sigma_core_km: f64,
    pub sigma_metro_km: f64,
    pub core_share: f64,
}

impl WorldSpec {
    /// The default shape for `users` users (hall of up to 5,000, a few super-connectors of up to
    /// 30,000 connections, both scaled down for small worlds).
    pub fn for_users(users: usize, seed: u64) -> Self {
        let users = users.max(100);
        let hubs = (3 + users / 25_000).min(40);
        let hub_max = (users / 3).min(30_000) as u32;
        Self {
            users,
            seed,
            live_fraction: 0.5,
            degrees: DegreeModel {
                median: (users as f64 / 10.0).min(150.0),
                alpha: 2.2,
                cap: (users / 10).clamp(1, 5_000) as u32,
            },
            hubs,
            hub_min_degree: hub_max / 3,
            hub_max_degree: hub_max,
            hall: (users / 20).min(5_000),
            hall_hubs: (hubs / 3).clamp(1, 3),
            hall_picks: 15,
            sigma_core_km: 2.5,
            sigma_metro_km: 8.0,
            core_share: 0.6,
        }
    }
}

/// A live user's check-in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spot {
    pub raw: Coord,
    pub precision: Precision,
    /// City index, or [`HALL_PLACE`].
    pub place: u16,
    /// Seconds before "now" the fix was taken.
    pub age_s: u16,
}

/// One user.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Person {
    pub target_degree: u32,
    pub hub: bool,
    pub in_hall: bool,
    /// Index in [`World::spots`] when live.
    pub spot: Option<u32>,
}

/// The connection graph as compressed adjacency lists (both directions, sorted, no duplicates).
#[derive(Debug, Clone, Default)]
pub struct Graph {
    offsets: Vec<u64>,
    adj: Vec<u32>,
}

impl Graph {
    pub fn neighbours(&self, i: usize) -> &[u32] {
        match (self.offsets.get(i), self.offsets.get(i + 1)) {
            (Some(&s), Some(&e)) => &self.adj[s as usize..e as usize],
            _ => &[],
        }
    }
    pub fn degree(&self, i: usize) -> usize {
        self.neighbours(i).len()
    }
    /// Directed edges (each connection counts twice, as in the `connections` table).
    pub fn directed_edges(&self) -> u64 {
        self.adj.len() as u64
    }
    pub fn users(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.adj.capacity() * 4 + self.offsets.capacity() * 8
    }
}

/// A generated world.
#[derive(Debug, Clone)]
pub struct World {
    pub spec: WorldSpec,
    pub cities: Vec<City>,
    /// Sorted ascending: index `i` is user `ids[i]`.
    pub ids: Vec<Uuid>,
    pub people: Vec<Person>,
    /// Live users' check-ins, in user index order.
    pub spots: Vec<Spot>,
    /// User index of each spot.
    pub spot_owner: Vec<u32>,
    pub graph: Graph,
    pub hall_cell: CellIndex,
    pub hall_members: Vec<u32>,
    pub hubs: Vec<u32>,
}

/// A standard normal draw (Box–Muller).
pub fn gaussian<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Moves `p` by (`east_m`, `north_m`) metres (local flat approximation, fine for a few km).
pub fn offset(p: Coord, east_m: f64, north_m: f64) -> Coord {
    let lat = (p.lat() + north_m / 110_574.0).clamp(-89.9, 89.9);
    let mut lng = p.lng() + east_m / (111_320.0 * lat.to_radians().cos().max(0.01));
    if lng > 180.0 {
        lng -= 360.0;
    }
    if lng < -180.0 {
        lng += 360.0;
    }
    Coord::stored(lat, lng)
}

/// A point of a city: a gaussian offset from its centre (core or metro sigma).
pub fn city_point<R: Rng>(rng: &mut R, city: &City, spec: &WorldSpec) -> Coord {
    let sigma_m = 1_000.0
        * if rng.random::<f64>() < spec.core_share {
            spec.sigma_core_km
        } else {
            spec.sigma_metro_km
        };
    offset(
        Coord::stored(city.lat, city.lng),
        gaussian(rng) * sigma_m,
        gaussian(rng) * sigma_m,
    )
}

/// A point uniformly inside a disc around the centre of `cell` that stays inside the cell.
pub fn point_in_cell<R: Rng>(rng: &mut R, cell: CellIndex) -> Coord {
    let c = LatLng::from(cell);
    let centre = Coord::stored(c.lat(), c.lng());
    let r_max = 0.5 * cell.resolution().edge_length_m();
    for _ in 0..100 {
        let r = r_max * rng.random::<f64>().sqrt();
        let theta = std::f64::consts::TAU * rng.random::<f64>();
        let p = offset(centre, r * theta.cos(), r * theta.sin());
        if p.cell(cell.resolution()) == cell {
            return p;
        }
    }
    centre
}

fn random_uuid<R: Rng>(rng: &mut R) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random::<[u8; 16]>()).into_uuid()
}

/// A deterministic v4-shaped UUID for (seed, i): the same check-in id in PostgreSQL and Redis.
pub fn derived_uuid(seed: u64, i: u64) -> Uuid {
    let mut rng = SmallRng::seed_from_u64(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    random_uuid(&mut rng)
}

impl World {
    /// Generates the world described by `spec` over `cities`.
    pub fn generate(spec: &WorldSpec, cities: Vec<City>) -> anyhow::Result<World> {
        let n = spec.users;
        if n < 100 || n > u32::MAX as usize / 2 {
            anyhow::bail!("users must be between 100 and {}", u32::MAX / 2);
        }
        let mut rng = SmallRng::seed_from_u64(spec.seed);

        // ids, sorted
        let mut ids: Vec<Uuid> = Vec::with_capacity(n);
        while ids.len() < n {
            while ids.len() < n {
                ids.push(random_uuid(&mut rng));
            }
            ids.sort_unstable();
            ids.dedup();
        }

        // degrees and super-connectors
        let mut people: Vec<Person> = (0..n)
            .map(|_| Person {
                target_degree: spec.degrees.quantile(rng.random::<f64>()),
                hub: false,
                in_hall: false,
                spot: None,
            })
            .collect();
        let hubs: Vec<u32> = rand::seq::index::sample(&mut rng, n, spec.hubs.min(n))
            .into_iter()
            .map(|i| i as u32)
            .collect();
        for (h, d) in hubs
            .iter()
            .zip(hub_degrees(hubs.len(), spec.hub_min_degree, spec.hub_max_degree))
        {
            people[*h as usize].hub = true;
            people[*h as usize].target_degree = d;
        }

        // live users: every hub, then a random sample of the others
        let want_live = ((n as f64 * spec.live_fraction).round() as usize).clamp(hubs.len(), n);
        let mut live = vec![false; n];
        for h in &hubs {
            live[*h as usize] = true;
        }
        let mut count = hubs.len();
        for i in rand::seq::index::sample(&mut rng, n, want_live) {
            if count >= want_live {
                break;
            }
            if !live[i] {
                live[i] = true;
                count += 1;
            }
        }

        // the hall: a few hubs and live regular users
        let hall_cell = hall_centre().cell(Resolution::Nine);
        let hall_hubs = spec.hall_hubs.min(hubs.len()).min(spec.hall);
        let mut hall_members: Vec<u32> = hubs[..hall_hubs].to_vec();
        let regular_live: Vec<u32> = (0..n as u32)
            .filter(|&i| live[i as usize] && !people[i as usize].hub)
            .collect();
        let want_regular = (spec.hall - hall_hubs).min(regular_live.len());
        for k in rand::seq::index::sample(&mut rng, regular_live.len(), want_regular) {
            hall_members.push(regular_live[k]);
        }
        hall_members.sort_unstable();
        for m in &hall_members {
            people[*m as usize].in_hall = true;
        }

        // check-ins
        let city_pick = Alias::new(&cities.iter().map(|c| c.weight).collect::<Vec<_>>());
        let mut spots = Vec::with_capacity(count);
        let mut spot_owner = Vec::with_capacity(count);
        for i in 0..n {
            if !live[i] {
                continue;
            }
            let p = &mut people[i];
            let age_s = rng.random_range(0..1_800u16);
            let spot = if p.in_hall {
                Spot {
                    raw: point_in_cell(&mut rng, hall_cell),
                    precision: Precision::Exact,
                    place: HALL_PLACE,
                    age_s,
                }
            } else {
                let c = city_pick.sample(&mut rng);
                let precision = if p.hub {
                    Precision::Exact
                } else {
                    match rng.random_range(0..100u32) {
                        0..85 => Precision::Exact,
                        85..95 => Precision::Approximate,
                        _ => Precision::City,
                    }
                };
                Spot {
                    raw: city_point(&mut rng, &cities[c], spec),
                    precision,
                    place: c as u16,
                    age_s,
                }
            };
            p.spot = Some(spots.len() as u32);
            spots.push(spot);
            spot_owner.push(i as u32);
        }

        let graph = build_graph(spec, &people, &hall_members);
        Ok(World {
            spec: spec.clone(),
            cities,
            ids,
            people,
            spots,
            spot_owner,
            graph,
            hall_cell,
            hall_members,
            hubs,
        })
    }

    pub fn live_users(&self) -> usize {
        self.spots.len()
    }

    /// Realised degrees, sorted ascending.
    pub fn sorted_degrees(&self) -> Vec<u32> {
        let mut d: Vec<u32> = (0..self.ids.len()).map(|i| self.graph.degree(i) as u32).collect();
        d.sort_unstable();
        d
    }
}

/// Calls `f(u, v)` for every drawn partner (the same sequence on every call).
fn for_each_pick(spec: &WorldSpec, people: &[Person], hall: &[u32], mut f: impl FnMut(u32, u32)) {
    let weights: Vec<f64> = people.iter().map(|p| f64::from(p.target_degree)).collect();
    let alias = Alias::new(&weights);
    let mut rng = SmallRng::seed_from_u64(spec.seed ^ 0x5EED_0FC0_FFEE);
    for (i, p) in people.iter().enumerate() {
        let i = i as u32;
        let d = p.target_degree;
        let picks = d / 2 + u32::from(d % 2 == 1 && rng.random_bool(0.5));
        for _ in 0..picks {
            let v = alias.sample(&mut rng) as u32;
            if v != i {
                f(i, v);
            }
        }
        if p.in_hall && hall.len() > 1 {
            for _ in 0..spec.hall_picks {
                let v = hall[rng.random_range(0..hall.len())];
                if v != i {
                    f(i, v);
                }
            }
        }
    }
}

/// Chung–Lu graph in two passes over the same draws (count, then fill), then sorted and deduplicated.
fn build_graph(spec: &WorldSpec, people: &[Person], hall: &[u32]) -> Graph {
    let n = people.len();
    let mut counts = vec![0u64; n + 1];
    for_each_pick(spec, people, hall, |u, v| {
        counts[u as usize] += 1;
        counts[v as usize] += 1;
    });
    // exclusive prefix sums
    let mut offsets = vec![0u64; n + 1];
    for i in 0..n {
        offsets[i + 1] = offsets[i] + counts[i];
    }
    drop(counts);
    let mut cursor: Vec<u64> = offsets[..n].to_vec();
    let mut adj = vec![0u32; offsets[n] as usize];
    for_each_pick(spec, people, hall, |u, v| {
        adj[cursor[u as usize] as usize] = v;
        cursor[u as usize] += 1;
        adj[cursor[v as usize] as usize] = u;
        cursor[v as usize] += 1;
    });
    drop(cursor);
    let mut write = 0usize;
    let mut start = 0usize;
    for i in 0..n {
        let end = offsets[i + 1] as usize;
        let list = &mut adj[start..end];
        list.sort_unstable();
        let mut m = 0;
        for k in 0..list.len() {
            if m == 0 || list[k] != list[m - 1] {
                list[m] = list[k];
                m += 1;
            }
        }
        adj.copy_within(start..start + m, write);
        offsets[i] = write as u64;
        write += m;
        start = end;
    }
    offsets[n] = write as u64;
    adj.truncate(write);
    adj.shrink_to_fit();
    Graph { offsets, adj }
}

/// The value at quantile `q` of sorted values (nearest rank).
pub fn quantile_sorted(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use hereabouts::domain::geo::distance_m;

    fn cities() -> Vec<City> {
        parse_cities(CITIES_CSV).expect("cities")
    }

    #[test]
    fn the_cities_parse() {
        let c = cities();
        assert_eq!(c.len(), 20);
        assert_eq!(c[12].name, "São Paulo");
        assert_eq!(c.iter().map(|c| c.weight).sum::<f64>(), 82.0);
        assert!(parse_cities("a,1,2\n").is_err());
        assert!(parse_cities("a,100,2,1\n").is_err());
    }

    #[test]
    fn degree_body_has_the_median_and_a_heavy_tail() {
        let m = DegreeModel {
            median: 150.0,
            alpha: 2.2,
            cap: 5_000,
        };
        let mut rng = SmallRng::seed_from_u64(7);
        let mut d: Vec<u32> = (0..200_000).map(|_| m.quantile(rng.random())).collect();
        d.sort_unstable();
        let median = quantile_sorted(&d, 0.5);
        assert!((140..=160).contains(&median), "median {median}");
        // Pareto tail: P(D > x) = (x_min / x)^alpha
        let above_1000 = d.iter().filter(|&&x| x > 1_000).count() as f64 / d.len() as f64;
        let expected = (m.x_min() / 1_000.0).powf(2.2);
        assert!(
            (above_1000 - expected).abs() < expected * 0.2,
            "{above_1000} vs {expected}"
        );
        assert!(*d.last().expect("values") <= 5_000);
        assert!(d[0] as f64 >= m.x_min().floor());
    }

    #[test]
    fn hubs_are_log_spaced() {
        assert_eq!(hub_degrees(3, 10_000, 30_000), vec![10_000, 17_321, 30_000]);
        assert_eq!(hub_degrees(1, 10, 20), vec![20]);
        assert!(hub_degrees(0, 1, 2).is_empty());
    }

    #[test]
    fn alias_draws_by_weight() {
        let a = Alias::new(&[1.0, 0.0, 3.0, 6.0]);
        let mut rng = SmallRng::seed_from_u64(1);
        let mut counts = [0u32; 4];
        for _ in 0..100_000 {
            counts[a.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        for (i, w) in [(0, 0.1), (2, 0.3), (3, 0.6)] {
            let share = f64::from(counts[i]) / 100_000.0;
            assert!((share - w).abs() < 0.01, "{i}: {share}");
        }
    }

    #[test]
    fn cities_are_sampled_by_weight_with_realistic_density() {
        let cities = cities();
        let spec = WorldSpec::for_users(1_000, 3);
        let pick = Alias::new(&cities.iter().map(|c| c.weight).collect::<Vec<_>>());
        let mut rng = SmallRng::seed_from_u64(11);
        let mut counts = vec![0u32; cities.len()];
        let mut dists = Vec::new();
        for _ in 0..100_000 {
            let c = pick.sample(&mut rng);
            counts[c] += 1;
            let p = city_point(&mut rng, &cities[c], &spec);
            dists.push(distance_m(p, Coord::stored(cities[c].lat, cities[c].lng)) as u32);
        }
        for (c, city) in cities.iter().enumerate() {
            let share = f64::from(counts[c]) / 100_000.0;
            assert!((share - city.weight / 82.0).abs() < 0.006, "{}: {share}", city.name);
        }
        dists.sort_unstable();
        // half of the people within ~4 km of the centre, nearly everyone within 30 km
        let median = quantile_sorted(&dists, 0.5);
        assert!((2_500..=6_000).contains(&median), "median {median} m");
        assert!(quantile_sorted(&dists, 0.999) < 35_000);
    }

    #[test]
    fn a_world_has_the_promised_shape() {
        let spec = WorldSpec::for_users(20_000, 42);
        let w = World::generate(&spec, cities()).expect("world");
        assert_eq!(w.ids.len(), 20_000);
        assert!(w.ids.windows(2).all(|p| p[0] < p[1]), "ids sorted");
        assert_eq!(w.live_users(), 10_000);
        assert_eq!(w.hubs.len(), 3);
        // the hall: one res-9 cell, hubs among its members, everyone live and exact
        assert_eq!(w.hall_members.len(), 1_000);
        assert!(w.hall_members.iter().filter(|m| w.people[**m as usize].hub).count() >= 1);
        for m in &w.hall_members {
            let p = w.people[*m as usize];
            let s = w.spots[p.spot.expect("live") as usize];
            assert_eq!(s.raw.cell(Resolution::Nine), w.hall_cell);
            assert_eq!(s.precision, Precision::Exact);
            assert_eq!(s.place, HALL_PLACE);
        }
        for h in &w.hubs {
            assert!(w.people[*h as usize].spot.is_some(), "hubs are live");
        }
        // graph: symmetric, no self-loops or duplicates
        for i in (0..w.ids.len()).step_by(97) {
            let nb = w.graph.neighbours(i);
            assert!(nb.windows(2).all(|p| p[0] < p[1]));
            for &v in nb {
                assert_ne!(v as usize, i);
                assert!(w.graph.neighbours(v as usize).binary_search(&(i as u32)).is_ok());
            }
        }
        // median degree near the target (n/10 = 2,000 caps the median at 150 here)
        let d = w.sorted_degrees();
        let median = quantile_sorted(&d, 0.5);
        assert!((125..=185).contains(&median), "median degree {median}");
        // the tail: the super-connectors
        let max = *d.last().expect("degrees");
        assert!(max >= 5_000, "max degree {max}");
        let hub_min = w.hubs.iter().map(|h| w.graph.degree(*h as usize)).min().unwrap_or(0);
        assert!(hub_min > 1_500, "hub degree {hub_min}");
        assert_eq!(w.graph.directed_edges(), d.iter().map(|&x| u64::from(x)).sum::<u64>());
        // deterministic
        let again = World::generate(&spec, cities()).expect("world");
        assert_eq!(again.ids, w.ids);
        assert_eq!(again.graph.neighbours(5), w.graph.neighbours(5));
        assert_eq!(derived_uuid(1, 2), derived_uuid(1, 2));
        assert_ne!(derived_uuid(1, 2), derived_uuid(1, 3));
    }

    #[test]
    fn hall_points_stay_in_the_cell() {
        let cell = hall_centre().cell(Resolution::Nine);
        let mut rng = SmallRng::seed_from_u64(5);
        for _ in 0..5_000 {
            assert_eq!(point_in_cell(&mut rng, cell).cell(Resolution::Nine), cell);
        }
    }
}
