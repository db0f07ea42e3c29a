//! Abuse limits, each answered 429 with `Retry-After` and counted in
//! `invites_rate_limited_total{limit}`: failed authentications per client and uploads per
//! workspace, in one-minute windows kept by this process; and imports in flight per workspace,
//! counted in the database.
//!
//! The windows are per `invite-api` process: behind a load balancer of N processes a client gets
//! up to N times the limit. The client is the TCP peer, or, when the peer is one of
//! `TRUSTED_PROXIES`, the address its forwarding headers name ([`client_key`]). A window table
//! holds at most [`MAX_KEYS`] keys, so a flood of addresses cannot grow memory.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::header::FORWARDED;
use axum::http::request::Parts;
use invite_shared::config::{ForwardedHeader, TrustedProxies};

use crate::error::ApiError;

/// Length of a counting window.
const WINDOW: Duration = Duration::from_secs(60);
/// Most keys one window table holds.
pub const MAX_KEYS: usize = 100_000;

/// One key's current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl Window {
    /// How long the window has left; `None` once it is over.
    fn left(&self) -> Option<Duration> {
        WINDOW.checked_sub(self.started.elapsed())
    }
}

/// Counts per key in fixed one-minute windows, for at most a fixed number of keys: when the table
/// is full, expired windows are swept, and if it is still nearly full the oldest windows are
/// dropped, down to nine tenths of the cap (so a sweep happens at most once per tenth of the cap
/// of new keys).
#[derive(Debug)]
pub struct Windows<K> {
    counts: Mutex<HashMap<K, Window>>,
    cap: usize,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows::with_cap(MAX_KEYS)
    }
}

impl<K> Windows<K> {
    /// A table of at most `cap` keys (at least 10).
    pub fn with_cap(cap: usize) -> Self {
        Windows {
            counts: Mutex::new(HashMap::new()),
            cap: cap.max(10),
        }
    }
}

impl<K: Hash + Eq + Clone> Windows<K> {
    /// How long until `key` may try again, if it has used up `limit` in its current window.
    pub fn blocked(&self, key: &K, limit: u32) -> Option<Duration> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let window = counts.get(key)?;
        let left = window.left()?;
        (window.count >= limit).then_some(left)
    }

    /// Counts one more for `key`.
    pub fn hit(&self, key: &K) {
        self.count(key);
    }

    /// Counts one more for `key`; how long until it may try again if that took it over `limit`.
    pub fn hit_over(&self, key: &K, limit: u32) -> Option<Duration> {
        let window = self.count(key);
        (window.count > limit).then(|| window.left().unwrap_or(WINDOW))
    }

    /// How many keys the table holds.
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether the table holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn count(&self, key: &K) -> Window {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if !counts.contains_key(key) && counts.len() >= self.cap {
            make_room(&mut counts, self.cap);
        }
        let fresh = Window {
            started: Instant::now(),
            count: 0,
        };
        let window = counts.entry(key.clone()).or_insert(fresh);
        if window.left().is_none() {
            *window = fresh;
        }
        window.count = window.count.saturating_add(1);
        *window
    }
}

/// Sweeps expired windows out of a full table, then drops the oldest until at most nine tenths of
/// `cap` are left.
fn make_room<K: Hash + Eq + Clone>(counts: &mut HashMap<K, Window>, cap: usize) {
    let now = Instant::now();
    counts.retain(|_, window| now.duration_since(window.started) < WINDOW);
    let keep = cap - cap / 10;
    if counts.len() <= keep {
        return;
    }
    let excess = counts.len() - keep;
    let mut by_age: Vec<(Instant, K)> = counts
        .iter()
        .map(|(key, window)| (window.started, key.clone()))
        .collect();
    by_age.select_nth_unstable_by_key(excess - 1, |(started, _)| *started);
    for (_, key) in &by_age[..excess] {
        counts.remove(key);
    }
}

/// Who failed authentications are counted against: an IPv4 address, or an IPv6 client's /64
/// network (one subscriber's usual allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 client (also when seen as an IPv4-mapped IPv6 address).
    V4(Ipv4Addr),
    /// The first 64 bits of an IPv6 client's address.
    V6Net(u64),
    /// A server started without connection info.
    Unknown,
}

impl ClientKey {
    /// The key of a client address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) >> 64;
                ClientKey::V6Net(u64::try_from(bits).unwrap_or(u64::MAX))
            }
        }
    }
}

/// The windows of one API process.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Failed authentications, by client.
    pub failed_auth: Windows<ClientKey>,
    /// Uploads, by workspace.
    pub uploads: Windows<String>,
}

/// The 429 for `limit`, counted.
pub fn too_many(limit: &'static str, retry_after: Duration, message: String) -> ApiError {
    metrics::counter!(invite_shared::metrics::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    ApiError::TooManyRequests {
        message,
        retry_after: retry_after.as_secs().max(1),
    }
}

/// The client of a request: the TCP peer, unless the peer is a trusted proxy; then the address
/// the header those proxies write (`FORWARDED_HEADER`) names, read from the right past the trusted
/// hops. A header that cannot be read there leaves the peer. The other header is never read: a
/// proxy passes it through as the client wrote it.
pub fn client_key(
    parts: &Parts,
    (trusted, header): (&TrustedProxies, ForwardedHeader),
) -> ClientKey {
    let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>() else {
        return ClientKey::Unknown;
    };
    let peer = peer.ip().to_canonical();
    if !trusted.contains(peer) {
        return ClientKey::of(peer);
    }
    ClientKey::of(forwarded_client(&parts.headers, (trusted, header)).unwrap_or(peer))
}

/// The client named by the forwarding header; `None` when there is none or it cannot be read.
fn forwarded_client(
    headers: &HeaderMap,
    (trusted, header): (&TrustedProxies, ForwardedHeader),
) -> Option<IpAddr> {
    let hops = forwarded_hops(headers, header)?;
    let mut leftmost = None;
    for hop in hops.iter().rev() {
        let ip = node_ip(hop)?.to_canonical();
        if !trusted.contains(ip) {
            return Some(ip);
        }
        leftmost = Some(ip);
    }
    // Every hop is a trusted proxy: the first one is as close to the client as is known.
    leftmost
}

/// The nodes `header` lists, the client's first: each `for=` of `Forwarded` (RFC 7239; an element
/// without one is an empty node), or each entry of `X-Forwarded-For`. `None` without the header,
/// or when a line of it is not text.
fn forwarded_hops(headers: &HeaderMap, header: ForwardedHeader) -> Option<Vec<String>> {
    let name = match header {
        ForwardedHeader::Forwarded => FORWARDED.as_str(),
        ForwardedHeader::XForwardedFor => "x-forwarded-for",
    };
    let values = headers.get_all(name).iter().map(|v| v.to_str().ok());
    let lines: Vec<&str> = values.collect::<Option<_>>()?;
    if lines.is_empty() {
        return None;
    }
    let items = lines.iter().flat_map(|line| line.split(','));
    Some(match header {
        ForwardedHeader::Forwarded => items.map(forwarded_for).collect(),
        ForwardedHeader::XForwardedFor => items.map(|entry| entry.trim().to_owned()).collect(),
    })
}

/// The `for` parameter of one `Forwarded` element, unquoted; empty when it has none.
fn forwarded_for(element: &str) -> String {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map(|(_, value)| value.trim().trim_matches('"').to_owned())
        .unwrap_or_default()
}

/// The address of a node: `192.0.2.1`, `192.0.2.1:8080`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:8080`. Obfuscated (`_hidden`) and `unknown` nodes have none.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Some(rest) = node.strip_prefix('[') {
        let (ip, after) = rest.split_once(']')?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok
            .then(|| ip.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    node.parse::<IpAddr>().ok().or_else(|| {
        node.parse::<SocketAddrV4>()
            .ok()
            .map(|a| IpAddr::V4(*a.ip()))
    })
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_once_it_has_used_its_limit_and_others_are_not() {
        let windows = Windows::default();
        let (a, b) = ("a".to_owned(), "b".to_owned());
        for _ in 0..3 {
            assert_eq!(windows.blocked(&a, 3), None);
            windows.hit(&a);
        }
        let wait = windows.blocked(&a, 3).expect("blocked after 3");
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
        assert_eq!(windows.blocked(&b, 3), None);
    }

    #[test]
    fn a_hit_over_the_limit_says_how_long_to_wait() {
        let windows = Windows::default();
        let key = ClientKey::V4(Ipv4Addr::LOCALHOST);
        for i in 0..3 {
            assert_eq!(windows.hit_over(&key, 3), None, "hit {i}");
        }
        let wait = windows.hit_over(&key, 3).expect("the fourth is over");
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
    }

    #[test]
    fn a_flood_of_distinct_keys_never_grows_the_table_past_its_cap() {
        let windows = Windows::default();
        let mut largest = 0;
        for n in 0..1_000_000_u32 {
            windows.hit(&ClientKey::V4(Ipv4Addr::from(n)));
            if n % 1000 == 0 {
                largest = largest.max(windows.len());
            }
        }
        assert!(largest <= MAX_KEYS, "{largest}");
        assert!(windows.len() <= MAX_KEYS);
        assert!(windows.len() >= MAX_KEYS * 9 / 10, "{}", windows.len());
        // The newest key survived the evictions; one of the oldest did not.
        let newest = ClientKey::V4(Ipv4Addr::from(999_999));
        assert_eq!(windows.blocked(&newest, 1).map(|_| ()), Some(()));
        assert_eq!(windows.blocked(&ClientKey::V4(Ipv4Addr::from(0)), 1), None);
    }

    #[test]
    fn ipv6_clients_are_grouped_by_64_and_mapped_ipv4_is_ipv4() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:192.0.2.7")),
            ClientKey::V4(Ipv4Addr::new(192, 0, 2, 7))
        );
    }

    fn client(headers: &[(&'static str, &str)], trusted: &str) -> Option<IpAddr> {
        client_by(headers, trusted, ForwardedHeader::XForwardedFor)
    }

    fn client_by(
        headers: &[(&'static str, &str)],
        trusted: &str,
        header: ForwardedHeader,
    ) -> Option<IpAddr> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().unwrap());
        }
        let trusted: TrustedProxies = serde_json::from_value(serde_json::json!(trusted)).unwrap();
        forwarded_client(&map, (&trusted, header))
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn forwarding_headers_are_read_from_the_right_past_trusted_hops() {
        let xff = |value| client(&[("x-forwarded-for", value)], "10.0.0.0/8");
        assert_eq!(xff("203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(
            xff("198.51.100.1, 203.0.113.9, 10.0.0.2"),
            ip("203.0.113.9")
        );
        // A forged left part is never read.
        assert_eq!(xff("nonsense, 203.0.113.9"), ip("203.0.113.9"));
        assert_eq!(xff("10.0.0.3, 10.0.0.2"), ip("10.0.0.3"));
        assert_eq!(xff("203.0.113.9, nonsense"), None);
        assert_eq!(xff("[2001:db8::7]:443"), ip("2001:db8::7"));
        let forwarded = |value| {
            client_by(
                &[("forwarded", value)],
                "10.0.0.0/8",
                ForwardedHeader::Forwarded,
            )
        };
        assert_eq!(
            forwarded(
                r#"for=198.51.100.1, For="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.2"#
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            forwarded("for=192.0.2.43:8080;by=10.0.0.1"),
            ip("192.0.2.43")
        );
        assert_eq!(forwarded("for=unknown"), None);
        assert_eq!(forwarded("proto=https"), None);
        assert_eq!(client(&[], "10.0.0.0/8"), None);
        // Only the header the proxies write is read: the other is the client's own.
        let both = [
            ("forwarded", "for=192.0.2.1"),
            ("x-forwarded-for", "192.0.2.2"),
        ];
        assert_eq!(client(&both, "10.0.0.0/8"), ip("192.0.2.2"));
        let forwarded_only = ForwardedHeader::Forwarded;
        assert_eq!(
            client_by(&both, "10.0.0.0/8", forwarded_only),
            ip("192.0.2.1")
        );
        let spoofed = [("forwarded", "for=198.51.100.7")];
        assert_eq!(
            client(&spoofed, "10.0.0.0/8"),
            None,
            "a client's own Forwarded"
        );
        // Several header lines are one list.
        let lines = [
            ("x-forwarded-for", "192.0.2.1"),
            ("x-forwarded-for", "10.0.0.9"),
        ];
        assert_eq!(client(&lines, "10.0.0.0/8"), ip("192.0.2.1"));
    }
}
