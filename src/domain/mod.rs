//! Pure logic, free of I/O: validated values, precision snapping, the H3 cover, the nearby planner.

pub mod account;
pub mod cover;
pub mod geo;
pub mod nearby;
pub mod policy;
pub mod zones;
