//! Pure logic, free of I/O: validated values parsed at the edge (emails, names, coordinates,
//! precision), precision snapping, the H3 cover, the nearby planner and filter, the policy, zones.

pub mod account;
pub mod cover;
pub mod device;
pub mod event;
pub mod geo;
pub mod linkedin;
pub mod nearby;
pub mod policy;
pub mod profile;
pub mod quiet;
pub mod trips;
pub mod webpush;
pub mod zones;

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
