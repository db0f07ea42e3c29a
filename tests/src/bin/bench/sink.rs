//! postfix's `smtp-sink` as the run's mail server, counted through its `-c` running counter, and
//! `smtp-source` as the reference sender.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::procs::{self, Children};

/// postfix's test SMTP server.
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
/// postfix's test SMTP client.
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
/// How long the count may stand still before a wait gives up.
const STALL: Duration = Duration::from_secs(120);

/// What the sink has accepted so far, as its counter reports it.
#[derive(Default)]
struct Tally {
    accepted: u64,
    last_at: Option<Instant>,
    /// The count when [`Sink::arm`] was called.
    baseline: u64,
    /// When the count first went past `baseline`.
    first_at: Option<Instant>,
}

impl Tally {
    fn record(&mut self, accepted: u64, at: Instant) {
        if accepted == self.accepted {
            return;
        }
        self.accepted = accepted;
        self.last_at = Some(at);
        if accepted > self.baseline && self.first_at.is_none() {
            self.first_at = Some(at);
        }
    }
}

/// A running `smtp-sink` on its own port (killed with the run's [`Children`]).
pub struct Sink {
    /// Where it listens, on 127.0.0.1.
    pub port: u16,
    /// Its pid.
    pub pid: u32,
    tally: Arc<Mutex<Tally>>,
}

impl Sink {
    /// Starts a sink on a free port, with a backlog of 1024, and waits until it accepts connections.
    pub fn start(children: &mut Children, log: &Path) -> anyhow::Result<Sink> {
        let port = procs::free_port()?;
        let mut command = Command::new(SMTP_SINK);
        // `-c`: a running counter on stdout; `-m`: connections served at once (default 256).
        command.args(["-c", "-m", "1000"]);
        if procs::effective_uid()? == 0 {
            // smtp-sink refuses to run as root without a user to switch to.
            command.args(["-u", "root"]);
        }
        command.args([format!("127.0.0.1:{port}").as_str(), "1024"]);
        procs::log_to(&mut command, log)?;
        command.stdout(Stdio::piped());
        let mut child = command.spawn().context("starting smtp-sink")?;
        let stdout = child.stdout.take().context("smtp-sink's stdout")?;
        let pid = child.id();
        children.adopt("smtp-sink", child, Some(log));
        let tally = Arc::new(Mutex::new(Tally::default()));
        let reader = tally.clone();
        std::thread::spawn(move || read_counter(stdout, &reader));
        wait_accepting(port, children)?;
        Ok(Sink { port, pid, tally })
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages accepted since the sink started.
    pub fn accepted(&self) -> u64 {
        self.tally().accepted
    }

    /// Starts counting from here: returns the count now, and [`Sink::first_after_arm`] will be
    /// the moment it first grows past it.
    pub fn arm(&self) -> u64 {
        let mut tally = self.tally();
        tally.baseline = tally.accepted;
        tally.first_at = None;
        tally.baseline
    }

    /// When the first message after [`Sink::arm`] was accepted.
    pub fn first_after_arm(&self) -> Option<Instant> {
        self.tally().first_at
    }

    /// When the latest message was accepted.
    pub fn last_at(&self) -> Option<Instant> {
        self.tally().last_at
    }

    /// Waits until the sink has accepted `count` messages in all; fails when the count stands
    /// still for [`STALL`] or a child exits.
    pub async fn wait_for(&self, count: u64, children: &mut Children) -> anyhow::Result<()> {
        let mut seen = self.accepted();
        let mut moved_at = Instant::now();
        while seen < count {
            tokio::time::sleep(Duration::from_millis(20)).await;
            children.ensure_alive()?;
            let now = self.accepted();
            if now != seen {
                (seen, moved_at) = (now, Instant::now());
            }
            anyhow::ensure!(
                moved_at.elapsed() < STALL,
                "the sink has accepted {seen} of {count} messages and nothing more for {STALL:?}"
            );
        }
        Ok(())
    }
}

/// Reads smtp-sink's `-c` records (`sess=N quit=N mesg=N`, each ended by `\r`) into `tally`.
fn read_counter(stdout: ChildStdout, tally: &Mutex<Tally>) {
    let mut reader = BufReader::new(stdout);
    let mut record = Vec::new();
    loop {
        record.clear();
        match reader.read_until(b'\r', &mut record) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let Some(count) = mesg_count(&record) {
            let now = Instant::now();
            tally
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(count, now);
        }
    }
}

/// The `mesg=N` value of one counter record.
fn mesg_count(record: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(record).ok()?;
    let rest = &text[text.find("mesg=")? + "mesg=".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Waits until the port accepts TCP connections.
fn wait_accepting(port: u16, children: &mut Children) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        children.ensure_alive()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "smtp-sink is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The reference sender's settings.
pub struct SourceRun {
    /// Parallel sessions (`-s`).
    pub sessions: u64,
    /// Messages in all (`-m`).
    pub messages: u64,
    /// Message length (`-l`).
    pub bytes: u64,
}

impl SourceRun {
    /// The command line, for the report.
    pub fn describe(&self) -> String {
        format!(
            "smtp-source -d -s {} -m {} -l {}",
            self.sessions, self.messages, self.bytes
        )
    }
}

/// Times `smtp-source` sending `run.messages` messages to the sink over `run.sessions` sessions,
/// each kept open between messages (`-d`, as the workers' pooled connections are), and checks the
/// sink accepted them all.
pub async fn source_reference(
    sink: &Sink,
    run: &SourceRun,
    children: &mut Children,
) -> anyhow::Result<Duration> {
    let before = sink.accepted();
    let elapsed = procs::timed(
        Command::new(SMTP_SOURCE)
            .args(["-d", "-s", &run.sessions.to_string()])
            .args([
                "-m",
                &run.messages.to_string(),
                "-l",
                &run.bytes.to_string(),
            ])
            .args(["-f", "bench@bench.example", "-t", "invitee@bench.example"])
            .arg(format!("127.0.0.1:{}", sink.port)),
        "smtp-source",
    )?;
    sink.wait_for(before + run.messages, children).await?;
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_count_is_read_from_a_counter_record() {
        assert_eq!(mesg_count(b"sess=20 quit=19 mesg=2000\r"), Some(2000));
        assert_eq!(mesg_count(b"\nsess=1 quit=0 mesg=0\r"), Some(0));
        assert_eq!(mesg_count(b"garbage\r"), None);
    }

    #[test]
    fn the_first_message_after_arming_is_timed() {
        let mut tally = Tally {
            accepted: 5,
            baseline: 5,
            ..Tally::default()
        };
        let at = Instant::now();
        tally.record(5, at);
        assert!(tally.first_at.is_none());
        tally.record(6, at);
        assert_eq!(tally.first_at, Some(at));
    }
}
