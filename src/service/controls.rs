//! The operator's controls as each instance sees them: the policy and the parsed restricted
//! zones, re-read from PostgreSQL every few seconds (and at once after a local change), so a
//! change reaches every instance within seconds.

use crate::domain::policy::Policy;
use crate::domain::zones::{Zone, parse_geometry};
use crate::store::{StoreResult, policy};
use sqlx::PgPool;
use std::sync::{Arc, RwLock};

/// A snapshot of the controls.
#[derive(Debug, Default)]
pub struct Controls {
    pub policy: Policy,
    pub zones: Vec<Zone>,
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
        let fresh = Arc::new(Controls { policy, zones });
        if let Ok(mut g) = self.0.write() {
            *g = fresh.clone();
        }
        Ok(fresh)
    }
}
