//! The search phase of a server run: once every email is out, [`SEARCHES`] member searches over the
//! API (`GET …/members?q=`), one at a time, with terms picked from the generated rows, and their
//! latency.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;

use crate::api::{Api, WORKSPACE};
use crate::csv_gen;

/// Searches per run.
pub const SEARCHES: usize = 200;

/// The kinds of term, taken in turn.
const KINDS: [Kind; 4] = [Kind::Address, Kind::Prefix, Kind::NamePart, Kind::Folded];

/// A kind of search term.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A whole address: `person123@bench.example`.
    Address,
    /// The start of an address: `person123`, which also finds `person1230` … .
    Prefix,
    /// Part of a first name: `rst123` of `First123`.
    NamePart,
    /// An accented last name typed without its accent: `muller125` for `Müller125`.
    Folded,
}

/// What the phase measured.
pub struct SearchTimes {
    /// Searches made.
    pub searches: usize,
    /// Median latency.
    pub p50: Duration,
    /// 95th percentile latency.
    pub p95: Duration,
    /// Slowest.
    pub max: Duration,
    /// Searches that found nobody (each term names a generated row, so this should be 0).
    pub empty: usize,
}

/// Row `i`'s term of `kind`.
fn term(kind: Kind, i: u64) -> String {
    match kind {
        Kind::Address => format!("person{i}@bench.example"),
        Kind::Prefix => format!("person{i}"),
        Kind::NamePart => format!("rst{i}"),
        Kind::Folded => format!("muller{}", csv_gen::accented_row(i)),
    }
}

/// A row number in `0..rows` for the `n`th search: spread over the whole file by a fixed
/// multiplicative hash, so every run asks for the same rows.
fn row_for(n: usize, rows: u64) -> u64 {
    (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) % rows
}

/// Makes the searches one after the other and times each from request to the whole body read.
pub async fn phase(api: &Api, rows: u64) -> anyhow::Result<SearchTimes> {
    let url = api.url(&format!("/api/v1/workspaces/{WORKSPACE}/members"));
    let mut times = Vec::with_capacity(SEARCHES);
    let mut empty = 0;
    for n in 0..SEARCHES {
        let q = term(KINDS[n % KINDS.len()], row_for(n, rows));
        let started = Instant::now();
        let page: Value = api
            .get_json(&url, &[("q", q.as_str())])
            .await
            .with_context(|| format!("searching for {q}"))?;
        times.push(started.elapsed());
        if page["members"].as_array().is_none_or(Vec::is_empty) {
            empty += 1;
        }
    }
    times.sort_unstable();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    Ok(SearchTimes {
        searches: times.len(),
        p50: at(50),
        p95: at(95),
        max: times[times.len() - 1],
        empty,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rows_asked_for_are_inside_the_file_and_spread() {
        let rows: Vec<u64> = (0..SEARCHES).map(|n| row_for(n, 1_000_000)).collect();
        assert!(rows.iter().all(|&r| r < 1_000_000));
        assert!(rows.iter().any(|&r| r > 500_000) && rows.iter().any(|&r| r < 500_000));
    }

    #[test]
    fn a_folded_term_names_an_accented_row() {
        assert_eq!(term(Kind::Folded, 7), "muller5");
        assert_eq!(term(Kind::NamePart, 42), "rst42");
    }
}
