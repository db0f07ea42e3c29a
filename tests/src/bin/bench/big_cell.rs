//! Big-cell mode: a file whose middle row has one huge cell goes through `invite-api` and an
//! `invite-worker` (PostgreSQL, Redis, smtp-sink); the worker's peak RSS must stay flat (the
//! cell is skipped as it streams by, never read whole) and only that row may be invalid.

use std::io::{BufWriter, Write as _};

use anyhow::Context as _;

use crate::Bench;
use crate::api;
use crate::checks::Check;
use crate::database::{FreshDatabase, RedisKeys};
use crate::procs::{self, Children};
use crate::product::{self, Backends};
use crate::report::{self, Report};
use crate::server::run_dir;
use crate::sink::Sink;

/// Target: the worker's peak RSS under this many MiB.
pub const TARGET_RSS_MIB: f64 = 256.0;

/// What the big-cell run measured.
pub struct BigCellRun {
    /// Size of the big cell in bytes.
    pub cell_bytes: u64,
    /// invite-api's peak RSS, KiB.
    pub api_rss_kib: u64,
    /// invite-worker's peak RSS, KiB.
    pub worker_rss_kib: u64,
    /// Exact outcomes.
    pub checks: Vec<Check>,
    /// What the results file says of the big row.
    pub big_row: String,
    /// Lines the product logged.
    pub logged: Vec<String>,
}

/// Runs a file of three rows whose second has a `mib` MiB first-name cell.
pub async fn bench(bench: &Bench, mib: u64, report: &mut Report) -> anyhow::Result<()> {
    let cell_bytes = mib * 1024 * 1024;
    println!("big cell: a {mib} MiB cell between two ordinary rows, 1 worker …");
    let dir = run_dir(bench, "big-cell")?;
    let csv = write_csv(&dir.join("big-cell.csv"), cell_bytes)?;
    let database = FreshDatabase::create()?;
    let keys = RedisKeys::new();
    let mut children = Children::default();
    let sink = Sink::start(&mut children, &dir.join("smtp-sink.log"))?;
    let backends = Backends {
        database_url: &database.url,
        queue_prefix: &keys.prefix,
        smtp_url: Some(sink.url()),
        dir: &dir,
    };
    let api = product::start_api(bench, &backends, &mut children).await?;
    let workers = product::start_workers(bench, &backends, &api, 1, &mut children).await?;
    let id = api.api.upload(&csv).await?;
    let import = api
        .api
        .wait_for(id, &mut children, |i| i["status"] == "completed")
        .await?;
    let results = api.api.results(id).await?;
    let run = BigCellRun {
        cell_bytes,
        api_rss_kib: procs::peak_rss_kib(api.pid)?,
        worker_rss_kib: procs::peak_rss_kib(workers[0].pid)?,
        checks: vec![
            Check::new("rows.invited", api::count(&import, "rows", "invited"), 2),
            Check::new("rows.invalid", api::count(&import, "rows", "invalid"), 1),
        ],
        big_row: results.lines().nth(2).unwrap_or_default().to_owned(),
        logged: [&api.log, &workers[0].log]
            .iter()
            .flat_map(|log| procs::logged_lines(log))
            .collect(),
    };
    let failures = crate::checks::failures("big cell", &run.checks);
    report.add_and_print(report::big_cell_table(&run));
    anyhow::ensure!(failures.is_empty(), "{}", failures.join("; "));
    Ok(())
}

/// Header, `person0`, the big row, `person2`.
fn write_csv(path: &std::path::Path, cell_bytes: u64) -> anyhow::Result<std::path::PathBuf> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::new(file);
    out.write_all(b"first_name,email,role\nAda,person0@bench.example,Admin\n")?;
    let block = vec![b'x'; 1024 * 1024];
    let mut left = cell_bytes;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
    }
    out.write_all(b",person1@bench.example,Admin\nCy,person2@bench.example,Admin\n")?;
    out.flush()?;
    Ok(path.to_owned())
}
