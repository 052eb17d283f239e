//! The operator's policy and the precision levels it constrains.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How precisely a user is published: the point, its res-7 cell centre, or its res-5 cell centre.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema, Hash, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Precision {
    Exact,
    Approximate,
    City,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Exact => "exact",
            Precision::Approximate => "approximate",
            Precision::City => "city",
        }
    }

    /// The coarser of the user's choice and the policy's minimum.
    pub fn at_least(self, min: Precision) -> Precision {
        self.max(min)
    }

    /// The H3 resolution a user is published in at this precision.
    pub fn resolution(self) -> h3o::Resolution {
        match self {
            Precision::Exact => h3o::Resolution::Nine,
            Precision::Approximate => h3o::Resolution::Seven,
            Precision::City => h3o::Resolution::Five,
        }
    }

    /// Distances to a user at this precision are rounded to this many metres.
    pub fn rounding_m(self) -> f64 {
        match self {
            Precision::Exact => 10.0,
            Precision::Approximate => 100.0,
            Precision::City => 1000.0,
        }
    }
}

/// The operator's controls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// False: the live index is emptied, check-ins are refused, nearby lists no one.
    pub location_sharing_enabled: bool,
    /// Upper bound on a check-in's lifetime.
    #[schema(example = 86400, minimum = 60, maximum = 604800)]
    pub max_ttl_s: i32,
    /// Nobody is published finer than this.
    pub min_precision: Precision,
    /// One notification per pair per this many seconds.
    #[schema(example = 43200, minimum = 0, maximum = 2592000)]
    pub notification_cooldown_s: i32,
    /// History (notifications, audit detail) older than this is deleted.
    #[schema(example = 30, minimum = 1, maximum = 3650)]
    pub retention_days: i32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            location_sharing_enabled: true,
            max_ttl_s: 86_400,
            min_precision: Precision::Exact,
            notification_cooldown_s: 43_200,
            retention_days: 30,
        }
    }
}

/// Bounds of the policy's numeric fields.
pub const MAX_TTL_RANGE: (i32, i32) = (60, 7 * 86_400);
pub const COOLDOWN_RANGE: (i32, i32) = (0, 30 * 86_400);
pub const RETENTION_RANGE: (i32, i32) = (1, 3650);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_precision_only_coarsens() {
        assert_eq!(
            Precision::Exact.at_least(Precision::Approximate),
            Precision::Approximate
        );
        assert_eq!(Precision::City.at_least(Precision::Approximate), Precision::City);
        assert_eq!(Precision::Exact.at_least(Precision::Exact), Precision::Exact);
    }
}
