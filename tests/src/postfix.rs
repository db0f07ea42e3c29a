//! A real MTA for tests: Debian's Postfix, run as root from a configuration of its own in a
//! scratch folder, listening on a free port of 127.0.0.1 and never touching the system's mail
//! setup. It delivers the test domains into a Maildir in the same folder (the `virtual` agent,
//! which writes `Delivered-To` with the envelope recipient) and sends nothing anywhere else;
//! what it logs goes to a file there too (`maillog_file`, written by `postlogd`).
//!
//! Started with a bounce domain ([`Postfix::start_bouncing`]), it delivers only that domain's
//! bounce mailbox (`bounces@DOMAIN`, and `bounces+…@DOMAIN` through the `+` delimiter) and
//! accepts mail for unknown users of the test domains, then returns it to its envelope sender
//! in a delivery status notification of its own: a VERP return path at the bounce domain puts
//! Postfix's DSN into the Maildir, which `invite_tests::dovecot` serves over IMAP. Started with
//! mailboxes as well ([`Postfix::start_delivering`]), it delivers those addresses each into a
//! Maildir of its own, as a recipient's server would, and bounces the rest.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::app::free_port;
use crate::smtp::ReceivedMessage;

/// Postfix's control command.
pub const POSTFIX: &str = "/usr/sbin/postfix";

/// The domains the instance delivers into its Maildir: the one of an ASCII address and the
/// A-label of `bücher.de`.
pub const DOMAINS: [&str; 2] = ["example.com", "xn--bcher-kva.de"];

/// How long starting Postfix or waiting for a delivery may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// The unprivileged owner of delivered mail (`nobody`): the `virtual` agent refuses root.
const MAILBOX_ID: u32 = 65534;

/// Whether this process can run Postfix (it starts as root and drops to its own user). When it
/// cannot, prints why, so a skipped test says so instead of passing silently.
pub fn runnable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !root {
        println!("SKIPPED: Postfix starts as root (`postfix -c DIR start`); run the test as root");
    }
    root
}

/// A running Postfix instance, stopped by [`Postfix::stop`] or, failing that, when dropped.
pub struct Postfix {
    dir: TempDir,
    port: u16,
    running: bool,
}

/// The local part of the bounce mailbox of [`Postfix::start_bouncing`].
pub const BOUNCE_LOCAL: &str = "bounces";

/// The folder of the mail root holding the Maildirs of [`Postfix::start_delivering`]'s mailboxes.
const PEOPLE: &str = "people";

impl Postfix {
    /// Writes a configuration into a new scratch folder, starts Postfix from it (SMTPUTF8 offered
    /// or not) and waits until its port accepts connections.
    pub fn start(smtputf8: bool) -> Postfix {
        Postfix::start_with(smtputf8, None, &[])
    }

    /// Starts Postfix (SMTPUTF8 offered) delivering only `bounces@bounce_domain` into its
    /// Maildir, and bouncing mail to every other user of its domains with a DSN of its own.
    pub fn start_bouncing(bounce_domain: &str) -> Postfix {
        Postfix::start_with(true, Some(bounce_domain), &[])
    }

    /// As [`Postfix::start_bouncing`], and delivers each of `mailboxes` (addresses of its
    /// domains) into a Maildir of its own ([`Postfix::delivered_to`]).
    pub fn start_delivering(bounce_domain: &str, mailboxes: &[&str]) -> Postfix {
        Postfix::start_with(true, Some(bounce_domain), mailboxes)
    }

    fn start_with(smtputf8: bool, bounce_domain: Option<&str>, mailboxes: &[&str]) -> Postfix {
        assert!(
            Path::new(POSTFIX).is_file(),
            "{POSTFIX} is missing: install Debian's postfix (scripts/test does)"
        );
        let dir = tempfile::Builder::new()
            .prefix("postfix-")
            .tempdir()
            .expect("a scratch folder");
        let mut postfix = Postfix {
            dir,
            port: free_port(),
            running: false,
        };
        postfix.write_config(smtputf8, bounce_domain, mailboxes);
        postfix.control("start");
        postfix.running = true;
        postfix.wait_accepting();
        postfix
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The folder holding the Maildir (`Maildir/`), owned by `nobody`.
    pub fn mail_root(&self) -> PathBuf {
        self.path("mail")
    }

    /// What Postfix has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("maillog")).unwrap_or_default()
    }

    /// Waits until `count` messages are in the Maildir, and returns them with the envelope
    /// recipient (`Delivered-To`) and sender (`Return-Path`) the delivery agent wrote, sorted by
    /// recipient.
    pub fn delivered(&self, count: usize) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let messages = self.maildir();
            if messages.len() >= count {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} messages delivered; Postfix logged:\n{}",
                messages.len(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// How many messages the Maildir of `mailbox` (one of [`Postfix::start_delivering`]'s)
    /// holds.
    pub fn delivered_to(&self, mailbox: &str) -> usize {
        let new = self.mail_root().join(PEOPLE).join(mailbox).join("new");
        std::fs::read_dir(new).map_or(0, Iterator::count)
    }

    /// Stops Postfix (`postfix -c DIR stop`), asserting it stopped.
    pub fn stop(mut self) {
        self.control("stop");
        self.running = false;
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `main.cf` and `master.cf` in `etc/`, and the folders they name.
    fn write_config(&self, smtputf8: bool, bounce_domain: Option<&str>, mailboxes: &[&str]) {
        let root = self.dir.path();
        // The delivery agent runs as `nobody` and must reach the Maildir below.
        set_mode(root, 0o755);
        for sub in ["etc", "queue", "data", "mail"] {
            std::fs::create_dir(root.join(sub)).expect("a configuration folder");
        }
        chown(&self.path("data"), "postfix:");
        chown(&self.path("mail"), &format!("{MAILBOX_ID}:{MAILBOX_ID}"));
        std::fs::write(
            self.path("etc/main.cf"),
            main_cf(root, smtputf8, bounce_domain, mailboxes),
        )
        .expect("main.cf");
        std::fs::write(self.path("etc/master.cf"), master_cf(self.port)).expect("master.cf");
    }

    /// Runs `postfix -c DIR ACTION`, asserting it succeeded.
    fn control(&self, action: &str) {
        let output = self.postfix(action).output().expect("postfix runs");
        assert!(
            output.status.success(),
            "postfix {action} failed ({}): {}{}\nPostfix logged:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    fn postfix(&self, action: &str) -> Command {
        let mut command = Command::new(POSTFIX);
        command
            .arg("-c")
            .arg(self.path("etc"))
            .arg(action)
            .stdin(Stdio::null());
        command
    }

    /// Polls the port until it accepts a connection.
    fn wait_accepting(&self) {
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix is not listening on {}; it logged:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The messages delivered so far, sorted by recipient.
    fn maildir(&self) -> Vec<ReceivedMessage> {
        let Ok(entries) = std::fs::read_dir(self.path("mail/Maildir/new")) else {
            return Vec::new();
        };
        let mut messages: Vec<ReceivedMessage> = entries
            .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path()).ok())
            .map(|raw| delivered_message(&raw))
            .collect();
        messages.sort_by(|a, b| a.rcpt_to.cmp(&b.rcpt_to));
        messages
    }

    /// The master's process id, from its pid file.
    fn master_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.path("queue/pid/master.pid")).ok()?;
        Some(pid.trim().to_owned()).filter(|pid| !pid.is_empty())
    }
}

impl Drop for Postfix {
    /// A test that failed half-way leaves no Postfix behind: stop it, and kill its master if it
    /// is still there.
    fn drop(&mut self) {
        if !self.running {
            return;
        }
        let _ = self.postfix("stop").output();
        if let Some(pid) = self.master_pid() {
            let _ = Command::new("kill").args(["-KILL", &pid]).output();
        }
    }
}

/// A Maildir file as the received message: `Return-Path` as the sender, `Delivered-To` as the
/// recipient, lines ending in CRLF.
fn delivered_message(raw: &str) -> ReceivedMessage {
    let header = |name: &str| {
        raw.lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(name))
            .map(|value| value.trim().trim_matches(['<', '>']).to_owned())
    };
    ReceivedMessage {
        mail_from: header("Return-Path:").unwrap_or_default(),
        rcpt_to: header("Delivered-To:").into_iter().collect(),
        data: raw.replace("\r\n", "\n").replace('\n', "\r\n"),
    }
}

/// The instance's `main.cf`: every path in `root`, listening on loopback only, delivering the
/// test domains (or only the bounce mailbox, and `people`, each into `root/mail/people/ADDRESS/`)
/// into `root/mail/Maildir/` and refusing to send anything elsewhere.
fn main_cf(root: &Path, smtputf8: bool, bounce_domain: Option<&str>, people: &[&str]) -> String {
    let yes_no = if smtputf8 { "yes" } else { "no" };
    let mut domains = DOMAINS.join(", ");
    let mut mailboxes = "static:Maildir/".to_owned();
    let mut bouncing = String::new();
    if let Some(domain) = bounce_domain {
        domains = format!("{domains}, {domain}");
        let own: String = people
            .iter()
            .map(|address| format!(", {address}={PEOPLE}/{address}/"))
            .collect();
        mailboxes = format!("inline:{{ {BOUNCE_LOCAL}@{domain}=Maildir/{own} }}");
        // Unknown users are accepted, then bounced by the `virtual` agent ("unknown user").
        bouncing = "recipient_delimiter = +\nsmtpd_reject_unlisted_recipient = no\n".to_owned();
    }
    let root = root.display();
    format!(
        "compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mta.invalid
mydomain = invalid
mydestination =
relay_domains =
relayhost =
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
local_recipient_maps =
smtpd_peername_lookup = no
biff = no
smtputf8_enable = {yes_no}
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = {mailboxes}
virtual_uid_maps = static:{MAILBOX_ID}
virtual_gid_maps = static:{MAILBOX_ID}
default_transport = error:this instance delivers to its test domains only
{bouncing}"
    )
}

/// The instance's `master.cf`: one `smtpd` on `127.0.0.1:port`, the services a delivery needs,
/// none chrooted, and `postlogd` for `maillog_file`.
fn master_cf(port: u16) -> String {
    format!(
        "127.0.0.1:{port} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000 0 flush
proxymap unix - - n - - proxymap
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
virtual unix - n n - - virtual
postlog unix-dgram n - n - 1 postlogd
"
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("the scratch folder's mode");
}

fn chown(path: &Path, owner: &str) {
    let status = Command::new("chown")
        .arg(owner)
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown {owner} {}", path.display());
}
