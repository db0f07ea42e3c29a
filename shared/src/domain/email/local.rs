//! The part before the `@`: a dot-atom (RFC 5322, section 3.2.3) whose atoms may also hold
//! non-ASCII characters (RFC 6531, section 3.3). Quoted local parts are refused: they are legal
//! but almost never real, and many systems mishandle them.

/// Why a quoted local part is refused.
pub const QUOTED: &str = "quoted addresses (\"…\"@) are not supported";

/// RFC 5321, section 4.5.3.1.1: at most 64 octets.
const MAX_OCTETS: usize = 64;

/// Why `local` is not a dot-atom local part, in words.
pub fn problem(local: &str) -> Option<String> {
    if local.is_empty() {
        return Some("nothing before the @".into());
    }
    if local.starts_with('"') {
        return Some(QUOTED.into());
    }
    if local.len() > MAX_OCTETS {
        return Some(format!(
            "the part before the @ is longer than {MAX_OCTETS} bytes"
        ));
    }
    if local.starts_with('.') || local.ends_with('.') {
        return Some("the part before the @ starts or ends with a dot".into());
    }
    if local.contains("..") {
        return Some("the part before the @ has two dots in a row".into());
    }
    local.chars().find(|&c| !is_atext(c) && c != '.').map(|c| {
        format!("the part before the @ holds {c:?}, which an address may only hold inside quotes")
    })
}

/// `atext` of RFC 5322, section 3.2.3, with RFC 6531's `UTF8-non-ascii`.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_atoms_of_every_allowed_character_pass() {
        for local in [
            "a",
            "a.b",
            "!#$%&'*+-/=?^_`{|}~",
            "jörg",
            "伊昭傑",
            "user+tag",
        ] {
            assert_eq!(problem(local), None, "{local}");
        }
    }

    #[test]
    fn specials_outside_quotes_are_refused_by_name() {
        // RFC 5322, section 3.2.3: specials are not atext.
        for (local, held) in [
            ("a;b", "';'"),
            ("a,b", "','"),
            ("a(b", "'('"),
            ("a[b", "'['"),
            ("a\\b", "'\\\\'"),
            ("a@b", "'@'"),
            ("a:b", "':'"),
        ] {
            let why = problem(local).unwrap_or_else(|| panic!("{local} passed"));
            assert!(why.contains(held), "{local}: {why}");
        }
    }

    #[test]
    fn dots_may_only_separate_atoms() {
        for local in [".a", "a.", "a..b", "."] {
            assert!(problem(local).is_some(), "{local}");
        }
    }

    #[test]
    fn quoted_local_parts_are_refused_in_words() {
        let why = problem("\"a b\"").unwrap();
        assert!(why.contains("quoted"), "{why}");
    }

    #[test]
    fn the_length_is_counted_in_octets() {
        assert_eq!(problem(&"a".repeat(64)), None);
        assert!(problem(&"a".repeat(65)).is_some());
        // 32 two-octet characters are 64 octets; 33 are too many.
        assert_eq!(problem(&"ö".repeat(32)), None);
        assert!(problem(&"ö".repeat(33)).is_some());
    }
}
