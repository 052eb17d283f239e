//! The `hereabouts` command: serve the API, run the push worker, apply migrations, administer,
//! print the spec.

use clap::{Parser, Subcommand};
use hereabouts::config::{LogFormat, Settings};
use hereabouts::domain::account::Role;
use hereabouts::service::{self, Ctx};
use hereabouts::startup::Application;
use hereabouts::telemetry;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    /// Compare every live user's index entry with PostgreSQL once, repair what differs, and say
    /// what it found and how long it took (after a manual failover, or to measure the walk).
    Reconcile,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document generated from the code.
    Openapi,
    /// Exit 0 when the local server answers GET /readyz with 200 (container healthchecks);
    /// reads only HEREABOUTS_LISTEN.
    Healthcheck,
    /// Administration from the command line.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
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
    match cli.command {
        Command::Openapi => {
            return match hereabouts::http::openapi::render_yaml() {
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
        Command::Healthcheck => return healthcheck(),
        _ => {}
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        // these touch only PostgreSQL: they need HEREABOUTS_DATABASE_URL and nothing else
        Command::Migrate | Command::Admin { .. } => {
            let db = match hereabouts::config::load_database() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init(db.log_format == LogFormat::Json);
            rt.block_on(database_command(cli.command, db))
        }
        command => {
            let mut settings = match Settings::load() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            telemetry::init(settings.log_format == LogFormat::Json);
            rt.block_on(async move {
                match command {
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
                        let ctx = Ctx::new(settings)?;
                        ctx.load_controls().await;
                        let shutdown = tokio_util::sync::CancellationToken::new();
                        let worker = hereabouts::push::worker::Worker::new(ctx)?;
                        tokio::spawn(hereabouts::startup::cancel_on_signal(shutdown.clone()));
                        worker.run(shutdown.cancelled_owned()).await;
                        Ok(())
                    }
                    Command::Reconcile => {
                        let ctx = Ctx::new(settings)?;
                        ctx.load_controls().await;
                        let started = std::time::Instant::now();
                        let page = ctx.settings.reconcile_page;
                        let t = service::reconcile::full_pass(&ctx, page).await?;
                        let us = started.elapsed().as_micros() as u64;
                        println!(
                            "checked {} live users, repaired {} entries, in {} ms ({} µs per user, pages of {page})",
                            t.checked,
                            t.repaired,
                            us / 1_000,
                            us / t.checked.max(1)
                        );
                        Ok(())
                    }
                    _ => Ok(()),
                }
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e: anyhow::Error = e;
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `migrate` and `admin …`: PostgreSQL only. Role changes are written to the audit log.
async fn database_command(command: Command, s: hereabouts::config::DatabaseSettings) -> anyhow::Result<()> {
    let db = service::pg_pool(s.database_url(), s.store_timeout, s.db_max_connections)?;
    match command {
        Command::Migrate => {
            service::migrate(&db).await?;
            println!("migrations applied");
        }
        Command::Admin { command } => {
            let (email, role) = match &command {
                AdminCommand::Grant { email } => (email, Role::Admin),
                AdminCommand::Revoke { email } => (email, Role::User),
            };
            if !service::accounts::set_role(&db, email, role).await? {
                anyhow::bail!("no user with email {email}");
            }
            println!("{email} is now {}", role.as_str());
        }
        _ => {}
    }
    Ok(())
}

/// `healthcheck`: GET /readyz on the port of HEREABOUTS_LISTEN (default 8080), on loopback.
fn healthcheck() -> ExitCode {
    use std::io::{Read, Write};
    let listen = std::env::var("HEREABOUTS_LISTEN").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let port = listen.parse::<std::net::SocketAddr>().map(|a| a.port()).unwrap_or(8080);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let timeout = std::time::Duration::from_secs(3);
    let answer = std::net::TcpStream::connect_timeout(&addr, timeout).and_then(|mut c| {
        c.set_read_timeout(Some(timeout))?;
        c.write_all(b"GET /readyz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        c.read_exact(&mut head)?;
        Ok(head)
    });
    match answer {
        Ok(head) if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!("not ready: {addr} answered /readyz with another status");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("not ready: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}
