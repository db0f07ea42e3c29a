//! A real IMAP server for tests: Debian's Dovecot 2.3, run as root from a configuration of its
//! own in a scratch folder, listening on a free port of 127.0.0.1 (plain text, no TLS), with one
//! user from a passwd-file there and mail in a Maildir owned by `nobody`. It never reads or
//! touches `/etc/dovecot`, and its log goes to a file in the same folder.
//!
//! The Maildir may be Postfix's (`Postfix::mail_root`), so that what Postfix delivers is read
//! over IMAP.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::net::TcpStream;

use crate::app::free_port;

/// Dovecot's master binary.
pub const DOVECOT: &str = "/usr/sbin/dovecot";

/// The one user, and its password.
pub const USER: &str = "bounces";
const PASSWORD: &str = "test-password";

/// How long starting or stopping Dovecot may take before a test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// The owner of the mail (`nobody`), as Postfix's `virtual` agent writes it.
const MAILBOX_ID: u32 = 65534;

/// An IMAP session of the test's own, to look at or add to the folders.
pub type Session = async_imap::Session<TcpStream>;

/// Whether this process can run Dovecot (installed, and root, since it drops to `nobody` for
/// the mail). When it cannot, prints why, so a skipped test says so.
pub fn runnable() -> bool {
    if !Path::new(DOVECOT).is_file() {
        println!(
            "SKIPPED: {DOVECOT} is missing: install Debian's dovecot-imapd (scripts/test does)"
        );
        return false;
    }
    crate::postfix::runnable()
}

/// A running Dovecot, stopped when dropped.
pub struct Dovecot {
    dir: TempDir,
    port: u16,
}

impl Dovecot {
    /// Starts Dovecot on the Maildir in `mail_root` (`mail_root/Maildir`), or on one of its own,
    /// and waits until its port accepts connections.
    pub fn start(mail_root: Option<&Path>) -> Dovecot {
        let dir = tempfile::Builder::new()
            .prefix("dovecot-")
            .tempdir()
            .expect("a scratch folder");
        let dovecot = Dovecot {
            dir,
            port: free_port(),
        };
        let mail_root = mail_root.map_or_else(|| dovecot.own_mail_root(), Path::to_path_buf);
        dovecot.write_config(&mail_root);
        dovecot.control(&[]);
        dovecot.wait_accepting();
        dovecot
    }

    /// `imap://bounces:…@127.0.0.1:PORT/INBOX?tls=none`, as `BOUNCE_IMAP_URL` takes it.
    pub fn url(&self) -> String {
        format!(
            "imap://{USER}:{PASSWORD}@127.0.0.1:{}/INBOX?tls=none",
            self.port
        )
    }

    /// What Dovecot has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.path("dovecot.log")).unwrap_or_default()
    }

    /// A signed-in session of the test's own.
    pub async fn session(&self) -> Session {
        let tcp = TcpStream::connect(("127.0.0.1", self.port))
            .await
            .expect("Dovecot accepts");
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .expect("a greeting")
            .expect("a greeting");
        client
            .login(USER, PASSWORD)
            .await
            .map_err(|(error, _)| error)
            .expect("signed in")
    }

    /// Adds a message to a folder (as a mail server delivering it would).
    pub async fn append(&self, folder: &str, raw: &[u8]) {
        let mut session = self.session().await;
        session
            .append(folder, None, None, raw)
            .await
            .expect("APPEND");
        session.logout().await.expect("LOGOUT");
    }

    /// How many messages a folder holds (0 when it does not exist).
    pub async fn count(&self, folder: &str) -> u32 {
        let mut session = self.session().await;
        let exists = session.examine(folder).await.map_or(0, |m| m.exists);
        session.logout().await.expect("LOGOUT");
        exists
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A folder of its own for the Maildir, owned by the mail's user.
    fn own_mail_root(&self) -> PathBuf {
        let root = self.path("mail");
        std::fs::create_dir(&root).expect("the mail folder");
        chown(&root);
        root
    }

    /// `dovecot.conf` and the passwd-file, in the scratch folder.
    fn write_config(&self, mail_root: &Path) {
        // Dovecot's unprivileged processes read the passwd-file and reach the sockets below.
        set_mode(self.dir.path(), 0o755);
        let users = self.path("users");
        std::fs::write(&users, format!("{USER}:{{PLAIN}}{PASSWORD}::::::\n")).expect("users");
        set_mode(&users, 0o644);
        let config = dovecot_conf(self.dir.path(), mail_root, self.port);
        std::fs::write(self.path("dovecot.conf"), config).expect("dovecot.conf");
    }

    /// Runs `dovecot -c DIR/dovecot.conf ARGS…` (no argument starts it), asserting it succeeded.
    /// Its output goes to a file: the daemon it starts keeps inherited pipes open for ever.
    fn control(&self, args: &[&str]) {
        let output = self.path("control.out");
        let file = std::fs::File::create(&output).expect("an output file");
        let status = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("the output file"))
            .stderr(file)
            .status()
            .expect("dovecot runs");
        assert!(
            status.success(),
            "dovecot {args:?} failed ({status}): {}\nDovecot logged:\n{}",
            std::fs::read_to_string(&output).unwrap_or_default(),
            self.log()
        );
    }

    /// Polls the port until it accepts a connection.
    fn wait_accepting(&self) {
        let deadline = Instant::now() + DEADLINE;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Dovecot is not listening on {}; it logged:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's process id, from its pid file.
    fn master_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.path("run/master.pid")).ok()?;
        Some(pid.trim().to_owned()).filter(|pid| !pid.is_empty())
    }
}

impl Drop for Dovecot {
    /// Stops Dovecot (`dovecot stop`), and kills its master if it is still there.
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = Command::new(DOVECOT)
            .arg("-c")
            .arg(self.path("dovecot.conf"))
            .arg("stop")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(pid) = pid {
            let deadline = Instant::now() + DEADLINE;
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = Command::new("kill").args(["-KILL", &pid]).output();
        }
    }
}

/// The instance's `dovecot.conf` (Dovecot 2.3): every path in `dir`, IMAP only, on
/// `127.0.0.1:port` in plain text, one passwd-file user whose mail is `mail_root/Maildir`.
fn dovecot_conf(dir: &Path, mail_root: &Path, port: u16) -> String {
    let dir = dir.display();
    let mail = mail_root.display();
    format!(
        "base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/Maildir
mail_uid = {MAILBOX_ID}
mail_gid = {MAILBOX_ID}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users
}}
userdb {{
  driver = static
  args = uid={MAILBOX_ID} gid={MAILBOX_ID} home={mail}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"
    )
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("the scratch folder's mode");
}

fn chown(path: &Path) {
    let owner = format!("{MAILBOX_ID}:{MAILBOX_ID}");
    let status = Command::new("chown")
        .arg(&owner)
        .arg(path)
        .status()
        .expect("chown runs");
    assert!(status.success(), "chown {owner} {}", path.display());
}
