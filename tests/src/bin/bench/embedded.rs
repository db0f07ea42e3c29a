//! The embedded edition: `invite-api import FILE` on SQLite, the embedded queue and the `.eml`
//! outbox, timed as one command; also how big one invitation email is.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::Bench;
use crate::api::WORKSPACE;
use crate::checks::{self, Check};
use crate::csv_gen::{self, CsvFile};
use crate::procs::{self, Children};
use crate::server::run_dir;

/// How often the running command's `VmHWM` is read (it is gone once the process exits).
const RSS_POLL: Duration = Duration::from_millis(10);

/// What the embedded run measured.
pub struct EmbeddedRun {
    /// The whole command, start to exit.
    pub elapsed: Duration,
    /// Its peak RSS, KiB.
    pub peak_rss_kib: u64,
    /// Exact counts.
    pub checks: Vec<Check>,
    /// Lines it logged (warnings and errors).
    pub logged: Vec<String>,
}

impl EmbeddedRun {
    /// The failed checks, as messages.
    pub fn failed_checks(&self) -> Vec<String> {
        checks::failures("embedded", &self.checks)
    }
}

/// Imports `csv` with the embedded edition and counts its outbox.
pub async fn run(bench: &Bench, csv: &CsvFile) -> anyhow::Result<EmbeddedRun> {
    println!("embedded: invite-api import …");
    let dir = run_dir(bench, "embedded")?;
    let finished = import(bench, csv.path(), &dir).await?;
    let outbox = eml_files(&dir.join("data").join("outbox"))?;
    let summary = &finished.stdout;
    let checks = vec![
        Check::new(
            "rows invited",
            number_before(summary, "rows:", "invited"),
            csv.rows,
        ),
        Check::new(
            "emails sent",
            number_before(summary, "emails:", "sent"),
            csv.rows,
        ),
        Check::new(
            "emails failed",
            number_before(summary, "emails:", "failed"),
            0,
        ),
        Check::new(".eml files in the outbox", outbox.len() as u64, csv.rows),
    ];
    Ok(EmbeddedRun {
        elapsed: finished.elapsed,
        peak_rss_kib: finished.peak_rss_kib,
        checks,
        logged: procs::logged_lines(&finished.log),
    })
}

/// The size of one invitation email: a one-row embedded import, its `.eml` file.
pub async fn measure_email_bytes(bench: &Bench) -> anyhow::Result<u64> {
    let csv = csv_gen::people(1)?;
    let dir = run_dir(bench, "email-size")?;
    import(bench, csv.path(), &dir).await?;
    let files = eml_files(&dir.join("data").join("outbox"))?;
    let file = files
        .first()
        .context("the one-row import wrote no email to its outbox")?;
    Ok(std::fs::metadata(file)?.len())
}

/// A finished `invite-api import`.
struct Finished {
    elapsed: Duration,
    peak_rss_kib: u64,
    stdout: String,
    log: PathBuf,
}

/// Runs `invite-api import` with `DATA_DIR` in `dir` and nothing else set, to its end.
async fn import(bench: &Bench, csv: &Path, dir: &Path) -> anyhow::Result<Finished> {
    let log = dir.join("invite-api-import.log");
    let out = dir.join("invite-api-import.out");
    let settings = [("DATA_DIR", dir.join("data").display().to_string())];
    let mut command = procs::product_command(&bench.bins.api, &settings, &bench.envs, &log)?;
    command
        .arg("import")
        .arg(csv)
        .args(["--workspace", WORKSPACE])
        .stdout(std::fs::File::create(&out).context("creating the import's output file")?);
    let mut children = Children::default();
    let started = Instant::now();
    let pid = children.spawn("invite-api import", command, Some(&log))?;
    let (status, peak_rss_kib) = watch(pid, &mut children).await?;
    let elapsed = started.elapsed();
    let stdout = std::fs::read_to_string(&out).context("reading the import's output")?;
    anyhow::ensure!(
        status.success(),
        "invite-api import failed ({status}): {}{}",
        stdout.trim(),
        procs::log_tail(&log)
    );
    Ok(Finished {
        elapsed,
        peak_rss_kib,
        stdout,
        log,
    })
}

/// Waits for the process to exit, reading its peak RSS meanwhile.
async fn watch(pid: u32, children: &mut Children) -> anyhow::Result<(ExitStatus, u64)> {
    let mut peak = 0;
    loop {
        // Unreadable once the process has exited; the value before is the peak.
        if let Ok(kib) = procs::peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = children.exited(pid)? {
            return Ok((status, peak));
        }
        tokio::time::sleep(RSS_POLL).await;
    }
}

/// The `.eml` files of an outbox (a `.partial` file is one being written).
fn eml_files(outbox: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(outbox).with_context(|| format!("reading {}", outbox.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            files.push(path);
        }
    }
    Ok(files)
}

/// In the summary line starting with `label`, the number just before the word starting with
/// `word` (`emails: 2000 sent, 0 failed`: `sent` → 2000); 0 when absent.
fn number_before(summary: &str, label: &str, word: &str) -> u64 {
    summary
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with(label))
        .find_map(|line| {
            let tokens: Vec<&str> = line.split_whitespace().collect();
            tokens
                .windows(2)
                .find(|pair| pair[1].starts_with(word))
                .and_then(|pair| pair[0].parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_the_import_summary() {
        let summary = "import 1: completed\n  rows: 1998 invited, 1 skipped, 1 invalid (of 2000)\n  emails: 1998 sent, 0 failed\n";
        assert_eq!(number_before(summary, "rows:", "invited"), 1998);
        assert_eq!(number_before(summary, "emails:", "sent"), 1998);
        assert_eq!(number_before(summary, "emails:", "failed"), 0);
    }
}
