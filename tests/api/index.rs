//! The live index at the store level, against the real Redis of the test run: the one-round-trip
//! nearby query (a server-side script on a single Redis) must find exactly what the pipelined
//! steps it replaces find (and the cluster still runs), for both plans, with coarse users read
//! from their own wider cover, expired members and the caller among the members.

use crate::helpers::spawn_app;
use hereabouts::domain::cover::{cover, fetch_cover};
use hereabouts::domain::geo::{Coord, publish};
use hereabouts::domain::nearby::{LiveRecord, Summary};
use hereabouts::domain::policy::Precision;
use hereabouts::store::index::Class;
use hereabouts::store::{graph, index};
use std::collections::BTreeMap;
use uuid::Uuid;

fn record(p: Coord, precision: Precision, expires_at_ms: i64) -> LiveRecord {
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
        hidden_from: vec![],
        own: (p.lat(), p.lng()),
        profile: Summary::default(),
    }
}

/// The precisions of the test worlds: one user in ten at city precision, two approximate, the
/// rest exact.
fn mix(i: usize) -> Precision {
    match i % 10 {
        0 => Precision::City,
        1 | 2 => Precision::Approximate,
        _ => Precision::Exact,
    }
}

/// A small deterministic generator (the test must not depend on a seed it cannot show).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[tokio::test]
async fn the_one_round_trip_query_finds_what_the_pipelined_steps_find() {
    let app = spawn_app().await;
    let redis = &app.ctx.redis;
    if redis.is_cluster() {
        // keys span slots there: the service takes the pipelined steps, which the API tests
        // of this run exercise; nothing to compare
        return;
    }
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut rng = Lcg(7);
    let centre = Coord::new(48.8566, 2.3522).expect("valid");
    let caller = Uuid::new_v4();
    let mut users = vec![(caller, record(centre, Precision::Exact, now + 600_000))];
    for i in 0..400 {
        let p = Coord::new(
            centre.lat() + (rng.next() - 0.5) * 0.6,
            centre.lng() + (rng.next() - 0.5) * 0.9,
        )
        .expect("valid");
        let precision = mix(i);
        // a few expired members, still in their cells until the next write trims them
        let expires = if i % 17 == 0 { now + 300 } else { now + 600_000 };
        users.push((Uuid::new_v4(), record(p, precision, expires)));
    }
    index::put_many(redis, &users).await.expect("indexed");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // the caller knows every other user but a quarter, and one user who is not live
    let mut members: Vec<Vec<u8>> = vec![graph::ADJACENCY_SENTINEL.to_vec(), Uuid::new_v4().as_bytes().to_vec()];
    members.extend(
        users
            .iter()
            .skip(1)
            .enumerate()
            .filter(|(i, _)| i % 4 != 0)
            .map(|(_, (u, _))| u.as_bytes().to_vec()),
    );
    let mut sadd = redis::cmd("SADD");
    sadd.arg(graph::adjacency_key(redis, caller)).arg(members.clone());
    redis.run::<()>(&sadd).await.expect("adjacency");
    let degree = members.len() as u64 - 1;

    for radius in [300.0, 3_000.0, 25_000.0] {
        let exact = cover(centre, radius);
        let coarse = fetch_cover(centre, radius);
        // the pipelined steps, cell side (each class from its cover) and graph side
        let pe = index::populations(redis, &exact.cells, Class::Exact)
            .await
            .expect("pop");
        let pc = index::populations(redis, &coarse.cells, Class::Coarse)
            .await
            .expect("pop");
        let pop: u64 = pe.iter().chain(&pc).sum();
        let mut from_cells: Vec<Uuid> = index::members(redis, &exact.cells, Class::Exact)
            .await
            .expect("members");
        let coarse_members = index::members(redis, &coarse.cells, Class::Coarse)
            .await
            .expect("members");
        // each class is read from its own score range
        for m in &from_cells {
            let r = &users.iter().find(|(u, _)| u == m).expect("known").1;
            assert_eq!(r.precision, Precision::Exact);
        }
        for m in &coarse_members {
            let r = &users.iter().find(|(u, _)| u == m).expect("known").1;
            assert_ne!(r.precision, Precision::Exact);
        }
        assert!(
            !coarse_members.is_empty(),
            "the world has coarse users in every wide cover"
        );
        from_cells.extend(coarse_members);
        from_cells.retain(|m| *m != caller);
        from_cells.sort();
        from_cells.dedup();
        let flags = index::connected(redis, caller, &from_cells).await.expect("flags");
        let cell_side: Vec<Uuid> = from_cells
            .into_iter()
            .zip(flags)
            .filter_map(|(m, f)| f.then_some(m))
            .collect();
        let graph_side: Vec<Uuid> = members
            .iter()
            .filter_map(|m| <[u8; 16]>::try_from(m.as_slice()).ok().map(Uuid::from_bytes))
            .collect();
        for (weight, graph_first) in [(u64::MAX / degree, false), (0, pop > 0)] {
            let expected_ids = if graph_first { &graph_side } else { &cell_side };
            let recs = index::records(redis, expected_ids).await.expect("records");
            let expected: BTreeMap<Uuid, LiveRecord> = expected_ids
                .iter()
                .zip(recs)
                .filter_map(|(id, r)| r.map(|r| (*id, r)))
                .collect();
            let got = index::nearby_in_one(redis, caller, &exact.cells, &coarse.cells, degree, weight)
                .await
                .expect("script")
                .expect("the adjacency set exists");
            if graph_first {
                assert!(
                    got.population > degree * weight,
                    "the budget ran out: {}",
                    got.population
                );
            } else {
                assert_eq!(got.population, pop, "radius {radius}");
            }
            assert_eq!(got.graph_first, graph_first, "radius {radius}, weight {weight}");
            let got: BTreeMap<Uuid, LiveRecord> = got.records.into_iter().collect();
            assert_eq!(got, expected, "radius {radius}, graph_first {graph_first}");
            assert!(!got.is_empty(), "the world has connections in every circle");
        }
    }
    // an absent adjacency set: the caller is told to rebuild it
    let nobody = Uuid::new_v4();
    let cov = fetch_cover(centre, 1_000.0);
    assert!(
        index::nearby_in_one(redis, nobody, &cov.cells, &cov.cells, 5, 2)
            .await
            .expect("script")
            .is_none()
    );
}

#[tokio::test]
async fn the_batch_query_answers_each_user_as_their_own_query_does() {
    let app = spawn_app().await;
    let redis = &app.ctx.redis;
    if redis.is_cluster() {
        // detection asks each actor alone there
        return;
    }
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let mut rng = Lcg(11);
    // two cities: users of one share most cells, the other shares none with them
    let paris = Coord::new(48.8566, 2.3522).expect("valid");
    let suva = Coord::new(-18.1248, 178.4501).expect("valid");
    let mut users = vec![];
    for i in 0..600 {
        let c = if i % 3 == 0 { suva } else { paris };
        let p = Coord::new(c.lat() + (rng.next() - 0.5) * 0.3, c.lng() + (rng.next() - 0.5) * 0.45).expect("valid");
        let precision = mix(i);
        let expires = if i % 19 == 0 { now + 300 } else { now + 600_000 };
        users.push((Uuid::new_v4(), record(p, precision, expires)));
    }
    index::put_many(redis, &users).await.expect("indexed");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    // eight askers with graphs of different sizes (one empty, one of everyone), and one whose
    // adjacency set is absent
    let mut askers = vec![];
    for (n, step) in [
        (0usize, 1usize),
        (1, 2),
        (2, 3),
        (3, 7),
        (4, 50),
        (5, 1),
        (6, 600),
        (7, 5),
    ] {
        let (me, rec) = &users[n * 37];
        let mut members: Vec<Vec<u8>> = vec![graph::ADJACENCY_SENTINEL.to_vec()];
        members.extend(
            users
                .iter()
                .enumerate()
                .filter(|(i, _)| i % step == n % step)
                .map(|(_, (u, _))| u.as_bytes().to_vec()),
        );
        if n == 6 {
            members.truncate(1);
        }
        let mut sadd = redis::cmd("SADD");
        sadd.arg(graph::adjacency_key(redis, *me)).arg(members.clone());
        redis.run::<()>(&sadd).await.expect("adjacency");
        let radius = [800.0, 5_000.0, 25_000.0][n % 3];
        askers.push((*me, rec.published(), radius, members.len() as u64 - 1));
    }
    let absent = Uuid::new_v4();
    askers.insert(3, (absent, paris, 5_000.0, 0));
    let covers: Vec<_> = askers
        .iter()
        .map(|(_, c, r, _)| (cover(*c, *r).cells, fetch_cover(*c, *r).cells))
        .collect();
    let asked: Vec<index::Asked> = askers
        .iter()
        .zip(&covers)
        .map(|((u, ..), (e, c))| index::Asked {
            user: *u,
            exact_cells: e,
            coarse_cells: c,
        })
        .collect();
    let mut found = 0;
    for weight in [2, 0, 1_000] {
        let got = index::nearby_many_in_one(redis, &asked, weight).await.expect("script");
        assert_eq!(got.len(), askers.len());
        for ((user, _, radius, degree), ((exact, coarse), got)) in askers.iter().zip(covers.iter().zip(got)) {
            let alone = index::nearby_in_one(redis, *user, exact, coarse, *degree, weight)
                .await
                .expect("script");
            let (Some(alone), Some(got)) = (alone, got) else {
                assert_eq!(*user, absent, "only the absent adjacency set is told to rebuild");
                continue;
            };
            assert_eq!(got.graph_first, alone.graph_first, "radius {radius}, weight {weight}");
            if got.graph_first {
                // each gave up past the budget (the batch's cells are read whole, to DENSE)
                assert!(got.population > degree * weight && alone.population > degree * weight);
            } else {
                assert_eq!(got.population, alone.population, "radius {radius}, weight {weight}");
            }
            let got: BTreeMap<Uuid, LiveRecord> = got.records.into_iter().collect();
            let alone: BTreeMap<Uuid, LiveRecord> = alone.records.into_iter().collect();
            assert_eq!(got, alone, "radius {radius}, weight {weight}");
            assert!(!got.contains_key(user), "never the asker");
            found += got.len();
        }
    }
    assert!(found > 100, "the askers have connections in reach: {found}");
    assert!(
        index::nearby_many_in_one(redis, &[], 2)
            .await
            .expect("script")
            .is_empty()
    );
}
