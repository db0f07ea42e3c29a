//! The invitee's email address: the only way to hold one is to have parsed it.

use std::fmt;

use email_address::{EmailAddress, Options};
use serde::{Deserialize, Serialize};

/// RFC 5321 caps a forward path at 256 octets including the angle brackets.
const MAX_LEN: usize = 254;

/// Echoing a whole megabyte-long cell back into the results file helps nobody.
const MAX_ECHO_CHARS: usize = 80;

/// A syntactically valid email address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InviteeEmail(String);

impl InviteeEmail {
    /// Parses a raw cell into an address, or explains to the admin why it is not one.
    pub fn parse(s: &str) -> Result<InviteeEmail, String> {
        // Lower-case before checking so that what we store is exactly what we validated; the
        // spec makes addresses unique per workspace case-insensitively.
        let candidate = s.trim().to_lowercase();
        match problem(&candidate) {
            None => Ok(InviteeEmail(candidate)),
            Some(hint) => Err(format!(
                "{} is not a valid email address ({hint})",
                echo(s.trim())
            )),
        }
    }

    /// The address as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Returns a short human hint when `address` is not acceptable, `None` when it is.
fn problem(address: &str) -> Option<&'static str> {
    if address.is_empty() {
        return Some("it is empty");
    }
    if address.len() > MAX_LEN {
        return Some("it is longer than 254 characters");
    }
    // Quoted local parts may legally hold control characters, but they would end up in SMTP
    // commands and logs; no real invitee has one.
    if address.chars().any(char::is_control) {
        return Some("it contains a control character");
    }
    let options = Options::default()
        // A bare host such as `bob@localhost` is valid RFC 5322 but never a real invitee.
        .with_required_tld()
        // `[192.0.2.1]` domains are valid RFC 5322 but unroutable for us.
        .without_domain_literal()
        // `Bob <bob@example.com>` must be rejected: we would otherwise have to decide which
        // part to store, and the admin should fix the cell instead.
        .without_display_text();
    match EmailAddress::parse_with_options(address, options) {
        Ok(_) => None,
        Err(err) => Some(hint(&err)),
    }
}

fn hint(err: &email_address::Error) -> &'static str {
    use email_address::Error as E;
    match err {
        E::MissingSeparator => "it has no @",
        E::LocalPartEmpty => "nothing before the @",
        E::LocalPartTooLong => "the part before the @ is longer than 64 characters",
        E::DomainEmpty => "nothing after the @",
        E::DomainTooFew => "the domain needs a dot, as in example.com",
        E::DomainTooLong | E::SubDomainTooLong => "the domain is too long",
        E::SubDomainEmpty | E::DomainInvalidSeparator => "the domain has an empty part",
        E::UnsupportedDisplayName | E::MissingDisplayName | E::MissingEndBracket => {
            "write only the address, without a name or <>"
        }
        E::UnsupportedDomainLiteral | E::InvalidIPAddress => "the domain must be a host name",
        E::InvalidCharacter | E::UnbalancedQuotes | E::InvalidComment => {
            "it contains a character that is not allowed"
        }
    }
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
    fn display_name_forms_are_rejected() {
        let message = rejected("Bob <b@x.com>");
        assert!(
            message.contains("is not a valid email address"),
            "{message}"
        );
        assert!(message.contains("without a name"), "{message}");
    }

    #[test]
    fn angle_brackets_alone_are_rejected() {
        rejected("<b@x.com>");
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
    }
}
