//! Characters no address may hold, anywhere: invisible ones, ones that change the direction text
//! is shown in, line and paragraph separators, spaces, private-use, unassigned and non-character
//! code points. Each would let an address display as something other than what is stored, or
//! cannot be delivered at all. The refusal names the character, as the Unicode standard does.

use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// The first character of `text` that no address may hold, described for the admin
/// (`U+200B ZERO WIDTH SPACE`).
pub fn first_unsafe(text: &str) -> Option<String> {
    let categories = CodePointMapData::<GeneralCategory>::new();
    text.chars()
        .find(|&c| is_unsafe(categories.get(c)))
        .map(describe)
}

/// `text` with each unsafe character written as `\u{…}`.
pub fn escape(text: &str) -> String {
    let categories = CodePointMapData::<GeneralCategory>::new();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if is_unsafe(categories.get(c)) && c != ' ' {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Control (`Cc`), format (`Cf`: zero-width characters, bidirectional controls, the soft
/// hyphen), surrogate, private-use (`Co`), unassigned (`Cn`, which holds the non-characters too)
/// and every separator (`Zs`, `Zl`, `Zp`).
fn is_unsafe(category: GeneralCategory) -> bool {
    matches!(
        category,
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    )
}

/// `U+200B ZERO WIDTH SPACE`; a code point without a name (a control, private-use or unassigned
/// one) is described by its category.
pub fn describe(c: char) -> String {
    let code = format!("U+{:04X}", u32::from(c));
    match unicode_names2::name(c) {
        Some(name) => format!("{code} {name}"),
        None => match CodePointMapData::<GeneralCategory>::new().get(c) {
            GeneralCategory::Control => format!("{code}, a control character"),
            GeneralCategory::PrivateUse => format!("{code}, a private-use character"),
            _ => format!("{code}, which is not an assigned character"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_changing_characters_are_named() {
        for (text, named) in [
            ("a\u{200B}b", "U+200B ZERO WIDTH SPACE"),
            ("a\u{202D}b", "U+202D LEFT-TO-RIGHT OVERRIDE"),
            ("a\u{202E}b", "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("a\u{2028}b", "U+2028 LINE SEPARATOR"),
            ("a\u{2029}b", "U+2029 PARAGRAPH SEPARATOR"),
            ("a\u{2005}b", "U+2005 FOUR-PER-EM SPACE"),
            ("a\u{00AD}b", "U+00AD SOFT HYPHEN"),
            ("a\u{FEFF}b", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
            ("a b", "U+0020 SPACE"),
        ] {
            assert_eq!(first_unsafe(text).as_deref(), Some(named), "{text:?}");
        }
    }

    #[test]
    fn code_points_without_a_name_are_described_by_their_category() {
        assert_eq!(
            first_unsafe("a\u{7}").as_deref(),
            Some("U+0007, a control character")
        );
        assert_eq!(
            first_unsafe("a\u{E000}").as_deref(),
            Some("U+E000, a private-use character")
        );
        assert_eq!(
            first_unsafe("a\u{FFFF}").as_deref(),
            Some("U+FFFF, which is not an assigned character")
        );
        assert_eq!(
            first_unsafe("a\u{FDD0}").as_deref(),
            Some("U+FDD0, which is not an assigned character")
        );
    }

    #[test]
    fn escaping_writes_unsafe_characters_as_code_points_and_keeps_the_rest() {
        assert_eq!(escape("\u{202E}moc.a b@x"), "\\u{202e}moc.a b@x");
        assert_eq!(escape("jörg@bücher.de"), "jörg@bücher.de");
    }

    #[test]
    fn letters_of_every_script_marks_and_symbols_pass() {
        assert_eq!(first_unsafe("jörg.伊昭傑+ñ-é́_ü@bücher.de"), None);
    }
}
