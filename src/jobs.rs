//! Background jobs of the server process and the gauges read at scrape time.

use crate::startup::AppState;

/// Starts the periodic jobs; their handles are aborted when the server stops.
pub fn spawn_all(_state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}

/// Gauges for `/metrics`: (name, help, labels, value).
pub async fn gauges(state: &AppState) -> Vec<(&'static str, &'static str, String, f64)> {
    let pool = &state.db;
    vec![
        (
            "db_pool_connections",
            "PostgreSQL pool connections",
            "state=\"open\"".into(),
            pool.size() as f64,
        ),
        (
            "db_pool_connections",
            "PostgreSQL pool connections",
            "state=\"idle\"".into(),
            pool.num_idle() as f64,
        ),
        (
            "http_requests_in_flight_capacity",
            "configured cap on concurrent requests",
            String::new(),
            state.settings.max_concurrent_requests as f64,
        ),
    ]
}
