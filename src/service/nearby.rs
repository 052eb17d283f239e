//! "Which of my connections are nearby": cover, plan, fetch, filter — a bounded number of
//! pipelined Redis round trips whatever the sizes of the cells and of the caller's graph.

use crate::domain::cover::cover;
use crate::domain::nearby::{Hit, Plan, choose, select};
use crate::error::{ApiError, ApiResult};
use crate::startup::AppState;
use crate::store::{graph, index, live};
use redis::Value;
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

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Connections of `user` within `radius_m` of the user's own live point.
#[tracing::instrument(skip(state), fields(plan, candidates, cells))]
pub async fn nearby(state: &AppState, user: Uuid, radius_m: f64, limit: usize) -> ApiResult<Answer> {
    let controls = state.controls.get();
    if !controls.policy.location_sharing_enabled {
        // the kill switch: nobody is listed until the operator re-enables sharing
        return Ok(Answer {
            hits: vec![],
            plan: None,
            candidates: 0,
        });
    }
    let redis = &state.redis;
    let adj_key = graph::adjacency_key(redis, user);
    // round trip 1: the caller's own record and degree
    let first = redis
        .run_many(vec![
            redis::cmd("GET").arg(index::record_key(redis, user)).clone(),
            redis::cmd("SCARD").arg(&adj_key).clone(),
        ])
        .await?;
    let mut me = match first.first() {
        Some(Value::BulkString(b)) => serde_json::from_slice::<crate::domain::nearby::LiveRecord>(b).ok(),
        _ => None,
    };
    if me.is_none() {
        // the index may have lost the caller (Redis restarted): the live row is the truth
        if live::get(&state.db, user).await?.is_some() {
            crate::service::live::sync_user(state, user).await?;
            me = index::record(redis, user).await?;
        }
    }
    let me = me.filter(|r| r.is_live(now_ms())).ok_or(ApiError::Conflict(
        "no_active_checkin",
        "check in first: you see others only while you share",
    ))?;
    if !controls.policy.location_sharing_enabled {
        return Ok(Answer {
            hits: vec![],
            plan: None,
            candidates: 0,
        });
    }
    let degree = match first.get(1) {
        Some(Value::Int(n)) if *n > 0 => (*n - 1) as u64,
        _ => graph::ensure_adjacency(&state.db, redis, user).await?,
    };
    let cov = cover(me.centre(), radius_m);
    tracing::Span::current().record("cells", cov.cells.len());
    if degree == 0 {
        return Ok(Answer {
            hits: vec![],
            plan: None,
            candidates: 0,
        });
    }
    // round trip 2: the live population of the cover
    let population: u64 = index::populations(redis, &cov.cells).await?.iter().sum();
    let plan = choose(population, degree);
    let ids: Vec<Uuid> = match plan {
        Plan::CellFirst => {
            // round trips 3 and 4: members of the cells, then which are connections
            let mut seen = HashSet::new();
            let members: Vec<Uuid> = index::members(redis, &cov.cells)
                .await?
                .into_iter()
                .filter(|m| seen.insert(*m))
                .collect();
            let flags = index::set_contains(redis, &adj_key, &members).await?;
            members
                .into_iter()
                .zip(flags)
                .filter_map(|(m, f)| f.then_some(m))
                .collect()
        }
        // round trip 3: the connections
        Plan::GraphFirst => graph::adjacency(&state.db, redis, user).await?,
    };
    // last round trip: the live records of the candidates
    let records = index::records(redis, &ids).await?;
    let candidates: Vec<_> = ids
        .into_iter()
        .zip(records)
        .filter_map(|(id, r)| r.map(|r| (id, r)))
        .collect();
    let examined = candidates.len();
    let hits = select(user, me.centre(), radius_m, &cov, now_ms(), candidates, limit);
    let span = tracing::Span::current();
    span.record("plan", plan.as_str());
    span.record("candidates", examined);
    state.metrics.count(
        "nearby_queries_total",
        "nearby queries by plan",
        &[("plan", plan.as_str())],
        1.0,
    );
    state.metrics.observe(
        "nearby_candidates",
        "records examined by the exact filter per nearby query, by plan",
        &[("plan", plan.as_str())],
        examined as f64,
    );
    Ok(Answer {
        hits,
        plan: Some(plan),
        candidates: examined,
    })
}
