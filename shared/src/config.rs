//! Configuration: one typed struct, layered from `config/default.toml`, an optional
//! `config/local.toml` (or the file named by `CONFIG_FILE`), then environment variables.
//!
//! Every key is documented with its default in `config/default.toml`. Environment variables use the
//! key's upper-case name (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`, `PUBLIC_URL`, `API_ADDR`, …).
//! Durations take humantime text (`7d`, `24h`, `30s`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ipnet::IpNet;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

use crate::bounce::{MailboxUrl, ReturnPaths};

/// Which product edition runs: decides whether invitees without an account are `requested`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Edition {
    /// Self-hosted: every invitee is `invited`; admins may copy invitation links.
    #[default]
    #[serde(alias = "self-hosted", alias = "selfhosted")]
    SelfHosted,
    /// Cloud: invitees who never activated an account are `requested`.
    Cloud,
}

/// The header the trusted proxies write to name the client (`FORWARDED_HEADER`). Only that one is
/// read: a proxy passes the other through as the client wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For`, which nginx, HAProxy and cloud load balancers append to.
    #[default]
    #[serde(rename = "x-forwarded-for", alias = "X-Forwarded-For")]
    XForwardedFor,
    /// `Forwarded` (RFC 7239), its `for=` parameters.
    #[serde(rename = "forwarded", alias = "Forwarded")]
    Forwarded,
}

/// The networks of the proxies in front of `invite-api` (`TRUSTED_PROXIES`): addresses or CIDR
/// networks, as a TOML list or one string separated by commas or spaces (as an environment
/// variable gives them). Empty by default: the TCP peer is the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Proxies in these networks.
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks.iter().map(IpNet::trunc).collect())
    }

    /// Whether `ip` is one of the proxies (an IPv4-mapped IPv6 address is its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|network| network.contains(&ip))
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One address (a network of one) or CIDR network.
fn network(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("TRUSTED_PROXIES: `{text}` is not an IP address or CIDR network"))
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            List(Vec<String>),
        }
        let items = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
            Raw::List(items) => items,
        };
        let networks = items.iter().map(|item| network(item.trim()));
        networks
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies::new)
            .map_err(serde::de::Error::custom)
    }
}

/// The least address space a conversion child can start a workbook in.
const MIN_CONVERSION_MEMORY: u64 = 64 * 1024 * 1024;

/// The most deliveries one claim may take.
const MAX_SEND_BATCH: usize = 5000;

/// All settings of the API and the workers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `postgres://…` or `sqlite://PATH`; unset means `sqlite://{data_dir}/bulk-invite.db`.
    pub database_url: Option<SecretString>,
    /// `redis://…`; unset means the embedded queue in the database.
    pub redis_url: Option<SecretString>,
    /// `smtp://…` / `smtps://…`; unset means emails are written to `{data_dir}/outbox`.
    pub smtp_url: Option<SecretString>,
    /// Base URL of invitation links.
    pub public_url: String,
    /// Where `invite-api serve` listens.
    pub api_addr: SocketAddr,
    /// Where `invite-worker` serves `/metrics` (the API serves it on `api_addr`).
    pub metrics_addr: SocketAddr,
    /// Folder for the embedded database and the outbox.
    pub data_dir: PathBuf,
    /// `self_hosted` or `cloud`.
    pub edition: Edition,
    /// How long an invitation link stays valid after it is emailed.
    #[serde(with = "humantime_serde")]
    pub invite_ttl: Duration,
    /// How long the hand-over token of an accepted invitation can be verified by the workspace's
    /// application (`GET /api/v1/acceptances/{token}`).
    #[serde(with = "humantime_serde")]
    pub accept_handover_ttl: Duration,
    /// How long transient send failures are retried before the send is `failed`.
    #[serde(with = "humantime_serde")]
    pub email_retry_window: Duration,
    /// Wait before the first retry of a transient failure; later waits double (with jitter).
    #[serde(with = "humantime_serde")]
    pub email_retry_base_delay: Duration,
    /// The `From` of invitation emails.
    pub email_from: String,
    /// Largest accepted upload; bigger requests get 413.
    pub max_upload_bytes: u64,
    /// Largest accepted workbook (`.xlsx`, `.ods`, `.xls`) upload in bytes: a workbook's sheet is
    /// read whole into memory, unlike a CSV file.
    pub max_workbook_bytes: u64,
    /// Most cells a workbook may declare (shared strings, a sheet's extent, `.ods` repeats).
    pub max_workbook_cells: u64,
    /// Most bytes a workbook may unpack to, and most bytes of CSV it may convert to.
    pub max_workbook_unpacked_bytes: u64,
    /// Address-space limit of the child process that converts one workbook, in bytes.
    pub workbook_conversion_memory: u64,
    /// How long one workbook conversion may take (and an upload waits for a free slot).
    #[serde(with = "humantime_serde")]
    pub workbook_conversion_timeout: Duration,
    /// Workbook conversions one `invite-api` process runs at once.
    pub workbook_conversions: usize,
    /// Most data rows an import may have; a larger file fails before any row is applied.
    pub max_rows: u64,
    /// Failed authentications one client may make per minute before it gets 429.
    pub auth_failures_per_minute: u32,
    /// Proxies whose `Forwarded` / `X-Forwarded-For` headers name the client of a request.
    pub trusted_proxies: TrustedProxies,
    /// The header those proxies write to name the client.
    pub forwarded_header: ForwardedHeader,
    /// Uploads (imports and dry runs) per workspace per minute before 429.
    pub uploads_per_minute: u32,
    /// Imports of a workspace queued or processing at once before further uploads get 429.
    pub imports_in_flight: u32,
    /// Least time between two support actions (resend, unarchive, invitation link, address
    /// correction) on one member; zero means no cooldown.
    #[serde(with = "humantime_serde")]
    pub member_action_cooldown: Duration,
    /// Support-initiated emails (resends, unarchive re-invitations, invitations to a corrected
    /// address) one workspace may queue per UTC day; 0 means no limit.
    pub support_emails_per_day: u32,
    /// Least time between two reminders to one member, counted from their last reminder.
    #[serde(with = "humantime_serde")]
    pub remind_cooldown: Duration,
    /// Most reminders one member gets; 0 means reminders are off.
    pub remind_max: u32,
    /// How long the stored file of a finished import is kept before housekeeping deletes it (its
    /// counts and per-row results stay).
    #[serde(with = "humantime_serde")]
    pub upload_retention: Duration,
    /// Rows validated and written per database transaction (and per checkpoint).
    pub import_chunk_rows: usize,
    /// Deliveries claimed per send batch (1 to 5000).
    pub send_batch_size: usize,
    /// How often each worker looks for due deliveries (retries) without being told.
    #[serde(with = "humantime_serde")]
    pub send_poll_interval: Duration,
    /// How long a claimed delivery is reserved for the worker sending it; the last resort, since a
    /// dead worker's deliveries are handed back once its heartbeat is `WORKER_DEAD_AFTER` old.
    #[serde(with = "humantime_serde")]
    pub email_lease: Duration,
    /// SMTP sends in flight (and pooled connections) per worker process.
    pub smtp_pool_size: u32,
    /// Deadline of one SMTP send; also how long a graceful shutdown lets sends in flight finish.
    #[serde(with = "humantime_serde")]
    pub smtp_timeout: Duration,
    /// First pause of all sending when the mail server is unavailable (421, 452, refused
    /// connection, timeout); doubles, up to a minute, while it stays unavailable.
    #[serde(with = "humantime_serde")]
    pub smtp_outage_backoff: Duration,
    /// Most emails sent per second by all workers together; unset means no cap.
    pub email_rate_per_sec: Option<u32>,
    /// Database connections per process.
    pub db_pool_size: usize,
    /// How long an import is reserved for the worker processing it without progress; the last
    /// resort, since a worker that dies mid-import is replaced once its heartbeat is
    /// `WORKER_DEAD_AFTER` old.
    #[serde(with = "humantime_serde")]
    pub import_lease: Duration,
    /// How often each process that claims work writes its heartbeat to the database.
    #[serde(with = "humantime_serde")]
    pub worker_heartbeat_interval: Duration,
    /// How old a process's heartbeat may grow before it counts as dead: its claims are handed back
    /// at once, and a process that could not write its heartbeat for this long gives back what it
    /// holds and stops claiming until it can.
    #[serde(with = "humantime_serde")]
    pub worker_dead_after: Duration,
    /// How often an idle worker looks for new jobs in the queue (also its heartbeat).
    #[serde(with = "humantime_serde")]
    pub queue_poll_interval: Duration,
    /// Prefix of every Redis key, so several deployments (or tests) share one Redis.
    pub queue_prefix: String,
    /// Jobs each worker process runs at once, per job kind.
    pub worker_concurrency: usize,
    /// How long a process rides out an unavailable database or queue before it exits (non-zero,
    /// for a supervisor to restart it); unset means it never gives up.
    #[serde(with = "humantime_serde::option")]
    pub outage_limit: Option<Duration>,

    // What an HTTP client may hold: the limits of `invite-api`'s server (README "HTTP limits").
    /// Time a client has to send a request's header; also how long a kept-alive connection may wait
    /// idle for its next request.
    #[serde(with = "humantime_serde")]
    pub http_header_timeout: Duration,
    /// Time to answer a request, its body included, on every route but the upload (503 beyond).
    #[serde(with = "humantime_serde")]
    pub http_request_timeout: Duration,
    /// Time an upload may take to arrive and be stored (503 beyond).
    #[serde(with = "humantime_serde")]
    pub http_upload_timeout: Duration,
    /// Longest pause in a request body before the request fails (408) and its connection closes;
    /// also the longest a response may wait for the client to read it before the connection closes.
    #[serde(with = "humantime_serde")]
    pub http_body_idle_timeout: Duration,
    /// Slowest average rate of a request body in bytes per second, once
    /// `http_body_min_rate_grace` has passed (408 below it); 0 means no minimum.
    pub http_body_min_rate: u64,
    /// How long a request body may arrive slower than `http_body_min_rate` at its start.
    #[serde(with = "humantime_serde")]
    pub http_body_min_rate_grace: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub http_max_connections: usize,
    /// Largest body of every route but the upload (JSON bodies), in bytes (413 beyond).
    pub json_body_limit: usize,

    // The bounce reader (docs/product.md, "Bounces and complaints").
    /// The address each email's return path is made under (`bounces@bounce.example.com` gives
    /// `bounces+{delivery}-{tag}@bounce.example.com`); unset means no per-delivery return paths.
    pub bounce_address: Option<String>,
    /// The key of the return paths' tags (at least 16 bytes); required with `bounce_address`.
    pub bounce_key: Option<SecretString>,
    /// The mailbox bounces arrive in (`imaps://user:password@host/INBOX?processed=Processed`);
    /// unset means no bounce reader. Requires `bounce_address`.
    pub bounce_imap_url: Option<SecretString>,
    /// How often the bounce reader looks for new mail when the server offers no IDLE.
    #[serde(with = "humantime_serde")]
    pub bounce_poll_interval: Duration,

    // Webhooks (docs/product.md, "Webhooks").
    /// Allow webhook endpoints on private, loopback and link-local addresses, and plain `http`
    /// (for tests and closed networks); off, only public `https` hosts are called.
    pub webhook_allow_private: bool,
    /// Deadline of one webhook POST, from connecting to the end of the answer.
    #[serde(with = "humantime_serde")]
    pub webhook_timeout: Duration,
    /// How long a webhook delivery is retried before it is `failed`; an endpoint whose deliveries
    /// all failed this long is disabled.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_window: Duration,
    /// Wait before the first retry of a webhook delivery; later waits double (with jitter), up to
    /// one hour.
    #[serde(with = "humantime_serde")]
    pub webhook_retry_base_delay: Duration,
    /// How long webhook events and their delivery log are kept; at least `webhook_retry_window`.
    #[serde(with = "humantime_serde")]
    pub webhook_retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: None,
            redis_url: None,
            smtp_url: None,
            public_url: "http://localhost:8080".into(),
            api_addr: ([127, 0, 0, 1], 8080).into(),
            metrics_addr: ([127, 0, 0, 1], 9090).into(),
            data_dir: PathBuf::from("data"),
            edition: Edition::SelfHosted,
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            accept_handover_ttl: Duration::from_secs(10 * 60),
            email_retry_window: Duration::from_secs(24 * 3600),
            email_retry_base_delay: Duration::from_secs(30),
            email_from: "Bulk Invite <no-reply@localhost>".into(),
            max_upload_bytes: 256 * 1024 * 1024,
            max_workbook_bytes: 4 * 1024 * 1024,
            max_workbook_cells: 5_000_000,
            max_workbook_unpacked_bytes: 128 * 1024 * 1024,
            workbook_conversion_memory: 1024 * 1024 * 1024,
            workbook_conversion_timeout: Duration::from_secs(60),
            workbook_conversions: 2,
            max_rows: 1_000_000,
            auth_failures_per_minute: 20,
            trusted_proxies: TrustedProxies::default(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            uploads_per_minute: 30,
            imports_in_flight: 10,
            member_action_cooldown: Duration::from_secs(60),
            support_emails_per_day: 0,
            remind_cooldown: Duration::from_secs(3 * 24 * 3600),
            remind_max: 3,
            upload_retention: Duration::from_secs(30 * 24 * 3600),
            import_chunk_rows: 1000,
            send_batch_size: 50,
            send_poll_interval: Duration::from_secs(5),
            email_lease: Duration::from_secs(300),
            smtp_pool_size: 20,
            smtp_timeout: Duration::from_secs(30),
            smtp_outage_backoff: Duration::from_secs(1),
            email_rate_per_sec: None,
            db_pool_size: 10,
            import_lease: Duration::from_secs(120),
            worker_heartbeat_interval: Duration::from_secs(2),
            worker_dead_after: Duration::from_secs(15),
            queue_poll_interval: Duration::from_secs(1),
            queue_prefix: "bulk-invite".into(),
            worker_concurrency: 2,
            outage_limit: None,

            http_header_timeout: Duration::from_secs(10),
            http_request_timeout: Duration::from_secs(30),
            http_upload_timeout: Duration::from_secs(30 * 60),
            http_body_idle_timeout: Duration::from_secs(30),
            http_body_min_rate: 1024,
            http_body_min_rate_grace: Duration::from_secs(10),
            http_max_connections: 1024,
            json_body_limit: 16 * 1024,

            bounce_address: None,
            bounce_key: None,
            bounce_imap_url: None,
            bounce_poll_interval: Duration::from_secs(60),

            webhook_allow_private: false,
            webhook_timeout: Duration::from_secs(10),
            webhook_retry_window: Duration::from_secs(24 * 3600),
            webhook_retry_base_delay: Duration::from_secs(10),
            webhook_retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl Settings {
    /// Loads `config/default.toml`, `config/local.toml` (or `$CONFIG_FILE`), then the environment.
    pub fn load() -> anyhow::Result<Settings> {
        let dir = std::env::var("CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let local = std::env::var("CONFIG_FILE").unwrap_or_else(|_| format!("{dir}/local.toml"));
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from(Path::new(&dir).join("default.toml")).required(false))
            .add_source(config::File::from(PathBuf::from(local)).required(false))
            .add_source(config::Environment::default())
            .build()
            .context("reading configuration")?
            .try_deserialize()
            .context("invalid configuration")?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.import_chunk_rows > 0,
            "IMPORT_CHUNK_ROWS must be at least 1"
        );
        anyhow::ensure!(
            (1..=MAX_SEND_BATCH).contains(&self.send_batch_size),
            "SEND_BATCH_SIZE must be 1 to {MAX_SEND_BATCH}"
        );
        anyhow::ensure!(
            self.worker_concurrency > 0,
            "WORKER_CONCURRENCY must be at least 1"
        );
        anyhow::ensure!(
            self.workbook_conversions > 0,
            "WORKBOOK_CONVERSIONS must be at least 1"
        );
        anyhow::ensure!(self.db_pool_size > 0, "DB_POOL_SIZE must be at least 1");
        anyhow::ensure!(
            !self.worker_heartbeat_interval.is_zero()
                && self.worker_dead_after >= self.worker_heartbeat_interval * 2,
            "WORKER_DEAD_AFTER must be at least twice WORKER_HEARTBEAT_INTERVAL, which must be longer than 0"
        );
        // It is also PostgreSQL's `idle_in_transaction_session_timeout`, a 32-bit count of ms.
        anyhow::ensure!(
            self.worker_dead_after <= Duration::from_secs(24 * 3600),
            "WORKER_DEAD_AFTER must be at most 1 day"
        );
        anyhow::ensure!(self.smtp_pool_size > 0, "SMTP_POOL_SIZE must be at least 1");
        anyhow::ensure!(
            self.email_rate_per_sec != Some(0),
            "EMAIL_RATE_PER_SEC must be at least 1 (leave it unset for no cap)"
        );
        self.validate_http()?;
        self.validate_bounces()?;
        self.validate_webhooks()?;
        anyhow::ensure!(
            self.public_url.starts_with("http://") || self.public_url.starts_with("https://"),
            "PUBLIC_URL must be an http(s) URL"
        );
        // A bad URL is a configuration error (exit at once), unlike a Redis that is down (wait).
        if let Some(url) = &self.redis_url {
            redis::Client::open(url.expose_secret())
                .map_err(|_| anyhow::anyhow!("REDIS_URL is not a valid redis:// URL"))?;
        }
        Ok(())
    }

    fn validate_http(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("HTTP_HEADER_TIMEOUT", self.http_header_timeout),
            ("HTTP_REQUEST_TIMEOUT", self.http_request_timeout),
            ("HTTP_UPLOAD_TIMEOUT", self.http_upload_timeout),
            (
                "WORKBOOK_CONVERSION_TIMEOUT",
                self.workbook_conversion_timeout,
            ),
            ("HTTP_BODY_IDLE_TIMEOUT", self.http_body_idle_timeout),
        ] {
            anyhow::ensure!(!value.is_zero(), "{name} must be longer than 0");
        }
        anyhow::ensure!(
            self.http_max_connections > 0,
            "HTTP_MAX_CONNECTIONS must be at least 1"
        );
        anyhow::ensure!(
            self.json_body_limit > 0,
            "JSON_BODY_LIMIT must be at least 1"
        );
        anyhow::ensure!(
            self.workbook_conversion_memory >= MIN_CONVERSION_MEMORY,
            "WORKBOOK_CONVERSION_MEMORY must be at least {MIN_CONVERSION_MEMORY} bytes (64 MiB)"
        );
        Ok(())
    }

    fn validate_bounces(&self) -> anyhow::Result<()> {
        self.return_paths()?;
        self.bounce_mailbox()?;
        anyhow::ensure!(
            !self.bounce_poll_interval.is_zero(),
            "BOUNCE_POLL_INTERVAL must be longer than 0"
        );
        Ok(())
    }

    fn validate_webhooks(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.webhook_retention >= self.webhook_retry_window,
            "WEBHOOK_RETENTION must be at least WEBHOOK_RETRY_WINDOW, or events would be deleted while they are retried"
        );
        Ok(())
    }

    /// The per-delivery return paths, when `BOUNCE_ADDRESS` is set (with its `BOUNCE_KEY`).
    pub fn return_paths(&self) -> anyhow::Result<Option<ReturnPaths>> {
        let Some(address) = &self.bounce_address else {
            anyhow::ensure!(
                self.bounce_key.is_none(),
                "BOUNCE_KEY is set without BOUNCE_ADDRESS"
            );
            return Ok(None);
        };
        let key = self
            .bounce_key
            .as_ref()
            .context("BOUNCE_ADDRESS needs BOUNCE_KEY (at least 16 bytes)")?;
        Ok(Some(ReturnPaths::new(
            address,
            key.expose_secret().as_bytes(),
        )?))
    }

    /// The bounce mailbox, when `BOUNCE_IMAP_URL` is set (with `BOUNCE_ADDRESS`).
    pub fn bounce_mailbox(&self) -> anyhow::Result<Option<MailboxUrl>> {
        let Some(url) = &self.bounce_imap_url else {
            return Ok(None);
        };
        anyhow::ensure!(
            self.bounce_address.is_some(),
            "BOUNCE_IMAP_URL needs BOUNCE_ADDRESS, whose return paths name the bounced emails"
        );
        Ok(Some(MailboxUrl::parse(url.expose_secret())?))
    }

    /// The database URL in force: the configured one or the embedded SQLite file.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) => url.expose_secret().to_owned(),
            None => format!(
                "sqlite://{}",
                self.data_dir.join("bulk-invite.db").display()
            ),
        }
    }

    /// Where the outbox is when no SMTP server is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// The link an invitee opens for a token.
    pub fn invitation_url(&self, token: &str) -> String {
        format!(
            "{}/invitations/{token}",
            self.public_url.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_embedded_stack() {
        let s = Settings::default();
        assert!(s.validate().is_ok());
        assert_eq!(s.database_url(), "sqlite://data/bulk-invite.db");
        assert!(s.redis_url.is_none() && s.smtp_url.is_none());
        assert_eq!(
            s.invitation_url("abc"),
            "http://localhost:8080/invitations/abc"
        );
    }

    #[test]
    fn the_bounce_settings_go_together_and_are_checked() {
        let with = |address: Option<&str>, key: Option<&str>, url: Option<&str>| Settings {
            bounce_address: address.map(str::to_owned),
            bounce_key: key.map(SecretString::from),
            bounce_imap_url: url.map(SecretString::from),
            ..Settings::default()
        };
        let key = Some("sixteen bytes or more");
        let address = Some("bounces@bounce.example.com");
        let url = Some("imaps://u:secret@imap.example.com/INBOX");
        assert!(with(None, None, None).validate().is_ok());
        assert!(with(address, key, url).validate().is_ok());
        let ok = with(address, key, url);
        assert!(ok.return_paths().unwrap().is_some());
        assert_eq!(ok.bounce_mailbox().unwrap().unwrap().folder, "INBOX");
        for (settings, says) in [
            (with(address, None, None), "BOUNCE_KEY"),
            (with(address, Some("short"), None), "BOUNCE_KEY"),
            (with(None, key, None), "BOUNCE_KEY"),
            (with(Some("no-at-sign"), key, None), "BOUNCE_ADDRESS"),
            (with(None, None, url), "BOUNCE_ADDRESS"),
            (
                with(address, key, Some("imap://u:secret@example.com/?tls=none")),
                "BOUNCE_IMAP_URL",
            ),
        ] {
            let error = format!("{:#}", settings.validate().unwrap_err());
            assert!(error.contains(says), "{error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn trusted_proxies_are_read_from_a_list_or_a_string_and_match_their_networks() {
        let from = |value: serde_json::Value| serde_json::from_value::<TrustedProxies>(value);
        let listed = from(serde_json::json!(["10.0.0.0/8", "2001:db8::1"])).unwrap();
        let text = from(serde_json::json!("10.0.0.0/8, 2001:db8::1")).unwrap();
        assert_eq!(listed, text);
        assert!(listed.contains("10.1.2.3".parse().unwrap()));
        assert!(listed.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(listed.contains("2001:db8::1".parse().unwrap()));
        assert!(!listed.contains("2001:db8::2".parse().unwrap()));
        assert!(!listed.contains("11.0.0.1".parse().unwrap()));
        assert!(from(serde_json::json!("10.0.0.0/8, nonsense")).is_err());
        assert!(from(serde_json::json!("")).unwrap().is_empty());
    }

    #[test]
    fn the_shipped_default_file_parses_and_matches_the_built_in_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/default.toml");
        let from_file: Settings = config::Config::builder()
            .add_source(config::File::from(Path::new(path)))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let built_in = Settings::default();
        assert_eq!(format!("{from_file:?}"), format!("{built_in:?}"));
    }

    /// The names of a struct's fields, as serde asks a deserializer for them.
    fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        struct Probe<'a>(&'a mut &'static [&'static str]);
        impl<'de> serde::Deserializer<'de> for Probe<'_> {
            type Error = serde::de::value::Error;
            fn deserialize_any<V: serde::de::Visitor<'de>>(
                self,
                _: V,
            ) -> Result<V::Value, Self::Error> {
                Err(serde::de::Error::custom("not a struct"))
            }
            fn deserialize_struct<V: serde::de::Visitor<'de>>(
                self,
                _name: &'static str,
                fields: &'static [&'static str],
                _visitor: V,
            ) -> Result<V::Value, Self::Error> {
                *self.0 = fields;
                Err(serde::de::Error::custom("probed"))
            }
            serde::forward_to_deserialize_any! {
                bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
                byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
                identifier ignored_any
            }
        }
        let mut fields: &'static [&'static str] = &[];
        let _ = T::deserialize(Probe(&mut fields));
        fields
    }

    #[test]
    fn the_shipped_default_file_names_every_setting() {
        let file = include_str!("../../config/default.toml");
        let named = |key: &str| {
            file.lines().any(|line| {
                let line = line.trim_start_matches('#').trim_start();
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
        };
        let fields = field_names::<Settings>();
        assert!(fields.len() > 40, "{fields:?}");
        let missing: Vec<_> = fields.iter().filter(|key| !named(key)).collect();
        assert!(
            missing.is_empty(),
            "not in config/default.toml: {missing:?}"
        );
    }
}
