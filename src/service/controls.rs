//! The operator's controls as each instance sees them: the policy and the parsed restricted
//! zones, re-read from PostgreSQL every few seconds (and at once after a local change), so a
//! change reaches every instance within seconds.

use crate::domain::cover::MAX_RADIUS_M;
use crate::domain::policy::Policy;
use crate::domain::zones::{Zone, parse_geometry};
use crate::store::{StoreResult, policy, privacy};
use sqlx::PgPool;
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

/// Shared, cheaply readable snapshot.
#[derive(Clone, Default)]
pub struct ControlsCache(Arc<RwLock<Arc<Controls>>>);

impl ControlsCache {
    /// The current snapshot.
    pub fn get(&self) -> Arc<Controls> {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }

    /// Widens the notify radius this instance detects arrivals within (a user just raised
    /// theirs; other instances read it at their next refresh).
    pub fn widen_notify_radius(&self, radius_m: f64) {
        if let Ok(mut g) = self.0.write()
            && g.max_notify_radius_m < radius_m
        {
            *g = Arc::new(Controls {
                policy: g.policy.clone(),
                zones: g.zones.clone(),
                max_notify_radius_m: radius_m.min(MAX_RADIUS_M),
            });
        }
    }

    /// Re-reads policy and zones from PostgreSQL.
    pub async fn reload(&self, db: &PgPool) -> StoreResult<Arc<Controls>> {
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
        if let Ok(mut g) = self.0.write() {
            *g = fresh.clone();
        }
        Ok(fresh)
    }
}
