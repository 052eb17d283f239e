//! The fixed small scenario whose instruction count `scripts/instructions` measures under
//! callgrind: a figure that does not depend on how busy the machine is. Sequential, in this
//! process, through the service layer the API calls (no HTTP, no pipeline task: a check-in is
//! written as a batch of one in the caller's task, so every run does the same work).

use super::baseline::workloads;
use super::world::World;
use hereabouts::service::Ctx;
use hereabouts::service::live::CheckinInput;

/// What one run of the scenario does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Store-level nearby queries of typical users (5 km, 50 at most).
    Nearby,
    /// The same, by the store-level bench's super-connectors (not in `scripts/instructions`).
    NearbySuper,
    /// The same, by members of the conference hall (not in `scripts/instructions`).
    NearbyHall,
    /// Check-ins of the same users at their own point (the world is unchanged by them).
    Checkin,
}

/// Runs `ops` operations of `kind`, cycling over the typical workload's callers.
pub async fn run(ctx: &Ctx, world: &World, kind: Kind, ops: u64) -> anyhow::Result<()> {
    let workload = match kind {
        Kind::NearbySuper => "super-connector",
        Kind::NearbyHall => "hall",
        _ => "typical",
    };
    let callers = workloads(world)
        .into_iter()
        .find(|(name, _)| *name == workload)
        .map(|(_, c)| c)
        .unwrap_or_default();
    if callers.is_empty() {
        anyhow::bail!("the world has no {workload} callers");
    }
    let mut failed = 0u64;
    for i in 0..ops {
        let who = callers[(i % callers.len() as u64) as usize] as usize;
        let user = world.ids[who];
        let ok = match kind {
            Kind::Nearby => hereabouts::service::nearby::nearby(ctx, user, 5_000.0, 50)
                .await
                .is_ok(),
            // few callers, each asking many times: past the per-user rate limit
            Kind::NearbySuper | Kind::NearbyHall => hereabouts::service::nearby::unmetered(ctx, user, 5_000.0, 50)
                .await
                .is_ok(),
            Kind::Checkin => {
                let Some(spot) = world.people[who].spot else { continue };
                let raw = world.spots[spot as usize].raw;
                let input = CheckinInput {
                    lat: raw.lat(),
                    lng: raw.lng(),
                    accuracy_m: Some(10.0),
                    recorded_at: None,
                    ttl_s: Some(14_400),
                    client_id: None,
                };
                hereabouts::service::live::checkin(ctx, user, input).await.is_ok()
            }
        };
        failed += u64::from(!ok);
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {ops} operations failed: the count would not be comparable");
    }
    Ok(())
}
