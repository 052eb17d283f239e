//! "Which of my connections are nearby": cover, plan, fetch, filter — two Redis round trips on
//! a single server (the caller's record, then one script for the rest), a bounded number of
//! pipelined ones on a cluster, whatever the sizes of the cells and of the caller's graph.
//! [`candidates`] is the one planner, shared with arrival detection.

use super::{Code, Ctx, ServiceError, ServiceResult};
use crate::domain::cover::{cover, fetch_cover};
use crate::domain::geo::Coord;
use crate::domain::nearby::{Hit, LiveRecord, PROBE_SLACK_M, Plan, RECORD_WEIGHT, choose, select};
use crate::store::index::Class;
use crate::store::{graph, index, live};
use std::collections::HashSet;
use uuid::Uuid;

/// The answer with what the query did, for traces and metrics.
#[derive(Debug)]
pub struct Answer {
    pub hits: Vec<Hit>,
    pub plan: Option<Plan>,
    /// Records examined by the exact filter.
    pub candidates: usize,
}

impl Answer {
    fn empty() -> Self {
        Self {
            hits: vec![],
            plan: None,
            candidates: 0,
        }
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// What the planner found: the plan it took (none for a user without connections), how many
/// cells the cover exact users were read from holds, and the live records of the user's
/// connections that may lie in reach (not yet filtered exactly).
pub struct Candidates {
    pub plan: Option<Plan>,
    pub cells: usize,
    pub records: Vec<(Uuid, LiveRecord)>,
}

/// The live records of `user`'s connections that may be in reach of `centre`: exact users
/// published in the cover of the circle of `exact_radius_m`, coarse users published in the
/// wider cover of the circle of `coarse_radius_m` (widened again by a coarse cell's reach,
/// [`fetch_cover`]) — each class read only from its own cover. From the cheaper side: the
/// members of the cells intersected with the adjacency (cell-first), or the connections'
/// records (graph-first). `degree` is the user's degree when the caller already read it.
pub async fn candidates(
    ctx: &Ctx,
    user: Uuid,
    centre: Coord,
    exact_radius_m: f64,
    coarse_radius_m: f64,
    degree: Option<u64>,
) -> ServiceResult<Candidates> {
    let redis = &ctx.redis;
    let exact = cover(centre, exact_radius_m);
    let coarse = fetch_cover(centre, coarse_radius_m);
    let degree = match degree {
        Some(d) => d,
        None => graph::ensure_adjacency(&ctx.db, redis, user).await?,
    };
    if degree == 0 {
        return Ok(Candidates {
            plan: None,
            cells: exact.cells.len(),
            records: vec![],
        });
    }
    if !redis.is_cluster()
        && let Some(found) =
            index::nearby_in_one(redis, user, &exact.cells, &coarse.cells, degree, RECORD_WEIGHT).await?
    {
        let plan = if found.graph_first {
            Plan::GraphFirst
        } else {
            Plan::CellFirst
        };
        debug_assert_eq!(plan, choose(found.population, degree));
        return Ok(Candidates {
            plan: Some(plan),
            cells: exact.cells.len(),
            records: found.records,
        });
    }
    // on a cluster (or when the adjacency set expired meanwhile): the same in pipelined steps;
    // the live population of both covers, each in its class
    let (pe, pc) = futures_util::try_join!(
        index::populations(redis, &exact.cells, Class::Exact),
        index::populations(redis, &coarse.cells, Class::Coarse)
    )?;
    let population: u64 = pe.iter().chain(&pc).sum();
    let plan = choose(population, degree);
    let ids: Vec<Uuid> = match plan {
        Plan::CellFirst => {
            // members of the cells, then which are connections
            let (me, mc) = futures_util::try_join!(
                index::members(redis, &exact.cells, Class::Exact),
                index::members(redis, &coarse.cells, Class::Coarse)
            )?;
            let mut seen = HashSet::new();
            let members: Vec<Uuid> = me
                .into_iter()
                .chain(mc)
                .filter(|m| *m != user && seen.insert(*m))
                .collect();
            let flags = index::connected(redis, user, &members).await?;
            members
                .into_iter()
                .zip(flags)
                .filter_map(|(m, f)| f.then_some(m))
                .collect()
        }
        Plan::GraphFirst => graph::adjacency(&ctx.db, redis, user).await?,
    };
    // the live records of the candidates
    let records = index::records(redis, &ids).await?;
    let records = ids
        .into_iter()
        .zip(records)
        .filter_map(|(id, r)| r.map(|r| (id, r)))
        .collect();
    Ok(Candidates {
        plan: Some(plan),
        cells: exact.cells.len(),
        records,
    })
}

/// Connections of `user` within `radius_m` of the user's own live point (rate-limited per user).
#[tracing::instrument(skip(ctx), fields(plan, candidates, cells))]
pub async fn nearby(ctx: &Ctx, user: Uuid, radius_m: f64, limit: usize) -> ServiceResult<Answer> {
    if !ctx.controls.get().policy.location_sharing_enabled {
        // the kill switch: nobody is listed until the operator re-enables sharing
        return Ok(Answer::empty());
    }
    // round trip 1: the caller's own record and degree, and the rate limit (bounds radius
    // probing), sent together
    let bucket = format!("nearby:{user}");
    let (limited, first, givers) = futures_util::join!(
        ctx.rate_limit(&bucket, ctx.settings.rate_nearby_per_user_per_min),
        index::record_and_degree(&ctx.redis, user),
        crate::store::shares::received_givers(&ctx.redis, user)
    );
    limited?;
    answer(ctx, user, radius_m, limit, first?, givers?).await
}

/// As [`nearby`] without the per-user rate limit: the live radar's own re-reads (bounded by
/// the stream's pace and the streams a user may hold, not by the caller).
pub async fn unmetered(ctx: &Ctx, user: Uuid, radius_m: f64, limit: usize) -> ServiceResult<Answer> {
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Ok(Answer::empty());
    }
    let (first, givers) = futures_util::join!(
        index::record_and_degree(&ctx.redis, user),
        crate::store::shares::received_givers(&ctx.redis, user)
    );
    answer(ctx, user, radius_m, limit, first?, givers?).await
}

/// What [`listed_among`] can tell.
#[derive(Debug)]
pub enum Among {
    /// The users listed, sorted as nearby sorts.
    Listed(Vec<Hit>),
    /// The caller's own live record is no longer at the centre: they checked in elsewhere, and
    /// the news of it is on its way (their own change is announced after its commit).
    Moved,
    /// It cannot be told from these users alone: only the full query can.
    Unknown,
}

/// What a nearby query of `user` at `centre` over `radius_m` would list of `users` alone, now:
/// each of them as [`nearby`] would list it (a connection, live, not hiding from the caller, an
/// exact share's point, reached by the circle: the same [`select`]), sorted
/// as it sorts. The live radar's read of the users a message named, instead of the whole
/// answer; [`Among::Unknown`] when it cannot be told from them alone (sharing disabled, the
/// caller's adjacency not cached, or the caller's own record no longer live — stopped sharing,
/// or checked in where nothing is indexed, even when that news was lost), [`Among::Moved`]
/// when the caller's record is live elsewhere.
pub async fn listed_among(ctx: &Ctx, user: Uuid, centre: Coord, radius_m: f64, users: &[Uuid]) -> ServiceResult<Among> {
    if !ctx.controls.get().policy.location_sharing_enabled {
        return Ok(Among::Unknown);
    }
    if users.is_empty() {
        return Ok(Among::Listed(vec![]));
    }
    // most users a region's message names are not the caller's connections: their records are
    // not read
    let Some((ids, own)) = index::connected_among(&ctx.redis, user, users).await? else {
        return Ok(Among::Unknown);
    };
    match own.filter(|r| r.is_live(now_ms())) {
        None => return Ok(Among::Unknown),
        Some(r) if r.centre() != centre => return Ok(Among::Moved),
        Some(_) => {}
    }
    if ids.is_empty() {
        return Ok(Among::Listed(vec![]));
    }
    let (records, givers) = futures_util::join!(
        index::records(&ctx.redis, &ids),
        crate::store::shares::received_givers(&ctx.redis, user)
    );
    let records = ids
        .into_iter()
        .zip(records?)
        .filter_map(|(id, r)| r.map(|r| (id, r)))
        .collect();
    let records = super::shares::exact_for_recipient(ctx, user, givers?, records).await?;
    Ok(Among::Listed(select(
        user,
        centre,
        radius_m,
        now_ms(),
        records,
        users.len(),
    )))
}

/// The rest of a nearby query once the caller's record and degree are read.
async fn answer(
    ctx: &Ctx,
    user: Uuid,
    radius_m: f64,
    limit: usize,
    first: (Option<LiveRecord>, Option<u64>),
    givers: Vec<Uuid>,
) -> ServiceResult<Answer> {
    let redis = &ctx.redis;
    let (mut me, degree) = first;
    if me.is_none() {
        // not in the index: a check-in in a restricted zone, or an index that lost the caller
        // (Redis restarted): the live row is the truth
        match live::get(&ctx.db, user).await? {
            Some(row) if !row.indexed => {
                return Err(ServiceError::refused(
                    Code::NotIndexed,
                    "your check-in is in a restricted zone: it is not indexed, so nearby lists no one",
                ));
            }
            Some(_) => {
                super::live::sync_user(ctx, user).await?;
                me = index::record(redis, user).await?;
            }
            None => {}
        }
    }
    let me = me.filter(|r| r.is_live(now_ms())).ok_or_else(|| {
        ServiceError::refused(
            Code::NoActiveCheckin,
            "check in first: you see others only while you share",
        )
    })?;
    let r = radius_m + PROBE_SLACK_M;
    let found = candidates(ctx, user, me.centre(), r, r, degree).await?;
    let span = tracing::Span::current();
    span.record("cells", found.cells);
    let Some(plan) = found.plan else {
        return Ok(Answer::empty());
    };
    let examined = found.records.len();
    let records = super::shares::exact_for_recipient(ctx, user, givers, found.records).await?;
    let hits = select(user, me.centre(), radius_m, now_ms(), records, limit);
    span.record("plan", plan.as_str());
    span.record("candidates", examined);
    ctx.metrics.nearby(plan.as_str(), examined);
    Ok(Answer {
        hits,
        plan: Some(plan),
        candidates: examined,
    })
}
