//! An in-process SMTP server that speaks real SMTP over TCP, for integration tests.
//!
//! It accepts any number of concurrent connections and any number of messages
//! per connection (so pooled clients such as lettre's `AsyncSmtpTransport` work),
//! records every accepted message, and can be scripted to answer the end of
//! DATA with a transient (`451`) or permanent (`550`) failure per recipient.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::anyhow;
use mail_parser::{MessageParser, PartType};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Largest message accepted, advertised through the `SIZE` extension.
const MAX_MESSAGE_SIZE: usize = 10 * 1024 * 1024;
/// Longest command line accepted (RFC 5321 allows 512 octets; be generous).
const MAX_COMMAND_LINE: u64 = 4096;
/// Longest DATA line read in one piece (RFC 5321 allows 1000 octets; be generous).
const MAX_DATA_LINE: u64 = 64 * 1024;
/// Reply sent at the end of DATA when a transient plan applies.
const TRANSIENT_REPLY: &str = "451 4.3.0 try later";
/// Reply sent at the end of DATA when a permanent plan applies.
const PERMANENT_REPLY: &str = "550 5.1.1 no such user";

/// How the server answers the end of DATA for messages to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPlan {
    /// Answer `451 4.3.0` this many times, then accept.
    TransientTimes(u32),
    /// Always answer `550 5.1.1`.
    Permanent,
    /// Keep the message as delivered but answer `451 4.3.0` this many times: the client sees a
    /// failure although the invitee got the email (a reply lost on the way back).
    DeliveredButTransientTimes(u32),
}

/// A message the server accepted with `250` after the final `.`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The reverse path given in `MAIL FROM` (empty for the null sender `<>`).
    pub mail_from: String,
    /// The forward paths given in `RCPT TO`, in order.
    pub rcpt_to: Vec<String>,
    /// The raw message as transmitted, dot-unstuffed, each line ending in CRLF.
    pub data: String,
}

impl ReceivedMessage {
    /// The decoded `Subject` header, or an empty string if absent.
    pub fn subject(&self) -> String {
        self.parsed(|msg| msg.subject().map(str::to_owned))
    }

    /// The decoded first `text/plain` body part, or an empty string if absent.
    pub fn text_body(&self) -> String {
        self.parsed(|msg| {
            msg.text_bodies().find_map(|part| match &part.body {
                PartType::Text(text) => Some(text.to_string()),
                _ => None,
            })
        })
    }

    /// The decoded first `text/html` body part, or an empty string if absent.
    pub fn html_body(&self) -> String {
        self.parsed(|msg| {
            msg.html_bodies().find_map(|part| match &part.body {
                PartType::Html(html) => Some(html.to_string()),
                _ => None,
            })
        })
    }

    /// Parses `data` as MIME and applies `f`, defaulting to an empty string.
    fn parsed(&self, f: impl FnOnce(&mail_parser::Message<'_>) -> Option<String>) -> String {
        MessageParser::default()
            .parse(self.data.as_bytes())
            .as_ref()
            .and_then(f)
            .unwrap_or_default()
    }
}

/// State shared between the handle and the connection tasks.
#[derive(Default)]
struct State {
    /// Accepted messages, in acceptance order.
    messages: Vec<ReceivedMessage>,
    /// Scripted replies, keyed by lower-cased recipient address.
    plans: HashMap<String, ReplyPlan>,
    /// Number of messages answered with a 4xx/5xx at the end of DATA.
    rejected: usize,
}

/// Everything a connection task needs.
struct Shared {
    /// Messages, plans and counters.
    state: Mutex<State>,
    /// Number of accepted messages, for `wait_for`.
    accepted: watch::Sender<usize>,
}

impl Shared {
    /// Locks the state, ignoring poisoning (a panicking test must not cascade).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decides the reply to the end of DATA, records the outcome and returns the reply line.
    fn finish_message(&self, message: ReceivedMessage) -> &'static str {
        let mut state = self.lock();
        let mut permanent = false;
        let mut transient = false;
        let mut delivered_anyway = false;
        for rcpt in &message.rcpt_to {
            match state.plans.get_mut(&rcpt.to_ascii_lowercase()) {
                Some(ReplyPlan::Permanent) => permanent = true,
                Some(ReplyPlan::TransientTimes(left)) if *left > 0 => {
                    *left -= 1;
                    transient = true;
                }
                Some(ReplyPlan::DeliveredButTransientTimes(left)) if *left > 0 => {
                    *left -= 1;
                    transient = true;
                    delivered_anyway = true;
                }
                _ => {}
            }
        }
        if delivered_anyway && !permanent {
            state.messages.push(message);
            let count = state.messages.len();
            drop(state);
            self.accepted.send_replace(count);
            return TRANSIENT_REPLY;
        }
        if permanent || transient {
            state.rejected += 1;
            return if permanent {
                PERMANENT_REPLY
            } else {
                TRANSIENT_REPLY
            };
        }
        state.messages.push(message);
        let count = state.messages.len();
        drop(state);
        self.accepted.send_replace(count);
        "250 2.0.0 OK: queued"
    }
}

/// An SMTP server on 127.0.0.1 that serves until dropped.
pub struct SmtpServer {
    /// The bound address.
    addr: SocketAddr,
    /// Shared state.
    shared: Arc<Shared>,
    /// The accept loop; aborting it also aborts every connection task.
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// Binds 127.0.0.1:0 and serves in a background tokio task until dropped.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind SMTP test server on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of SMTP listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            accepted: watch::Sender::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        SmtpServer { addr, shared, task }
    }

    /// The TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's URL, `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port())
    }

    /// Every message accepted so far (after the final "." got 250).
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.shared.lock().messages.clone()
    }

    /// Number of messages answered with a scripted 4xx/5xx at the end of DATA.
    pub fn rejected(&self) -> usize {
        self.shared.lock().rejected
    }

    /// Waits until at least `n` messages were accepted, or fails with the count after `timeout`.
    pub async fn wait_for(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<ReceivedMessage>> {
        let mut rx = self.shared.accepted.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n)).await {
            Ok(Ok(_)) => Ok(self.messages()),
            // The sender lives in `self.shared`, so it cannot be dropped while we wait.
            Ok(Err(_)) => Err(anyhow!("SMTP server state dropped while waiting")),
            Err(_) => Err(anyhow!(
                "timed out after {timeout:?} waiting for {n} SMTP messages; got {} (rejected {})",
                self.messages().len(),
                self.rejected()
            )),
        }
    }

    /// Scripts the reply to the end of DATA for messages with `recipient` among their RCPTs.
    ///
    /// Replaces any earlier plan for that recipient (matched case-insensitively).
    pub fn reply_for(&self, recipient: &str, plan: ReplyPlan) {
        self.shared
            .lock()
            .plans
            .insert(recipient.to_ascii_lowercase(), plan);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Accepts connections and serves each in its own task until aborted.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connection tasks here means aborting this task aborts them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, Arc::clone(&shared)));
                }
                // Transient accept errors (e.g. EMFILE): back off briefly and retry.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serves one SMTP session; I/O errors simply end it.
async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    let (reader, writer) = stream.into_split();
    let _ = Session::new(BufReader::new(reader), writer, shared)
        .run()
        .await;
}

/// The envelope being collected for the current mail transaction.
#[derive(Default)]
struct Envelope {
    /// `MAIL FROM` path, once given.
    mail_from: Option<String>,
    /// `RCPT TO` paths.
    rcpt_to: Vec<String>,
}

/// One SMTP session over a reader/writer pair.
struct Session<R, W> {
    /// Buffered client input.
    reader: R,
    /// Output to the client.
    writer: W,
    /// Server state.
    shared: Arc<Shared>,
    /// Current transaction.
    envelope: Envelope,
}

/// What to do after handling one command.
enum Flow {
    /// Read the next command.
    Continue,
    /// Close the connection.
    Close,
}

impl<R: AsyncBufRead + Unpin, W: AsyncWrite + Unpin> Session<R, W> {
    /// Creates a session.
    fn new(reader: R, writer: W, shared: Arc<Shared>) -> Self {
        Session {
            reader,
            writer,
            shared,
            envelope: Envelope::default(),
        }
    }

    /// Greets the client and handles commands until QUIT or disconnect.
    async fn run(mut self) -> std::io::Result<()> {
        self.reply("220 127.0.0.1 ESMTP invite-tests ready").await?;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_COMMAND_LINE)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with(b"\n") {
                // Over-long line: drain the rest of it, then complain.
                self.skip_line().await?;
                self.reply("500 5.5.2 line too long").await?;
                continue;
            }
            let command = String::from_utf8_lossy(trim_eol(&line)).into_owned();
            match self.handle(&command).await? {
                Flow::Continue => {}
                Flow::Close => {
                    self.writer.shutdown().await?;
                    return Ok(());
                }
            }
        }
    }

    /// Handles one command line.
    async fn handle(&mut self, command: &str) -> std::io::Result<Flow> {
        let upper = command.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("");
        match verb {
            "EHLO" => {
                self.envelope = Envelope::default();
                let size = format!("250-SIZE {MAX_MESSAGE_SIZE}");
                let lines = [
                    "250-127.0.0.1 greets you",
                    "250-PIPELINING",
                    "250-8BITMIME",
                    &size,
                    "250 ENHANCEDSTATUSCODES",
                ];
                self.reply(&lines.join("\r\n")).await?;
            }
            "HELO" => {
                self.envelope = Envelope::default();
                self.reply("250 127.0.0.1").await?;
            }
            "MAIL" if upper.starts_with("MAIL FROM:") => {
                let reply = self.mail_from(&command["MAIL FROM:".len()..]);
                self.reply(reply).await?;
            }
            "RCPT" if upper.starts_with("RCPT TO:") => {
                let reply = self.rcpt_to(&command["RCPT TO:".len()..]);
                self.reply(reply).await?;
            }
            "DATA" => self.data().await?,
            "RSET" => {
                self.envelope = Envelope::default();
                self.reply("250 2.0.0 OK").await?;
            }
            "NOOP" => self.reply("250 2.0.0 OK").await?,
            "QUIT" => {
                self.reply("221 2.0.0 bye").await?;
                return Ok(Flow::Close);
            }
            "MAIL" | "RCPT" => self.reply("501 5.5.4 syntax error").await?,
            _ => self.reply("502 5.5.2 command not implemented").await?,
        }
        Ok(Flow::Continue)
    }

    /// Handles the argument of `MAIL FROM:` and returns the reply.
    fn mail_from(&mut self, arg: &str) -> &'static str {
        if self.envelope.mail_from.is_some() {
            return "503 5.5.1 nested MAIL command";
        }
        let Some((path, params)) = parse_path(arg) else {
            return "501 5.1.7 bad sender address syntax";
        };
        let too_big = params.split_whitespace().any(|p| {
            p.get(..5).is_some_and(|k| k.eq_ignore_ascii_case("SIZE="))
                && p[5..].parse::<usize>().is_ok_and(|s| s > MAX_MESSAGE_SIZE)
        });
        if too_big {
            return "552 5.3.4 message size exceeds fixed limit";
        }
        self.envelope = Envelope {
            mail_from: Some(path),
            rcpt_to: Vec::new(),
        };
        "250 2.1.0 OK"
    }

    /// Handles the argument of `RCPT TO:` and returns the reply.
    fn rcpt_to(&mut self, arg: &str) -> &'static str {
        if self.envelope.mail_from.is_none() {
            return "503 5.5.1 need MAIL before RCPT";
        }
        match parse_path(arg) {
            Some((path, _)) if !path.is_empty() => {
                self.envelope.rcpt_to.push(path);
                "250 2.1.5 OK"
            }
            _ => "501 5.1.3 bad recipient address syntax",
        }
    }

    /// Handles `DATA`: reads the message, applies plans and replies.
    async fn data(&mut self) -> std::io::Result<()> {
        if self.envelope.mail_from.is_none() {
            return self.reply("503 5.5.1 need MAIL command").await;
        }
        if self.envelope.rcpt_to.is_empty() {
            return self.reply("554 5.5.1 no valid recipients").await;
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;

        let mut data = Vec::new();
        let mut too_big = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut self.reader)
                .take(MAX_DATA_LINE)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if trim_eol(&line) == b"." && line.ends_with(b"\n") {
                break;
            }
            if too_big {
                continue;
            }
            // Dot-unstuffing: a leading "." was doubled by the client.
            let content = line.strip_prefix(b".").unwrap_or(&line);
            data.extend_from_slice(content);
            too_big = data.len() > MAX_MESSAGE_SIZE;
        }

        let envelope = std::mem::take(&mut self.envelope);
        if too_big {
            return self
                .reply("552 5.3.4 message size exceeds fixed limit")
                .await;
        }
        let message = ReceivedMessage {
            mail_from: envelope.mail_from.unwrap_or_default(),
            rcpt_to: envelope.rcpt_to,
            data: String::from_utf8_lossy(&data).into_owned(),
        };
        let reply = self.shared.finish_message(message);
        self.reply(reply).await
    }

    /// Discards input up to and including the next LF.
    async fn skip_line(&mut self) -> std::io::Result<()> {
        loop {
            let buf = self.reader.fill_buf().await?;
            if buf.is_empty() {
                return Ok(());
            }
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                self.reader.consume(pos + 1);
                return Ok(());
            }
            let len = buf.len();
            self.reader.consume(len);
        }
    }

    /// Writes one (possibly multi-line) reply followed by CRLF.
    async fn reply(&mut self, text: &str) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(text.len() + 2);
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.writer.write_all(&out).await?;
        self.writer.flush().await
    }
}

/// Strips a trailing LF or CRLF.
fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses `<path> params` (or a bare `path params`) into the path and the parameters.
fn parse_path(arg: &str) -> Option<(String, &str)> {
    let arg = arg.trim_start();
    if let Some(rest) = arg.strip_prefix('<') {
        let end = rest.find('>')?;
        Some((rest[..end].to_owned(), rest[end + 1..].trim()))
    } else {
        let mut it = arg.splitn(2, char::is_whitespace);
        let path = it.next().filter(|p| !p.is_empty())?;
        Some((path.to_owned(), it.next().unwrap_or("").trim()))
    }
}
