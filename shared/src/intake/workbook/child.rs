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

/// Most bytes of the child's standard error read (its outcome is one short JSON line).
const OUTCOME_BYTES: u64 = 64 * 1024;

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

    /// Conversions by this very program (the `invite-api` binary).
    pub fn this_program(settings: &crate::config::Settings) -> std::io::Result<Converter> {
        Ok(Converter::new(
            std::env::current_exe()?,
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
            Err(_) => "refused",
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
            let mut limited = (&mut stderr).take(OUTCOME_BYTES);
            let (status, read) = tokio::join!(child.wait(), limited.read_to_end(&mut report));
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
        Err(e) => Outcome::Refused(WorkbookError::Unreadable(format!("bad limits: {e}"))),
    };
    let code = match outcome {
        Outcome::Converted(_) => ExitCode::SUCCESS,
        Outcome::Refused(_) => ExitCode::from(REFUSED as u8),
    };
    let line = serde_json::to_string(&outcome).unwrap_or_default();
    let _ = writeln!(std::io::stderr(), "{line}");
    code
}

fn convert_stdin(limits: &ConversionLimits) -> Outcome {
    if let Err(e) = limit_address_space(limits.memory_bytes) {
        return Outcome::Refused(WorkbookError::Unreadable(format!(
            "the memory limit could not be set: {e}"
        )));
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
        Ok(converted) => Outcome::Converted(converted),
        Err(refusal) => Outcome::Refused(refusal),
    }
}

/// `RLIMIT_AS`: past it, allocations fail and the child aborts, alone.
fn limit_address_space(bytes: u64) -> std::io::Result<()> {
    let limit = rustix::process::Rlimit {
        current: Some(bytes),
        maximum: Some(bytes),
    };
    rustix::process::setrlimit(rustix::process::Resource::As, limit).map_err(std::io::Error::from)
}
