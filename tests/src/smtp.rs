//! An in-process SMTP server that speaks real SMTP over TCP, for integration tests.
//!
//! It accepts any number of concurrent connections and any number of messages
//! per connection (so pooled clients such as lettre's `AsyncSmtpTransport` work),
//! records every accepted message, and can be scripted to answer the end of
//! DATA with a transient (`451`) or permanent (`550`) failure per recipient
//! ([`SmtpServer::reply_for`], [`SmtpServer::clear_plan`]).
//!
//! Tests of the send engine can also make it misbehave, deterministically:
//!
//! - **Outage**: [`SmtpServer::go_down`] closes the listener and ends every live session
//!   (new connections are refused); [`SmtpServer::come_back`] listens again on the same port.
//!   While down the port stays bound without listening, so nothing else (another test, or a
//!   retrying client connecting to itself) can take it.
//! - **Overload**: while [`SmtpServer::set_unavailable`] is on, new connections are greeted
//!   with `421 4.3.2` and closed, and a live session answers its next `MAIL FROM` with the
//!   same `421` and closes ([`SmtpServer::refused_421`] counts these).
//! - **Slow replies**: [`SmtpServer::set_reply_delay`] holds every end-of-DATA reply back,
//!   keeping sends in flight.
//!
//! It also records when it answered: [`SmtpServer::attempts_to`] gives the time of every
//! end-of-DATA reply per recipient, [`SmtpServer::accepted_times`] the time of every `250`,
//! and [`max_in_any_window`] turns the latter into a peak rate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use mail_parser::{MessageParser, PartType};
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Mutex as AsyncMutex, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

/// RFC 6531 section 3.5: a non-ASCII address without SMTPUTF8.
const NON_ASCII_REPLY: &str = "553 5.6.7 non-ASCII address without SMTPUTF8";
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
/// Reply sent at the end of DATA when the message exceeds [`MAX_MESSAGE_SIZE`].
const TOO_BIG_REPLY: &str = "552 5.3.4 message size exceeds fixed limit";
/// Reply to a new connection, or to `MAIL FROM`, while the server is unavailable.
const UNAVAILABLE_REPLY: &str = "421 4.3.2 Service not available";
/// Backlog of the listening socket (the same as tokio's `TcpListener::bind`).
const LISTEN_BACKLOG: u32 = 1024;
/// How long `come_back` keeps trying to listen again if the port was not kept reserved.
const REBIND_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two attempts to listen again.
const REBIND_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait for the client to close after a `421`, while draining its input.
const LINGER: Duration = Duration::from_secs(2);
/// Most input drained after a `421` before closing anyway.
const MAX_LINGER_BYTES: u64 = 1024 * 1024;

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

    /// The decoded display name of the first `To` address, or an empty string if it has none.
    pub fn to_name(&self) -> String {
        self.parsed(|msg| {
            msg.to()
                .and_then(|to| to.first())
                .and_then(|to| to.name())
                .map(str::to_owned)
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
    /// Whether new connections and `MAIL FROM` are answered with `421`.
    unavailable: bool,
    /// Number of `421` refusals (greetings and `MAIL FROM` replies).
    refused_421: usize,
    /// Wait before answering the end of DATA.
    reply_delay: Duration,
    /// Time of every end-of-DATA reply, keyed by lower-cased recipient address, in order.
    attempts: HashMap<String, Vec<Instant>>,
    /// Time of every `250` at the end of DATA, in acceptance order.
    accepted_times: Vec<Instant>,
    /// Whether `EHLO` offers SMTPUTF8 (RFC 6531); off, as on many relays, until a test turns it
    /// on.
    smtputf8: bool,
}

impl State {
    /// Records an end-of-DATA reply at `now` for each distinct recipient.
    fn record_attempt(&mut self, rcpt_to: &[String], now: Instant) {
        let mut seen = Vec::with_capacity(rcpt_to.len());
        for rcpt in rcpt_to {
            let key = rcpt.to_ascii_lowercase();
            if !seen.contains(&key) {
                self.attempts.entry(key.clone()).or_default().push(now);
                seen.push(key);
            }
        }
    }
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

    /// If the server is unavailable, counts a `421` refusal and returns true.
    fn refuse(&self) -> bool {
        let mut state = self.lock();
        if state.unavailable {
            state.refused_421 += 1;
        }
        state.unavailable
    }

    /// Records the end-of-DATA reply to an over-size message and returns it.
    fn reject_too_big(&self, rcpt_to: &[String]) -> &'static str {
        self.lock().record_attempt(rcpt_to, Instant::now());
        TOO_BIG_REPLY
    }

    /// Publishes the accepted count to `wait_for`. Two sessions may publish out of order once the
    /// lock is released, so the count only ever grows.
    fn publish_accepted(&self, count: usize) {
        self.accepted.send_if_modified(|published| {
            let grows = count > *published;
            if grows {
                *published = count;
            }
            grows
        });
    }

    /// Decides the reply to the end of DATA, records the outcome and returns the reply line.
    fn finish_message(&self, message: ReceivedMessage) -> &'static str {
        let mut state = self.lock();
        // Taken under the lock, so times are in the same order as the records.
        let now = Instant::now();
        state.record_attempt(&message.rcpt_to, now);
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
            self.publish_accepted(count);
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
        state.accepted_times.push(now);
        let count = state.messages.len();
        drop(state);
        self.publish_accepted(count);
        "250 2.0.0 OK: queued"
    }
}

/// Whether the server is listening.
enum Listening {
    /// Serving connections.
    Up {
        /// Tells the accept loop to stop.
        stop: oneshot::Sender<()>,
        /// The accept loop; it returns the port reservation once it has stopped.
        task: JoinHandle<Option<TcpSocket>>,
    },
    /// Refusing connections.
    Down {
        /// The port, bound but not listening (`None` if binding it again failed).
        reserved: Option<TcpSocket>,
    },
}

impl Listening {
    /// Serves `listener` in a background task.
    fn serve(listener: TcpListener, shared: Arc<Shared>) -> Listening {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, shared, stopped));
        Listening::Up { stop, task }
    }
}

/// An SMTP server on 127.0.0.1 that serves until dropped.
pub struct SmtpServer {
    /// The bound address; it stays the same across [`SmtpServer::go_down`] and
    /// [`SmtpServer::come_back`].
    addr: SocketAddr,
    /// Shared state.
    shared: Arc<Shared>,
    /// The accept loop or the reserved port; an async lock serializes `go_down`/`come_back`.
    listening: AsyncMutex<Listening>,
}

impl SmtpServer {
    /// Binds 127.0.0.1:0 and serves in a background tokio task until dropped.
    pub async fn start() -> SmtpServer {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .and_then(|socket| socket.listen(LISTEN_BACKLOG))
            .expect("bind SMTP test server on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("local address of SMTP listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            accepted: watch::Sender::new(0),
        });
        let listening = AsyncMutex::new(Listening::serve(listener, Arc::clone(&shared)));
        SmtpServer {
            addr,
            shared,
            listening,
        }
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

    /// How many distinct recipients got a message, and how many messages repeated one.
    pub fn recipients_and_repeats(&self) -> (usize, usize) {
        let messages = self.messages();
        let recipients: std::collections::HashSet<String> =
            messages.iter().map(|m| m.rcpt_to.join(",")).collect();
        (recipients.len(), messages.len() - recipients.len())
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
                "timed out after {timeout:?} waiting for {n} SMTP messages; got {} (rejected {}, refused with 421 {})",
                self.messages().len(),
                self.rejected(),
                self.refused_421()
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

    /// Removes the scripted reply for `recipient` (matched case-insensitively), so its
    /// messages are accepted again; returns the plan as it stood (counts already used up).
    pub fn clear_plan(&self, recipient: &str) -> Option<ReplyPlan> {
        self.shared
            .lock()
            .plans
            .remove(&recipient.to_ascii_lowercase())
    }

    /// Stops listening and ends every live session; returns once all their sockets are closed.
    ///
    /// From then on connections to [`SmtpServer::port`] are refused, and clients holding a
    /// session see it closed (end of file, or a reset if they had unread input pending). A
    /// session waiting out [`SmtpServer::set_reply_delay`] ends without replying, and its
    /// message is not recorded. Does nothing if the server is already down.
    pub async fn go_down(&self) {
        let mut listening = self.listening.lock().await;
        let (stop, task) =
            match std::mem::replace(&mut *listening, Listening::Down { reserved: None }) {
                Listening::Up { stop, task } => (stop, task),
                // Already down: put the reservation back.
                down @ Listening::Down { .. } => {
                    *listening = down;
                    return;
                }
            };
        // The loop may only have ended by panicking, which already dropped the listener.
        let _ = stop.send(());
        let reserved = task.await.ok().flatten();
        *listening = Listening::Down { reserved };
    }

    /// Listens again on the same port after [`SmtpServer::go_down`], keeping all recorded state.
    ///
    /// Clients may keep retrying meanwhile. Panics if the port cannot be listened on again
    /// within a few seconds. Does nothing if the server is up.
    pub async fn come_back(&self) {
        let mut listening = self.listening.lock().await;
        let Listening::Down { reserved } = &mut *listening else {
            return;
        };
        let listener = match reserved.take().map(|socket| socket.listen(LISTEN_BACKLOG)) {
            Some(Ok(listener)) => listener,
            _ => relisten(self.addr).await,
        };
        *listening = Listening::serve(listener, Arc::clone(&self.shared));
    }

    /// While `true`, refuses service like an overloaded MTA: a new connection is greeted with
    /// `421 4.3.2 Service not available` and closed, and a live session answers its next
    /// `MAIL FROM` with the same reply and closes. Other commands are served as usual.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.lock().unavailable = unavailable;
    }

    /// Whether `EHLO` offers SMTPUTF8. Without it, a non-ASCII address in `MAIL FROM` or
    /// `RCPT TO` is refused with `553 5.6.7`, as RFC 6531 section 3.5 says.
    pub fn set_smtputf8(&self, offered: bool) {
        self.shared.lock().smtputf8 = offered;
    }

    /// Number of `421` refusals so far (refused greetings plus refused `MAIL FROM`s).
    pub fn refused_421(&self) -> usize {
        self.shared.lock().refused_421
    }

    /// Waits `delay` before answering each end of DATA (`Duration::ZERO`, the default, for none).
    ///
    /// The delay in force when the final "." arrives applies. The message's outcome is decided
    /// and recorded after the delay, just before the reply is written.
    pub fn set_reply_delay(&self, delay: Duration) {
        self.shared.lock().reply_delay = delay;
    }

    /// When the server answered the end of DATA for each message to `recipient` (matched
    /// case-insensitively), whatever the reply (`250`, `451`, `550`, `552`), in order.
    ///
    /// A `421` refusal at `MAIL FROM` is no attempt: it comes before any recipient is known.
    pub fn attempts_to(&self, recipient: &str) -> Vec<Instant> {
        self.shared
            .lock()
            .attempts
            .get(&recipient.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }

    /// When the server answered `250` to the end of DATA, for every such message, in
    /// acceptance order (non-decreasing).
    ///
    /// Messages kept under [`ReplyPlan::DeliveredButTransientTimes`] were answered `451`, so
    /// they are in [`SmtpServer::messages`] but not here.
    pub fn accepted_times(&self) -> Vec<Instant> {
        self.shared.lock().accepted_times.clone()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Listening::Up { task, .. } = self.listening.get_mut() {
            // Aborting the accept loop drops its `JoinSet`, which aborts every session.
            task.abort();
        }
    }
}

/// The largest number of `times` within any half-open interval `[t, t + window)`.
///
/// With `window` one second, this is the peak number of messages per second over a sliding
/// window: evenly spaced times `1/n` s apart give `n`. `times` need not be sorted; a zero
/// `window` holds nothing.
pub fn max_in_any_window(times: &[Instant], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut best = 0;
    let mut end = 0;
    // A best window can always start at one of the times; `end` only moves forward.
    for (start, first) in sorted.iter().enumerate() {
        let limit = first.checked_add(window);
        end = end.max(start);
        while end < sorted.len() && limit.is_none_or(|limit| sorted[end] < limit) {
            end += 1;
        }
        best = best.max(end - start);
    }
    best
}

/// A socket bound to `addr`, not yet listening, with `SO_REUSEADDR` on Unix (as tokio's
/// `TcpListener::bind` sets it), so the port can be bound again while sessions that were
/// on it are still closing or in `TIME_WAIT`.
fn bind(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = TcpSocket::new_v4()?;
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// Listens on `addr` again, retrying briefly: used only if the port could not be kept reserved.
async fn relisten(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + REBIND_DEADLINE;
    loop {
        match bind(addr).and_then(|socket| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return listener,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(REBIND_BACKOFF).await,
            Err(e) => panic!("SMTP test server: listen on {addr} again: {e}"),
        }
    }
}

/// Accepts connections and serves each in its own task until told to stop (or aborted).
///
/// On stop it closes the listener, at once binds the port again without listening (so
/// connections are refused but no other socket can take the port), ends every session and
/// waits for them, then returns that reservation.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) -> Option<TcpSocket> {
    // Owning the connection tasks here means aborting this task aborts them too.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // A dropped sender also means stop.
            _ = &mut stop => break,
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
    let addr = listener.local_addr().ok();
    drop(listener);
    let reserved = addr.and_then(|addr| bind(addr).ok());
    // Aborts every session and waits until each task, and so its socket, is dropped.
    connections.shutdown().await;
    reserved
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
    /// Whether `MAIL FROM` asked for SMTPUTF8.
    smtputf8: bool,
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
    /// A `421` was sent: close the connection, draining the client's input first.
    Refused,
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
        if self.shared.refuse() {
            self.reply(UNAVAILABLE_REPLY).await?;
            return self.linger_close().await;
        }
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
                Flow::Refused => return self.linger_close().await,
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
                let mut lines = vec![
                    "250-127.0.0.1 greets you",
                    "250-PIPELINING",
                    "250-8BITMIME",
                    &size,
                ];
                if self.shared.lock().smtputf8 {
                    lines.push("250-SMTPUTF8");
                }
                lines.push("250 ENHANCEDSTATUSCODES");
                self.reply(&lines.join("\r\n")).await?;
            }
            "HELO" => {
                self.envelope = Envelope::default();
                self.reply("250 127.0.0.1").await?;
            }
            "MAIL" if upper.starts_with("MAIL FROM:") && self.shared.refuse() => {
                self.reply(UNAVAILABLE_REPLY).await?;
                return Ok(Flow::Refused);
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
        let smtputf8 = self.shared.lock().smtputf8
            && params
                .split_whitespace()
                .any(|p| p.eq_ignore_ascii_case("SMTPUTF8"));
        if !path.is_ascii() && !smtputf8 {
            return NON_ASCII_REPLY;
        }
        self.envelope = Envelope {
            mail_from: Some(path),
            rcpt_to: Vec::new(),
            smtputf8,
        };
        "250 2.1.0 OK"
    }

    /// Handles the argument of `RCPT TO:` and returns the reply.
    fn rcpt_to(&mut self, arg: &str) -> &'static str {
        if self.envelope.mail_from.is_none() {
            return "503 5.5.1 need MAIL before RCPT";
        }
        match parse_path(arg) {
            Some((path, _)) if !path.is_ascii() && !self.envelope.smtputf8 => NON_ASCII_REPLY,
            Some((path, _)) if !path.is_empty() => {
                self.envelope.rcpt_to.push(path);
                "250 2.1.5 OK"
            }
            _ => "501 5.1.3 bad recipient address syntax",
        }
    }

    /// Handles `DATA`: reads the message, waits out any reply delay, applies plans and replies.
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
        let delay = self.shared.lock().reply_delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if too_big {
            let reply = self.shared.reject_too_big(&envelope.rcpt_to);
            return self.reply(reply).await;
        }
        let message = ReceivedMessage {
            mail_from: envelope.mail_from.unwrap_or_default(),
            rcpt_to: envelope.rcpt_to,
            data: String::from_utf8_lossy(&data).into_owned(),
        };
        let reply = self.shared.finish_message(message);
        self.reply(reply).await
    }

    /// Closes our side after a `421`, then drains the client's input until it closes too
    /// (bounded by [`LINGER`] and [`MAX_LINGER_BYTES`]): closing with unread input (say,
    /// pipelined commands) would send a reset, which can destroy the `421` before the client
    /// reads it.
    async fn linger_close(&mut self) -> std::io::Result<()> {
        self.writer.shutdown().await?;
        let mut input = (&mut self.reader).take(MAX_LINGER_BYTES);
        let mut sink = tokio::io::sink();
        let drain = tokio::io::copy(&mut input, &mut sink);
        let _ = tokio::time::timeout(LINGER, drain).await;
        Ok(())
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
