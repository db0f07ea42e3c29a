//! The report: machine facts, one table per run and a summary, as aligned text and as Markdown.

use std::time::Duration;

use crate::big_cell::{self, BigCellRun};
use crate::checks;
use crate::cpu::{Budget, BudgetInputs};
use crate::csv_gen::CsvFile;
use crate::database;
use crate::embedded::EmbeddedRun;
use crate::server::ServerRun;
use crate::upload::{self, UploadRun};

/// Targets of the ratios to the references.
const IMPORT_TARGET: f64 = 0.5;
const EMAIL_TARGET: f64 = 0.7;
const END_TO_END_TARGET: f64 = 1.5;

/// A titled table with notes under it.
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
    /// Whether the product logged anything during the run.
    logged: bool,
}

impl Table {
    fn new(title: String, headers: &[&str]) -> Table {
        Table {
            title,
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
            logged: false,
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    /// Notes what the product logged, if anything.
    fn note_logged(&mut self, lines: &[String]) {
        let Some(first) = lines.first() else {
            return;
        };
        self.logged = true;
        self.note(format!(
            "the product logged {} warning/error line(s); the first: {}",
            lines.len(),
            first.chars().take(300).collect::<String>()
        ));
    }

    fn text(&self) -> String {
        let columns = self.headers.len();
        let width = |i: usize| {
            std::iter::once(&self.headers)
                .chain(&self.rows)
                .map(|row| row.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..columns).map(width).collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect();
            format!("  {}", padded.join("  ").trim_end())
        };
        let rule = format!(
            "  {}",
            "-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1))
        );
        let mut out = vec![self.title.clone(), line(&self.headers), rule];
        out.extend(self.rows.iter().map(|row| line(row)));
        out.extend(self.notes.iter().map(|note| format!("  • {note}")));
        out.join("\n")
    }

    fn markdown(&self) -> String {
        let row = |cells: &[String]| format!("| {} |", cells.join(" | "));
        let mut out = vec![
            format!("### {}", self.title),
            String::new(),
            row(&self.headers),
            format!("|{}", "---|".repeat(self.headers.len())),
        ];
        out.extend(self.rows.iter().map(|r| row(r)));
        if !self.notes.is_empty() {
            out.push(String::new());
            out.extend(self.notes.iter().map(|note| format!("- {note}")));
        }
        out.join("\n")
    }
}

/// Everything printed, kept to be written as Markdown too.
pub struct Report {
    preamble: Vec<String>,
    tables: Vec<Table>,
}

impl Report {
    /// A report that starts with the machine's facts and the settings.
    pub fn new(mut preamble: Vec<String>, settings: String) -> Report {
        preamble.push(settings);
        Report {
            preamble,
            tables: Vec::new(),
        }
    }

    /// The preamble as text.
    pub fn preamble_text(&self) -> String {
        format!(
            "bulk-invite throughput benchmark\n{}\n",
            self.preamble.join("\n")
        )
    }

    /// Prints a line and adds it to the preamble.
    pub fn add_line(&mut self, line: String) {
        println!("{line}");
        self.preamble.push(line);
    }

    /// Prints the table and keeps it.
    pub fn add_and_print(&mut self, table: Table) {
        println!("\n{}\n", table.text());
        self.tables.push(table);
    }

    /// Whether the product logged anything in any run.
    pub fn logged_anything(&self) -> bool {
        self.tables.iter().any(|t| t.logged)
    }

    /// The whole report as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = vec!["## Throughput benchmark".to_owned(), String::new()];
        out.extend(self.preamble.iter().map(|line| format!("- {line}")));
        for table in &self.tables {
            out.push(String::new());
            out.push(table.markdown());
        }
        out.push(String::new());
        out.join("\n")
    }
}

/// Facts about the machine and the services.
pub struct Machine {
    cores: usize,
    cpu: Option<String>,
    memory_kib: Option<u64>,
    load: Option<String>,
    postgres: String,
    redis: String,
}

impl Machine {
    /// Reads `/proc`, and asks PostgreSQL and Redis their versions.
    pub fn gather() -> Machine {
        Machine {
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            cpu: proc_field("/proc/cpuinfo", "model name"),
            memory_kib: proc_field("/proc/meminfo", "MemTotal")
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok())),
            load: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
            postgres: database::postgres_version().unwrap_or_else(|e| format!("unknown ({e:#})")),
            redis: database::redis_version().unwrap_or_else(|e| format!("unknown ({e:#})")),
        }
    }

    /// The facts as report lines.
    pub fn lines(&self) -> Vec<String> {
        let memory = self.memory_kib.map_or_else(
            || "unknown".to_owned(),
            |kib| format!("{:.1} GiB", kib as f64 / 1_048_576.0),
        );
        vec![
            format!(
                "machine: {} cores ({}), {memory} RAM, load average {} at the start",
                self.cores,
                self.cpu.as_deref().unwrap_or("unknown CPU"),
                self.load.as_deref().unwrap_or("unknown")
            ),
            format!(
                "services: PostgreSQL {}, Redis {}, postfix smtp-sink/smtp-source, all on 127.0.0.1",
                self.postgres, self.redis
            ),
        ]
    }
}

/// The value of the first `key: value` line of a `/proc` file.
fn proc_field(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|line| line.starts_with(key))
        .and_then(|line| line.split_once(':'))
        .map(|(_, value)| value.trim().to_owned())
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// KiB as MiB, one decimal.
fn kib_as_mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// Seconds, two decimals.
fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// `count / d`, per second, grouped by thousands.
fn per_sec(count: u64, d: Duration) -> String {
    grouped((count as f64 / d.as_secs_f64().max(1e-9)).round() as u64)
}

/// `1234567` → `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `✓` or `✗`.
fn mark(ok: bool) -> String {
    if ok { "✓" } else { "✗" }.to_owned()
}

/// The columns of a server run's table.
const SERVER_COLUMNS: [&str; 9] = [
    "stage",
    "time (s)",
    "rate (/s)",
    "reference",
    "ref (s)",
    "ref rate (/s)",
    "ratio",
    "target",
    "",
];

/// The table of one server run: each stage beside its reference.
pub fn server_table(run: &ServerRun, csv: &CsvFile) -> Table {
    let t = &run.timings;
    let r = &run.references;
    let rows = csv.rows;
    let title = format!(
        "{} — {} rows, {:.1} MiB CSV, {} SMTP sessions",
        run.name(),
        grouped(rows),
        mib(csv.bytes),
        r.source.sessions
    );
    let mut table = Table::new(title, &SERVER_COLUMNS);
    let mut upload = vec![String::new(); SERVER_COLUMNS.len()];
    upload[0] = "upload (start → 202)".into();
    upload[1] = secs(t.upload);
    upload[2] = format!(
        "{:.1} MiB/s",
        mib(csv.bytes) / t.upload.as_secs_f64().max(1e-9)
    );
    table.row(upload);
    // The import and the schema floor, each against COPY's rate.
    let against_copy = |stage: &str, time: Duration| {
        let ratio = r.copy.as_secs_f64() / time.as_secs_f64().max(1e-9);
        vec![
            stage.to_owned(),
            secs(time),
            per_sec(rows, time),
            "psql \\copy + unique index".into(),
            secs(r.copy),
            per_sec(rows, r.copy),
            format!("{ratio:.2}"),
            format!("≥ {IMPORT_TARGET}"),
            mark(ratio >= IMPORT_TARGET),
        ]
    };
    table.row(against_copy("rows (202 → completed)", t.import));
    table.row(against_copy(
        "rows, schema floor (\\copy into the 5 tables)",
        r.floor,
    ));
    let email_ratio = r.source_time.as_secs_f64() / t.emails.as_secs_f64().max(1e-9);
    table.row(vec![
        "emails (first → last accepted)".into(),
        secs(t.emails),
        per_sec(rows, t.emails),
        r.source.describe(),
        secs(r.source_time),
        per_sec(rows, r.source_time),
        format!("{email_ratio:.2}"),
        format!("≥ {EMAIL_TARGET}"),
        mark(email_ratio >= EMAIL_TARGET),
    ]);
    let reference = r.copy + r.source_time;
    let e2e_ratio = t.end_to_end.as_secs_f64() / reference.as_secs_f64().max(1e-9);
    table.row(vec![
        "end to end (upload → last accepted)".into(),
        secs(t.end_to_end),
        per_sec(rows, t.end_to_end),
        "COPY + smtp-source".into(),
        secs(reference),
        per_sec(rows, reference),
        format!("{e2e_ratio:.2}"),
        format!("≤ {END_TO_END_TARGET}"),
        mark(e2e_ratio <= END_TO_END_TARGET),
    ]);
    server_notes(&mut table, run, rows);
    table
}

/// First email, the import against the schema floor, the send engine, counts, CPU and memory of a
/// server run.
fn server_notes(table: &mut Table, run: &ServerRun, rows: u64) {
    let t = &run.timings;
    table.note(format!(
        "first email accepted {} s after the 202; \"accepted\" is smtp-sink's -c counter (mesg=)",
        secs(t.first_email)
    ));
    table.note(format!(
        "rows against the schema floor (the fastest any code could write the product's tables, \
         alone on the machine): {:.2}",
        run.references.floor.as_secs_f64() / t.import.as_secs_f64().max(1e-9)
    ));
    let engines: Vec<String> = run
        .engines
        .iter()
        .map(|e| {
            let mean_ms = |(n, sum): (f64, f64)| if n > 0.0 { sum / n * 1000.0 } else { 0.0 };
            format!(
                "send {:.2} ms, group commit {:.2} ms ({:.1} sends a commit)",
                mean_ms(e.sends),
                mean_ms(e.commits),
                if e.commits.0 > 0.0 {
                    e.sends.0 / e.commits.0
                } else {
                    0.0
                }
            )
        })
        .collect();
    table.note(format!(
        "send engine, mean per worker (its /metrics; a send's slot is free after both): {}",
        engines.join("; ")
    ));
    let repeats = if run.repeats > 0 {
        format!(" — {} repeated email(s)", run.repeats)
    } else {
        String::new()
    };
    table.note(format!(
        "counts: {}{repeats}",
        checks::describe_all(&run.checks)
    ));
    let s = &run.search;
    table.note(format!(
        "member search after the emails, {} searches over the API one at a time (whole address, \
         address prefix, part of a first name, accented last name typed without its accent): \
         p50 {:.1} ms, p95 {:.1} ms, slowest {:.1} ms; {} found nobody",
        s.searches,
        s.p50.as_secs_f64() * 1000.0,
        s.p95.as_secs_f64() * 1000.0,
        s.max.as_secs_f64() * 1000.0,
        s.empty
    ));
    table.note(cpu_note(run, rows));
    table.note(budget_note(run, rows));
    let workers: Vec<String> = run.rss.workers.iter().map(|&k| kib_as_mib(k)).collect();
    table.note(format!(
        "peak RSS (VmHWM): invite-api {} MiB after the 202, {} MiB at the end; invite-worker {} MiB",
        kib_as_mib(run.rss.api_after_202),
        kib_as_mib(run.rss.api_end),
        workers.join(", ")
    ));
    table.note_logged(&run.logged);
}

/// CPU time per email from the upload to the last email, per kind of process.
fn cpu_note(run: &ServerRun, emails: u64) -> String {
    let emails = emails.max(1) as f64;
    let per_email = |seconds: f64| format!("{:.0} µs", seconds / emails * 1e6);
    let kinds: Vec<String> = run
        .cpu
        .kinds
        .iter()
        .map(|(kind, seconds)| format!("{kind} {}", per_email(*seconds)))
        .collect();
    format!(
        "CPU per email, upload → last email (/proc): {}; the machine was busy {:.1} of {:.1} \
         core-seconds ({} per email), and its hypervisor took {:.1} (steal)",
        kinds.join(", "),
        run.cpu.machine,
        run.cpu.available,
        per_email(run.cpu.machine),
        run.cpu.steal
    )
}

/// The CPU time the cores have per email at targets 2 and 3, against what smtp-sink and the schema
/// floor took alone in the references, and what the run used.
fn budget_note(run: &ServerRun, rows: u64) -> String {
    let r = &run.references;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let inputs = BudgetInputs {
        rows,
        cores: cores as f64,
        copy: r.copy,
        source: r.source_time,
        source_cpu: &r.source_cpu,
        floor_cpu: &r.floor_cpu,
        run_cpu: &run.cpu,
    };
    let b = Budget::at(&inputs, EMAIL_TARGET, END_TO_END_TARGET);
    format!(
        "CPU budget of targets 2 and 3 on these {cores} cores: emails at {EMAIL_TARGET}× \
         smtp-source's rate have {:.0} µs per email (smtp-source's own run used {:.0} µs per \
         message, smtp-sink {:.0} of them); end to end at {END_TO_END_TARGET}× has {:.0} µs per \
         row, of which the schema floor alone took {:.0} and smtp-sink {:.0}; this run used {:.0} \
         µs per email",
        b.emails, b.source, b.sink, b.end_to_end, b.floor, b.sink, b.used
    )
}

/// The table of the embedded run.
pub fn embedded_table(run: &EmbeddedRun, csv: &CsvFile) -> Table {
    let title = format!(
        "embedded (invite-api import: SQLite, embedded queue, .eml outbox) — {} rows",
        grouped(csv.rows)
    );
    let mut table = Table::new(title, &["stage", "time (s)", "rate (/s)"]);
    table.row(vec![
        "end to end (command start → exit)".into(),
        secs(run.elapsed),
        per_sec(csv.rows, run.elapsed),
    ]);
    table.note(format!("counts: {}", checks::describe_all(&run.checks)));
    table.note(format!(
        "peak RSS (VmHWM, read every 10 ms): invite-api import {} MiB",
        kib_as_mib(run.peak_rss_kib)
    ));
    table.note_logged(&run.logged);
    table
}

/// All runs side by side, with the speed-up of more workers.
pub fn summary_table(
    servers: &[ServerRun],
    embedded: Option<&EmbeddedRun>,
    csv: &CsvFile,
) -> Table {
    let title = format!("summary — {} rows", grouped(csv.rows));
    let mut table = Table::new(
        title,
        &[
            "run",
            "rows/s (import)",
            "emails/s",
            "end to end (s)",
            "end to end (rows/s)",
            "peak RSS invite-api (MiB)",
            "peak RSS per worker (MiB)",
            "counts",
        ],
    );
    for run in servers {
        let workers: Vec<String> = run.rss.workers.iter().map(|&k| kib_as_mib(k)).collect();
        table.row(vec![
            run.name(),
            per_sec(csv.rows, run.timings.import),
            per_sec(csv.rows, run.timings.emails),
            secs(run.timings.end_to_end),
            per_sec(csv.rows, run.timings.end_to_end),
            kib_as_mib(run.rss.api_end),
            workers.join(", "),
            mark(run.checks.iter().all(checks::Check::ok)),
        ]);
    }
    if let Some(run) = embedded {
        table.row(vec![
            "embedded".into(),
            "—".into(),
            "—".into(),
            secs(run.elapsed),
            per_sec(csv.rows, run.elapsed),
            kib_as_mib(run.peak_rss_kib),
            "(in-process)".into(),
            mark(run.checks.iter().all(checks::Check::ok)),
        ]);
    }
    speed_up_notes(&mut table, servers);
    table
}

/// End-to-end time of the first run over each later one.
fn speed_up_notes(table: &mut Table, servers: &[ServerRun]) {
    let Some((first, rest)) = servers.split_first() else {
        return;
    };
    for run in rest {
        let ratio =
            first.timings.end_to_end.as_secs_f64() / run.timings.end_to_end.as_secs_f64().max(1e-9);
        table.note(format!(
            "speed-up, end to end: {} / {} = {ratio:.2}×",
            first.name(),
            run.name()
        ));
    }
}

/// The table of the upload-only run.
pub fn upload_table(run: &UploadRun) -> Table {
    let title = format!(
        "upload only — {:.1} MiB, {} rows, invite-api serve without workers",
        mib(run.bytes),
        grouped(run.rows)
    );
    let mut table = Table::new(title, &["measure", "value", "target", "ok"]);
    table.row(vec![
        "upload start → 202 (s)".into(),
        secs(run.elapsed),
        format!("< {}", upload::TARGET_TIME.as_secs()),
        mark(run.elapsed < upload::TARGET_TIME),
    ]);
    table.row(vec![
        "throughput (MiB/s)".into(),
        format!(
            "{:.1}",
            mib(run.bytes) / run.elapsed.as_secs_f64().max(1e-9)
        ),
        String::new(),
        String::new(),
    ]);
    table.row(api_rss_row(run.api_rss_kib, upload::TARGET_RSS_MIB));
    table.note_logged(&run.logged);
    table
}

/// invite-api's peak RSS against its target.
fn api_rss_row(kib: u64, target_mib: f64) -> Vec<String> {
    let rss_mib = kib as f64 / 1024.0;
    vec![
        "invite-api peak RSS, VmHWM (MiB)".into(),
        format!("{rss_mib:.1}"),
        format!("< {target_mib}"),
        mark(rss_mib < target_mib),
    ]
}

/// The table of the upload storm.
pub fn storm_table(run: &upload::StormRun) -> Table {
    let title = format!(
        "upload storm — {} × {:.1} MiB CSV and {} hostile workbooks at once, invite-api serve without workers",
        run.copies,
        mib(run.bytes),
        run.copies
    );
    let mut table = Table::new(title, &["measure", "value", "target", "ok"]);
    table.row(vec![
        "CSV uploads answered 202".into(),
        format!("{} of {}", run.accepted, run.copies),
        format!("{}", run.copies),
        mark(run.accepted == run.copies),
    ]);
    let answers: Vec<String> = run
        .refused
        .iter()
        .map(|(status, n)| format!("{n} × {status}"))
        .collect();
    let all_4xx = run.refused.keys().all(|status| (400..500).contains(status));
    table.row(vec![
        "hostile workbooks' answers".into(),
        answers.join(", "),
        "4xx".into(),
        mark(all_4xx),
    ]);
    table.row(vec![
        "first request → last answer (s)".into(),
        secs(run.elapsed),
        String::new(),
        String::new(),
    ]);
    table.row(api_rss_row(run.api_rss_kib, upload::TARGET_STORM_RSS_MIB));
    table.note_logged(&run.logged);
    table
}

/// The table of the big-cell run.
pub fn big_cell_table(run: &BigCellRun) -> Table {
    let title = format!(
        "big cell — a {:.0} MiB cell in row 3 of 4, 1 worker",
        mib(run.cell_bytes)
    );
    let mut table = Table::new(title, &["measure", "value", "target", "ok"]);
    let worker_mib = run.worker_rss_kib as f64 / 1024.0;
    table.row(vec![
        "invite-worker peak RSS, VmHWM (MiB)".into(),
        format!("{worker_mib:.1}"),
        format!("< {}", big_cell::TARGET_RSS_MIB),
        mark(worker_mib < big_cell::TARGET_RSS_MIB),
    ]);
    table.row(vec![
        "invite-api peak RSS, VmHWM (MiB)".into(),
        format!("{:.1}", run.api_rss_kib as f64 / 1024.0),
        String::new(),
        String::new(),
    ]);
    table.note(format!("counts: {}", checks::describe_all(&run.checks)));
    table.note(format!("results file, row 3: {}", run.big_row));
    table.note_logged(&run.logged);
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }
}
