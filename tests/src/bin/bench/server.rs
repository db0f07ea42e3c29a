//! One run of the product with N workers: a fresh database, Redis prefix and sink; the references
//! (COPY, the schema floor, smtp-source) first; then upload → rows → emails, timed, counted,
//! weighed, and their CPU time per process; then member searches, timed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::Bench;
use crate::api::{self, Api};
use crate::checks::{self, Check};
use crate::cpu::{CpuUse, Snapshot, Watched};
use crate::csv_gen::CsvFile;
use crate::database::{self, FreshDatabase, RedisKeys};
use crate::floor;
use crate::procs::{self, Children};
use crate::product::{self, Backends};
use crate::search::{self, SEARCHES, SearchTimes};
use crate::sink::{self, Sink, SourceRun};

/// How long after the last expected email the sink is watched for repeats.
const REPEAT_WATCH: Duration = Duration::from_secs(1);

/// The references of a run, measured before the product starts.
pub struct References {
    /// `\copy` of the CSV into a bare table with a unique index.
    pub copy: Duration,
    /// `\copy` of the same rows into the product's own tables (the schema floor).
    pub floor: Duration,
    /// The machine's CPU time during the schema floor.
    pub floor_cpu: CpuUse,
    /// smtp-source's settings.
    pub source: SourceRun,
    /// smtp-source's time.
    pub source_time: Duration,
    /// The machine's and smtp-sink's CPU time during smtp-source's run.
    pub source_cpu: CpuUse,
}

/// The product's stage times.
pub struct Timings {
    /// Upload start → 202.
    pub upload: Duration,
    /// 202 → status `completed`.
    pub import: Duration,
    /// 202 → first email accepted by the sink.
    pub first_email: Duration,
    /// First → last email accepted.
    pub emails: Duration,
    /// Upload start → last email accepted.
    pub end_to_end: Duration,
}

/// Peak resident set sizes (`VmHWM`), KiB.
pub struct PeakRss {
    /// invite-api right after the 202.
    pub api_after_202: u64,
    /// invite-api at the end of the run.
    pub api_end: u64,
    /// Each invite-worker at the end of the run.
    pub workers: Vec<u64>,
}

/// A worker's send engine, from its `/metrics` at the end of a run.
pub struct EngineTimes {
    /// Sends, and their total time (s).
    pub sends: (f64, f64),
    /// Group commits of outcomes, and their total time (s).
    pub commits: (f64, f64),
}

impl EngineTimes {
    /// Reads the two histograms' `_count` and `_sum` from a `/metrics` text.
    fn parse(metrics: &str) -> anyhow::Result<EngineTimes> {
        let value = |series: &str| -> anyhow::Result<f64> {
            invite_tests::metric_value(metrics, series)
                .with_context(|| format!("{series} is not in the worker's /metrics"))
        };
        let histogram = |name: &str| -> anyhow::Result<(f64, f64)> {
            Ok((
                value(&format!("{name}_count"))?,
                value(&format!("{name}_sum"))?,
            ))
        };
        Ok(EngineTimes {
            sends: histogram("invites_email_send_duration_seconds")?,
            commits: histogram("invites_email_record_duration_seconds")?,
        })
    }
}

/// Everything one server run measured.
pub struct ServerRun {
    /// Worker processes.
    pub workers: u32,
    /// The references.
    pub references: References,
    /// The product's times.
    pub timings: Timings,
    /// Memory.
    pub rss: PeakRss,
    /// Exact counts.
    pub checks: Vec<Check>,
    /// Emails the sink accepted beyond one per row.
    pub repeats: u64,
    /// Lines the product logged (warnings and errors).
    pub logged: Vec<String>,
    /// Each worker's send engine.
    pub engines: Vec<EngineTimes>,
    /// CPU time from the upload to the last email, per kind of process.
    pub cpu: CpuUse,
    /// The member searches made once every email was out.
    pub search: SearchTimes,
}

impl ServerRun {
    /// `1 worker`, `2 workers`.
    pub fn name(&self) -> String {
        workers_name(self.workers)
    }

    /// The failed checks, as messages.
    pub fn failed_checks(&self) -> Vec<String> {
        checks::failures(&self.name(), &self.checks)
    }
}

/// `1 worker`, `2 workers`.
pub fn workers_name(workers: u32) -> String {
    if workers == 1 {
        "1 worker".to_owned()
    } else {
        format!("{workers} workers")
    }
}

/// A started product: its API and workers.
struct Product {
    api: product::RunningApi,
    workers: Vec<product::RunningWorker>,
}

impl Product {
    fn logs(&self) -> Vec<PathBuf> {
        std::iter::once(self.api.log.clone())
            .chain(self.workers.iter().map(|w| w.log.clone()))
            .collect()
    }

    /// The processes whose CPU time the run reports: the API, each worker, the sink.
    fn watched(&self, sink: &Sink) -> Vec<Watched> {
        let api = Watched {
            kind: "invite-api",
            pid: self.api.pid,
        };
        let workers = self.workers.iter().map(|w| Watched {
            kind: "invite-worker",
            pid: w.pid,
        });
        std::iter::once(api)
            .chain(workers)
            .chain([sink_watched(sink)])
            .collect()
    }
}

/// The sink as the CPU figures watch it.
fn sink_watched(sink: &Sink) -> Watched {
    Watched {
        kind: "smtp-sink",
        pid: sink.pid,
    }
}

/// Runs the references and then the product with `workers` workers on `csv`.
pub async fn run(
    bench: &Bench,
    csv: &CsvFile,
    workers: u32,
    message_bytes: u64,
) -> anyhow::Result<ServerRun> {
    println!("{}: references, then the product …", workers_name(workers));
    let dir = run_dir(bench, &format!("workers-{workers}"))?;
    let database = FreshDatabase::create()?;
    let keys = RedisKeys::new();
    let mut children = Children::default();
    let sink = Sink::start(&mut children, &dir.join("smtp-sink.log"))?;
    let source = SourceRun {
        sessions: u64::from(workers) * pool_size(bench)?,
        messages: csv.rows,
        bytes: message_bytes,
    };
    let references = references(&database, csv, &sink, source, &mut children).await?;
    let backends = Backends {
        database_url: &database.url,
        queue_prefix: &keys.prefix,
        smtp_url: Some(sink.url()),
        dir: &dir,
    };
    let api = product::start_api(bench, &backends, &mut children).await?;
    let workers_started =
        product::start_workers(bench, &backends, &api, workers, &mut children).await?;
    let product = Product {
        api,
        workers: workers_started,
    };
    let measured = measure(&product, &sink, csv, &mut children).await?;
    println!("{}: {SEARCHES} searches …", workers_name(workers));
    let search = search::phase(&product.api.api, csv.rows).await?;
    Ok(ServerRun {
        workers,
        references,
        timings: measured.timings,
        rss: measured.rss,
        checks: measured.checks,
        repeats: measured.repeats,
        engines: measured.engines,
        cpu: measured.cpu,
        search,
        logged: product
            .logs()
            .iter()
            .flat_map(|log| procs::logged_lines(log))
            .collect(),
    })
}

/// A folder of its own for a run, under the bench's scratch folder.
pub fn run_dir(bench: &Bench, name: &str) -> anyhow::Result<PathBuf> {
    let dir = bench.work.path().join(name);
    std::fs::create_dir_all(dir.join("data"))
        .with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `SMTP_POOL_SIZE` of the runs.
fn pool_size(bench: &Bench) -> anyhow::Result<u64> {
    let value = bench.setting("SMTP_POOL_SIZE", "20");
    value
        .parse()
        .with_context(|| format!("SMTP_POOL_SIZE={value} is not a number"))
}

/// Times COPY, the schema floor, then smtp-source to the run's sink.
async fn references(
    database: &FreshDatabase,
    csv: &CsvFile,
    sink: &Sink,
    source: SourceRun,
    children: &mut Children,
) -> anyhow::Result<References> {
    let copy = database::copy_reference(&database.url, csv.path())?;
    let (floor, floor_cpu) = floor::schema_floor(csv.rows)?;
    let watched = [sink_watched(sink)];
    let before = Snapshot::take(&watched);
    let source_time = sink::source_reference(sink, &source, children).await?;
    let source_cpu = CpuUse::between(&watched, &before, &Snapshot::take(&watched));
    Ok(References {
        copy,
        floor,
        floor_cpu,
        source,
        source_time,
        source_cpu,
    })
}

/// What [`measure`] found.
struct Measured {
    timings: Timings,
    rss: PeakRss,
    checks: Vec<Check>,
    repeats: u64,
    engines: Vec<EngineTimes>,
    cpu: CpuUse,
}

/// Uploads, waits for the rows and then the emails, and counts.
async fn measure(
    product: &Product,
    sink: &Sink,
    csv: &CsvFile,
    children: &mut Children,
) -> anyhow::Result<Measured> {
    let api = &product.api.api;
    let baseline = sink.arm();
    let watched = product.watched(sink);
    let cpu_start = Snapshot::take(&watched);
    let started = Instant::now();
    let id = api.upload(csv.path()).await?;
    let accepted = Instant::now();
    let api_after_202 = procs::peak_rss_kib(product.api.pid)?;
    let import = api
        .wait_for(id, children, |import| import["status"] == "completed")
        .await?;
    let completed = Instant::now();
    let invited = api::count(&import, "rows", "invited");
    anyhow::ensure!(invited > 0, "import {id} invited nobody: {import}");
    sink.wait_for(baseline + invited, children).await?;
    let cpu = CpuUse::between(&watched, &cpu_start, &Snapshot::take(&watched));
    let last = sink.last_at().context("the sink saw no email")?;
    let first = sink.first_after_arm().context("the sink saw no email")?;
    let settled = settle(api, id, invited, children).await?;
    tokio::time::sleep(REPEAT_WATCH).await;
    let delivered = sink.accepted() - baseline;
    Ok(Measured {
        timings: Timings {
            upload: accepted - started,
            import: completed - accepted,
            first_email: first.saturating_duration_since(accepted),
            emails: last.saturating_duration_since(first),
            end_to_end: last - started,
        },
        rss: peak_rss(product, api_after_202)?,
        checks: count_checks(&settled, delivered, csv.rows),
        repeats: delivered.saturating_sub(csv.rows),
        engines: engine_times(product).await?,
        cpu,
    })
}

/// Each worker's send and group-commit times, from its `/metrics`.
async fn engine_times(product: &Product) -> anyhow::Result<Vec<EngineTimes>> {
    let client = product.api.api.client();
    let mut engines = Vec::new();
    for worker in &product.workers {
        let metrics = client.get(&worker.metrics_url).send().await?.text().await?;
        engines.push(EngineTimes::parse(&metrics)?);
    }
    Ok(engines)
}

/// Waits until the import records every email's outcome (nothing pending).
async fn settle(
    api: &Api,
    id: i64,
    invited: u64,
    children: &mut Children,
) -> anyhow::Result<Value> {
    api.wait_for(id, children, |import| {
        let done = api::count(import, "emails", "sent") + api::count(import, "emails", "failed");
        api::count(import, "emails", "pending") == 0 && done >= invited
    })
    .await
}

/// Peak RSS of the API and every worker now.
fn peak_rss(product: &Product, api_after_202: u64) -> anyhow::Result<PeakRss> {
    Ok(PeakRss {
        api_after_202,
        api_end: procs::peak_rss_kib(product.api.pid)?,
        workers: product
            .workers
            .iter()
            .map(|w| procs::peak_rss_kib(w.pid))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// The exact counts a run of `rows` rows must end with.
fn count_checks(import: &Value, delivered: u64, rows: u64) -> Vec<Check> {
    vec![
        Check::new("rows.invited", api::count(import, "rows", "invited"), rows),
        Check::new("emails.sent", api::count(import, "emails", "sent"), rows),
        Check::new("emails.failed", api::count(import, "emails", "failed"), 0),
        Check::new("accepted by smtp-sink", delivered, rows),
    ]
}
