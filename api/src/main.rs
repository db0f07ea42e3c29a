//! `invite-api`: the HTTP API (`serve`, the default), `migrate`, and `token create`.

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use invite_api::{AppState, router};
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::domain::email::InviteeEmail;
use invite_shared::queue::JobQueue;
use invite_shared::store::auth;
use invite_worker::runtime;

#[derive(Parser)]
#[command(version, about = "Bulk-invite people into workspaces from a CSV")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage admin API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token for an admin, creating the workspace and the admin if missing; the token
    /// is printed alone on the last line.
    Create {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::init_tracing();
    let cli = Cli::parse();
    let settings = Arc::new(Settings::load()?);
    let db = Db::connect(&settings.database_url(), settings.db_pool_size)?;
    db.migrate().await?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, db).await,
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Token {
            action: TokenAction::Create { workspace, email },
        } => {
            let email = InviteeEmail::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            anyhow::ensure!(
                valid_slug(&workspace),
                "--workspace must be 1-64 lower-case letters, digits or '-'"
            );
            let token = db
                .run(move |c| Ok(auth::create_admin_token(c, &workspace, email.as_str())?))
                .await?;
            println!("{token}");
            Ok(())
        }
    }
}

fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

async fn serve(settings: Arc<Settings>, db: Db) -> anyhow::Result<()> {
    let queue = JobQueue::connect(&settings).await?;
    let state = AppState {
        db,
        queue,
        settings: settings.clone(),
        metrics: runtime::metrics_handle(),
    };
    let listener = tokio::net::TcpListener::bind(settings.api_addr)
        .await
        .with_context(|| format!("binding API_ADDR {}", settings.api_addr))?;
    tracing::info!(addr = %settings.api_addr, "invite-api listening");
    let shutdown = runtime::shutdown_on_signal();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("serving HTTP")
}
