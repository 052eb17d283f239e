//! The `hereabouts` command: serve the API, run the push worker, apply migrations, administer,
//! print the spec.

use clap::{Parser, Subcommand};
use hereabouts::auth::Role;
use hereabouts::config::Settings;
use hereabouts::startup::{self, Application};
use hereabouts::telemetry;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "hereabouts",
    version,
    about = "Which of my connections are near me right now"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (applies pending migrations first unless --no-migrate).
    Serve {
        /// Do not apply pending migrations on start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run only the push delivery worker (no HTTP); stops on SIGTERM/SIGINT, releasing its claims.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document generated from the code.
    Openapi,
    /// Administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Load test on this machine: seed a synthetic world, drive the HTTP API, compare baselines.
    Loadgen(Box<hereabouts::loadgen::Args>),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Give a user the admin role (tokens issued afterwards carry it).
    Grant { email: String },
    /// Take the admin role away (effective at once on admin endpoints).
    Revoke { email: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        return match hereabouts::api::openapi::render_yaml() {
            Ok(y) => {
                print!("{y}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let mut settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_format);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.command {
            Command::Serve { no_migrate } => {
                if no_migrate {
                    settings.migrate_on_start = false;
                }
                let app = Application::build(settings).await?;
                tracing::info!(port = app.port(), "serving");
                app.run_until_stopped().await?;
                tracing::info!("stopped");
                Ok(())
            }
            Command::Worker => {
                let state = startup::AppState::new(settings)?;
                hereabouts::push::run_worker(state).await
            }
            Command::Migrate => {
                let db = startup::pg_pool(&settings)?;
                startup::migrate(&db).await?;
                println!("migrations applied");
                Ok(())
            }
            Command::Admin { command } => {
                let db = startup::pg_pool(&settings)?;
                let (email, role) = match &command {
                    AdminCommand::Grant { email } => (email, Role::Admin),
                    AdminCommand::Revoke { email } => (email, Role::User),
                };
                if !hereabouts::store::users::set_role(&db, email, role).await? {
                    anyhow::bail!("no user with email {email}");
                }
                println!("{email} is now {}", role.as_str());
                Ok(())
            }
            Command::Loadgen(args) => hereabouts::loadgen::run(settings, *args).await,
            Command::Openapi => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: anyhow::Error = e;
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
