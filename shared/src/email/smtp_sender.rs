//! SMTP sends over reused connections that this module opens, with `TCP_NODELAY`.
//!
//! lettre 0.11.23 writes a message's body and the closing `.` in two writes on a socket with
//! Nagle's algorithm on, so the second write waits for the server's delayed ACK (40 ms on Linux):
//! at most about 20 messages a second per connection, whatever the server can take (measured
//! here: 400 emails/s over 20 connections to postfix's `smtp-sink`). lettre fixed it upstream
//! (pull request #1159) after that release, so until a release carries it, plain and STARTTLS
//! connections are opened here, on a socket with `TCP_NODELAY`, and handed to lettre's
//! `AsyncSmtpConnection` for the protocol. Implicit TLS (`smtps://`) still connects through
//! lettre, as lettre keeps its TLS upgrade of a fresh socket private.
//!
//! Connections are kept for reuse, most recently used first. A send owns its connection, so a
//! send abandoned at its deadline closes it with it: late replies can never reach another
//! message. One idle for over a second is checked with `NOOP` before reuse; over a minute it is
//! closed, as lettre's own pool does.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Tls, TlsParameters};
use lettre::transport::smtp::extension::{ClientId, Extension};

use super::{SendError, SendReceipt, classify, error_chain, reply_text, truncate};

/// Idle longer than this, a connection is checked with `NOOP` before it is used.
const CHECK_AFTER: Duration = Duration::from_secs(1);
/// Idle longer than this, a connection is closed (lettre's default idle timeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how to connect, from `SMTP_URL` (already accepted by lettre's parser).
pub(super) struct Endpoint {
    host: String,
    port: u16,
    tls: Tls,
    credentials: Option<Credentials>,
    hello: ClientId,
}

impl Endpoint {
    /// Reads the URL as lettre's `from_url` does: `smtp://` on port 25, `?tls=required` or
    /// `?tls=opportunistic` (STARTTLS) on 587, `smtps://` on 465, a path as the EHLO name, and
    /// percent-encoded `user:password`.
    pub(super) fn parse(url: &str) -> Result<Endpoint, String> {
        let url = url::Url::parse(url).map_err(|e| e.to_string())?;
        let host = url.host_str().ok_or("no host")?.to_owned();
        let tls_mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let parameters = || TlsParameters::new(host.clone()).map_err(|e| e.to_string());
        let (tls, default_port) = match (url.scheme(), tls_mode.as_deref()) {
            ("smtps", _) => (Tls::Wrapper(parameters()?), 465),
            ("smtp", None) => (Tls::None, 25),
            ("smtp", Some("required")) => (Tls::Required(parameters()?), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(parameters()?), 587),
            (scheme, mode) => return Err(format!("unknown scheme {scheme} or tls={mode:?}")),
        };
        let hello = match url.path().trim_matches('/') {
            "" => ClientId::default(),
            name => ClientId::Domain(name.to_owned()),
        };
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|e| e.to_string())
        };
        let credentials = match url.password() {
            Some(password) => Some(Credentials::new(decode(url.username())?, decode(password)?)),
            None => None,
        };
        Ok(Endpoint {
            port: url.port().unwrap_or(default_port),
            host,
            tls,
            credentials,
            hello,
        })
    }
}

/// An idle connection and when it was last used.
struct Idle {
    connection: AsyncSmtpConnection,
    since: Instant,
}

/// Sends over reused connections, each send within a deadline.
pub struct SmtpSender {
    endpoint: Endpoint,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    timeout: Duration,
    /// The URL without credentials, for logs.
    pub(super) described: String,
}

impl SmtpSender {
    pub(super) fn new(
        endpoint: Endpoint,
        max_idle: usize,
        timeout: Duration,
        described: String,
    ) -> SmtpSender {
        SmtpSender {
            endpoint,
            idle: Mutex::new(Vec::new()),
            max_idle,
            timeout,
            described,
        }
    }

    /// Sends `raw` to the envelope's recipients: the server's reply, or the failure classified.
    pub(super) async fn send(
        &self,
        envelope: &Envelope,
        raw: &[u8],
    ) -> Result<SendReceipt, SendError> {
        match tokio::time::timeout(self.timeout, self.send_within(envelope, raw)).await {
            Ok(result) => result,
            // The server may still accept this message after we gave up; a retry can then
            // deliver it twice, which SMTP itself cannot rule out.
            Err(_elapsed) => Err(SendError::Unavailable {
                reply: format!(
                    "no reply from the SMTP server within {} ms",
                    self.timeout.as_millis()
                ),
            }),
        }
    }

    async fn send_within(&self, envelope: &Envelope, raw: &[u8]) -> Result<SendReceipt, SendError> {
        let mut connection = match self.reusable().await {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        if let Some(missing) = missing_extension(&connection, envelope, raw) {
            self.put_back(connection);
            return Err(SendError::Permanent {
                reply: missing.to_owned(),
            });
        }
        // On a failure lettre has already closed the connection; it is dropped here.
        let response = connection
            .send(envelope, raw)
            .await
            .map_err(|e| classify(&e))?;
        self.put_back(connection);
        Ok(SendReceipt::Smtp {
            reply: truncate(reply_text(&response)),
        })
    }

    /// The most recently used idle connection that still answers, closing any too old.
    async fn reusable(&self) -> Option<AsyncSmtpConnection> {
        loop {
            let Idle {
                mut connection,
                since,
            } = self.lock_idle().pop()?;
            let idle_for = since.elapsed();
            if idle_for > IDLE_TIMEOUT || connection.has_broken() {
                connection.abort().await;
                continue;
            }
            if idle_for <= CHECK_AFTER || connection.test_connected().await {
                return Some(connection);
            }
        }
    }

    fn put_back(&self, connection: AsyncSmtpConnection) {
        let mut idle = self.lock_idle();
        if idle.len() < self.max_idle {
            idle.push(Idle {
                connection,
                since: Instant::now(),
            });
        }
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new connection: greeted, encrypted as the URL asks, authenticated.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let Endpoint {
            host,
            port,
            tls,
            credentials,
            hello,
        } = &self.endpoint;
        let mut connection = match tls {
            Tls::Wrapper(parameters) => AsyncSmtpConnection::connect_tokio1(
                (host.as_str(), *port),
                Some(self.timeout),
                hello,
                Some(parameters.clone()),
                None,
            )
            .await
            .map_err(|e| classify(&e))?,
            _ => {
                let socket = tokio::net::TcpStream::connect((host.as_str(), *port))
                    .await
                    .and_then(|socket| socket.set_nodelay(true).map(|()| socket))
                    .map_err(|e| SendError::Unavailable {
                        reply: truncate(format!(
                            "connecting to the SMTP server: {}",
                            error_chain(&e)
                        )),
                    })?;
                AsyncSmtpConnection::connect_with_transport(Box::new(socket), hello)
                    .await
                    .map_err(|e| classify(&e))?
            }
        };
        match tls {
            Tls::Required(parameters) => connection.starttls(parameters.clone(), hello).await,
            Tls::Opportunistic(parameters) if connection.can_starttls() => {
                connection.starttls(parameters.clone(), hello).await
            }
            _ => Ok(()),
        }
        .map_err(|e| classify(&e))?;
        if let Some(credentials) = credentials {
            connection
                .auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(connection)
    }
}

/// What the message needs that the server does not offer, in words: an address with a non-ASCII
/// local part needs SMTPUTF8 (RFC 6531), a message with 8-bit bytes needs 8BITMIME (RFC 6152).
/// No retry can cure either, so the send fails at once; lettre would refuse with an error that
/// reads like a client fault, not the server's.
fn missing_extension(
    connection: &AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
) -> Option<&'static str> {
    let offers = |extension| connection.server_info().supports_feature(extension);
    let addresses = envelope.from().into_iter().chain(envelope.to());
    let international = addresses.map(AsRef::<str>::as_ref).any(|a| !a.is_ascii());
    if international && !offers(Extension::SmtpUtfEight) {
        return Some(NO_SMTPUTF8);
    }
    if !raw.is_ascii() && !offers(Extension::EightBitMime) {
        return Some("the mail server does not accept 8-bit messages (8BITMIME)");
    }
    None
}

/// The reply recorded for an international address the server cannot take.
pub const NO_SMTPUTF8: &str = "the mail server does not support international addresses (SMTPUTF8)";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Endpoint {
        Endpoint::parse(url).unwrap()
    }

    #[test]
    fn default_ports_and_tls_modes_follow_lettre() {
        let cases = [
            ("smtp://mail.example", 25, "none"),
            ("smtp://mail.example?tls=required", 587, "required"),
            (
                "smtp://mail.example?tls=opportunistic",
                587,
                "opportunistic",
            ),
            ("smtps://mail.example", 465, "wrapper"),
            ("smtp://mail.example:2525?tls=required", 2525, "required"),
        ];
        for (url, port, mode) in cases {
            let endpoint = parse(url);
            let tls = match endpoint.tls {
                Tls::None => "none",
                Tls::Required(_) => "required",
                Tls::Opportunistic(_) => "opportunistic",
                Tls::Wrapper(_) => "wrapper",
            };
            assert_eq!(
                (endpoint.host.as_str(), endpoint.port, tls),
                ("mail.example", port, mode),
                "{url}"
            );
        }
    }

    #[test]
    fn credentials_are_percent_decoded_and_a_path_names_the_client() {
        let endpoint = parse("smtp://user%40example.com:p%3Ass@mail.example/client.example");
        assert_eq!(
            endpoint.credentials,
            Some(Credentials::new("user@example.com".into(), "p:ss".into()))
        );
        assert_eq!(endpoint.hello, ClientId::Domain("client.example".into()));
        assert_eq!(parse("smtp://mail.example").credentials, None);
    }

    #[test]
    fn an_unknown_tls_mode_is_an_error() {
        assert!(Endpoint::parse("smtp://mail.example?tls=maybe").is_err());
        assert!(Endpoint::parse("http://mail.example").is_err());
    }
}
