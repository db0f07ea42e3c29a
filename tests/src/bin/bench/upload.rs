//! Upload-only mode: a large CSV streamed to `invite-api serve` (no workers), timed to the 202,
//! with the API's peak RSS.

use std::time::{Duration, Instant};

use crate::Bench;
use crate::csv_gen;
use crate::database::{FreshDatabase, RedisKeys};
use crate::procs::{self, Children};
use crate::product::{self, Backends};
use crate::report::{self, Report};
use crate::server::run_dir;

/// Target: the 202 within this.
pub const TARGET_TIME: Duration = Duration::from_secs(3);
/// Target: invite-api's peak RSS under this many MiB.
pub const TARGET_RSS_MIB: f64 = 64.0;

/// What the upload-only run measured.
pub struct UploadRun {
    /// Bytes uploaded.
    pub bytes: u64,
    /// Rows in the file.
    pub rows: u64,
    /// Upload start → 202.
    pub elapsed: Duration,
    /// invite-api's peak RSS after the 202, KiB.
    pub api_rss_kib: u64,
    /// Lines the API logged.
    pub logged: Vec<String>,
}

/// `invite-api serve` without workers on a fresh database and Redis prefix, kept with them.
struct LoneApi {
    api: product::RunningApi,
    _children: Children,
    _keys: RedisKeys,
    _database: FreshDatabase,
}

impl LoneApi {
    async fn start(bench: &Bench, name: &str) -> anyhow::Result<LoneApi> {
        let dir = run_dir(bench, name)?;
        let database = FreshDatabase::create()?;
        let keys = RedisKeys::new();
        let mut children = Children::default();
        let backends = Backends {
            database_url: &database.url,
            queue_prefix: &keys.prefix,
            smtp_url: None,
            dir: &dir,
        };
        let api = product::start_api(bench, &backends, &mut children).await?;
        Ok(LoneApi {
            api,
            _children: children,
            _keys: keys,
            _database: database,
        })
    }
}

/// What the storm of uploads measured.
pub struct StormRun {
    /// CSV uploads (and hostile workbooks) sent at once.
    pub copies: usize,
    /// Bytes of each CSV.
    pub bytes: u64,
    /// CSV uploads answered 202.
    pub accepted: usize,
    /// The hostile workbooks' answers, by status.
    pub refused: std::collections::BTreeMap<u16, usize>,
    /// First request → last answer.
    pub elapsed: Duration,
    /// invite-api's peak RSS, KiB.
    pub api_rss_kib: u64,
    /// Lines the API logged.
    pub logged: Vec<String>,
}

/// Target: invite-api's own peak RSS during the storm (the README's bound, children apart).
pub const TARGET_STORM_RSS_MIB: f64 = 128.0;

/// Sends `copies` CSVs of about `mib` MiB and `copies` hostile workbooks to an API with no
/// workers, all at once, and reports its peak RSS.
pub async fn storm(
    bench: &Bench,
    mib: u64,
    copies: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let csv = csv_gen::padded(mib)?;
    let corpus = invite_tests::hostile::corpus();
    println!(
        "upload storm: {copies} × {:.1} MiB CSV and {copies} hostile workbooks at once …",
        report::mib(csv.bytes)
    );
    let lone = LoneApi::start(bench, "storm").await?;
    let api = &lone.api;
    let started = Instant::now();
    let uploads = (0..copies).map(|_| api.api.upload(csv.path()));
    let workbooks = corpus
        .iter()
        .cycle()
        .take(copies)
        .map(|file| api.api.upload_workbook(&file.bytes));
    let (uploaded, answered) = futures::future::join(
        futures::future::join_all(uploads),
        futures::future::join_all(workbooks),
    )
    .await;
    let elapsed = started.elapsed();
    let mut refused = std::collections::BTreeMap::new();
    for status in answered {
        *refused.entry(status?.as_u16()).or_default() += 1;
    }
    let run = StormRun {
        copies,
        bytes: csv.bytes,
        accepted: uploaded.iter().filter(|r| r.is_ok()).count(),
        refused,
        elapsed,
        api_rss_kib: procs::peak_rss_kib(api.pid)?,
        logged: procs::logged_lines(&api.log),
    };
    report.add_and_print(report::storm_table(&run));
    Ok(())
}

/// Uploads about `mib` MiB to an API with no workers and reports it.
pub async fn bench(bench: &Bench, mib: u64, report: &mut Report) -> anyhow::Result<()> {
    let csv = csv_gen::padded(mib)?;
    println!(
        "upload only: {} rows, {} bytes ({:.1} MiB), invite-api serve without workers …",
        csv.rows,
        csv.bytes,
        report::mib(csv.bytes)
    );
    let lone = LoneApi::start(bench, "upload").await?;
    let api = &lone.api;
    let started = Instant::now();
    api.api.upload(csv.path()).await?;
    let elapsed = started.elapsed();
    let run = UploadRun {
        bytes: csv.bytes,
        rows: csv.rows,
        elapsed,
        api_rss_kib: procs::peak_rss_kib(api.pid)?,
        logged: procs::logged_lines(&api.log),
    };
    report.add_and_print(report::upload_table(&run));
    Ok(())
}
