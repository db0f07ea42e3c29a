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

/// Uploads about `mib` MiB to an API with no workers and reports it.
pub async fn bench(bench: &Bench, mib: u64, report: &mut Report) -> anyhow::Result<()> {
    let csv = csv_gen::padded(mib)?;
    println!(
        "upload only: {} rows, {} bytes ({:.1} MiB), invite-api serve without workers …",
        csv.rows,
        csv.bytes,
        report::mib(csv.bytes)
    );
    let dir = run_dir(bench, "upload")?;
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
