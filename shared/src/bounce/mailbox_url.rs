//! `BOUNCE_IMAP_URL`: where the bounce mailbox is, how to sign in, which folder to read and where
//! processed reports go (docs/product.md, "Bounces and complaints"; README "Configuration").
//!
//! `imaps://USER:PASSWORD@HOST[:993]/FOLDER?processed=PROCESSED` (TLS from the start), or
//! `imap://…[:143]/…` (STARTTLS, required). `imap://…?tls=none` speaks plain text and is refused
//! unless the host is a loopback address (tests, a local Dovecot). `FOLDER` defaults to `INBOX`,
//! `PROCESSED` to `Processed`; user, password and folders are percent-decoded.

use std::borrow::Cow;
use std::net::IpAddr;

use percent_encoding::percent_decode_str;
use secrecy::{ExposeSecret as _, SecretString};

/// The folder processed reports are moved to unless the URL names another.
pub const DEFAULT_PROCESSED: &str = "Processed";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte.
    Tls,
    /// `imap://`: plain text upgraded with STARTTLS before signing in.
    StartTls,
    /// `imap://…?tls=none`: plain text, to a loopback address only.
    Plain,
}

/// A parsed `BOUNCE_IMAP_URL`. Its `Debug` leaves the password out.
#[derive(Clone)]
pub struct MailboxUrl {
    /// Host name or IP address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS, STARTTLS or plain text.
    pub security: Security,
    /// The user to sign in as.
    pub user: String,
    password: SecretString,
    /// The folder reports arrive in.
    pub folder: String,
    /// The folder processed reports are moved to.
    pub processed: String,
}

impl std::fmt::Debug for MailboxUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailboxUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("folder", &self.folder)
            .field("processed", &self.processed)
            .finish_non_exhaustive()
    }
}

/// What is wrong with a `BOUNCE_IMAP_URL`; never quotes the URL, which carries a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailboxUrlError {
    /// Not a URL, or not `imap://` / `imaps://` with a host.
    #[error("BOUNCE_IMAP_URL must be imaps://USER:PASSWORD@HOST[:PORT]/FOLDER or imap://…")]
    Malformed,
    /// No user or password.
    #[error("BOUNCE_IMAP_URL must name a user and a password")]
    NoCredentials,
    /// `tls=none` to a host that is not loopback, or an unknown `tls=` value.
    #[error(
        "BOUNCE_IMAP_URL: tls=none is only for a loopback host; otherwise use imaps:// or imap:// (STARTTLS)"
    )]
    Plaintext,
    /// A query parameter other than `processed` and `tls`, or the two folders the same.
    #[error(
        "BOUNCE_IMAP_URL takes ?processed=FOLDER (another folder than the one read) and ?tls=none only"
    )]
    BadParameter,
}

impl MailboxUrl {
    /// Parses and checks a `BOUNCE_IMAP_URL`.
    pub fn parse(text: &str) -> Result<MailboxUrl, MailboxUrlError> {
        let url = url::Url::parse(text.trim()).map_err(|_| MailboxUrlError::Malformed)?;
        let (mut security, default_port) = match url.scheme() {
            "imaps" => (Security::Tls, 993),
            "imap" => (Security::StartTls, 143),
            _ => return Err(MailboxUrlError::Malformed),
        };
        let host = url
            .host_str()
            .filter(|host| !host.is_empty())
            .ok_or(MailboxUrlError::Malformed)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let user = decoded(url.username());
        let password = decoded(url.password().unwrap_or_default());
        if user.is_empty() || password.is_empty() {
            return Err(MailboxUrlError::NoCredentials);
        }
        let mut processed = DEFAULT_PROCESSED.to_owned();
        for (name, value) in url.query_pairs() {
            match (name.as_ref(), value.as_ref()) {
                ("processed", folder) if !folder.is_empty() => processed = folder.to_owned(),
                ("tls", "none") if security == Security::StartTls => security = Security::Plain,
                ("tls", _) => return Err(MailboxUrlError::Plaintext),
                _ => return Err(MailboxUrlError::BadParameter),
            }
        }
        if security == Security::Plain && !is_loopback(&host) {
            return Err(MailboxUrlError::Plaintext);
        }
        let folder = decoded(url.path().trim_start_matches('/'));
        let folder = if folder.is_empty() {
            "INBOX".to_owned()
        } else {
            folder
        };
        if folder == processed {
            return Err(MailboxUrlError::BadParameter);
        }
        Ok(MailboxUrl {
            host,
            port: url.port().unwrap_or(default_port),
            security,
            user,
            password: SecretString::from(password),
            folder,
            processed,
        })
    }

    /// The password to sign in with.
    pub fn password(&self) -> &str {
        self.password.expose_secret()
    }
}

fn decoded(text: &str) -> String {
    percent_decode_str(text)
        .decode_utf8()
        .unwrap_or(Cow::Borrowed(text))
        .into_owned()
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imaps_url_names_everything_with_defaults() {
        let url =
            MailboxUrl::parse("imaps://bounces%40example.com:p%40ss@imap.example.com/").unwrap();
        assert_eq!(url.host, "imap.example.com");
        assert_eq!(url.port, 993);
        assert_eq!(url.security, Security::Tls);
        assert_eq!(url.user, "bounces@example.com");
        assert_eq!(url.password(), "p@ss");
        assert_eq!(url.folder, "INBOX");
        assert_eq!(url.processed, DEFAULT_PROCESSED);
        assert!(!format!("{url:?}").contains("p@ss"));
    }

    #[test]
    fn imap_means_starttls_and_folders_come_from_the_path_and_query() {
        let url = MailboxUrl::parse("imap://u:p@mail.example.com:1143/Bounces%20In?processed=Done")
            .unwrap();
        assert_eq!(url.security, Security::StartTls);
        assert_eq!(url.port, 1143);
        assert_eq!(url.folder, "Bounces In");
        assert_eq!(url.processed, "Done");
    }

    #[test]
    fn plain_text_is_for_loopback_only() {
        for host in ["127.0.0.1", "[::1]", "localhost"] {
            let url = MailboxUrl::parse(&format!("imap://u:p@{host}:1143/INBOX?tls=none")).unwrap();
            assert_eq!(url.security, Security::Plain, "{host}");
        }
        for text in [
            "imap://u:p@mail.example.com/INBOX?tls=none",
            "imaps://u:p@127.0.0.1/INBOX?tls=none",
            "imap://u:p@127.0.0.1/INBOX?tls=maybe",
        ] {
            assert_eq!(
                MailboxUrl::parse(text).unwrap_err(),
                MailboxUrlError::Plaintext,
                "{text}"
            );
        }
    }

    #[test]
    fn bad_urls_are_refused_without_quoting_them() {
        for (text, error) in [
            ("not a url", MailboxUrlError::Malformed),
            ("https://u:p@example.com/", MailboxUrlError::Malformed),
            ("imaps://example.com/", MailboxUrlError::NoCredentials),
            ("imaps://u@example.com/", MailboxUrlError::NoCredentials),
            (
                "imaps://u:secret@example.com/?other=1",
                MailboxUrlError::BadParameter,
            ),
            (
                "imaps://u:secret@example.com/Done?processed=Done",
                MailboxUrlError::BadParameter,
            ),
        ] {
            let refused = MailboxUrl::parse(text).unwrap_err();
            assert_eq!(refused, error, "{text}");
            assert!(!refused.to_string().contains("secret"));
        }
    }
}
