//! What the bench needs before it runs: postfix's test tools, and release builds of the binaries.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context as _;

use crate::procs;
use crate::sink::{SMTP_SINK, SMTP_SOURCE};

/// Debian's answer that installs postfix without configuring a mail system.
const DEBCONF: &str = "postfix postfix/main_mailer_type select No configuration\n";

/// The binaries under test.
pub struct Binaries {
    /// `invite-api`.
    pub api: PathBuf,
    /// `invite-worker`.
    pub worker: PathBuf,
}

/// `cargo build --release -p invite-api -p invite-worker` in this workspace, then the two
/// binaries next to this executable.
pub fn build_binaries() -> anyhow::Result<Binaries> {
    anyhow::ensure!(
        !cfg!(debug_assertions),
        "run the bench as a release build (`cargo run --release -p invite-tests --bin bench`): \
         it builds and runs the release binaries"
    );
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the workspace folder")?;
    // A target folder of their own: built beside the bench, the two binaries get the features
    // unified with the test crate's dependencies, so each `cargo run` of the bench and each build
    // here rebuilt the shared crates for the other (about 2.5 minutes each time).
    let exe = std::env::current_exe().context("finding the bench's executable")?;
    let target = exe
        .parent()
        .and_then(Path::parent)
        .context("the bench's target folder")?
        .join("bench-product");
    println!(
        "building invite-api and invite-worker (cargo build --release --target-dir {}) …",
        target.display()
    );
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "-p",
            "invite-api",
            "-p",
            "invite-worker",
            "--target-dir",
        ])
        .arg(&target)
        .current_dir(workspace)
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("running {}", cargo.to_string_lossy()))?;
    anyhow::ensure!(status.success(), "cargo build failed ({status})");
    let dir = target.join("release");
    let bins = Binaries {
        api: dir.join("invite-api"),
        worker: dir.join("invite-worker"),
    };
    for bin in [&bins.api, &bins.worker] {
        anyhow::ensure!(bin.is_file(), "{} was not built", bin.display());
    }
    Ok(bins)
}

/// Makes sure smtp-sink and smtp-source are there: as root with apt-get, installs Debian's
/// `postfix`; otherwise says how to.
pub fn ensure_postfix() -> anyhow::Result<()> {
    if postfix_tools_present() {
        return Ok(());
    }
    let can_install = procs::effective_uid()? == 0 && Path::new("/usr/bin/apt-get").exists();
    anyhow::ensure!(
        can_install,
        "the bench needs postfix's {SMTP_SINK} and {SMTP_SOURCE}; install them, e.g. on Debian/Ubuntu: \
         `echo '{}' | sudo debconf-set-selections && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y postfix`",
        DEBCONF.trim_end()
    );
    println!("installing postfix for smtp-sink and smtp-source …");
    preseed_debconf()?;
    if !apt_install_postfix()? {
        // The package lists may be missing or stale.
        run_quietly(Command::new("apt-get").arg("update"))?;
        anyhow::ensure!(apt_install_postfix()?, "apt-get install postfix failed");
    }
    anyhow::ensure!(
        postfix_tools_present(),
        "postfix is installed but {SMTP_SINK} or {SMTP_SOURCE} is missing"
    );
    Ok(())
}

fn postfix_tools_present() -> bool {
    Path::new(SMTP_SINK).is_file() && Path::new(SMTP_SOURCE).is_file()
}

/// Answers postfix's install question ahead (`debconf-set-selections`).
fn preseed_debconf() -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut child = Command::new("debconf-set-selections")
        .stdin(Stdio::piped())
        .spawn()
        .context("running debconf-set-selections")?;
    child
        .stdin
        .take()
        .context("debconf-set-selections' stdin")?
        .write_all(DEBCONF.as_bytes())?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "debconf-set-selections failed ({status})");
    Ok(())
}

/// `apt-get install -y postfix`, non-interactively; whether it succeeded.
fn apt_install_postfix() -> anyhow::Result<bool> {
    let status = Command::new("apt-get")
        .args(["install", "-y", "postfix"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

fn run_quietly(command: &mut Command) -> anyhow::Result<()> {
    let status = command.stdin(Stdio::null()).status()?;
    anyhow::ensure!(status.success(), "{command:?} failed ({status})");
    Ok(())
}
