//! The part after the `@`: a host name by IDNA 2008 as UTS #46 processes it (nontransitional,
//! STD3 rules, hyphens checked, DNS lengths verified on the encoded form), stored in its ASCII
//! form. Names that can never receive mail (RFC 6761 and its successors) are refused; `.test` and
//! `example.*` are kept so that test set-ups work.

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// Top-level names that no mail system delivers to: RFC 6761 (`invalid`, `localhost`), RFC 6762
/// (`local`), RFC 7686 (`onion`), RFC 9476 (`alt`), and `arpa`, the infrastructure domain.
const NEVER_MAIL: [&str; 6] = ["invalid", "localhost", "local", "onion", "alt", "arpa"];

/// RFC 1035, section 2.3.4, on the encoded form.
const MAX_LABEL_OCTETS: usize = 63;
const MAX_NAME_OCTETS: usize = 253;

/// The domain's ASCII form (lower case, international labels as `xn--` A-labels), or why it is
/// not one that can receive mail.
pub fn to_ascii(domain: &str) -> Result<String, String> {
    if domain.is_empty() {
        return Err("nothing after the @".into());
    }
    if domain.starts_with('[') {
        return Err("the domain must be a host name, not an address in brackets".into());
    }
    let ascii = encode(domain, DnsLength::Verify).map_err(|()| why_not_encodable(domain))?;
    check_top_level(&ascii)?;
    Ok(ascii)
}

/// The domain as people read it, its A-labels decoded; `None` if one does not decode.
pub fn to_unicode(ascii: &str) -> Option<String> {
    let (unicode, decoded) = idna::domain_to_unicode(ascii);
    decoded.is_ok().then_some(unicode)
}

fn encode(domain: &str, length: DnsLength) -> Result<String, ()> {
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Check,
            length,
        )
        .map(|ascii| ascii.into_owned())
        .map_err(|_| ())
}

/// Why UTS #46 refused `domain`, as precisely as can be told.
fn why_not_encodable(domain: &str) -> String {
    if let Some(c) = domain
        .chars()
        .find(|c| c.is_ascii() && !c.is_ascii_alphanumeric() && !matches!(c, '-' | '.'))
    {
        return format!("the domain holds {c:?}, which no host name may hold");
    }
    let Ok(ascii) = encode(domain, DnsLength::Ignore) else {
        return "the domain is not a valid international domain name (IDNA): a part starts or \
                ends with a hyphen, has hyphens in its third and fourth places, or is not valid \
                Punycode"
            .into();
    };
    if ascii.split('.').any(str::is_empty) {
        "the domain has an empty part".into()
    } else if ascii.split('.').any(|l| l.len() > MAX_LABEL_OCTETS) {
        format!("a part of the domain is longer than {MAX_LABEL_OCTETS} bytes once encoded")
    } else {
        format!("the domain is longer than {MAX_NAME_OCTETS} bytes once encoded")
    }
}

/// A mail domain has a top-level name, made of letters (or an A-label), that can receive mail.
fn check_top_level(ascii: &str) -> Result<(), String> {
    let Some((_, top)) = ascii.rsplit_once('.') else {
        return Err("the domain needs a dot, as in example.com".into());
    };
    if !(top.bytes().all(|b| b.is_ascii_alphabetic()) || top.starts_with("xn--")) {
        return Err(format!(
            "the domain ends in .{top}, and a top-level name is made of letters only"
        ));
    }
    if NEVER_MAIL.contains(&top) {
        return Err(format!(
            "the domain ends in .{top}, a special-use name that can never receive mail"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(domain: &str) -> String {
        to_ascii(domain).expect_err(domain)
    }

    #[test]
    fn international_names_are_stored_as_a_labels_and_shown_decoded() {
        assert_eq!(to_ascii("bücher.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(to_ascii("xn--bcher-kva.de").unwrap(), "xn--bcher-kva.de");
        assert_eq!(to_ascii("BÜCHER.DE").unwrap(), "xn--bcher-kva.de");
        assert_eq!(to_ascii("郵件.商務").unwrap(), "xn--5nqv22n.xn--lhr59c");
        assert_eq!(to_unicode("xn--bcher-kva.de").as_deref(), Some("bücher.de"));
        assert_eq!(to_unicode("example.com").as_deref(), Some("example.com"));
        assert_eq!(to_unicode("xn--0.tld"), None);
    }

    #[test]
    fn labels_that_are_not_idna_are_refused() {
        // RFC 3492 (not valid Punycode), RFC 5891 section 4.2.3.1 (hyphens in the third and
        // fourth places), RFC 952 and 1123 (a hyphen at either end).
        for domain in ["xn--0.tld", "yy--0.tld", "-a.com", "a-.com"] {
            assert!(refused(domain).contains("IDNA"), "{domain}");
        }
    }

    #[test]
    fn a_slash_or_underscore_in_the_domain_is_named() {
        assert!(refused("exa/mple.com").contains("'/'"));
        assert!(refused("exa_mple.com").contains("'_'"));
    }

    #[test]
    fn top_level_names_are_letters() {
        assert!(refused("bad.tld-2").contains("letters only"));
        assert!(refused("example.123").contains("letters only"));
        assert!(to_ascii("example.xn--p1ai").is_ok());
    }

    #[test]
    fn lengths_are_checked_on_the_encoded_form() {
        // 21 two-octet characters encode to more than 63 octets.
        let long_label = format!("{}.com", "ü".repeat(60));
        assert!(refused(&long_label).contains("longer than 63"));
        let label = "a".repeat(63);
        let long_name = format!("{label}.{label}.{label}.{label}.com");
        assert!(refused(&long_name).contains("longer than 253"));
        assert!(refused("a..com").contains("empty part"));
        assert!(refused("example.com.").contains("empty part"));
    }

    #[test]
    fn special_use_names_are_refused_but_test_names_are_kept() {
        for top in NEVER_MAIL {
            assert!(
                refused(&format!("host.{top}")).contains("special-use"),
                "{top}"
            );
        }
        assert!(to_ascii("example.com").is_ok());
        assert!(to_ascii("corp.example.org").is_ok());
        assert!(to_ascii("mail.test").is_ok());
        assert!(refused("localhost").contains("needs a dot"));
    }

    #[test]
    fn domain_literals_are_refused() {
        assert!(refused("[192.0.2.1]").contains("host name"));
    }
}
