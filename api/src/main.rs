//! `invite-api`: the HTTP API (`serve`, the default), `import` of one file, `migrate`,
//! `token create`/`list`/`revoke`, the support twins `retry`, `cancel`, `resend`, `unsuppress`,
//! `change-email` and `remind`, `members`, `audit`, `webhook` and `settings`, and `openapi`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use invite_api::commands;
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::domain::email::InviteeEmail;
use invite_shared::ids::{ImportId, MemberId};
use invite_shared::intake::workbook::child;
use invite_shared::service::members::FilterText;
use invite_shared::service::webhooks::EndpointRequest;
use invite_shared::status::ImportStatus;
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
    /// Run the HTTP API (the default); with no REDIS_URL, the workers run in this process too.
    Serve,
    /// Import one file (CSV, .xlsx or .ods) to completion, with workers in this process, and print
    /// a summary.
    Import {
        /// The CSV file or workbook.
        file: PathBuf,
        /// The workspace's slug (created if missing).
        #[arg(long)]
        workspace: String,
        /// Validate every row and write the results file, but invite no one and send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also write the rows with these outcomes (comma-separated, e.g. `invalid,skipped`) in
        /// the file's own columns plus `reason`, to fix and import again.
        #[arg(long)]
        outcome: Option<String>,
    },
    /// Queue every failed send of an import again (twin of `POST …/imports/{id}/retry`).
    Retry {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The import's id.
        #[arg(long)]
        import: i64,
    },
    /// Cancel an import: no more rows, its unsent emails cancelled (twin of
    /// `POST …/imports/{id}/cancel`).
    Cancel {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The import's id.
        #[arg(long)]
        import: i64,
    },
    /// Queue a new invitation email for a member who has not accepted yet (twin of
    /// `POST …/members/{id}/resend`).
    Resend {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The member's id.
        #[arg(long)]
        member: i64,
    },
    /// Let resends and reminders reach a member's address again after a bounce or a complaint
    /// (twin of `POST …/members/{id}/unsuppress`).
    Unsuppress {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The member's id.
        #[arg(long)]
        member: i64,
    },
    /// Correct the address of a member who has not accepted and email a new invitation to it
    /// (twin of `POST …/members/{id}/email`).
    ChangeEmail {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The member's id.
        #[arg(long)]
        member: i64,
        /// The corrected address.
        #[arg(long)]
        email: String,
    },
    /// Send a reminder email to the members matching the filters who have not accepted yet, within
    /// REMIND_COOLDOWN and REMIND_MAX (twin of `POST …/members/remind`); prints the counts.
    Remind {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// Only members with this status (`invited`, `requested`; others are skipped).
        #[arg(long)]
        status: Option<String>,
        /// Only members whose latest email is in this state (`pending`, `sent`, `failed`, …).
        #[arg(long)]
        email_status: Option<String>,
        /// Only members invited before this time (RFC 3339, e.g. `2026-12-01T00:00:00Z`).
        #[arg(long)]
        invited_before: Option<String>,
        /// Only members created by this import.
        #[arg(long)]
        import: Option<i64>,
        /// Only members whose address or name contains this (case and accents ignored).
        #[arg(long)]
        search: Option<String>,
    },
    /// Print a workspace's audit log, newest first: who uploaded, retried, resent, copied a link,
    /// archived or changed tokens (twin of `GET …/audit`).
    Audit {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// Most entries to print.
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Print a workspace's members, in id order: id, address, name, status and the latest email's
    /// status (twin of `GET …/members`).
    Members {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// Only members whose address or name contains this text, ignoring case and accents.
        #[arg(long)]
        search: Option<String>,
        /// Only members with this status: invited, requested, active or archived.
        #[arg(long)]
        status: Option<String>,
        /// Most members to print (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Show or change a workspace's settings (twin of `GET`/`PUT …/settings`): with no option,
    /// print them.
    Settings {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// Where an accepted invitation sends the browser: a URL template with `{member_id}`,
        /// `{email}`, `{workspace}`, to which the hand-over token is appended as `token=`.
        #[arg(long, conflicts_with = "clear")]
        accept_redirect_url: Option<String>,
        /// Clear `accept_redirect_url`: accepting shows the service's own welcome page again.
        #[arg(long)]
        clear: bool,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document of the API (what `GET /api/v1/openapi.json` serves); needs
    /// no configuration. `invite-api openapi > api/openapi.json` refreshes the checked-in copy.
    Openapi,
    /// Manage admin API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Manage a workspace's webhook endpoints (twins of `…/webhooks`).
    Webhook {
        #[command(subcommand)]
        action: WebhookAction,
    },
    /// Internal: converts the workbook on standard input to CSV on standard output under the
    /// limits given as JSON; `serve` and `import` run it as a child process.
    #[command(name = "convert-workbook", hide = true)]
    ConvertWorkbook {
        /// The conversion's limits, as JSON.
        limits: String,
    },
}

#[derive(Subcommand)]
enum WebhookAction {
    /// Create an endpoint; its signing secret (`whsec_…`) is printed alone on the last line, and
    /// never again.
    Create {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// Where events are POSTed (https, a public host unless WEBHOOK_ALLOW_PRIVATE).
        #[arg(long)]
        url: String,
        /// The event types to receive, comma-separated (e.g. `import.completed,email.sent`).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// What it is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List a workspace's endpoints (never their secrets).
    List {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
    },
    /// Delete an endpoint with its deliveries and their log.
    Delete {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The endpoint's id, as `webhook list` shows it.
        id: i64,
    },
    /// Queue a `webhook.test` event to one endpoint.
    Test {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The endpoint's id, as `webhook list` shows it.
        id: i64,
    },
}

impl WebhookAction {
    fn workspace(&self) -> &String {
        match self {
            WebhookAction::Create { workspace, .. }
            | WebhookAction::List { workspace }
            | WebhookAction::Delete { workspace, .. }
            | WebhookAction::Test { workspace, .. } => workspace,
        }
    }
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token for an admin, valid in that workspace, creating the workspace and the admin
    /// if missing; the token is printed alone on the last line, and never again.
    Create {
        /// The workspace's slug.
        #[arg(long)]
        workspace: String,
        /// The admin's email address.
        #[arg(long)]
        email: String,
        /// What the token is for, shown by `token list`.
        #[arg(long, default_value = "")]
        name: String,
        /// How long it works, e.g. `90days` or `12h`; default: until revoked.
        #[arg(long, value_parser = humantime_serde::re::humantime::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// List the tokens made for a workspace, or the legacy tokens (never their secrets).
    List {
        /// The workspace's slug.
        #[arg(long, required_unless_present = "legacy")]
        workspace: Option<String>,
        /// List the tokens made before tokens belonged to one workspace instead: each acts in
        /// every workspace its admin administers, until revoked.
        #[arg(long, conflicts_with = "workspace")]
        legacy: bool,
    },
    /// Revoke a token and every token made from it: they get 401 from then on.
    Revoke {
        /// The workspace the token was made for; leave it out to revoke any token, a legacy one
        /// included.
        #[arg(long)]
        workspace: Option<String>,
        /// The token's id, as `token list` shows it.
        id: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The conversion child does nothing else: no runtime, no threads, no logging.
    if let Some(Command::ConvertWorkbook { limits }) = &cli.command {
        return child::run_child(limits);
    }
    match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(start(cli)),
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> ExitCode {
    // These print their own progress or result; only problems are worth a log line there.
    let quiet = matches!(
        cli.command,
        Some(
            Command::Import { .. }
                | Command::Retry { .. }
                | Command::Cancel { .. }
                | Command::Resend { .. }
                | Command::Unsuppress { .. }
                | Command::ChangeEmail { .. }
                | Command::Remind { .. }
                | Command::Audit { .. }
                | Command::Members { .. }
                | Command::Settings { .. }
        )
    );
    runtime::init_tracing(if quiet { "warn" } else { "info" });
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A `--workspace` given to a command must be a slug.
fn check_workspace(command: &Command) -> anyhow::Result<()> {
    if let Command::Webhook { action } = command {
        let workspace = action.workspace();
        anyhow::ensure!(
            valid_slug(workspace),
            "--workspace must be 1-64 lower-case letters, digits or '-'"
        );
    }
    if let Command::Token {
        action:
            TokenAction::Create { workspace, .. }
            | TokenAction::List {
                workspace: Some(workspace),
                ..
            }
            | TokenAction::Revoke {
                workspace: Some(workspace),
                ..
            },
    }
    | Command::Import { workspace, .. }
    | Command::Retry { workspace, .. }
    | Command::Cancel { workspace, .. }
    | Command::Resend { workspace, .. }
    | Command::Unsuppress { workspace, .. }
    | Command::ChangeEmail { workspace, .. }
    | Command::Remind { workspace, .. }
    | Command::Audit { workspace, .. }
    | Command::Members { workspace, .. }
    | Command::Settings { workspace, .. } = command
    {
        anyhow::ensure!(
            valid_slug(workspace),
            "--workspace must be 1-64 lower-case letters, digits or '-'"
        );
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        print!("{}", commands::openapi());
        return Ok(ExitCode::SUCCESS);
    }
    check_workspace(&command)?;
    let settings = Arc::new(Settings::load()?);
    if let Command::Serve = command {
        // The long-running server waits out a database or queue that is down; the one-off
        // commands below fail at once instead.
        return commands::serve(settings).await.map(|()| ExitCode::SUCCESS);
    }
    let db = Db::for_settings(&settings)?;
    db.migrate().await?;
    match command {
        Command::Import {
            file,
            workspace,
            dry_run,
            outcome,
        } => {
            let outbox = settings.smtp_url.is_none().then(|| settings.outbox_dir());
            let outcomes = outcome
                .as_deref()
                .map(invite_shared::service::repair::parse_outcomes)
                .transpose()
                .map_err(anyhow::Error::msg)?;
            let options = commands::ImportOptions { dry_run, outcomes };
            let summary = commands::import(settings, db, &file, &workspace, options).await?;
            Ok(print_summary(&summary, outbox))
        }
        command => {
            println!("{}", one_off(command, &settings, &db).await?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a one-off command other than `import` and says what it did.
async fn one_off(command: Command, settings: &Settings, db: &Db) -> anyhow::Result<String> {
    Ok(match command {
        Command::Serve
        | Command::ConvertWorkbook { .. }
        | Command::Openapi
        | Command::Import { .. } => {
            unreachable!("run before the database is opened, or by `run`")
        }
        Command::Retry { workspace, import } => {
            commands::retry(settings, db, &workspace, ImportId(import))
                .await?
                .to_string()
        }
        Command::Cancel { workspace, import } => {
            commands::cancel(settings, db, &workspace, ImportId(import)).await?
        }
        Command::Resend { workspace, member } => {
            commands::resend(settings, db, &workspace, MemberId(member))
                .await?
                .to_string()
        }
        Command::Unsuppress { workspace, member } => {
            commands::unsuppress(db, &workspace, MemberId(member)).await?
        }
        Command::ChangeEmail {
            workspace,
            member,
            email,
        } => {
            let email = InviteeEmail::parse(&email).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
            commands::change_email(settings, db, &workspace, (MemberId(member), email)).await?
        }
        Command::Remind {
            workspace,
            status,
            email_status,
            invited_before,
            import,
            search,
        } => {
            let filter = FilterText {
                status,
                email_status,
                import,
                invited_before,
                q: search,
            };
            commands::remind(settings, db, &workspace, &filter).await?
        }
        Command::Audit { workspace, limit } => {
            commands::audit(db, &workspace, limit.clamp(1, 10_000)).await?
        }
        Command::Members {
            workspace,
            search,
            status,
            limit,
        } => {
            let query = commands::MembersQuery {
                search,
                status,
                limit: limit.clamp(1, 1000),
            };
            commands::members(db, &workspace, query).await?
        }
        Command::Settings {
            workspace,
            accept_redirect_url,
            clear,
        } => {
            let change = settings_change(accept_redirect_url, clear);
            commands::settings(db, &workspace, change).await?
        }
        Command::Migrate => "migrations applied".to_owned(),
        Command::Token { action } => commands::token(db, action_of(action)?).await?,
        Command::Webhook { action } => webhook(settings, db, action).await?,
    })
}

/// What `settings` does: set the redirect, clear it, or (with neither) show the settings.
fn settings_change(accept_redirect_url: Option<String>, clear: bool) -> commands::SettingsChange {
    match (accept_redirect_url, clear) {
        (Some(url), _) => commands::SettingsChange::Set(url),
        (None, true) => commands::SettingsChange::Clear,
        (None, false) => commands::SettingsChange::Show,
    }
}

/// Runs a `webhook` subcommand.
async fn webhook(settings: &Settings, db: &Db, action: WebhookAction) -> anyhow::Result<String> {
    use commands::webhooks as w;
    match action {
        WebhookAction::Create {
            workspace,
            url,
            events,
            description,
        } => {
            let request = EndpointRequest {
                url,
                events,
                description,
            };
            w::create(settings, db, &workspace, request).await
        }
        WebhookAction::List { workspace } => w::list(db, &workspace).await,
        WebhookAction::Delete { workspace, id } => w::delete(db, &workspace, id).await,
        WebhookAction::Test { workspace, id } => w::test(db, &workspace, id).await,
    }
}

/// Prints what `import` did; success when the import completed.
fn print_summary(summary: &commands::ImportSummary, outbox: Option<PathBuf>) -> ExitCode {
    let import = &summary.import;
    let (run, invited) = if import.dry_run {
        (
            " (dry run: nothing was written or sent)",
            "would be invited",
        )
    } else {
        ("", "invited")
    };
    println!(
        "import {}: {}{run}\n  rows: {} {invited}, {} skipped, {} invalid (of {})\n  emails: {} sent, {} failed\n  results: {}",
        import.id,
        import.status,
        import.rows_invited,
        import.rows_skipped,
        import.rows_invalid,
        import.rows_total,
        summary.emails.sent,
        summary.emails.failed,
        summary.results.display(),
    );
    if let Some(fix) = &summary.rows_to_fix {
        println!("  rows to fix: {}", fix.display());
    }
    if let Some(outbox) = outbox {
        println!("  outbox: {}", outbox.display());
    }
    if let Some(error) = &import.error {
        println!("  error: {error}");
    }
    if import.status == ImportStatus::Completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The admin a token is for: an invitee's address (a dotted domain, which catches typos in a file)
/// or the first start's admin, `admin@localhost`, whose token was printed only once.
fn admin_email(raw: &str) -> anyhow::Result<String> {
    if raw.trim().eq_ignore_ascii_case(commands::FIRST_ADMIN) {
        return Ok(commands::FIRST_ADMIN.to_owned());
    }
    let email = InviteeEmail::parse(raw).map_err(|e| anyhow::anyhow!("--email: {e}"))?;
    Ok(email.as_str().to_owned())
}

/// The checked form of a `token` subcommand.
fn action_of(action: TokenAction) -> anyhow::Result<commands::TokenCommand> {
    Ok(match action {
        TokenAction::Create {
            workspace,
            email,
            name,
            expires_in,
        } => {
            let email = admin_email(&email)?;
            let expires_at = expires_in
                .map(|d| {
                    auth::expiry_after(d).ok_or_else(|| {
                        anyhow::anyhow!("--{}", auth::EXPIRY_RANGE.replace('_', "-"))
                    })
                })
                .transpose()?;
            commands::TokenCommand::Create {
                workspace,
                email,
                name,
                expires_at,
            }
        }
        TokenAction::List {
            workspace: Some(workspace),
            ..
        } => commands::TokenCommand::List { workspace },
        TokenAction::List {
            workspace: None, ..
        } => commands::TokenCommand::ListLegacy,
        TokenAction::Revoke { workspace, id } => commands::TokenCommand::Revoke { workspace, id },
    })
}

fn valid_slug(slug: &str) -> bool {
    (1..=64).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
