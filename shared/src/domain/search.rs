//! Finding a member by part of their address or name (`docs/product.md`, "Finding a member"): the
//! folded text a membership is found by, and the term an admin types, folded the same way.
//!
//! Folding is done here, in Rust, for both databases: PostgreSQL's `unaccent` and `lower` depend on
//! an extension's rules file and the server's locale, SQLite has neither, and the import writes the
//! folded text with the rows it already writes, so both backends compare the same bytes.

use icu_normalizer::DecomposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

use crate::domain::email;

/// The longest term, in characters, a search accepts (a name is at most 100, an address 254 bytes).
pub const MAX_TERM_CHARS: usize = 200;

/// `text` as search compares it: compatibility-decomposed (NFKD) with its nonspacing marks
/// dropped and lower-cased, so that `José`, `JOSE` and `jose` are all `jose` and `ﬁ` is `fi`;
/// invisible format characters are dropped and each run of white space or control characters is
/// one space, trimmed.
pub fn fold(text: &str) -> String {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let mut folded = String::with_capacity(text.len());
    let mut space = false;
    for c in DecomposingNormalizerBorrowed::new_nfkd().normalize_iter(text.chars()) {
        // Lower-cased after decomposing: a compatibility decomposition may give capitals (`Ⅻ`),
        // and a lower case may give a mark (`İ` is `i` and U+0307), both dropped below.
        for c in c.to_lowercase() {
            match categories.get(c) {
                GeneralCategory::NonspacingMark | GeneralCategory::Format => {}
                _ if c.is_whitespace() || c.is_control() => space = true,
                _ => {
                    if space && !folded.is_empty() {
                        folded.push(' ');
                    }
                    space = false;
                    folded.push(c);
                }
            }
        }
    }
    folded
}

/// The text a membership is found by: its address as people read it (`anne@bücher.de`, folded to
/// `anne@bucher.de`), the stored form too when that differs (`anne@xn--bcher-kva.de`, as a bounce
/// shows it), then its first and last names, folded and joined by spaces (so "anne muller" finds
/// Anne Müller).
pub fn member_text(
    stored_email: &str,
    first_name: Option<&str>,
    last_name: Option<&str>,
) -> String {
    let shown = email::display(stored_email);
    let stored = (shown != stored_email).then_some(stored_email);
    [Some(shown.as_str()), stored, first_name, last_name]
        .into_iter()
        .flatten()
        .map(fold)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A search term, folded: what a member's text must contain to be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

/// A term longer than [`MAX_TERM_CHARS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the search term is {0} characters long; the most is {MAX_TERM_CHARS}")]
pub struct TermTooLong(pub usize);

impl SearchTerm {
    /// The term `raw` asks for; `None` when it asks for nothing (empty, or only spaces and marks).
    pub fn parse(raw: &str) -> Result<Option<SearchTerm>, TermTooLong> {
        let chars = raw.chars().count();
        if chars > MAX_TERM_CHARS {
            return Err(TermTooLong(chars));
        }
        let folded = fold(raw);
        Ok((!folded.is_empty()).then_some(SearchTerm(folded)))
    }

    /// The folded term.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its length in characters.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accents_and_case_fold_away() {
        assert_eq!(fold("José"), "jose");
        assert_eq!(fold("MÜLLER"), "muller");
        assert_eq!(fold("Mu\u{308}ller"), "muller", "a decomposed letter alike");
        assert_eq!(fold("Ångström"), "angstrom");
        assert_eq!(
            fold("İstanbul"),
            "istanbul",
            "a capital whose lower case has a mark"
        );
        assert_eq!(
            fold("Ⅻ ﬁ"),
            "xii fi",
            "compatibility forms, capitals among them"
        );
    }

    #[test]
    fn letters_without_a_decomposition_stay_and_other_scripts_fold_alike() {
        assert_eq!(fold("Łódź"), "łodz");
        assert_eq!(fold("Straße"), "straße");
        assert_eq!(
            fold("Дмитрий"),
            "дмитрии",
            "й is и with a breve, folded like é"
        );
        assert_eq!(fold("李小龍"), "李小龍");
    }

    #[test]
    fn white_space_is_one_space_and_invisible_characters_go() {
        assert_eq!(fold("  Anne \t\n Marie  "), "anne marie");
        assert_eq!(fold("Ann\u{200b}e"), "anne");
        assert_eq!(fold("a\u{0}b"), "a b");
    }

    #[test]
    fn wildcards_are_kept_as_text() {
        assert_eq!(fold("100%_Sure\\"), "100%_sure\\");
    }

    #[test]
    fn a_members_text_holds_the_shown_and_stored_address_and_the_names() {
        assert_eq!(
            member_text("anne@xn--bcher-kva.de", Some("Anne"), Some("Müller")),
            "anne@bucher.de anne@xn--bcher-kva.de anne muller"
        );
        assert_eq!(
            member_text("jose@example.com", None, Some("  ")),
            "jose@example.com"
        );
        assert_eq!(
            member_text("ZOË@example.com", Some("Zoë"), None),
            "zoe@example.com zoe"
        );
    }

    #[test]
    fn a_term_is_folded_and_an_empty_one_asks_for_nothing() {
        let term = SearchTerm::parse(" José ").unwrap().unwrap();
        assert_eq!(term.as_str(), "jose");
        assert_eq!(term.chars(), 4);
        assert_eq!(SearchTerm::parse(""), Ok(None));
        assert_eq!(SearchTerm::parse(" \u{301} "), Ok(None));
    }

    #[test]
    fn a_term_over_the_limit_is_refused() {
        let long = "é".repeat(MAX_TERM_CHARS + 1);
        assert_eq!(
            SearchTerm::parse(&long),
            Err(TermTooLong(MAX_TERM_CHARS + 1))
        );
        assert!(SearchTerm::parse(&"é".repeat(MAX_TERM_CHARS)).is_ok());
    }

    proptest! {
        #[test]
        fn folding_is_idempotent(text in "\\PC{0,40}") {
            let once = fold(&text);
            prop_assert_eq!(fold(&once), once.clone());
        }

        #[test]
        fn a_folded_part_of_a_name_is_found_in_the_folded_name(
            first in "[a-zA-ZÀ-ÿ]{1,12}",
            start in 0usize..12,
            len in 1usize..12,
        ) {
            let folded = fold(&first);
            let chars: Vec<char> = first.chars().collect();
            let start = start.min(chars.len() - 1);
            let end = (start + len).min(chars.len());
            let part: String = chars[start..end].iter().collect();
            let text = member_text("someone@example.com", Some(&first), None);
            prop_assert!(text.contains(&fold(&part)), "{} in {}", part, folded);
        }
    }
}
