//! Logging and tracing: `RUST_LOG` filter, JSON lines in production, human lines in development
//! (coloured only on a terminal).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are no-ops (tests spawn many apps).
pub fn init(json: bool) {
    init_with_default(json, "info,sqlx=warn,tracing_actix_web=error");
}

/// As [`init`], with the filter used when `RUST_LOG` is not set.
pub fn init_with_default(json: bool, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}
