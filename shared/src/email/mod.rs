//! The mailer: renders invitation emails and sends them over SMTP or into an outbox folder.
//!
//! Every send ends in a [`SendReceipt`] or a [`SendError`]: `Transient` (this message: retry it
//! later), `Unavailable` (the server itself: pause all sending, the message was not delivered) or
//! `Permanent` (mark the send `failed` and keep the server's reply), so the retry policy lives in
//! the type, not in string matching on replies.

mod smtp_sender;
mod template;

use std::{
    error::Error as _,
    fmt,
    io::Write as _,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use lettre::{
    Address, AsyncSmtpTransport, Message, Tokio1Executor,
    address::Envelope,
    message::{Mailbox, MultiPart},
    transport::smtp::{self, response::Response},
};

pub use smtp_sender::{NO_SMTPUTF8, SmtpSender};
pub use template::{InvitationEmail, Rendered};

use crate::ids::DeliveryId;

/// Mode of an outbox folder the mailer creates: its owner's only.
const OUTBOX_DIR_MODE: u32 = 0o700;

/// Mode of every outbox file, the temporary one included: each holds a live invitation link.
const OUTBOX_FILE_MODE: u32 = 0o600;

/// Longest reply kept on a receipt or error, so one chatty server cannot bloat the members table.
const MAX_REPLY_CHARS: usize = 500;

/// Where emails go: one type whatever the transport, chosen once at start-up.
pub enum Mailer {
    /// SMTP over reused connections, from `SMTP_URL`.
    Smtp(Box<SmtpSender>),
    /// Writes each message to `<dir>/<delivery id>.eml` (the embedded default), so sending the
    /// same delivery again replaces its file instead of adding one.
    Outbox(PathBuf),
    /// Keeps every message in memory; for tests that inspect what was sent.
    Memory(Arc<Mutex<Vec<Message>>>),
}

/// Proof that a message left: the SMTP server's reply, or where the outbox wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendReceipt {
    /// The server accepted the message, e.g. "250 2.0.0 OK queued as 4B2F1".
    Smtp {
        /// The server's reply to the end of DATA, truncated to 500 characters.
        reply: String,
    },
    /// The message was written to this `.eml` file.
    Outbox {
        /// Full path of the written file.
        path: PathBuf,
    },
    /// The message was kept in memory at this position.
    Memory {
        /// Index into the memory transport's vector.
        index: usize,
    },
}

/// Why a send failed, split by what the caller should do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth retrying this message later: a 4xx reply about it (e.g. `451`, `450`).
    #[error("transient send failure: {reply}")]
    Transient {
        /// The server's reply, truncated to 500 characters.
        reply: String,
    },
    /// The server, not this message, is the problem and the message was not delivered: `421`
    /// (service not available), `452` (insufficient storage), a refused or broken connection, TLS
    /// failure, a timeout, an outbox I/O error. Sending as a whole should pause.
    #[error("mail server unavailable: {reply}")]
    Unavailable {
        /// The server's reply or the error's description, truncated to 500 characters.
        reply: String,
    },
    /// Retrying cannot help: the server answered 5xx.
    #[error("permanent send failure: {reply}")]
    Permanent {
        /// The server's reply, e.g. "550 5.1.1 no such user", truncated to 500 characters.
        reply: String,
    },
}

/// Why the mailer or a message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    /// `SMTP_URL` is not a usable `smtp://` or `smtps://` URL.
    #[error("invalid SMTP URL {endpoint}")]
    SmtpUrl {
        /// The URL with any credentials removed.
        endpoint: String,
        /// lettre's parse error.
        source: smtp::Error,
    },
    /// `SMTP_URL` passed lettre's parser but not ours.
    #[error("invalid SMTP URL {endpoint}: {reason}")]
    SmtpEndpoint {
        /// The URL with any credentials removed.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The outbox folder could not be created.
    #[error("cannot create the outbox folder {}", path.display())]
    OutboxDir {
        /// The folder that was asked for.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The invitee's address is not a valid email address (the address is not repeated here).
    #[error("invalid recipient address")]
    Recipient(#[source] lettre::address::AddressError),
    /// The return path made for the email is not a valid address.
    #[error("invalid return path")]
    ReturnPath(#[source] lettre::address::AddressError),
    /// lettre refused to assemble the message.
    #[error("cannot build the message")]
    Message(#[source] lettre::error::Error),
}

impl Mailer {
    /// An SMTP mailer for `smtp://[user:pass@]host[:port][?tls=required|opportunistic]` or
    /// `smtps://…`, keeping up to `pool_size` connections for reuse; `timeout` bounds each whole
    /// send, connecting included.
    pub fn smtp(url: &str, pool_size: u32, timeout: Duration) -> Result<Mailer, MailerError> {
        let endpoint = describe_smtp_url(url);
        // lettre's parser is the reference for what an SMTP URL may say.
        AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|source| {
            MailerError::SmtpUrl {
                endpoint: endpoint.clone(),
                source,
            }
        })?;
        let parsed =
            smtp_sender::Endpoint::parse(url).map_err(|reason| MailerError::SmtpEndpoint {
                endpoint: endpoint.clone(),
                reason,
            })?;
        Ok(Mailer::Smtp(Box::new(SmtpSender::new(
            parsed,
            pool_size.max(1) as usize,
            timeout,
            endpoint,
        ))))
    }

    /// An outbox mailer writing `.eml` files into `dir`, which is created if missing, readable by
    /// its owner only (mode 0700): each file holds a live invitation link.
    pub fn outbox(dir: PathBuf) -> Result<Mailer, MailerError> {
        // Created at start-up, so that a folder that cannot be made fails there, not on first send.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(OUTBOX_DIR_MODE)
            .create(&dir)
            .map_err(|source| MailerError::OutboxDir {
                path: dir.clone(),
                source,
            })?;
        Ok(Mailer::Outbox(dir))
    }

    /// An in-memory mailer and a handle on the messages it will record.
    pub fn memory() -> (Mailer, Arc<Mutex<Vec<Message>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        (Mailer::Memory(Arc::clone(&sent)), sent)
    }

    /// Sends the message of `delivery`, classifying any failure.
    pub async fn send(
        &self,
        delivery: DeliveryId,
        message: &Message,
    ) -> Result<SendReceipt, SendError> {
        match self {
            Mailer::Smtp(sender) => sender.send(message.envelope(), &message.formatted()).await,
            Mailer::Outbox(dir) => write_eml(dir, delivery, message)
                .await
                // A full disk or a permission problem stops every send, and may be fixed.
                .map_err(|err| SendError::Unavailable {
                    reply: truncate(error_chain(&err)),
                }),
            Mailer::Memory(sent) => {
                let mut sent = sent.lock().unwrap_or_else(PoisonError::into_inner);
                sent.push(message.clone());
                Ok(SendReceipt::Memory {
                    index: sent.len() - 1,
                })
            }
        }
    }

    /// One line for the start-up log, without credentials: "SMTP smtp://host:port" or "outbox /path".
    pub fn describe(&self) -> String {
        match self {
            Mailer::Smtp(sender) => format!("SMTP {}", sender.described),
            Mailer::Outbox(dir) => format!("outbox {}", dir.display()),
            Mailer::Memory(_) => "memory".to_owned(),
        }
    }
}

impl fmt::Debug for Mailer {
    // By hand, so that no transport internals (credentials included) can end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Mailer").field(&self.describe()).finish()
    }
}

impl SendError {
    /// The server's reply or the error's description.
    pub fn reply(&self) -> &str {
        match self {
            SendError::Transient { reply }
            | SendError::Unavailable { reply }
            | SendError::Permanent { reply } => reply,
        }
    }

    /// Whether retrying is pointless.
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent { .. })
    }
}

impl fmt::Display for SendReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendReceipt::Smtp { reply } => f.write_str(reply),
            SendReceipt::Outbox { path } => write!(f, "written to {}", path.display()),
            SendReceipt::Memory { index } => write!(f, "kept in memory as message {index}"),
        }
    }
}

/// Writes the message to `<dir>/<delivery>.eml` through a temporary file and a rename, so the
/// folder never shows half a message and a repeat replaces the earlier file. Both files are
/// readable by their owner only (mode 0600).
async fn write_eml(
    dir: &Path,
    delivery: DeliveryId,
    message: &Message,
) -> std::io::Result<SendReceipt> {
    let path = dir.join(format!("{delivery}.eml"));
    let partial = dir.join(format!(".{delivery}.eml.partial"));
    let bytes = message.formatted();
    let (from, to) = (partial.clone(), path.clone());
    tokio::task::spawn_blocking(move || {
        write_private(&from, &bytes)?;
        std::fs::rename(&from, &to)
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(SendReceipt::Outbox { path })
}

/// Writes `bytes` to `path` with mode 0600, also when a file left there by a crash had another.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(OUTBOX_FILE_MODE)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(OUTBOX_FILE_MODE))?;
    file.write_all(bytes)
}

/// Assembles the invitation as multipart/alternative (text, then HTML) from `from` to the invitee,
/// with `Message-ID: <{message_id}@{the sender's domain}>`. A `return_path` (the email's own
/// VERP address) is the SMTP envelope sender, where reports of its delivery go, while `From:`
/// stays `from`; without one the envelope sender is `from`'s address.
pub fn build_message(
    from: &Mailbox,
    email: &InvitationEmail,
    message_id: &str,
    return_path: Option<&str>,
) -> Result<Message, MailerError> {
    let address: Address = email.to.parse().map_err(MailerError::Recipient)?;
    let envelope = match return_path {
        Some(path) => {
            let sender: Address = path.parse().map_err(MailerError::ReturnPath)?;
            Some(Envelope::new(Some(sender), vec![address.clone()]).map_err(MailerError::Message)?)
        }
        None => None,
    };
    let name = email
        .first_name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    let rendered = email.render();
    let mut builder = Message::builder();
    if let Some(envelope) = envelope {
        builder = builder.envelope(envelope);
    }
    builder
        // Fixed per delivery, so a send repeated after a crash is recognisably the same message.
        .message_id(Some(format!("<{message_id}@{}>", from.email.domain())))
        .from(from.clone())
        .to(Mailbox::new(name, address))
        .subject(rendered.subject)
        .multipart(MultiPart::alternative_plain_html(
            crlf(rendered.text),
            crlf(rendered.html),
        ))
        .map_err(MailerError::Message)
}

/// `text` with a CR before every LF that lacks one, as a message's lines end. lettre would do the
/// same, but one `String::insert` at a time, each moving the rest of the body: 2% of the
/// machine's CPU while emails are being sent (`perf`, 100,000 emails).
fn crlf(text: String) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut rest = text.as_str();
    while let Some(at) = rest.find('\n') {
        let line = &rest[..at];
        out.push_str(line);
        if !line.ends_with('\r') {
            out.push('\r');
        }
        out.push('\n');
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
    out
}

/// Only an explicit 5xx is permanent. `421` and `452` say the server cannot take mail now, and
/// connection, TLS, protocol and client errors carry no verdict on the message: the server is
/// unavailable. Other 4xx replies are about this message.
fn classify(err: &smtp::Error) -> SendError {
    let reply = truncate(match (err.status(), err.source()) {
        // lettre's own Display would say "permanent error (550): …"; keep the server's words.
        (Some(code), Some(text)) => format!("{code} {text}"),
        (Some(code), None) => code.to_string(),
        _ => error_chain(err),
    });
    let code = err.status().map(|code| code.to_string());
    match code.as_deref() {
        _ if err.is_permanent() => SendError::Permanent { reply },
        Some("421" | "452") | None => SendError::Unavailable { reply },
        Some(_) => SendError::Transient { reply },
    }
}

fn reply_text(response: &Response) -> String {
    let lines: Vec<&str> = response.message().collect();
    format!("{} {}", response.code(), lines.join(" "))
        .trim_end()
        .to_owned()
}

/// lettre's errors print only their first cause, and the useful part (refused, reset, TLS) is
/// often deeper.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn truncate(mut text: String) -> String {
    if let Some((cut, _)) = text.char_indices().nth(MAX_REPLY_CHARS) {
        text.truncate(cut);
    }
    text
}

/// `scheme://host:port` plus the STARTTLS mode, with credentials dropped and lettre's default
/// ports filled in, so the log shows where mail really goes.
fn describe_smtp_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(unparseable URL)".to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host_port)| host_port);
    let tls = tail
        .split_once('?')
        .and_then(|(_, query)| query.split('&').find_map(|pair| pair.strip_prefix("tls=")));

    let after_ipv6_brackets = host_port.rfind(']').map_or(0, |i| i + 1);
    let has_port = host_port[after_ipv6_brackets..].contains(':');
    let default_port = match (scheme, tls) {
        ("smtps", _) => 465,
        (_, Some(_)) => 587,
        _ => 25,
    };
    let address = if has_port {
        host_port.to_owned()
    } else {
        format!("{host_port}:{default_port}")
    };
    match (scheme, tls) {
        ("smtps", _) => format!("{scheme}://{address}"),
        (_, Some("required")) => format!("{scheme}://{address} (STARTTLS required)"),
        (_, Some("opportunistic")) => format!("{scheme}://{address} (STARTTLS if offered)"),
        _ => format!("{scheme}://{address}"),
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicU32, Ordering},
        time::{SystemTime, UNIX_EPOCH},
    };

    use chrono::{TimeZone, Utc};
    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
        net::TcpListener,
    };

    use super::*;
    use crate::status::InvitationKind;

    const LINK: &str = "https://invite.example.com/invitations/abc_DEF-123";

    fn invitation(to: &str) -> InvitationEmail {
        InvitationEmail {
            kind: InvitationKind::Invitation,
            workspace: "Acme Research".to_owned(),
            inviter: "Grace Hopper".to_owned(),
            first_name: Some("Ada".to_owned()),
            to: to.to_owned(),
            link: LINK.to_owned(),
            expires_at: Utc.with_ymd_and_hms(2026, 12, 3, 15, 4, 0).unwrap(),
        }
    }

    fn message(to: &str) -> Message {
        let from: Mailbox = "Bulk Invite <no-reply@example.com>".parse().unwrap();
        build_message(&from, &invitation(to), "0123abcd", None).unwrap()
    }

    /// A fresh folder per test so parallel tests never see each other's files.
    fn unique_temp_dir(label: &str) -> PathBuf {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        std::env::temp_dir().join(format!(
            "bulk-invite-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
    }

    /// A scripted SMTP server on 127.0.0.1, so lettre's real client code is what gets classified.
    async fn fake_smtp(rcpt_reply: &'static str, end_of_data_reply: &'static str) -> String {
        fake_smtp_counting(rcpt_reply, end_of_data_reply).await.0
    }

    /// A fake SMTP server, and how many connections it has accepted.
    async fn fake_smtp_counting(
        rcpt_reply: &'static str,
        end_of_data_reply: &'static str,
    ) -> (String, Arc<AtomicU32>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicU32::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    let _ = write.write_all(b"220 fake.test ESMTP\r\n").await;
                    let mut in_data = false;
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply = if in_data {
                            if line != "." {
                                continue;
                            }
                            in_data = false;
                            end_of_data_reply
                        } else {
                            let command = line.get(..4).unwrap_or("").to_ascii_uppercase();
                            match command.as_str() {
                                "EHLO" => "250-fake.test\r\n250 8BITMIME",
                                "RCPT" => rcpt_reply,
                                "DATA" => {
                                    in_data = true;
                                    "354 end with <CRLF>.<CRLF>"
                                }
                                "QUIT" => "221 2.0.0 bye",
                                _ => "250 2.0.0 OK",
                            }
                        };
                        let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                    }
                });
            }
        });
        (format!("smtp://127.0.0.1:{port}"), connections)
    }

    async fn send_via(url: &str) -> Result<SendReceipt, SendError> {
        let mailer = Mailer::smtp(url, 2, Duration::from_secs(5)).unwrap();
        mailer
            .send(DeliveryId(1), &message("ada@example.com"))
            .await
    }

    #[tokio::test]
    async fn outbox_writes_one_readable_eml_file_per_delivery_and_a_repeat_replaces_it() {
        let dir = unique_temp_dir("outbox");
        let mailer = Mailer::outbox(dir.clone()).unwrap();

        let first = mailer
            .send(DeliveryId(7), &message("ada@example.com"))
            .await
            .unwrap();
        let again = mailer
            .send(DeliveryId(7), &message("ada@example.com"))
            .await
            .unwrap();
        let second = mailer
            .send(DeliveryId(8), &message("alan@example.com"))
            .await
            .unwrap();
        assert_eq!(first, again, "a repeat writes the same file");

        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        let mut receipts: Vec<PathBuf> = [first, second]
            .into_iter()
            .map(|receipt| match receipt {
                SendReceipt::Outbox { path } => path,
                other => panic!("expected an outbox receipt, got {other:?}"),
            })
            .collect();
        receipts.sort();
        assert_eq!(files, receipts);
        for file in &files {
            assert_eq!(file.extension().and_then(|e| e.to_str()), Some("eml"));
            let eml = std::fs::read_to_string(file).unwrap();
            assert!(eml.contains(LINK));
            assert!(eml.contains("Subject: Grace Hopper invited you to join Acme Research"));
            assert!(eml.contains("multipart/alternative"));
            assert!(eml.contains("Message-ID: <0123abcd@example.com>"), "{eml}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The permission bits of `path`.
    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn outbox_files_and_a_folder_it_creates_are_readable_by_their_owner_only() {
        let parent = unique_temp_dir("outbox-modes");
        let dir = parent.join("outbox");
        let mailer = Mailer::outbox(dir.clone()).unwrap();
        // A temporary file a crash left behind, readable by all: the next write makes it private.
        let partial = dir.join(".9.eml.partial");
        std::fs::write(&partial, "stale").unwrap();
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).unwrap();

        let mut paths = Vec::new();
        for delivery in [DeliveryId(9), DeliveryId(10)] {
            match mailer.send(delivery, &message("ada@example.com")).await {
                Ok(SendReceipt::Outbox { path }) => paths.push(path),
                other => panic!("expected an outbox receipt, got {other:?}"),
            }
        }

        assert_eq!(mode_of(&dir), 0o700, "the folder");
        for path in &paths {
            assert_eq!(mode_of(path), 0o600, "{}", path.display());
        }
        std::fs::remove_dir_all(&parent).unwrap();
    }

    #[tokio::test]
    async fn memory_transport_records_each_message() {
        let (mailer, sent) = Mailer::memory();

        let receipt = mailer
            .send(DeliveryId(1), &message("ada@example.com"))
            .await
            .unwrap();

        assert_eq!(receipt, SendReceipt::Memory { index: 0 });
        let sent = sent.lock().unwrap();
        assert_eq!(sent.len(), 1);
        let to: Vec<String> = sent[0]
            .envelope()
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(to, ["ada@example.com"]);
        assert!(String::from_utf8_lossy(&sent[0].formatted()).contains(LINK));
    }

    /// The message as it goes to the server, with what changes from run to run (its date and
    /// MIME boundary) redacted; every line ends in CRLF, which `lines` takes off.
    fn wire_text(message: &Message) -> String {
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            !raw.replace("\r\n", "").contains('\n'),
            "a line without CR: {raw:?}"
        );
        let boundary = raw
            .split("boundary=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap()
            .to_owned();
        raw.replace(&boundary, "[boundary]")
            .lines()
            .map(|line| match line.strip_prefix("Date: ") {
                Some(_) => "Date: [date]",
                None => line,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_invitation_email_on_the_wire() {
        let from: Mailbox = "Bulk Invite <no-reply@example.com>".parse().unwrap();
        let untrusted = InvitationEmail {
            workspace: "Acme & Søn <Research>".to_owned(),
            inviter: "Grace \"Amazing\" Hopper".to_owned(),
            first_name: Some("<img src=x onerror=alert(1)> Zoë".to_owned()),
            ..invitation("zoe@example.com")
        };

        let message = build_message(&from, &untrusted, "0123abcd", None).unwrap();

        insta::assert_snapshot!(wire_text(&message));
    }

    #[test]
    fn the_reminder_email_on_the_wire() {
        let from: Mailbox = "Bulk Invite <no-reply@example.com>".parse().unwrap();
        let untrusted = InvitationEmail {
            kind: InvitationKind::Reminder,
            workspace: "Acme & Søn <Research>".to_owned(),
            inviter: "Grace \"Amazing\" Hopper".to_owned(),
            first_name: Some("<img src=x onerror=alert(1)> Zoë".to_owned()),
            ..invitation("zoe@example.com")
        };

        let message = build_message(&from, &untrusted, "0123abcd", None).unwrap();

        insta::assert_snapshot!(wire_text(&message));
    }

    #[test]
    fn line_ends_become_what_lettre_would_make_them() {
        use lettre::message::{Body, header::ContentTransferEncoding};
        for text in [
            "",
            "one line",
            "\n",
            "a\nb\r\nc\n\n\r\rd\n",
            "é\n\r\n\nü",
            "\r",
        ] {
            // `Binary` leaves the text as it is, line ends aside.
            let lettres =
                Body::new_with_encoding(text.to_owned(), ContentTransferEncoding::Binary).unwrap();
            assert_eq!(
                crlf(text.to_owned()).as_bytes(),
                lettres.as_ref(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn build_message_rejects_an_invalid_recipient() {
        let from: Mailbox = "no-reply@example.com".parse().unwrap();

        let result = build_message(&from, &invitation("not an address"), "x", None);

        assert!(matches!(result, Err(MailerError::Recipient(_))));
    }

    #[test]
    fn a_return_path_is_the_envelope_sender_and_from_stays() {
        let from: Mailbox = "Bulk Invite <no-reply@example.com>".parse().unwrap();
        let path = "bounces+42-0123456789@bounce.example.com";

        let message =
            build_message(&from, &invitation("ada@example.com"), "x", Some(path)).unwrap();
        let plain = build_message(&from, &invitation("ada@example.com"), "x", None).unwrap();

        let sender = message.envelope().from().map(ToString::to_string);
        assert_eq!(sender.as_deref(), Some(path));
        let to: Vec<String> = message
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(to, ["ada@example.com"]);
        let wire = String::from_utf8(message.formatted()).unwrap();
        assert!(
            wire.contains("From: \"Bulk Invite\" <no-reply@example.com>"),
            "{wire}"
        );
        assert!(
            !wire.contains("bounces+"),
            "the return path is no header: {wire}"
        );
        let sender = plain.envelope().from().map(ToString::to_string);
        assert_eq!(sender.as_deref(), Some("no-reply@example.com"));
        assert!(matches!(
            build_message(&from, &invitation("ada@example.com"), "x", Some("not one")),
            Err(MailerError::ReturnPath(_))
        ));
    }

    #[tokio::test]
    async fn sends_one_after_another_share_one_connection_and_a_refused_one_is_not_reused() {
        let (url, connections) = fake_smtp_counting("250 2.1.5 OK", "250 2.0.0 OK").await;
        let mailer = Mailer::smtp(&url, 2, Duration::from_secs(5)).unwrap();
        for _ in 0..3 {
            mailer
                .send(DeliveryId(1), &message("ada@example.com"))
                .await
                .unwrap();
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);

        let (url, connections) = fake_smtp_counting("550 5.1.1 no such user", "250 OK").await;
        let mailer = Mailer::smtp(&url, 2, Duration::from_secs(5)).unwrap();
        for _ in 0..2 {
            let refused = mailer
                .send(DeliveryId(1), &message("ada@example.com"))
                .await;
            assert!(matches!(refused, Err(SendError::Permanent { .. })));
        }
        // lettre ends the session after a refusal, so each send needed a connection of its own.
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn smtp_receipt_carries_the_servers_reply() {
        let url = fake_smtp("250 2.1.5 OK", "250 2.0.0 OK queued as 4B2F1").await;

        let receipt = send_via(&url).await.unwrap();

        assert_eq!(
            receipt,
            SendReceipt::Smtp {
                reply: "250 2.0.0 OK queued as 4B2F1".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn rejected_recipient_is_permanent_with_the_servers_reply() {
        let url = fake_smtp("550 5.1.1 no such user", "250 OK").await;

        let error = send_via(&url).await.unwrap_err();

        assert_eq!(
            error,
            SendError::Permanent {
                reply: "550 5.1.1 no such user".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn reply_4xx_after_data_is_transient() {
        let url = fake_smtp("250 OK", "451 4.3.0 try again later").await;

        let error = send_via(&url).await.unwrap_err();

        assert_eq!(
            error,
            SendError::Transient {
                reply: "451 4.3.0 try again later".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn reply_421_means_the_server_is_unavailable() {
        let url = fake_smtp("250 OK", "421 4.3.2 service not available").await;

        let error = send_via(&url).await.unwrap_err();

        assert!(matches!(error, SendError::Unavailable { .. }), "{error:?}");
        assert!(error.reply().starts_with("421"), "{error:?}");
    }

    #[tokio::test]
    async fn reply_5xx_after_data_is_permanent() {
        let url = fake_smtp("250 OK", "554 5.7.1 message rejected").await;

        let error = send_via(&url).await.unwrap_err();

        assert_eq!(
            error,
            SendError::Permanent {
                reply: "554 5.7.1 message rejected".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn refused_connection_means_the_server_is_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);

        let error = send_via(&format!("smtp://127.0.0.1:{port}"))
            .await
            .unwrap_err();

        assert!(matches!(error, SendError::Unavailable { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn server_that_never_answers_times_out_as_unavailable() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("smtp://{}", listener.local_addr().unwrap());
        // Accepts the TCP connection but never sends its greeting.
        let _held = tokio::spawn(async move {
            let _stream = listener.accept().await;
            std::future::pending::<()>().await;
        });
        let mailer = Mailer::smtp(&url, 2, Duration::from_millis(200)).unwrap();

        let error = mailer
            .send(DeliveryId(1), &message("ada@example.com"))
            .await
            .unwrap_err();

        assert_eq!(
            error,
            SendError::Unavailable {
                reply: "no reply from the SMTP server within 200 ms".to_owned()
            }
        );
    }

    #[tokio::test]
    async fn describe_never_shows_smtp_credentials() {
        let mailer = Mailer::smtp(
            "smtp://user:s3cret@mail.example.com:2525",
            4,
            Duration::from_secs(10),
        )
        .unwrap();

        assert_eq!(mailer.describe(), "SMTP smtp://mail.example.com:2525");
        assert!(!format!("{mailer:?}").contains("s3cret"));
    }

    #[test]
    fn describe_fills_in_lettres_default_ports() {
        assert_eq!(
            describe_smtp_url("smtps://u:p@mx.example.com"),
            "smtps://mx.example.com:465"
        );
        assert_eq!(
            describe_smtp_url("smtp://mx.example.com?tls=required"),
            "smtp://mx.example.com:587 (STARTTLS required)"
        );
        assert_eq!(describe_smtp_url("smtp://[::1]"), "smtp://[::1]:25");
    }

    #[test]
    fn outbox_describes_its_folder() {
        let dir = unique_temp_dir("describe");
        let mailer = Mailer::outbox(dir.clone()).unwrap();

        assert_eq!(mailer.describe(), format!("outbox {}", dir.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_replies_are_truncated_to_500_characters() {
        assert_eq!(truncate("é".repeat(600)).chars().count(), 500);
        assert_eq!(truncate("short".to_owned()), "short");
    }
}
