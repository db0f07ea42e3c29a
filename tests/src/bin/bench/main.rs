//! `bench`: throughput of the real product — `invite-api` and `invite-worker` on PostgreSQL, Redis
//! and postfix's `smtp-sink` — set against references measured in the same run (`COPY` of the same
//! CSV, `smtp-source` to the same sink), plus the embedded edition and an upload-only mode.
//!
//! `cargo run --release -p invite-tests --bin bench -- --rows 100000 --workers 1,2`

mod api;
mod big_cell;
mod checks;
mod cpu;
mod csv_gen;
mod database;
mod embedded;
mod floor;
mod procs;
mod product;
mod report;
mod search;
mod server;
mod setup;
mod sink;
mod upload;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::report::{Machine, Report};
use crate::setup::Binaries;

/// Command-line arguments.
#[derive(Parser)]
#[command(
    about = "Throughput of bulk-invite on PostgreSQL + Redis + smtp-sink, against COPY and smtp-source"
)]
struct Args {
    /// Rows of the generated CSV.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Worker counts, one run each, e.g. `1,2`; `0` or empty for no server run. Default `1,2`, or
    /// none when `--embedded` is given.
    #[arg(long)]
    workers: Option<String>,
    /// Also time `invite-api import` on the embedded stack (SQLite, embedded queue, outbox).
    #[arg(long)]
    embedded: bool,
    /// Only time the upload of a CSV of about this many MiB to `invite-api serve` (no workers).
    #[arg(long, value_name = "MIB")]
    upload_mib: Option<u64>,
    /// With `--upload-mib`: send this many copies of that CSV and as many hostile workbooks (the
    /// upload tests' corpus) at once, and report the API's peak RSS.
    #[arg(long, value_name = "N", default_value_t = 0)]
    hostile: usize,
    /// Only run a file whose middle row has one cell of this many MiB (1 worker): the worker's
    /// peak RSS and the row outcomes.
    #[arg(long, value_name = "MIB")]
    cell_mib: Option<u64>,
    /// `KEY=VALUE` given to invite-api and every invite-worker (repeatable), e.g.
    /// `--env SMTP_POOL_SIZE=40`.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    envs: Vec<(String, String)>,
    /// smtp-source's message length (`-l`); default: the size of one invitation email, measured.
    #[arg(long, value_name = "BYTES")]
    message_bytes: Option<u64>,
    /// Also write the tables as Markdown to this file.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
}

/// What a bench invocation runs.
struct Plan {
    rows: u64,
    workers: Vec<u32>,
    embedded: bool,
    upload_mib: Option<u64>,
}

impl Plan {
    fn from_args(args: &Args) -> anyhow::Result<Plan> {
        let workers = match &args.workers {
            Some(list) => parse_workers(list)?,
            None if args.embedded => Vec::new(),
            None => vec![1, 2],
        };
        anyhow::ensure!(args.rows > 0, "--rows must be at least 1");
        Ok(Plan {
            rows: args.rows,
            workers,
            embedded: args.embedded,
            upload_mib: args.upload_mib,
        })
    }
}

/// `1,2` → `[1, 2]`; empty entries and `0` are dropped.
fn parse_workers(list: &str) -> anyhow::Result<Vec<u32>> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .with_context(|| format!("--workers: {s:?} is not a number"))
        })
        .filter(|n| !matches!(n, Ok(0)))
        .collect()
}

/// `KEY=VALUE` → `(KEY, VALUE)`.
fn parse_env(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {pair:?}")),
    }
}

/// Everything a run needs that does not change between runs.
pub struct Bench {
    /// The release binaries under test.
    pub bins: Binaries,
    /// `--env` settings for invite-api and the workers.
    pub envs: Vec<(String, String)>,
    /// Scratch space for data folders and logs (kept when something was logged).
    pub work: tempfile::TempDir,
}

impl Bench {
    /// The value a product setting has in the runs: from `--env`, else `default`.
    pub fn setting(&self, key: &str, default: &str) -> String {
        self.envs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or_else(|| default.to_owned(), |(_, v)| v.clone())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // The bench runs in its own task so that Ctrl-C can abort it at its next await, which drops
    // its guards: child processes, the database and the Redis keys are cleaned up.
    let mut bench = tokio::spawn(run(args));
    let outcome = tokio::select! {
        joined = &mut bench => joined.unwrap_or_else(|e| Err(anyhow::anyhow!("the bench panicked: {e}"))),
        _ = tokio::signal::ctrl_c() => {
            eprintln!("bench: interrupted, cleaning up");
            bench.abort();
            let _ = bench.await;
            Err(anyhow::anyhow!("interrupted"))
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The whole bench: set-up, the planned runs, the report.
async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from_args(&args)?;
    setup::ensure_postfix()?;
    let bench = Bench {
        bins: setup::build_binaries()?,
        envs: args.envs.clone(),
        work: tempfile::Builder::new()
            .prefix("bulk-invite-bench-")
            .tempdir()
            .context("creating a scratch folder")?,
    };
    let machine = Machine::gather();
    let mut report = Report::new(machine.lines(), settings_line(&bench));
    println!("{}", report.preamble_text());
    let result = match (plan.upload_mib, args.cell_mib) {
        (Some(mib), _) if args.hostile > 0 => {
            upload::storm(&bench, mib, args.hostile, &mut report).await
        }
        (Some(mib), _) => upload::bench(&bench, mib, &mut report).await,
        (None, Some(mib)) => big_cell::bench(&bench, mib, &mut report).await,
        (None, None) => runs(&bench, &plan, &args, &mut report).await,
    };
    finish(bench, &report, args.markdown.as_deref(), result)
}

/// The server runs, one per worker count, then the embedded run; a table after each.
async fn runs(bench: &Bench, plan: &Plan, args: &Args, report: &mut Report) -> anyhow::Result<()> {
    anyhow::ensure!(
        !plan.workers.is_empty() || plan.embedded,
        "nothing to run: give --workers N,… and/or --embedded"
    );
    let csv = csv_gen::people(plan.rows)?;
    report.add_line(format!(
        "CSV: {} rows, {} bytes ({:.1} MiB), generated once for every run",
        csv.rows,
        csv.bytes,
        report::mib(csv.bytes)
    ));
    let message_bytes = match (args.message_bytes, plan.workers.is_empty()) {
        (Some(bytes), _) => bytes,
        (None, true) => 0,
        (None, false) => {
            let bytes = embedded::measure_email_bytes(bench).await?;
            report.add_line(format!(
                "smtp-source -l {bytes}: the size of one invitation email (.eml of a one-row embedded import)"
            ));
            bytes
        }
    };
    let mut failures = Vec::new();
    let mut servers = Vec::new();
    for &workers in &plan.workers {
        let run = server::run(bench, &csv, workers, message_bytes).await?;
        failures.extend(run.failed_checks());
        report.add_and_print(report::server_table(&run, &csv));
        servers.push(run);
    }
    let embedded = if plan.embedded {
        let run = embedded::run(bench, &csv).await?;
        failures.extend(run.failed_checks());
        report.add_and_print(report::embedded_table(&run, &csv));
        Some(run)
    } else {
        None
    };
    report.add_and_print(report::summary_table(&servers, embedded.as_ref(), &csv));
    anyhow::ensure!(
        failures.is_empty(),
        "count mismatch: {}",
        failures.join("; ")
    );
    Ok(())
}

/// The settings the runs use, for the report's header.
fn settings_line(bench: &Bench) -> String {
    let envs: Vec<String> = bench.envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "settings: {} (SMTP_POOL_SIZE {}, DB_POOL_SIZE {}, IMPORT_CHUNK_ROWS {}, SEND_BATCH_SIZE {}, WORKER_CONCURRENCY {})",
        if envs.is_empty() {
            "defaults".to_owned()
        } else {
            format!("--env {}", envs.join(" --env "))
        },
        bench.setting("SMTP_POOL_SIZE", "20"),
        bench.setting("DB_POOL_SIZE", "10"),
        bench.setting("IMPORT_CHUNK_ROWS", "1000"),
        bench.setting("SEND_BATCH_SIZE", "50"),
        bench.setting("WORKER_CONCURRENCY", "2"),
    )
}

/// Writes the Markdown file, keeps the logs when the product logged anything, passes `result` on.
fn finish(
    bench: Bench,
    report: &Report,
    markdown: Option<&std::path::Path>,
    result: anyhow::Result<()>,
) -> anyhow::Result<()> {
    if let Some(path) = markdown {
        std::fs::write(path, report.markdown())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("Markdown written to {}", path.display());
    }
    if result.is_err() || report.logged_anything() {
        // Kept on purpose: its logs explain the failure or the warnings.
        println!("logs kept in {}", bench.work.keep().display());
    }
    result
}
