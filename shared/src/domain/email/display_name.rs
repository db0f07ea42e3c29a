//! `Name <address>`, as mail programs copy an address (RFC 5322, section 3.4 `name-addr`): the
//! address is what is invited, and the name may stand in for empty name cells.

use super::characters;

/// Longest display name read from a cell.
const MAX_CHARS: usize = 200;

/// The name of a `Name <address>` cell, split into first and last name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName {
    /// Everything but the last word (`Ada` of `Ada Lovelace`); after the comma of
    /// `Lovelace, Ada`.
    pub first: Option<String>,
    /// The last word; before the comma of `Lovelace, Ada`.
    pub last: Option<String>,
}

impl DisplayName {
    fn of(name: &str) -> DisplayName {
        let part = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        if let Some((last, first)) = name.split_once(',') {
            return DisplayName {
                first: part(first),
                last: part(last),
            };
        }
        match name.rsplit_once(' ') {
            Some((first, last)) => DisplayName {
                first: part(first),
                last: part(last),
            },
            None => DisplayName {
                first: part(name),
                last: None,
            },
        }
    }
}

/// The cell's display name (if it has one) and its address part.
pub fn split(cell: &str) -> Result<(Option<DisplayName>, &str), String> {
    let Some(inside) = cell.strip_suffix('>') else {
        if cell.contains(['<', '>']) {
            return Err("write the address alone or as Name <address>".into());
        }
        return Ok((None, cell));
    };
    let Some((name, address)) = inside.rsplit_once('<') else {
        return Err("write the address alone or as Name <address>".into());
    };
    let name = unquote(name.trim());
    if name.chars().count() > MAX_CHARS {
        return Err(format!(
            "the name before <…> is longer than {MAX_CHARS} characters"
        ));
    }
    if let Some(named) = characters::first_unsafe(&name.replace(' ', "")) {
        return Err(format!("the name before <…> contains {named}"));
    }
    if name.contains(['<', '>', '"', '\\']) {
        return Err("write the address alone or as Name <address>".into());
    }
    let name = Some(DisplayName::of(name)).filter(|n| n.first.is_some() || n.last.is_some());
    Ok((name, address.trim_matches(' ')))
}

/// A quoted name (`"Lovelace, Ada"`) without its quotes; a name that needs escapes inside them
/// is refused.
fn unquote(name: &str) -> &str {
    name.strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(first: Option<&str>, last: Option<&str>) -> Option<DisplayName> {
        Some(DisplayName {
            first: first.map(str::to_owned),
            last: last.map(str::to_owned),
        })
    }

    #[test]
    fn a_bare_address_has_no_name() {
        assert_eq!(split("ada@example.com"), Ok((None, "ada@example.com")));
    }

    #[test]
    fn the_name_is_split_into_first_and_last() {
        assert_eq!(
            split("Ada Lovelace <ada@example.com>"),
            Ok((name(Some("Ada"), Some("Lovelace")), "ada@example.com"))
        );
        assert_eq!(
            split("Ada King Lovelace <ada@example.com>"),
            Ok((name(Some("Ada King"), Some("Lovelace")), "ada@example.com"))
        );
        assert_eq!(
            split("\"Lovelace, Ada\" <ada@example.com>"),
            Ok((name(Some("Ada"), Some("Lovelace")), "ada@example.com"))
        );
        assert_eq!(
            split("Ada <ada@example.com>"),
            Ok((name(Some("Ada"), None), "ada@example.com"))
        );
        assert_eq!(split("<ada@example.com>"), Ok((None, "ada@example.com")));
    }

    #[test]
    fn stray_brackets_and_unsafe_names_are_refused() {
        for cell in [
            "ada@example.com>",
            "Ada <ada@example.com",
            "<a<b>",
            "\"Ada \\\"K\\\"\" <ada@example.com>",
        ] {
            assert!(split(cell).is_err(), "{cell}");
        }
        let why = split("Ada\u{202E} <ada@example.com>").unwrap_err();
        assert!(why.contains("U+202E"), "{why}");
    }
}
