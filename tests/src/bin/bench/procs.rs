//! Child processes: the product's environment, logs in files, a guard that kills every child, and
//! what `/proc` tells about them (peak RSS, listening port).

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Runs a reference command to its end and times it; its exit must be a success.
pub fn timed(command: &mut Command, what: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "{what} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(elapsed)
}

/// How long a process may take to become ready.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// A command for a product binary: a clean environment with the given settings, then `--env`'s
/// on top (so they win), output appended to `log`.
pub fn product_command(
    bin: &Path,
    settings: &[(&str, String)],
    extra: &[(String, String)],
    log: &Path,
) -> anyhow::Result<Command> {
    let mut command = Command::new(bin);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CONFIG_DIR", "/nonexistent")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .envs(settings.iter().map(|(k, v)| (k, v)))
        .envs(extra.iter().map(|(k, v)| (k, v)));
    log_to(&mut command, log)?;
    Ok(command)
}

/// Sends the command's stdout and stderr to `log` (created or appended).
pub fn log_to(command: &mut Command, log: &Path) -> anyhow::Result<()> {
    let file = File::options()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file);
    Ok(())
}

/// Runs a one-off command to completion; its stdout, or an error with the end of its `log`.
pub fn run_to_end(name: &str, mut command: Command, log: &Path) -> anyhow::Result<String> {
    let output = command
        .stdout(Stdio::piped())
        .output()
        .with_context(|| format!("starting {name}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(
        output.status.success(),
        "{name} failed ({}): {}{}",
        output.status,
        stdout.trim(),
        log_tail(log)
    );
    Ok(stdout)
}

/// One running child, with a name for messages and the log it writes.
struct Running {
    name: String,
    log: Option<PathBuf>,
    child: Child,
}

/// Every long-running child of a run; each is killed (SIGKILL) and reaped when this is dropped,
/// also on an error or an interrupt.
#[derive(Default)]
pub struct Children {
    running: Vec<Running>,
}

impl Children {
    /// Starts `command` as `name`; returns its pid.
    pub fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        log: Option<&Path>,
    ) -> anyhow::Result<u32> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        self.running.push(Running {
            name: name.to_owned(),
            log: log.map(Path::to_owned),
            child,
        });
        Ok(pid)
    }

    /// Adds an already started child.
    pub fn adopt(&mut self, name: &str, child: Child, log: Option<&Path>) {
        self.running.push(Running {
            name: name.to_owned(),
            log: log.map(Path::to_owned),
            child,
        });
    }

    /// An error naming the first child that has exited, with the end of its log.
    pub fn ensure_alive(&mut self) -> anyhow::Result<()> {
        for running in &mut self.running {
            if let Some(status) = running.child.try_wait()? {
                let tail = running.log.as_deref().map(log_tail).unwrap_or_default();
                anyhow::bail!("{} exited ({status}){tail}", running.name);
            }
        }
        Ok(())
    }

    /// Whether the child with `pid` has exited; its status once it has.
    pub fn exited(&mut self, pid: u32) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let running = self
            .running
            .iter_mut()
            .find(|r| r.child.id() == pid)
            .context("no such child")?;
        Ok(running.child.try_wait()?)
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for running in &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// The last lines of a log, as `":\n…"`, or nothing when it is empty or unreadable.
pub fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(15)..];
    format!(" — end of {}:\n{}", log.display(), tail.join("\n"))
}

/// The warnings, errors and panics a product process logged (`import` also writes progress
/// lines there, which are left out).
pub fn logged_lines(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|line| {
            ["WARN", "ERROR", "panicked"]
                .iter()
                .any(|w| line.contains(w))
        })
        .map(str::to_owned)
        .collect()
}

/// The process's peak resident set size so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .with_context(|| format!("no VmHWM in /proc/{pid}/status (has it exited?)"))
}

/// A TCP port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// This process's effective user id.
pub fn effective_uid() -> anyhow::Result<u32> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse().ok())
        .context("no Uid in /proc/self/status")
}

/// The TCP ports the process listens on (from its socket inodes and `/proc/PID/net/tcp{,6}`).
pub fn listening_ports(pid: u32) -> anyhow::Result<Vec<u16>> {
    let inodes = socket_inodes(pid)?;
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let listening = fields.get(3) == Some(&"0A");
            let ours = fields
                .get(9)
                .and_then(|i| i.parse::<u64>().ok())
                .is_some_and(|i| inodes.contains(&i));
            let port = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            if let (true, true, Some(port)) = (listening, ours, port) {
                ports.push(port);
            }
        }
    }
    Ok(ports)
}

/// The inodes of the process's open sockets.
fn socket_inodes(pid: u32) -> anyhow::Result<HashSet<u64>> {
    let dir = format!("/proc/{pid}/fd");
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        // A descriptor closed meanwhile has no link any more: skip it.
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(inode) = target
            .strip_prefix("socket:[")
            .and_then(|rest| rest.strip_suffix(']'))
            .and_then(|i| i.parse().ok())
        {
            inodes.insert(inode);
        }
    }
    Ok(inodes)
}

/// Waits until `GET url` answers 200, failing if a child exits or it takes too long.
pub async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    children: &mut Children,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        if let Ok(response) = client.get(url).send().await
            && response.status() == reqwest::StatusCode::OK
        {
            return Ok(());
        }
        children.ensure_alive()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{url} not ready within {START_PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the process listens on a port (an `invite-worker` binds `METRICS_ADDR` once its
/// database and queue answer) and returns it.
pub async fn wait_listening(pid: u32, children: &mut Children) -> anyhow::Result<u16> {
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        if let Some(&port) = listening_ports(pid)?.first() {
            return Ok(port);
        }
        children.ensure_alive()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "process {pid} did not listen within {START_PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
