//! Safe webhook targets: an endpoint's URL may name only a public host, so that an admin cannot
//! make the service call its own network (a database, a cloud's metadata service at
//! 169.254.169.254, a loopback admin port).
//!
//! A URL is checked when the endpoint is made and again at every send, since the name's DNS
//! answer may change. The sender connects to the addresses checked here and to no other (its
//! resolver is [`resolve`]), follows no redirect, and reads a bounded answer. With
//! `WEBHOOK_ALLOW_PRIVATE=true` (tests, a private deployment) private hosts and `http` are
//! allowed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::Url;

/// Why a URL is refused, in words for the admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Longest accepted URL.
pub const MAX_URL_CHARS: usize = 2000;

/// The URL `text` if its form is acceptable: absolute, `https` (or `http` when `allow_private`),
/// with a host and no user name or password. Its host is not resolved here ([`check`] does).
pub fn parse(text: &str, allow_private: bool) -> Result<Url, Refused> {
    if text.chars().count() > MAX_URL_CHARS {
        return Err(Refused(format!(
            "the URL is longer than {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(text).map_err(|e| Refused(format!("the URL is not valid: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(Refused("the URL must use https".into())),
        other => return Err(Refused(format!("the URL must use https, not {other}"))),
    }
    if url.host().is_none() {
        return Err(Refused("the URL has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused(
            "the URL must not carry a user name or password".into(),
        ));
    }
    Ok(url)
}

/// Why `ip` may not be called, or `None` for a public address.
pub fn forbidden(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => forbidden_v4(v4),
            None => forbidden_v6(v6),
        },
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if ip.is_multicast() || ip.is_broadcast() {
        Some("a multicast or broadcast address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a carrier-grade NAT address")
    } else if (a == 192 && b == 0 && ip.octets()[2] == 0) || (a == 198 && (18..20).contains(&b)) {
        Some("a special-purpose address")
    } else if a >= 240 {
        Some("a reserved address")
    } else {
        None
    }
}

fn forbidden_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first & 0xffc0 == 0xfec0 {
        Some("a site-local address")
    } else if let Some(v4) = embedded_v4(ip) {
        // NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) and 6to4 (`2002::/16`) reach the IPv4
        // address they carry: judged as that address.
        forbidden_v4(v4)
    } else if ip.segments()[..2] == [0x2001, 0] {
        Some("a Teredo address")
    } else if let Some(v4) = ip.to_ipv4() {
        // IPv4-compatible (`::a.b.c.d`) addresses: judged as the IPv4 address they carry.
        forbidden_v4(v4)
    } else {
        None
    }
}

/// The IPv4 address a NAT64 or 6to4 address forwards to (`0.0.0.0`, refused, for a NAT64
/// address of another form than the well-known `64:ff9b::a.b.c.d`, such as `64:ff9b:1::/48`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = ip.segments();
    let from = |high: u16, low: u16| Ipv4Addr::from((u32::from(high) << 16) | u32::from(low));
    match (s0, s1) {
        (0x0064, 0xff9b) if [s2, s3, s4, s5] == [0; 4] => Some(from(s6, s7)),
        (0x0064, 0xff9b) => Some(Ipv4Addr::UNSPECIFIED),
        (0x2002, _) => Some(from(s1, s2)),
        _ => None,
    }
}

/// Refuses `url` when its host is a forbidden IP address written out (unless `allow_private`):
/// the sender's resolver checks every name it looks up, but a client asks none for an address.
pub fn check_literal(url: &Url, allow_private: bool) -> Result<(), Refused> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
        _ => return Ok(()),
    };
    match forbidden(ip).filter(|_| !allow_private) {
        Some(why) => Err(Refused(format!(
            "the host {ip} is {why}; webhooks go to public addresses only"
        ))),
        None => Ok(()),
    }
}

/// The addresses of `url`'s host, every one of them allowed (unless `allow_private`): a name
/// with any forbidden address is refused, since the connection could reach it.
pub async fn check(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, Refused> {
    let host = url
        .host_str()
        .ok_or_else(|| Refused("the URL has no host".into()))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Refused("the URL has no port".into()))?;
    resolve(host, port, allow_private).await
}

/// The addresses `host` resolves to, each allowed (unless `allow_private`), with `port`.
pub async fn resolve(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, Refused> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => lookup(host, port).await?,
    };
    if addrs.is_empty() {
        return Err(Refused(format!("the host {host} has no address")));
    }
    if !allow_private && let Some(why) = addrs.iter().find_map(|a| forbidden(a.ip())) {
        // The address itself is not named: it would tell the deployment's internal names to
        // whoever asks.
        return Err(Refused(format!(
            "the host {host} resolves to {why}; webhooks go to public addresses only"
        )));
    }
    Ok(addrs)
}

/// Longest wait for the system's resolver: a name server that never answers must not hold a
/// request (or a send) for the resolver's own timeouts and retries.
const RESOLVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The addresses of the name `host`, within [`RESOLVE_TIMEOUT`]. The resolver's own error is not
/// repeated: it may describe the deployment's network.
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, Refused> {
    let unresolved = || Refused(format!("the host {host} could not be resolved"));
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(_)) => Err(unresolved()),
        Err(_) => Err(Refused(format!(
            "the host {host} was not resolved within {} s",
            RESOLVE_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        forbidden(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn private_and_special_addresses_are_forbidden() {
        for ip in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:5",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::a00:5",
            "2002:a00:5::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fec0::1",
            "192.0.0.8",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "100.128.0.1",
            "100.63.255.255",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
            "2002:101:101::1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn only_https_without_credentials_unless_private_is_allowed() {
        assert!(parse("https://example.com/hook", false).is_ok());
        assert!(parse("http://example.com/hook", false).is_err());
        assert!(parse("http://example.com/hook", true).is_ok());
        assert!(parse("ftp://example.com/hook", true).is_err());
        assert!(parse("https://user:pw@example.com/hook", false).is_err());
        assert!(parse("not a url", false).is_err());
    }

    #[tokio::test]
    async fn literal_and_named_private_hosts_are_refused() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]:8443/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost/hook",
        ] {
            let parsed = parse(url, false).unwrap();
            let error = check(&parsed, false).await.unwrap_err();
            assert!(error.0.contains("public addresses only"), "{url}: {error}");
            assert!(
                check(&parsed, true).await.is_ok(),
                "{url} with private allowed"
            );
            let literal = check_literal(&parsed, false);
            assert_eq!(
                literal.is_err(),
                parsed.host_str() != Some("localhost"),
                "{url}"
            );
        }
    }
}
