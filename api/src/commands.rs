//! The `invite-api` subcommands that run the system: `serve`, `import` for one file, and the
//! twins of admin routes (`retry`, `resend`, `unsuppress`, `change-email`, `token`, `webhook`,
//! `audit`, `members`, `settings`), which call the same functions of
//! [`invite_shared::service`] as the routes and print their errors with the whole cause chain.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use invite_shared::config::Settings;
use invite_shared::db::Db;
use invite_shared::domain::email::{self, InviteeEmail};
use invite_shared::domain::redirect::RedirectTemplate;
use invite_shared::ids::{ImportId, MemberId, TokenId, WorkspaceId};
use invite_shared::intake;
use invite_shared::intake::workbook::child::Converter;
use invite_shared::queue::JobQueue;
use invite_shared::service::handover;
use invite_shared::service::imports::{self as import_service, Upload};
use invite_shared::service::members as members_service;
use invite_shared::service::members::FilterText;
use invite_shared::service::reminders;
use invite_shared::service::support::{
    self, ChangeEmailOutcome, Limited, ResendOutcome, RetryOutcome, UnsuppressOutcome,
};
use invite_shared::service::tokens::{self as token_service, RevokeOutcome};
use invite_shared::service::{audit, repair, results};
use invite_shared::status::{ImportStatus, RowOutcome, SuppressionReason};
use invite_shared::store::audit::Actor;
use invite_shared::store::auth;
use invite_shared::store::imports::{self, CancelOutcome, EmailCounts, Import, Stored};
use invite_shared::store::members::MemberView;
use invite_worker::{Deps, runtime};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{AppState, router};

pub mod webhooks;

/// `openapi`: the API's OpenAPI document, exactly as `GET /api/v1/openapi.json` serves it.
pub fn openapi() -> String {
    crate::openapi::to_json()
}

/// The workspace and admin created on the very first start.
const FIRST_WORKSPACE: &str = "default";
pub const FIRST_ADMIN: &str = "admin@localhost";

/// On the embedded database's first start, creates a workspace and an admin and prints their
/// token, once. A configured database is left alone: its operators use `token create`.
pub async fn first_start(settings: &Settings, db: &Db) -> anyhow::Result<()> {
    if settings.database_url.is_some() {
        return Ok(());
    }
    let created = db
        .run(|c| {
            if auth::has_workspaces(c)? {
                return Ok(None);
            }
            Ok(Some(auth::create_admin_token(
                c,
                FIRST_WORKSPACE,
                FIRST_ADMIN,
            )?))
        })
        .await?;
    if let Some(token) = created {
        println!(
            "First start: created workspace `{FIRST_WORKSPACE}` with admin {FIRST_ADMIN}.\n\
             Admin API token (shown only now; create more with `invite-api token create`):\n{token}"
        );
    }
    Ok(())
}

/// Runs the in-process workers when the queue is embedded (nobody else would).
fn embedded_workers(
    settings: &Arc<Settings>,
    db: &Db,
    queue: &JobQueue,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<JoinHandle<anyhow::Result<()>>>> {
    if !matches!(queue, JobQueue::Sqlite(_)) {
        return Ok(None);
    }
    start_workers(settings, db, queue, shutdown).map(Some)
}

fn start_workers(
    settings: &Arc<Settings>,
    db: &Db,
    queue: &JobQueue,
    shutdown: &CancellationToken,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let deps = Deps::new(settings.clone(), db.clone(), queue.clone())?;
    tracing::info!(
        mailer = deps.mailer.describe(),
        "workers running in this process"
    );
    if settings.smtp_url.is_none() {
        tracing::info!(
            outbox = %settings.outbox_dir().display(),
            "no SMTP_URL: invitation emails (with their links) are written to the outbox as .eml files"
        );
    }
    Ok(tokio::spawn(invite_worker::run(deps, shutdown.clone())))
}

/// `serve`: the HTTP API, plus the workers when the queue is embedded. A database or queue that is
/// down at start is waited for (see `OUTAGE_LIMIT`).
pub async fn serve(settings: Arc<Settings>) -> anyhow::Result<()> {
    let shutdown = runtime::shutdown_on_signal();
    let Some((db, queue)) = runtime::connect_dependencies(&settings, &shutdown).await? else {
        return Ok(());
    };
    first_start(&settings, &db).await?;
    if matches!(queue, JobQueue::Sqlite(_)) {
        // This process is the only one that claims work on the embedded stack.
        invite_worker::liveness::hand_back_earlier_claims(&db).await?;
    }
    let workers = embedded_workers(&settings, &db, &queue, &shutdown)?;
    if workers.is_none() {
        // Workers run elsewhere; the API exports the shared gauges too, so any target tells.
        let interval = settings.send_poll_interval;
        tokio::spawn(invite_worker::gauges::run(
            db.clone(),
            queue.clone(),
            interval,
            settings.worker_dead_after,
            shutdown.clone(),
        ));
    }
    let state = AppState {
        db,
        queue: queue.clone(),
        settings: settings.clone(),
        metrics: runtime::metrics_handle(),
        limiter: Arc::default(),
        converter: Arc::new(Converter::this_program(&settings)?),
    };
    let listener = tokio::net::TcpListener::bind(settings.api_addr)
        .await
        .with_context(|| format!("binding API_ADDR {}", settings.api_addr))?;
    tracing::info!(addr = %settings.api_addr, queue = queue.describe(), "invite-api listening");
    invite_worker::server::serve(listener, router(state), &settings, shutdown.clone()).await;
    shutdown.cancel();
    if let Some(workers) = workers {
        workers.await.context("the workers panicked")??;
    }
    Ok(())
}

/// What `import` reports at the end.
#[derive(Debug)]
pub struct ImportSummary {
    /// The finished import.
    pub import: Import,
    /// Its emails by state.
    pub emails: EmailCounts,
    /// Where the results CSV was written.
    pub results: PathBuf,
    /// Where the rows to fix were written, when `--outcome` asked for them and the upload was
    /// still stored.
    pub rows_to_fix: Option<PathBuf>,
}

/// How `import` runs and what it writes besides the results.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Validate every row and write the results, but invite no one and send nothing.
    pub dry_run: bool,
    /// Also write the rows with these outcomes in the file's own columns plus `reason`, to fix
    /// and import again (the repair loop).
    pub outcomes: Option<Vec<RowOutcome>>,
}

/// `import FILE --workspace SLUG [--dry-run] [--outcome LIST]`: stores the file, runs workers in
/// this process until the import has finished and its emails are settled, writes the results CSV
/// (and the rows to fix with `--outcome`), and returns the summary. A dry run validates and
/// reports every row but writes no member and sends nothing.
pub async fn import(
    settings: Arc<Settings>,
    db: Db,
    file: &Path,
    slug: &str,
    options: ImportOptions,
) -> anyhow::Result<ImportSummary> {
    let ImportOptions { dry_run, outcomes } = options;
    let queue = JobQueue::connect(&settings).await?;
    first_start(&settings, &db).await?;
    let owned = slug.to_owned();
    let (workspace, admin) = db
        .run(move |c| {
            let workspace = auth::ensure_workspace(c, &owned)?;
            let id = workspace.id;
            let admin = match auth::first_admin(c, id)? {
                Some(admin) => admin,
                None => {
                    let account = auth::ensure_account(c, FIRST_ADMIN)?;
                    auth::upsert_active_member(
                        c,
                        id,
                        account,
                        invite_shared::domain::role::Role::Admin,
                    )?;
                    account
                }
            };
            Ok((id, admin))
        })
        .await?;

    let mut opened =
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let size = opened.metadata()?.len();
    let (opened, kind) = tokio::task::spawn_blocking(move || {
        intake::sniff_file(&mut opened).map(|kind| (opened, kind))
    })
    .await
    .context("the file check panicked")??;
    let converter = Converter::this_program(&settings)?;
    let prepared = intake::prepare(opened, size, kind, &converter).await?;
    let upload = Upload {
        workspace_id: workspace,
        created_by: admin,
        file_name: file
            .file_name()
            .map_or_else(|| "upload.csv".into(), |n| n.to_string_lossy().into_owned()),
        idempotency_key: None,
        dry_run,
        actor: Actor::Operator,
    };
    let import = match import_service::create(&db, &queue, upload, prepared).await? {
        Stored::Created(import) | Stored::Existing(import) => import,
    };
    let id = import.id;

    let shutdown = CancellationToken::new();
    let workers = start_workers(&settings, &db, &queue, &shutdown)?;
    let result = watch(&db, id).await;
    shutdown.cancel();
    workers.await.context("the workers panicked")??;
    let (import, emails) = result?;

    let (results, rows_to_fix) = write_results(&settings, &db, &import, outcomes).await?;
    Ok(ImportSummary {
        import,
        emails,
        results,
        rows_to_fix,
    })
}

/// Writes the results file of a finished import under `{DATA_DIR}/results/`, and its rows to fix
/// when `outcomes` asks for them (none when its upload is no longer stored).
async fn write_results(
    settings: &Settings,
    db: &Db,
    import: &Import,
    outcomes: Option<Vec<RowOutcome>>,
) -> anyhow::Result<(PathBuf, Option<PathBuf>)> {
    let id = import.id;
    let folder = settings.data_dir.join("results");
    let results = folder.join(format!("import-{id}-results.csv"));
    results::write_file(db, id, &results).await?;
    let Some(outcomes) = outcomes else {
        return Ok((results, None));
    };
    let fix = folder.join(format!("import-{id}-rows-to-fix.csv"));
    let written = repair::write_file(db, import, outcomes, &fix).await?;
    Ok((results, written.then_some(fix)))
}

/// Follows an import until it has finished and no email is pending, showing progress.
async fn watch(db: &Db, id: ImportId) -> anyhow::Result<(Import, EmailCounts)> {
    let terminal = std::io::stderr().is_terminal();
    let bar = terminal.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} rows · {msg}")
                .expect("a valid progress template"),
        );
        bar
    });
    let mut tick = tokio::time::interval(Duration::from_millis(if terminal { 200 } else { 2000 }));
    loop {
        tick.tick().await;
        let (import, emails) = db
            .run(move |c| {
                let import = imports::get_any(c, id)?.context("the import disappeared")?;
                Ok((import, imports::email_counts(c, id)?))
            })
            .await?;
        let line = format!(
            "emails sent {} · pending {} · failed {}",
            emails.sent, emails.pending, emails.failed
        );
        match &bar {
            Some(bar) => {
                bar.set_length(import.rows_total.max(import.rows_processed) as u64);
                bar.set_position(import.rows_processed as u64);
                bar.set_message(line);
            }
            None => eprintln!(
                "import {id}: {} · rows {}/{} · {line}",
                import.status, import.rows_processed, import.rows_total
            ),
        }
        let finished = matches!(
            import.status,
            ImportStatus::Completed | ImportStatus::Failed
        );
        if finished && emails.pending == 0 {
            if let Some(bar) = bar {
                bar.finish();
            }
            return Ok((import, emails));
        }
    }
}

/// The id of workspace `slug`; an error naming it when there is none.
pub(crate) async fn workspace_id(db: &Db, slug: &str) -> anyhow::Result<WorkspaceId> {
    let owned = slug.to_owned();
    db.run(move |c| Ok(auth::find_workspace(c, &owned)?))
        .await?
        .map(|w| w.id)
        .with_context(|| format!("workspace `{slug}` not found"))
}

/// A line saying who sends what was queued, when nobody may be running to do it.
fn who_sends(settings: &Settings) -> Option<&'static str> {
    settings.redis_url.is_none().then_some(
        "  (embedded queue: the workers of `invite-api serve` send it; start it if it is not running)",
    )
}

/// `retry --workspace SLUG --import ID`: every failed send of the import goes back in line. Returns
/// what to print; an unknown workspace or import is an error.
pub async fn retry(
    settings: &Settings,
    db: &Db,
    slug: &str,
    import: ImportId,
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let queue = JobQueue::connect(settings).await?;
    match support::retry_failed(db, &queue, (workspace, Actor::Operator), import).await? {
        RetryOutcome::Requeued(0) => Ok(format!("import {import}: no failed sends to queue again")),
        RetryOutcome::Requeued(n) => {
            let sends = if n == 1 { "send" } else { "sends" };
            let mut line = format!("import {import}: {n} failed {sends} queued again");
            if let Some(note) = who_sends(settings) {
                line = format!("{line}\n{note}");
            }
            Ok(line)
        }
        RetryOutcome::ImportNotFound => {
            anyhow::bail!("import {import} not found in workspace `{slug}`")
        }
    }
}

/// `cancel --workspace SLUG --import ID`: the import stops and its unsent emails are cancelled.
/// Returns what to print; an unknown workspace or import is an error.
pub async fn cancel(
    settings: &Settings,
    db: &Db,
    slug: &str,
    import: ImportId,
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let queue = JobQueue::connect(settings).await?;
    let operator = (workspace, Actor::Operator);
    match import_service::cancel(db, &queue, operator, import).await? {
        CancelOutcome::Cancelled { emails } => {
            let noun = if emails == 1 { "email" } else { "emails" };
            Ok(format!(
                "import {import}: cancelled, with {emails} unsent {noun}"
            ))
        }
        CancelOutcome::AlreadyCancelled => Ok(format!("import {import}: cancelled already")),
        CancelOutcome::NotFound => anyhow::bail!("import {import} not found in workspace `{slug}`"),
    }
}

/// `resend --workspace SLUG --member ID`: a new invitation email for a member who has not accepted
/// yet. Returns what to print; an unknown workspace or member, or one who is active or archived, is
/// an error.
pub async fn resend(
    settings: &Settings,
    db: &Db,
    slug: &str,
    member: MemberId,
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let queue = JobQueue::connect(settings).await?;
    match support::resend(db, &queue, settings, (workspace, Actor::Operator), member).await? {
        ResendOutcome::Queued(view) => {
            let mut line = format!(
                "member {member} ({}): a new invitation email is queued",
                masked(&view.email)
            );
            if let Some(note) = who_sends(settings) {
                line = format!("{line}\n{note}");
            }
            Ok(line)
        }
        ResendOutcome::AlreadyActive => anyhow::bail!(
            "member {member} is active: they accepted their invitation, so there is nothing to resend"
        ),
        ResendOutcome::Archived => anyhow::bail!(
            "member {member} is archived: unarchive them first (POST …/members/{member}/unarchive), which emails a new link"
        ),
        ResendOutcome::Suppressed(reason) => anyhow::bail!(
            "member {member}: {}, so no more emails go to it: correct it (invite-api change-email), or unsuppress it (invite-api unsuppress) if it is right",
            suppressed_words(reason)
        ),
        ResendOutcome::Limited(limited) => limited_refusal(member, limited),
        ResendOutcome::NotFound => {
            anyhow::bail!("member {member} not found in workspace `{slug}`")
        }
    }
}

/// Why a member's address is suppressed, in words.
fn suppressed_words(reason: SuppressionReason) -> &'static str {
    match reason {
        SuppressionReason::Bounced => "an email to their address bounced",
        SuppressionReason::Complained => "their address reported an email as abuse",
    }
}

/// The error of a member action its support limits refused. Operators are held to no support
/// limit; a refusal would still be said in words.
fn limited_refusal(member: MemberId, limited: Limited) -> anyhow::Result<String> {
    let wait = match limited {
        Limited::CoolingDown(wait) | Limited::DailyQuota(wait) => wait.as_secs(),
    };
    anyhow::bail!("member {member}: refused by the support limits; try again in {wait} s")
}

/// `unsuppress --workspace SLUG --member ID`: resends and reminders reach the member's address
/// again. Returns what to print; an unknown workspace or member is an error.
pub async fn unsuppress(db: &Db, slug: &str, member: MemberId) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    match support::unsuppress(db, (workspace, Actor::Operator), member).await? {
        UnsuppressOutcome::Cleared(view) => Ok(format!(
            "member {member} ({}): no longer suppressed; resends and reminders reach them again",
            masked(&view.email)
        )),
        UnsuppressOutcome::NotSuppressed(view) => Ok(format!(
            "member {member} ({}): not suppressed; nothing changed",
            masked(&view.email)
        )),
        UnsuppressOutcome::NotFound => {
            anyhow::bail!("member {member} not found in workspace `{slug}`")
        }
    }
}

/// `change-email --workspace SLUG --member ID --email NEW`: corrects the address of a member who
/// has not accepted and emails a new invitation to it. Returns what to print; an unknown workspace
/// or member, a member who is active or archived, or an address taken in the workspace is an
/// error.
pub async fn change_email(
    settings: &Settings,
    db: &Db,
    slug: &str,
    (member, email): (MemberId, InviteeEmail),
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let queue = JobQueue::connect(settings).await?;
    let operator = (workspace, Actor::Operator);
    match support::change_email(db, &queue, settings, operator, (member, email)).await? {
        ChangeEmailOutcome::Queued(view) => {
            let mut line = format!(
                "member {member} ({}): address corrected; a new invitation email is queued",
                masked(&view.email)
            );
            if let Some(note) = who_sends(settings) {
                line = format!("{line}\n{note}");
            }
            Ok(line)
        }
        ChangeEmailOutcome::AlreadyActive => anyhow::bail!(
            "member {member} is active: their address is their account's, which only they can change"
        ),
        ChangeEmailOutcome::Archived => anyhow::bail!(
            "member {member} is archived: unarchive them first, then correct their address"
        ),
        ChangeEmailOutcome::Unchanged => anyhow::bail!(
            "member {member} has that address already; unsuppress it (invite-api unsuppress) if it is right"
        ),
        ChangeEmailOutcome::Taken => {
            anyhow::bail!("another member of workspace `{slug}` has that address")
        }
        ChangeEmailOutcome::Limited(limited) => limited_refusal(member, limited),
        ChangeEmailOutcome::NotFound => {
            anyhow::bail!("member {member} not found in workspace `{slug}`")
        }
    }
}

/// `remind --workspace SLUG [--status S] [--email-status E] [--invited-before T] [--import N]`:
/// reminder emails to the matching members who have not accepted yet. Returns what to print; an
/// unknown workspace or a filter that cannot be read is an error.
pub async fn remind(
    settings: &Settings,
    db: &Db,
    slug: &str,
    filter: &FilterText,
) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let Some(filter) = filter.parse_to_act()? else {
        return Ok(format!(
            "workspace `{slug}`: --search finds nothing to search for; nobody reminded"
        ));
    };
    let queue = JobQueue::connect(settings).await?;
    let done =
        reminders::remind(db, &queue, settings, (workspace, Actor::Operator), filter).await?;
    let mut line = format!(
        "workspace `{slug}`: {} reminded, {} skipped, {} suppressed (their address bounced or complained)",
        done.reminded, done.skipped, done.suppressed
    );
    if done.reminded > 0
        && let Some(note) = who_sends(settings)
    {
        line = format!("{line}\n{note}");
    }
    Ok(line)
}

/// An address as the CLI shows it: the local part only (`ada@…`), enough to recognise the person.
fn masked(email: &str) -> String {
    match email.split_once('@') {
        Some((local, _)) => format!("{local}@…"),
        None => "…".to_owned(),
    }
}

/// A checked `token` subcommand.
#[derive(Debug)]
pub enum TokenCommand {
    /// `token create`.
    Create {
        /// The workspace's slug (created if missing).
        workspace: String,
        /// The admin it acts as (made an admin if needed).
        email: String,
        /// Its name.
        name: String,
        /// When it stops working.
        expires_at: Option<chrono::NaiveDateTime>,
    },
    /// `token list --workspace`.
    List {
        /// The workspace's slug.
        workspace: String,
    },
    /// `token list --legacy`: the tokens made before tokens belonged to one workspace.
    ListLegacy,
    /// `token revoke`.
    Revoke {
        /// The workspace the token was made for; `None` for any token.
        workspace: Option<String>,
        /// The token's id.
        id: i64,
    },
}

/// Runs a `token` subcommand and returns what to print: for `create`, the secret alone (shown
/// this once); for `list`, one line per token, never a secret.
pub async fn token(db: &Db, command: TokenCommand) -> anyhow::Result<String> {
    match command {
        TokenCommand::Create {
            workspace,
            email,
            name,
            expires_at,
        } => {
            let issued =
                token_service::issue_for_admin(db, &workspace, &email, &name, expires_at).await?;
            Ok(issued.secret)
        }
        TokenCommand::List { workspace } => {
            let id = workspace_id(db, &workspace).await?;
            Ok(token_lines(&token_service::list(db, id).await?))
        }
        TokenCommand::ListLegacy => Ok(token_lines(&token_service::list_legacy(db).await?)),
        TokenCommand::Revoke { workspace, id } => revoke_token(db, workspace, TokenId(id)).await,
    }
}

/// `token revoke [--workspace SLUG] ID`.
async fn revoke_token(db: &Db, workspace: Option<String>, id: TokenId) -> anyhow::Result<String> {
    let outcome = match &workspace {
        Some(slug) => {
            let ws = workspace_id(db, slug).await?;
            token_service::revoke(db, (ws, Actor::Operator), id).await?
        }
        None => token_service::revoke_any(db, id).await?,
    };
    match (outcome, workspace) {
        (RevokeOutcome::Revoked { descendants: 0 }, _) => {
            Ok(format!("token {id} revoked: it gets 401 from now on"))
        }
        (RevokeOutcome::Revoked { descendants }, _) => Ok(format!(
            "token {id} revoked, with {descendants} token(s) made from it: they get 401 from now on"
        )),
        (RevokeOutcome::NotFound, Some(slug)) => {
            anyhow::bail!("token {id} not found in workspace `{slug}`")
        }
        (RevokeOutcome::NotFound, None) => anyhow::bail!("token {id} not found"),
    }
}

/// `token list`'s table.
fn token_lines(tokens: &[auth::TokenInfo]) -> String {
    if tokens.is_empty() {
        return "no tokens".to_owned();
    }
    let time = |t: Option<chrono::NaiveDateTime>| {
        t.map_or_else(
            || "-".to_owned(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let now = invite_shared::store::now();
    let mut lines = vec!["id\tname\tprefix\tadmin\tcreated\texpires\tlast used\tstate".to_owned()];
    lines.extend(tokens.iter().map(|t| {
        let state = match (t.revoked_at, t.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            _ => "active",
        };
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{state}",
            t.id,
            if t.name.is_empty() { "-" } else { &t.name },
            if t.prefix.is_empty() { "-" } else { &t.prefix },
            masked(&t.created_by),
            time(Some(t.created_at)),
            time(t.expires_at),
            time(t.last_used_at),
        )
    }));
    lines.join("\n")
}

/// `audit --workspace SLUG`: the workspace's audit log, newest first, one entry per line.
pub async fn audit(db: &Db, slug: &str, limit: i64) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let entries = audit::page(db, workspace, None, limit).await?.entries;
    if entries.is_empty() {
        return Ok("no entries".to_owned());
    }
    let lines: Vec<String> = entries
        .iter()
        .map(|e| {
            let actor = e
                .actor
                .as_deref()
                .map_or_else(|| "operator (CLI)".to_owned(), masked);
            format!(
                "{}\t{}\t{actor}\t{}\t{}",
                e.id,
                e.created_at.format("%Y-%m-%d %H:%M:%S"),
                e.action,
                e.target
            )
        })
        .collect();
    Ok(lines.join("\n"))
}

/// What `settings` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsChange {
    /// Print the settings.
    Show,
    /// Check and save this `accept_redirect_url`.
    Set(String),
    /// Clear `accept_redirect_url`.
    Clear,
}

/// `settings --workspace SLUG [--accept-redirect-url URL | --clear]`: changes the workspace's
/// settings through the service function `PUT …/settings` calls (audited, as the operator), and
/// prints them; a template the service cannot use is an error that says why.
pub async fn settings(db: &Db, slug: &str, change: SettingsChange) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let template = match change {
        SettingsChange::Show => handover::redirect(db, workspace).await?,
        SettingsChange::Set(raw) => {
            let template = RedirectTemplate::parse(&raw)
                .map_err(|e| anyhow::anyhow!("--accept-redirect-url: {e}"))?;
            let operator = (workspace, Actor::Operator);
            handover::set_redirect(db, operator, Some(template.clone())).await?;
            Some(template)
        }
        SettingsChange::Clear => {
            handover::set_redirect(db, (workspace, Actor::Operator), None).await?;
            None
        }
    };
    Ok(match template {
        Some(template) => format!("accept_redirect_url: {}", template.as_str()),
        None => {
            "accept_redirect_url: none (accepting shows the service's own welcome page)".to_owned()
        }
    })
}

/// What `members` lists.
#[derive(Debug, Default)]
pub struct MembersQuery {
    /// Part of an address or name (`--search`).
    pub search: Option<String>,
    /// A membership status (`--status`).
    pub status: Option<String>,
    /// Most members to print.
    pub limit: i64,
}

/// `members --workspace SLUG [--search TEXT] [--status S]`: the workspace's members in id order,
/// one per line (id, address, name, status, latest email's status), by the service function
/// `GET …/members` calls.
pub async fn members(db: &Db, slug: &str, query: MembersQuery) -> anyhow::Result<String> {
    let workspace = workspace_id(db, slug).await?;
    let text = FilterText {
        status: query.status,
        q: query.search,
        ..FilterText::default()
    };
    let filter = text.parse()?;
    let page = members_service::page(db, workspace, filter, query.limit).await?;
    if page.members.is_empty() {
        return Ok("no members".to_owned());
    }
    let mut lines = vec!["id\temail\tname\tstatus\temail status".to_owned()];
    lines.extend(page.members.iter().map(member_line));
    if page.next_cursor.is_some() {
        lines.push(format!(
            "(the first {}; narrow the search or raise --limit for more)",
            query.limit
        ));
    }
    Ok(lines.join("\n"))
}

/// One member's line of `members`; a name or email status it lacks is `-`. Tabs and line breaks
/// in a name (a CSV cell may hold them) become spaces, so every member stays one line.
fn member_line(m: &MemberView) -> String {
    let name: Vec<&str> = [m.first_name.as_deref(), m.last_name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let name = name.join(" ").replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{}\t{}\t{}\t{}",
        m.id,
        email::display(&m.email),
        if name.is_empty() { "-" } else { &name },
        m.status,
        m.email_status
            .map_or_else(|| "-".to_owned(), |s| s.to_string()),
    )
}
