//! Abuse limits, each answered 429 with `Retry-After` and counted in
//! `invites_rate_limited_total{limit}`: failed authentications per client address and uploads per
//! workspace, in one-minute windows kept by this process; and imports in flight per workspace,
//! counted in the database.
//!
//! The windows are per `invite-api` process: behind a load balancer of N processes a client gets
//! up to N times the limit. The client address is the TCP peer; put the limits of a proxy in front
//! if clients arrive through one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;

use crate::error::ApiError;

/// Length of a counting window.
const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept before expired windows are swept, so a flood of addresses cannot grow memory.
const SWEEP_AT: usize = 10_000;

/// Counts per key in fixed one-minute windows.
#[derive(Debug, Default)]
pub struct Windows {
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Windows {
    /// How long until `key` may try again, if it has used up `limit` in its current window.
    pub fn blocked(&self, key: &str, limit: u32) -> Option<Duration> {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let (started, n) = counts.get(key)?;
        let left = WINDOW.checked_sub(started.elapsed())?;
        (*n >= limit).then_some(left)
    }

    /// Counts one more for `key`.
    pub fn hit(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= SWEEP_AT {
            counts.retain(|_, (started, _)| started.elapsed() < WINDOW);
        }
        let entry = counts.entry(key.to_owned()).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// The windows of one API process.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Failed authentications, by client address.
    pub failed_auth: Windows,
    /// Uploads, by workspace.
    pub uploads: Windows,
}

/// The 429 for `limit`, counted.
pub fn too_many(limit: &'static str, retry_after: Duration, message: String) -> ApiError {
    metrics::counter!(invite_shared::metrics::RATE_LIMITED_TOTAL, "limit" => limit).increment(1);
    ApiError::TooManyRequests {
        message,
        retry_after: retry_after.as_secs().max(1),
    }
}

/// The client's address as the key of its window ("unknown" when the server was not started with
/// connection info).
pub fn client_key(parts: &Parts) -> String {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(
            || "unknown".to_owned(),
            |ConnectInfo(addr)| ip_key(addr.ip()),
        )
}

fn ip_key(ip: IpAddr) -> String {
    match ip {
        // An IPv4 client seen through an IPv6 socket is the same client.
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or_else(|| v6.to_string(), |v4| v4.to_string()),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_blocked_once_it_has_used_its_limit_and_others_are_not() {
        let windows = Windows::default();
        for _ in 0..3 {
            assert_eq!(windows.blocked("a", 3), None);
            windows.hit("a");
        }
        let wait = windows.blocked("a", 3).expect("blocked after 3");
        assert!(wait <= WINDOW && wait > Duration::from_secs(50));
        assert_eq!(windows.blocked("b", 3), None);
    }
}
