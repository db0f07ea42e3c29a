//! Workbook conversion in a child process, so that no workbook can take the server down.
//!
//! A failed allocation aborts a Rust process, and calamine allocates for what a workbook declares;
//! [`super::declared`] refuses the declarations it knows, and the child's limits cover everything
//! else. [`Converter::convert`] runs `PROGRAM convert-workbook LIMITS` (the `invite-api` binary
//! itself) with the workbook on standard input and a temporary file as standard output, under an
//! address-space limit ([`run_child`] sets it on itself before reading anything) and a timeout;
//! at most `at_once` children run per process. The child writes one JSON [`Outcome`] line to
//! standard error and exits `0` (converted) or `3` (refused in words); any other end (an abort on
//! allocation failure, a signal, a panic) fails that upload only.

use std::fs::File;
use std::io::{BufWriter, Cursor, Read as _, Seek as _, Write as _};
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::sync::Semaphore;

use super::{Converted, WorkbookError, WorkbookLimits};
use crate::metrics as m;

/// The subcommand of the program that converts one workbook.
pub const SUBCOMMAND: &str = "convert-workbook";

/// The exit code of a child that refused the workbook in words.
const REFUSED: i32 = 3;

/// The exit code of a child that could not set itself up (the server's fault, not the file's).
const FAILED: i32 = 4;

/// Most bytes of the child's standard error read (its outcome is one short JSON line).
const OUTCOME_BYTES: u64 = 64 * 1024;

/// Most characters of a sheet's name reported (Excel allows 31).
const MAX_SHEET_NAME: usize = 100;

/// What one conversion may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConversionLimits {
    /// The workbook's declarations and output.
    pub workbook: WorkbookLimits,
    /// Largest workbook file in bytes (`MAX_WORKBOOK_BYTES`).
    pub max_file_bytes: u64,
    /// The child's address-space limit in bytes (`WORKBOOK_CONVERSION_MEMORY`).
    pub memory_bytes: u64,
    /// How long one conversion may take, and how long an upload waits for a free slot
    /// (`WORKBOOK_CONVERSION_TIMEOUT`).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl ConversionLimits {
    /// The limits the settings give.
    pub fn from_settings(settings: &crate::config::Settings) -> ConversionLimits {
        ConversionLimits {
            workbook: WorkbookLimits {
                max_rows: settings.max_rows,
                max_cells: settings.max_workbook_cells,
                max_unpacked_bytes: settings.max_workbook_unpacked_bytes,
                max_csv_bytes: settings
                    .max_workbook_unpacked_bytes
                    .min(settings.max_upload_bytes),
            },
            max_file_bytes: settings.max_workbook_bytes,
            memory_bytes: settings.workbook_conversion_memory,
            timeout: settings.workbook_conversion_timeout,
        }
    }
}

/// What the child reports on standard error.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum Outcome {
    /// The CSV is on standard output.
    Converted(Converted),
    /// The workbook was refused, in words.
    Refused(WorkbookError),
    /// The child could not set itself up: its limits did not parse or could not be set.
    Failed(String),
}

/// Why a conversion did not give CSV.
#[derive(Debug, thiserror::Error)]
pub enum ConversionError {
    /// The workbook cannot be converted; the message is for the admin.
    #[error(transparent)]
    Workbook(#[from] WorkbookError),
    /// Every conversion slot stayed busy for the whole timeout.
    #[error(
        "{at_once} workbooks are being converted, the most this server converts at once (WORKBOOK_CONVERSIONS); try again shortly, or upload the sheet as CSV"
    )]
    Busy {
        /// The slots of this process.
        at_once: usize,
    },
    /// The child could not be started or its files not handled.
    #[error("running the workbook conversion: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs conversions in child processes, a bounded number at once.
#[derive(Debug)]
pub struct Converter {
    program: PathBuf,
    limits: ConversionLimits,
    slots: Semaphore,
    at_once: usize,
}

impl Converter {
    /// Conversions by `program convert-workbook`, at most `at_once` at a time.
    pub fn new(program: PathBuf, limits: ConversionLimits, at_once: usize) -> Converter {
        let at_once = at_once.max(1);
        Converter {
            program,
            limits,
            slots: Semaphore::new(at_once),
            at_once,
        }
    }

    /// Conversions by this very program (the `invite-api` binary): through `/proc/self/exe` where
    /// there is one, so that the child is the running binary even after an upgrade replaced the
    /// file on disk.
    pub fn this_program(settings: &crate::config::Settings) -> std::io::Result<Converter> {
        let this = PathBuf::from("/proc/self/exe");
        Ok(Converter::new(
            if this.exists() {
                this
            } else {
                std::env::current_exe()?
            },
            ConversionLimits::from_settings(settings),
            settings.workbook_conversions,
        ))
    }

    /// The limits of each conversion.
    pub fn limits(&self) -> &ConversionLimits {
        &self.limits
    }

    /// Converts the workbook in `input` to CSV in a temporary file, positioned at its start.
    pub async fn convert(&self, input: File) -> Result<(File, Converted), ConversionError> {
        let Ok(Ok(_slot)) = tokio::time::timeout(self.limits.timeout, self.slots.acquire()).await
        else {
            metrics::counter!(m::WORKBOOK_CONVERSIONS_TOTAL, "result" => "busy").increment(1);
            return Err(ConversionError::Busy {
                at_once: self.at_once,
            });
        };
        let result = self.run(input).await;
        let label = match &result {
            Ok(_) => "converted",
            Err(ConversionError::Workbook(WorkbookError::Exhausted { .. })) => "exhausted",
            Err(ConversionError::Workbook(_)) => "refused",
            Err(_) => "failed",
        };
        metrics::counter!(m::WORKBOOK_CONVERSIONS_TOTAL, "result" => label).increment(1);
        result
    }

    async fn run(&self, mut input: File) -> Result<(File, Converted), ConversionError> {
        input.rewind()?;
        let mut output = tempfile::tempfile()?;
        let limits = serde_json::to_string(&self.limits).map_err(std::io::Error::other)?;
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SUBCOMMAND)
            .arg(limits)
            .env_clear()
            .stdin(Stdio::from(input))
            .stdout(Stdio::from(output.try_clone()?))
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let finished = async {
            let mut report = Vec::new();
            let read = async {
                (&mut stderr)
                    .take(OUTCOME_BYTES)
                    .read_to_end(&mut report)
                    .await?;
                // Whatever follows is drained, so that the child never blocks on a full pipe.
                tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await
            };
            let (status, read) = tokio::join!(child.wait(), read);
            read?;
            Ok::<_, std::io::Error>((status?, report))
        };
        let Ok(finished) = tokio::time::timeout(self.limits.timeout, finished).await else {
            child.kill().await?;
            return Err(self.exhausted().into());
        };
        let (status, report) = finished?;
        let outcome = serde_json::from_slice::<Outcome>(&report).ok();
        match (status.code(), outcome) {
            (Some(0), Some(Outcome::Converted(converted))) => {
                output.rewind()?;
                Ok((output, converted))
            }
            (Some(REFUSED), Some(Outcome::Refused(refusal))) => Err(refusal.into()),
            (Some(FAILED), Some(Outcome::Failed(reason))) => {
                Err(std::io::Error::other(format!("the conversion child failed: {reason}")).into())
            }
            _ => {
                tracing::warn!(%status, "a workbook conversion ended abnormally");
                Err(self.exhausted().into())
            }
        }
    }

    fn exhausted(&self) -> WorkbookError {
        WorkbookError::Exhausted {
            memory_mib: self.limits.memory_bytes / (1024 * 1024),
            seconds: self.limits.timeout.as_secs(),
        }
    }
}

/// The child's side: limits its own address space, converts standard input to standard output,
/// and reports on standard error. `limits` is the JSON [`ConversionLimits`] argument.
pub fn run_child(limits: &str) -> ExitCode {
    let outcome = match serde_json::from_str::<ConversionLimits>(limits) {
        Ok(limits) => convert_stdin(&limits),
        Err(e) => Outcome::Failed(format!("its limits do not parse: {e}")),
    };
    let code = match outcome {
        Outcome::Converted(_) => ExitCode::SUCCESS,
        Outcome::Refused(_) => ExitCode::from(REFUSED as u8),
        Outcome::Failed(_) => ExitCode::from(FAILED as u8),
    };
    let line = serde_json::to_string(&outcome).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{line}");
    code
}

fn convert_stdin(limits: &ConversionLimits) -> Outcome {
    if let Err(e) = limit_resources(limits) {
        return Outcome::Failed(format!("its limits could not be set: {e}"));
    }
    let mut workbook = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut workbook);
    if let Err(e) = read {
        return Outcome::Refused(WorkbookError::Unreadable(e.to_string()));
    }
    let mut output = BufWriter::new(std::io::stdout().lock());
    let converted = super::to_csv(Cursor::new(workbook), &mut output, &limits.workbook)
        .and_then(|c| output.flush().map(|()| c).map_err(super::unreadable));
    match converted {
        Ok(mut converted) => {
            // The name is the workbook's own: keep the report, and the note it becomes, short.
            converted.sheet = converted.sheet.chars().take(MAX_SHEET_NAME).collect();
            Outcome::Converted(converted)
        }
        Err(refusal) => Outcome::Refused(refusal),
    }
}

/// `RLIMIT_AS`: past it, allocations fail and the child aborts, alone. `RLIMIT_CPU` at the
/// timeout, and a lower priority than the server's, so that conversions cannot starve the API and
/// the workers of the cores while they run.
fn limit_resources(limits: &ConversionLimits) -> std::io::Result<()> {
    use rustix::process::{Resource, Rlimit, nice, setrlimit};
    let at = |value: u64| Rlimit {
        current: Some(value),
        maximum: Some(value),
    };
    setrlimit(Resource::As, at(limits.memory_bytes))?;
    setrlimit(Resource::Cpu, at(limits.timeout.as_secs().max(1)))?;
    // An increment, which any process may make, whatever niceness it was started with.
    nice(CHILD_NICENESS)?;
    Ok(())
}

/// How much lower the child's scheduling priority is than its parent's.
const CHILD_NICENESS: i32 = 10;
