//! The operator's controls as each instance sees them: the policy and the parsed restricted
//! zones, re-read from PostgreSQL every few seconds (and at once after a local change), so a
//! change reaches every instance within seconds.

use crate::domain::cover::MAX_RADIUS_M;
use crate::domain::policy::Policy;
use crate::domain::zones::{Zone, parse_geometry};
use crate::store::{StoreResult, policy, privacy};
use sqlx::PgPool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// A snapshot of the controls.
#[derive(Debug)]
pub struct Controls {
    pub policy: Policy,
    pub zones: Vec<Zone>,
    /// The largest notify radius in use: arrival detection looks no farther.
    pub max_notify_radius_m: f64,
}

impl Default for Controls {
    fn default() -> Self {
        Self {
            policy: Policy::default(),
            zones: vec![],
            max_notify_radius_m: MAX_RADIUS_M,
        }
    }
}

impl Controls {
    /// The zone holding the point, if any.
    pub fn zone_at(&self, lat: f64, lng: f64) -> Option<&Zone> {
        self.zones.iter().find(|z| z.contains(lat, lng))
    }
}

/// Shared, cheaply readable snapshot. Each change is stamped with a ticket taken when it began,
/// and a snapshot replaces the current one only when its ticket is newer: a periodic re-read
/// that started before an operator's change and ends after its own re-read cannot bring the
/// old controls back.
#[derive(Clone, Default)]
pub struct ControlsCache(Arc<Shared>);

#[derive(Default)]
struct Shared {
    current: RwLock<(u64, Arc<Controls>)>,
    tickets: AtomicU64,
}

impl ControlsCache {
    /// The current snapshot.
    pub fn get(&self) -> Arc<Controls> {
        self.0.current.read().map(|g| g.1.clone()).unwrap_or_default()
    }

    fn ticket(&self) -> u64 {
        self.0.tickets.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Widens the notify radius this instance detects arrivals within (a user just raised
    /// theirs; other instances read it at their next refresh).
    pub fn widen_notify_radius(&self, radius_m: f64) {
        let ticket = self.ticket();
        if let Ok(mut g) = self.0.current.write()
            && g.1.max_notify_radius_m < radius_m
        {
            let widened = Arc::new(Controls {
                policy: g.1.policy.clone(),
                zones: g.1.zones.clone(),
                max_notify_radius_m: radius_m.min(MAX_RADIUS_M),
            });
            *g = (ticket.max(g.0), widened);
        }
    }

    /// Re-reads policy and zones from PostgreSQL.
    pub async fn reload(&self, db: &PgPool) -> StoreResult<Arc<Controls>> {
        let ticket = self.ticket();
        let policy = policy::get(db).await?;
        let zones = policy::zones(db)
            .await?
            .into_iter()
            .filter_map(|z| {
                let shape = parse_geometry(&z.geometry).ok()?;
                Some(Zone {
                    id: z.id,
                    name: z.name,
                    shape,
                })
            })
            .collect();
        let max_notify_radius_m = privacy::max_notify_radius_m(db)
            .await?
            .map_or(0.0, f64::from)
            .min(MAX_RADIUS_M);
        let fresh = Arc::new(Controls {
            policy,
            zones,
            max_notify_radius_m,
        });
        Ok(self.install(ticket, fresh))
    }

    /// Makes `fresh` current unless a change that began later is already installed; the
    /// snapshot now current.
    fn install(&self, ticket: u64, fresh: Arc<Controls>) -> Arc<Controls> {
        let Ok(mut g) = self.0.current.write() else {
            return fresh;
        };
        if ticket > g.0 {
            *g = (ticket, fresh);
        }
        g.1.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cooldown(s: i32) -> Arc<Controls> {
        let mut c = Controls::default();
        c.policy.notification_cooldown_s = s;
        Arc::new(c)
    }

    /// A re-read that began before another and ends after it does not bring its older
    /// snapshot back.
    #[test]
    fn a_reread_that_began_earlier_does_not_overwrite_a_later_one() {
        let cache = ControlsCache::default();
        let (early, late) = (cache.ticket(), cache.ticket());
        assert_eq!(cache.install(late, with_cooldown(2)).policy.notification_cooldown_s, 2);
        assert_eq!(cache.install(early, with_cooldown(1)).policy.notification_cooldown_s, 2);
        assert_eq!(cache.get().policy.notification_cooldown_s, 2);
        // a widened radius is a change of its own: re-reads that began before it give way
        let before = cache.ticket();
        cache.widen_notify_radius(f64::INFINITY);
        cache.install(before, with_cooldown(3));
        assert_eq!(cache.get().policy.notification_cooldown_s, 2);
        let after = cache.ticket();
        assert_eq!(cache.install(after, with_cooldown(4)).policy.notification_cooldown_s, 4);
    }
}
