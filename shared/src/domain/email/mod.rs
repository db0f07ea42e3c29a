//! The invitee's email address: the only way to hold one is to have parsed it.
//!
//! The policy (`docs/product.md`, "Each row"): an address is a dot-atom local part (RFC 5322,
//! with RFC 6531's non-ASCII characters) and a host name by IDNA 2008 / UTS #46; it is normalised
//! (NFC, lower case) and stored with its domain in ASCII, so that one person has one address
//! whatever form a file writes it in. Characters that hide or reorder text are refused by name
//! ([`characters`]), quoted local parts and domain literals in words. A cell may also be written
//! `Name <address>`, as mail programs copy it ([`InviteeEmail::parse_cell`]).

mod characters;
mod display_name;
mod domain;
mod local;

use std::fmt;

use icu_normalizer::ComposingNormalizerBorrowed;
use serde::{Deserialize, Serialize};

pub use display_name::DisplayName;

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_LEN: usize = 254;

/// Longer cells are refused before any Unicode processing: no address comes near it.
const MAX_CELL_BYTES: usize = 1024;

/// Echoing a whole megabyte-long cell back into the results file helps nobody.
const MAX_ECHO_CHARS: usize = 80;

/// A deliverable email address in its canonical form: NFC, lower case, the domain in ASCII.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InviteeEmail(String);

impl InviteeEmail {
    /// Parses a bare address, or explains to the admin why it is not one.
    pub fn parse(s: &str) -> Result<InviteeEmail, String> {
        let cell = trim(s);
        canonical(cell)
            .map(InviteeEmail)
            .map_err(|hint| refusal(cell, &hint))
    }

    /// Parses a cell that holds an address, alone or as `Name <address>`; the name, when there
    /// is one, is returned with it.
    pub fn parse_cell(s: &str) -> Result<(InviteeEmail, Option<DisplayName>), String> {
        let cell = trim(s);
        let (name, address) = display_name::split(cell).map_err(|hint| refusal(cell, &hint))?;
        let email = canonical(address).map_err(|hint| refusal(cell, &hint))?;
        Ok((InviteeEmail(email), name))
    }

    /// The address as stored: the domain in ASCII (`user@xn--bcher-kva.de`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as people read it: the domain's international labels decoded
    /// (`user@bücher.de`).
    pub fn display(&self) -> String {
        display(&self.0)
    }
}

/// A stored address as people read it (see [`InviteeEmail::display`]); one whose domain does not
/// decode (a refused cell) is shown as it is.
pub fn display(stored: &str) -> String {
    match stored.rsplit_once('@') {
        Some((local, domain)) if domain.contains("xn--") => match domain::to_unicode(domain) {
            Some(unicode) => format!("{local}@{unicode}"),
            None => stored.to_owned(),
        },
        _ => stored.to_owned(),
    }
}

/// `text` with every character no address may hold written as `\u{…}`, so that a refused cell
/// can be shown without hiding or reordering what surrounds it.
pub fn escape_unsafe(text: &str) -> String {
    characters::escape(text)
}

/// Spaces and tabs around a cell are the spreadsheet's, not the address's; other white space is
/// refused by name.
fn trim(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

fn refusal(cell: &str, hint: &str) -> String {
    format!("{} is not a valid email address ({hint})", echo(cell))
}

/// The canonical form of `address`, or a short hint of why it is not acceptable.
fn canonical(address: &str) -> Result<String, String> {
    if address.is_empty() {
        return Err("it is empty".into());
    }
    if address.len() > MAX_CELL_BYTES {
        return Err(format!("it is longer than {MAX_LEN} characters"));
    }
    if address.starts_with('"') {
        return Err(local::QUOTED.into());
    }
    if let Some(named) = characters::first_unsafe(address) {
        return Err(format!("it contains {named}"));
    }
    let normal = ComposingNormalizerBorrowed::new_nfc()
        .normalize(&address.to_lowercase())
        .into_owned();
    let (local, domain) = normal.rsplit_once('@').ok_or("it has no @")?;
    if let Some(hint) = local::problem(local) {
        return Err(hint);
    }
    let stored = format!("{local}@{}", domain::to_ascii(domain)?);
    if stored.len() > MAX_LEN {
        return Err(format!("it is longer than {MAX_LEN} bytes once encoded"));
    }
    Ok(stored)
}

/// Quotes the raw value for a message, escaping control characters and shortening it.
fn echo(raw: &str) -> String {
    if raw.chars().count() <= MAX_ECHO_CHARS {
        format!("{raw:?}")
    } else {
        let head: String = raw.chars().take(MAX_ECHO_CHARS).collect();
        format!("{head:?}…")
    }
}

impl AsRef<str> for InviteeEmail {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InviteeEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InviteeEmail {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        InviteeEmail::parse(&value)
    }
}

impl From<InviteeEmail> for String {
    fn from(email: InviteeEmail) -> Self {
        email.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rejected(s: &str) -> String {
        InviteeEmail::parse(s).expect_err(&format!("{s:?} should be rejected"))
    }

    #[test]
    fn a_plain_address_is_accepted() {
        let email = InviteeEmail::parse("ana@example.com").unwrap();
        assert_eq!(email.as_str(), "ana@example.com");
    }

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        let email = InviteeEmail::parse("  Ana.Lopez@Example.COM \t").unwrap();
        assert_eq!(email.as_str(), "ana.lopez@example.com");
        assert_eq!(email.to_string(), "ana.lopez@example.com");
        assert_eq!(email.as_ref(), "ana.lopez@example.com");
    }

    #[test]
    fn plus_tags_and_subdomains_are_accepted() {
        assert!(InviteeEmail::parse("ana+invites@mail.eu.example.co.uk").is_ok());
    }

    #[test]
    fn long_top_level_domains_are_accepted() {
        assert!(InviteeEmail::parse("ana@example.photography").is_ok());
    }

    #[test]
    fn a_bare_address_is_refused_with_a_name_but_a_cell_may_carry_one() {
        assert!(rejected("Bob <b@x.com>").contains("U+0020 SPACE"));
        let (email, name) = InviteeEmail::parse_cell("Ada Lovelace <Ada@Example.com>").unwrap();
        assert_eq!(email.as_str(), "ada@example.com");
        let name = name.unwrap();
        assert_eq!(
            (name.first.as_deref(), name.last.as_deref()),
            (Some("Ada"), Some("Lovelace"))
        );
        assert_eq!(InviteeEmail::parse_cell("ada@example.com").unwrap().1, None);
        assert!(InviteeEmail::parse_cell("Ada <ada@bad..com>").is_err());
    }

    #[test]
    fn a_domain_without_a_dot_is_rejected() {
        let message = rejected("bob@localhost");
        assert!(message.contains("needs a dot"), "{message}");
    }

    #[test]
    fn domain_literals_are_rejected() {
        rejected("bob@[192.0.2.1]");
    }

    #[test]
    fn a_missing_at_sign_is_rejected_with_the_value_quoted() {
        assert_eq!(
            rejected("bob.example.com"),
            "\"bob.example.com\" is not a valid email address (it has no @)"
        );
    }

    #[test]
    fn empty_and_blank_values_are_rejected() {
        rejected("");
        rejected("   ");
    }

    #[test]
    fn two_at_signs_are_rejected() {
        rejected("a@b@example.com");
    }

    /// Each case with the clause it comes from.
    #[test]
    fn a_corpus_from_the_standards() {
        let accepted = [
            // RFC 5322 3.2.3: every atext character.
            (
                "!#$%&'*+-/=?^_`{|}~@example.com",
                "!#$%&'*+-/=?^_`{|}~@example.com",
            ),
            // RFC 5322 3.4.1: a dot-atom of several atoms.
            (
                "first.middle.last@example.com",
                "first.middle.last@example.com",
            ),
            // RFC 6531 3.3: UTF8-non-ascii in the local part.
            ("jörg@example.com", "jörg@example.com"),
            // RFC 5890 / UTS #46: a U-label is stored as its A-label.
            ("user@bücher.de", "user@xn--bcher-kva.de"),
            ("伊昭傑@郵件.商務", "伊昭傑@xn--5nqv22n.xn--lhr59c"),
            // RFC 2606 / 6761: test names are kept.
            ("a@mail.test", "a@mail.test"),
        ];
        for (cell, stored) in accepted {
            assert_eq!(
                InviteeEmail::parse(cell).map(|e| e.0),
                Ok(stored.into()),
                "{cell}"
            );
        }
        let refused = [
            // RFC 5322 3.2.3: specials only inside quotes.
            ("a;b@example.com", "';'"),
            // RFC 1123 2.1 / STD3: a host name holds letters, digits and hyphens.
            ("a@exa/mple.com", "'/'"),
            // RFC 5891 4.2.3.1: hyphens in the third and fourth places.
            ("a@yy--0.tld", "IDNA"),
            // RFC 3492: not valid Punycode.
            ("a@xn--0.tld", "IDNA"),
            // RFC 3696 2: a top-level name is alphabetic.
            ("a@bad.tld-2", "letters only"),
            // RFC 1035 2.3.4: 63 octets a label, encoded.
            (&*format!("a@{}.com", "ü".repeat(60)), "63 bytes"),
            // RFC 6761 6.4, RFC 6762, RFC 7686: never mail.
            ("a@host.invalid", "special-use"),
            ("a@printer.local", "special-use"),
            ("a@xyz.onion", "special-use"),
            // Unicode TR 36 / UTS 39: invisible and bidirectional characters.
            ("a\u{200B}b@example.com", "U+200B ZERO WIDTH SPACE"),
            ("a@exa\u{200B}mple.com", "U+200B ZERO WIDTH SPACE"),
            ("moc.elpmaxe@\u{202E}a", "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("a\u{202D}@example.com", "U+202D LEFT-TO-RIGHT OVERRIDE"),
            ("a\u{2028}@example.com", "U+2028 LINE SEPARATOR"),
            ("a@example.com\u{2029}", "U+2029 PARAGRAPH SEPARATOR"),
            ("a\u{2005}b@example.com", "U+2005 FOUR-PER-EM SPACE"),
            ("a\u{E000}@example.com", "private-use"),
            ("a\u{FDD0}@example.com", "not an assigned character"),
            // RFC 5321 4.5.3.1.3: 254 octets in all, encoded.
            (
                &*format!("{0}@{1}.{0}.{0}.{0}.com", "a".repeat(60), "ü".repeat(20)),
                "once encoded",
            ),
        ];
        for (cell, named) in refused {
            let why = rejected(cell);
            assert!(why.contains(named), "{cell:?}: {why}");
        }
    }

    #[test]
    fn one_person_has_one_address_whatever_the_form() {
        let forms = [
            "user@bücher.de",
            "user@xn--bcher-kva.de",
            "USER@BÜCHER.DE",
            // NFD: u and a combining diaeresis.
            "user@bu\u{308}cher.de",
        ];
        let stored: Vec<String> = forms
            .iter()
            .map(|f| InviteeEmail::parse(f).unwrap().0)
            .collect();
        assert!(
            stored.iter().all(|s| s == "user@xn--bcher-kva.de"),
            "{stored:?}"
        );
        let nfd = InviteeEmail::parse("jo\u{308}rg@example.com").unwrap();
        assert_eq!(nfd, InviteeEmail::parse("jörg@example.com").unwrap());
        assert_eq!(
            InviteeEmail::parse("user@xn--bcher-kva.de")
                .unwrap()
                .display(),
            "user@bücher.de"
        );
    }

    #[test]
    fn spaces_inside_are_rejected() {
        rejected("ana lopez@example.com");
    }

    #[test]
    fn control_characters_are_rejected_even_inside_quotes() {
        rejected("\"a\u{7}b\"@example.com");
    }

    #[test]
    fn addresses_longer_than_254_characters_are_rejected() {
        let label = "a".repeat(60);
        let domain = format!("{label}.{label}.{label}.{label}.com");
        let longest = format!("abcdef@{domain}");
        assert_eq!(longest.len(), 254);
        assert!(InviteeEmail::parse(&longest).is_ok());
        let too_long = format!("abcdefg@{domain}");
        assert!(rejected(&too_long).contains("longer than 254"));
    }

    #[test]
    fn the_echoed_value_is_shortened() {
        let message = rejected(&"x".repeat(1000));
        assert!(message.len() < 200, "{message}");
        assert!(message.contains('…'));
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let email = InviteeEmail::parse("ana@example.com").unwrap();
        let json = serde_json::to_string(&email).unwrap();
        assert_eq!(json, "\"ana@example.com\"");
        assert_eq!(serde_json::from_str::<InviteeEmail>(&json).unwrap(), email);
        assert!(serde_json::from_str::<InviteeEmail>("\"not-an-email\"").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_its_output_is_canonical(s in any::<String>()) {
            if let Ok(email) = InviteeEmail::parse(&s) {
                let out = email.as_str();
                prop_assert_eq!(out, out.trim());
                prop_assert_eq!(out.to_string(), out.to_lowercase());
                prop_assert_eq!(InviteeEmail::parse(out), Ok(email.clone()));
            }
        }

        #[test]
        fn address_like_strings_parse_and_reparse_to_themselves(
            s in r"[ \t]{0,2}[A-Za-z0-9._%+-]{1,20}@[A-Za-z0-9-]{1,20}(\.[A-Za-z0-9-]{1,10}){1,3}[ \t]{0,2}"
        ) {
            if let Ok(email) = InviteeEmail::parse(&s) {
                let out = email.as_str();
                prop_assert_eq!(out, s.trim().to_lowercase());
                prop_assert_eq!(InviteeEmail::parse(out), Ok(email.clone()));
            }
        }

        #[test]
        fn well_formed_addresses_are_always_accepted(
            local in "[a-z0-9]{1,10}([.+_-][a-z0-9]{1,10}){0,2}",
            host in "[a-z0-9]{1,10}(-[a-z0-9]{1,10})?",
            tld in "[a-z]{2,12}",
        ) {
            let address = format!("{local}@{host}.{tld}");
            prop_assert!(InviteeEmail::parse(&address).is_ok(), "{}", address);
        }

        #[test]
        fn international_addresses_are_accepted_and_one_unsafe_character_is_named(
            local in "[a-zäöüéñß伊昭傑]{1,10}([.+_-][a-z0-9äöüñ]{1,10}){0,2}",
            host in "[a-zäöüéñ伊昭傑]{1,10}(-[a-z0-9]{1,10})?",
            tld in "([a-z]{2,12}|商務|рф)",
            unsafe_char in prop::sample::select(vec![
                '\u{200B}', '\u{200C}', '\u{200D}', '\u{202A}', '\u{202D}', '\u{202E}',
                '\u{2066}', '\u{2028}', '\u{2029}', '\u{2005}', '\u{00A0}', '\u{00AD}',
                '\u{FEFF}', '\u{E000}', '\u{F8FF}', '\u{FDD0}', '\u{FFFE}', '\u{10FFFF}',
                '\u{7}', '\u{7F}',
            ]),
            at in any::<prop::sample::Index>(),
        ) {
            let address = format!("{local}@{host}.{tld}");
            prop_assert!(InviteeEmail::parse(&address).is_ok(), "{}", address);
            let mut chars: Vec<char> = address.chars().collect();
            chars.insert(at.index(chars.len() + 1), unsafe_char);
            let spoiled: String = chars.into_iter().collect();
            let why = InviteeEmail::parse(&spoiled).expect_err(&spoiled);
            let code = format!("U+{:04X}", u32::from(unsafe_char));
            prop_assert!(why.contains(&code), "{:?}: {}", spoiled, why);
        }
    }
}
