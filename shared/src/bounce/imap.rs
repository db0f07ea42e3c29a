//! Reading the bounce mailbox over IMAP (docs/product.md, "Bounces and complaints"): sign in,
//! select the folder, fetch new messages by UID in batches, hand each to a callback, move the
//! processed ones to the processed folder, then wait for more (IDLE, else polling), reconnecting
//! with backoff after errors until cancelled.
//!
//! Several readers of one mailbox are safe together: the callback's effect must be idempotent,
//! and moving a message another reader already moved is a no-op (its UID is simply gone).
//! Messages the callback leaves alone are not fetched again: the reader remembers the next UID
//! to look at per UIDVALIDITY ([`Cursor`]), which its owner may persist.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_imap::types::UnsolicitedResponse;
use futures::TryStreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::bounce::mailbox_url::{MailboxUrl, Security};

/// An IMAP UID: a message's number in its folder, never reused within one UIDVALIDITY.
pub type Uid = u32;

/// Largest message fetched; a larger one is skipped (no report is that big).
pub const MAX_MESSAGE_BYTES: u32 = 1024 * 1024;

/// Messages looked at per batch (one `UID FETCH` of their sizes, then one per message).
const BATCH: usize = 50;

/// Most messages a reader remembers to look at again ([`Outcome::Retry`]) while it reads on past
/// them; past that many it stops at the next one until some are done.
const MAX_LATER: usize = 1000;

/// How long a message kept for later is looked at again: a report about an email that is still
/// not recorded as sent this long after it arrived (a forged or stray report naming a pending
/// email) is then left alone like mail that is not a report.
pub const RETRY_FOR: Duration = Duration::from_secs(60 * 60);

/// How long one IDLE lasts before it is re-issued (servers drop idle clients after 30 min).
const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// How long connecting and signing in, or one IMAP command, may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The first and the longest wait before reconnecting after an error.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(5 * 60));

/// What the callback did with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its report was recorded: move it to the processed folder.
    Processed,
    /// Not a report: leave it where it is, and do not fetch it again.
    NotAReport,
    /// Not ready yet (its email is not recorded as sent): fetch it again on the next pass, and
    /// meanwhile read on past it.
    Retry,
    /// Nothing can be handled now (the database is unavailable): stop this pass, and fetch this
    /// message and those after it again on the next one.
    Unavailable,
}

/// Where a reader is in its folder: the next UID to look at, valid for one UIDVALIDITY.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The folder's UIDVALIDITY when `next_uid` was set; another one starts over.
    pub uid_validity: Option<u32>,
    /// The least UID not looked at yet.
    pub next_uid: Uid,
}

/// What one pass over the new messages did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Messages processed and moved.
    pub processed: usize,
    /// Messages left alone as not reports.
    pub not_reports: usize,
    /// Messages over [`MAX_MESSAGE_BYTES`], skipped.
    pub oversized: usize,
    /// Whether the callback asked for a message to be tried again.
    pub retry: bool,
    /// Messages kept for later longer than [`RETRY_FOR`] and still not ready at a last look, now
    /// left alone.
    pub expired: usize,
    /// Whether the pass stopped short of the newest message (the database unavailable, or too
    /// many messages kept for later).
    pub stalled: bool,
}

/// The byte stream under an IMAP session: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

type Session = async_imap::Session<Box<dyn Io>>;

/// What the server offers, from its `CAPABILITY` answer after signing in.
#[derive(Debug, Clone, Copy, Default)]
struct Offers {
    idle: bool,
    moves: bool,
    uidplus: bool,
}

/// Reads one bounce mailbox.
#[derive(Debug)]
pub struct MailboxReader {
    url: MailboxUrl,
    poll_interval: Duration,
    cursor: Cursor,
    offers: Offers,
    /// Messages behind the cursor to look at again on each pass ([`Outcome::Retry`]), with
    /// when each was first kept.
    later: Vec<(Uid, Instant)>,
    /// How long a message is kept for later ([`RETRY_FOR`]).
    retry_for: Duration,
}

impl MailboxReader {
    /// A reader of `url`'s folder that polls every `poll_interval` when the server has no IDLE.
    pub fn new(url: MailboxUrl, poll_interval: Duration) -> MailboxReader {
        MailboxReader {
            url,
            poll_interval,
            cursor: Cursor::default(),
            offers: Offers::default(),
            later: Vec::new(),
            retry_for: RETRY_FOR,
        }
    }

    /// The reader, keeping messages for later `retry_for` instead of [`RETRY_FOR`].
    pub fn retrying_for(self, retry_for: Duration) -> MailboxReader {
        MailboxReader { retry_for, ..self }
    }

    /// Starts from a cursor its owner kept, rather than from the folder's first message.
    pub fn with_cursor(mut self, cursor: Cursor) -> MailboxReader {
        self.cursor = cursor;
        self
    }

    /// Where the reader is, for its owner to keep.
    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Reads the folder until `cancel` fires: every message once, new ones as they arrive,
    /// reconnecting with backoff after errors (logged without addresses).
    pub async fn run<F, Fut>(&mut self, cancel: &CancellationToken, mut handle: F)
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let mut backoff = BACKOFF.0;
        while !cancel.is_cancelled() {
            let mut healthy = false;
            let Err(error) = self.serve(cancel, &mut handle, &mut healthy).await else {
                return;
            };
            if healthy {
                backoff = BACKOFF.0;
            }
            tracing::warn!(error = format!("{error:#}"), wait = ?backoff, "bounce mailbox: reconnecting");
            if pause(cancel, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(BACKOFF.1);
        }
    }

    /// One connection: signs in, reads what is new, logs out. For a one-off pass.
    pub async fn read_once<F, Fut>(&mut self, mut handle: F) -> anyhow::Result<Pass>
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let mut session = self.open().await?;
        let pass = self.drain(&mut session, None, &mut handle).await?;
        within(session.logout(), "logging out").await?;
        Ok(pass)
    }

    /// One connection's life: read, wait, read again, until cancelled (`Ok`) or an error.
    async fn serve<F, Fut>(
        &mut self,
        cancel: &CancellationToken,
        handle: &mut F,
        healthy: &mut bool,
    ) -> anyhow::Result<()>
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let mut session = self.open().await?;
        loop {
            let pass = self.drain(&mut session, Some(cancel), handle).await?;
            *healthy = true;
            if cancel.is_cancelled() {
                break;
            }
            if self.offers.idle && !pass.retry {
                let (back, cancelled) = idle_wait(session, cancel).await?;
                session = back;
                if cancelled {
                    break;
                }
            } else if pause(cancel, self.poll_interval).await {
                break;
            }
        }
        let _ = within(session.logout(), "logging out").await;
        Ok(())
    }

    /// Connects, signs in, learns what the server offers, makes sure the processed folder
    /// exists and selects the folder.
    async fn open(&mut self) -> anyhow::Result<Session> {
        let mut session = within(connect(&self.url), "connecting and signing in").await?;
        let capabilities = within(session.capabilities(), "asking for capabilities").await?;
        // Fails when it exists already: any other failure shows when a message is moved.
        let _ = within(session.create(&self.url.processed), "creating the folder").await;
        let mailbox = within(session.select(&self.url.folder), "selecting the folder").await?;
        if mailbox.uid_validity != self.cursor.uid_validity {
            self.cursor = Cursor {
                uid_validity: mailbox.uid_validity,
                next_uid: 1,
            };
            self.later.clear();
        }
        self.offers = Offers {
            idle: capabilities.has_str("IDLE"),
            moves: capabilities.has_str("MOVE"),
            uidplus: capabilities.has_str("UIDPLUS"),
        };
        Ok(session)
    }

    /// Looks again at the messages kept for later, then reads batches until none is left (or
    /// too many wait for later, or `cancel` fires).
    async fn drain<F, Fut>(
        &mut self,
        session: &mut Session,
        cancel: Option<&CancellationToken>,
        handle: &mut F,
    ) -> anyhow::Result<Pass>
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let mut total = self.again(session, cancel, handle).await?;
        if total.stalled {
            return Ok(total);
        }
        loop {
            while session.unsolicited_responses.try_recv().is_ok() {}
            let (pass, looked_at) = self.batch(session, cancel, handle).await?;
            total.processed += pass.processed;
            total.not_reports += pass.not_reports;
            total.oversized += pass.oversized;
            total.retry |= pass.retry;
            total.stalled |= pass.stalled;
            let news = std::iter::from_fn(|| session.unsolicited_responses.try_recv().ok())
                .any(|r| matches!(r, UnsolicitedResponse::Exists(_)));
            let full = self.later.len() >= MAX_LATER;
            let stop = full || pass.stalled || cancel.is_some_and(CancellationToken::is_cancelled);
            if stop || (looked_at < BATCH && !news) {
                return Ok(total);
            }
        }
    }

    /// Hands up to [`BATCH`] new messages to the callback in UID order and moves the processed
    /// ones. The cursor moves past them only once they are moved, so a connection lost half-way
    /// fetches them again (the callback is idempotent). Returns what it did and how many
    /// messages it looked at.
    async fn batch<F, Fut>(
        &mut self,
        session: &mut Session,
        cancel: Option<&CancellationToken>,
        handle: &mut F,
    ) -> anyhow::Result<(Pass, usize)>
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let new = within(new_messages(session, self.cursor.next_uid), "listing").await?;
        let mut pass = Pass::default();
        let mut processed = Vec::new();
        let mut next_uid = self.cursor.next_uid;
        for &(uid, size) in &new {
            if cancel.is_some_and(CancellationToken::is_cancelled) {
                break;
            }
            let raw = if size > MAX_MESSAGE_BYTES {
                tracing::warn!(uid, size, "bounce mailbox: message too large, left alone");
                pass.oversized += 1;
                None
            } else {
                within(fetch(session, uid), "fetching a message").await?
            };
            // `None` for a message another reader moved meanwhile.
            if let Some(raw) = raw {
                match handle(uid, raw).await {
                    Outcome::Processed => processed.push(uid),
                    Outcome::NotAReport => pass.not_reports += 1,
                    Outcome::Retry if self.later.len() < MAX_LATER => {
                        pass.retry = true;
                        if !self.later.iter().any(|(kept, _)| *kept == uid) {
                            self.later.push((uid, Instant::now()));
                        }
                    }
                    Outcome::Retry | Outcome::Unavailable => {
                        pass.retry = true;
                        pass.stalled = true;
                        break;
                    }
                }
            }
            next_uid = uid + 1;
        }
        if !processed.is_empty() {
            within(self.move_processed(session, &processed), "moving").await?;
        }
        pass.processed = processed.len();
        self.cursor.next_uid = next_uid;
        Ok((pass, new.len()))
    }

    /// Hands the messages kept for later to the callback again, in UID order, moving the
    /// processed ones; those it asks to retry again stay kept, those gone or not reports are
    /// dropped.
    async fn again<F, Fut>(
        &mut self,
        session: &mut Session,
        cancel: Option<&CancellationToken>,
        handle: &mut F,
    ) -> anyhow::Result<Pass>
    where
        F: FnMut(Uid, Vec<u8>) -> Fut + Send,
        Fut: Future<Output = Outcome> + Send,
    {
        let mut pass = Pass::default();
        let (mut processed, mut kept) = (Vec::new(), Vec::new());
        // The list is replaced only once all are looked at: after an error it is kept whole.
        let waiting = self.later.clone();
        for (at, &(uid, since)) in waiting.iter().enumerate() {
            if cancel.is_some_and(CancellationToken::is_cancelled) {
                kept.extend_from_slice(&waiting[at..]);
                break;
            }
            // `None` for a message another reader moved meanwhile.
            let Some(raw) = within(fetch(session, uid), "fetching a message").await? else {
                continue;
            };
            match handle(uid, raw).await {
                Outcome::Processed => processed.push(uid),
                Outcome::NotAReport => pass.not_reports += 1,
                // Kept too long: this was its last look.
                Outcome::Retry if since.elapsed() > self.retry_for => {
                    tracing::warn!(
                        uid,
                        "bounce mailbox: a report about an email still not sent, left alone"
                    );
                    pass.expired += 1;
                }
                Outcome::Retry => {
                    pass.retry = true;
                    kept.push((uid, since));
                }
                Outcome::Unavailable => {
                    pass.retry = true;
                    pass.stalled = true;
                    kept.extend_from_slice(&waiting[at..]);
                    break;
                }
            }
        }
        if !processed.is_empty() {
            within(self.move_processed(session, &processed), "moving").await?;
        }
        self.later = kept;
        pass.processed = processed.len();
        Ok(pass)
    }

    /// Moves messages to the processed folder: `UID MOVE` where offered, else copy, flag
    /// `\Deleted` and expunge those UIDs (`UID EXPUNGE` with UIDPLUS).
    async fn move_processed(&self, session: &mut Session, uids: &[Uid]) -> anyhow::Result<()> {
        let set = uids
            .iter()
            .map(Uid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let folder = &self.url.processed;
        if self.offers.moves {
            session.uid_mv(&set, folder).await?;
            return Ok(());
        }
        session.uid_copy(&set, folder).await?;
        let stored = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?;
        stored.try_collect::<Vec<_>>().await?;
        if self.offers.uidplus {
            session
                .uid_expunge(&set)
                .await?
                .try_collect::<Vec<_>>()
                .await?;
        } else {
            session.expunge().await?.try_collect::<Vec<_>>().await?;
        }
        Ok(())
    }
}

/// The UIDs and sizes of up to [`BATCH`] messages from `next_uid` on, in UID order.
async fn new_messages(session: &mut Session, next_uid: Uid) -> anyhow::Result<Vec<(Uid, u32)>> {
    let mut found = Vec::new();
    let mut fetches = session
        .uid_fetch(format!("{next_uid}:*"), "(UID RFC822.SIZE)")
        .await?;
    while let Some(fetch) = fetches.try_next().await? {
        // `N:*` names the last message even when its UID is below N.
        if let (Some(uid), Some(size)) = (fetch.uid, fetch.size)
            && uid >= next_uid
        {
            found.push((uid, size));
            if found.len() > 4 * BATCH {
                found.sort_unstable();
                found.truncate(BATCH);
            }
        }
    }
    found.sort_unstable();
    found.truncate(BATCH);
    Ok(found)
}

/// A message's bytes without marking it `\Seen`; `None` when it is gone.
async fn fetch(session: &mut Session, uid: Uid) -> anyhow::Result<Option<Vec<u8>>> {
    let fetches: Vec<_> = session
        .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
        .await?
        .try_collect()
        .await?;
    Ok(fetches
        .iter()
        .find(|fetch| fetch.uid == Some(uid))
        .and_then(|fetch| fetch.body())
        .map(<[u8]>::to_vec))
}

/// Waits in IDLE until the server reports a change, [`IDLE_TIMEOUT`] passes, or `cancel`
/// fires; returns the session and whether it was cancelled.
async fn idle_wait(
    session: Session,
    cancel: &CancellationToken,
) -> anyhow::Result<(Session, bool)> {
    let mut idle = session.idle();
    within(idle.init(), "starting IDLE").await?;
    let (wait, stop) = idle.wait_with_timeout(IDLE_TIMEOUT);
    // The server's keep-alives restart the library's own timeout: bound the whole wait.
    let cancelled = tokio::select! {
        result = tokio::time::timeout(IDLE_TIMEOUT, wait) => {
            if let Ok(result) = result {
                result.context("waiting in IDLE")?;
            }
            false
        }
        () = cancel.cancelled() => true,
    };
    drop(stop);
    let session = within(idle.done(), "ending IDLE").await?;
    Ok((session, cancelled))
}

/// Opens the connection the URL asks for and signs in.
async fn connect(url: &MailboxUrl) -> anyhow::Result<Session> {
    let tcp = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .context("connecting")?;
    tcp.set_nodelay(true)?;
    let stream: Box<dyn Io> = match url.security {
        Security::Plain => Box::new(tcp),
        Security::Tls => Box::new(tls(&url.host, tcp).await?),
        Security::StartTls => {
            let mut client = async_imap::Client::new(tcp);
            greeting(&mut client).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("STARTTLS")?;
            Box::new(tls(&url.host, client.into_inner()).await?)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if url.security != Security::StartTls {
        greeting(&mut client).await?;
    }
    client
        .login(&url.user, url.password())
        .await
        .map_err(|(error, _)| error)
        .context("signing in")
}

/// Reads the server's greeting.
async fn greeting<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug>(
    client: &mut async_imap::Client<T>,
) -> anyhow::Result<()> {
    client
        .read_response()
        .await?
        .context("the server closed the connection before its greeting")?;
    Ok(())
}

/// TLS over `tcp`, checking the server's certificate against the web's root authorities with
/// the ring provider lettre uses (no second crypto backend, no process-wide default).
async fn tls(
    host: &str,
    tcp: TcpStream,
) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring, pki_types::ServerName};
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = ClientConfig::builder_with_provider(ring::default_provider().into())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned()).context("the IMAP host's name")?;
    tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .context("TLS handshake")
}

/// `future` under [`COMMAND_TIMEOUT`], its error described as `what` failed.
async fn within<T, E>(
    future: impl Future<Output = Result<T, E>>,
    what: &'static str,
) -> anyhow::Result<T>
where
    anyhow::Error: From<E>,
{
    match tokio::time::timeout(COMMAND_TIMEOUT, future).await {
        Ok(result) => Ok(result.map_err(anyhow::Error::from).context(what)?),
        Err(_) => anyhow::bail!("{what}: no answer within {COMMAND_TIMEOUT:?}"),
    }
}

/// Waits `duration` unless `cancel` fires first; returns whether it fired.
async fn pause(cancel: &CancellationToken, duration: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(duration) => false,
        () = cancel.cancelled() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_without_a_server_gives_up_when_cancelled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = MailboxUrl::parse(&format!("imap://u:p@127.0.0.1:{port}/?tls=none")).unwrap();
        let mut reader = MailboxReader::new(url, Duration::from_secs(1));
        assert!(
            reader
                .read_once(|_, _| async { Outcome::Processed })
                .await
                .is_err()
        );
        let cancel = CancellationToken::new();
        cancel.cancel();
        reader
            .run(&cancel, |_, _| async { Outcome::Processed })
            .await;
        assert_eq!(reader.cursor(), Cursor::default());
    }
}
