//! What counts as visible text: the one place names and passwords are checked for characters
//! that print as nothing or reorder what is around them.

/// Unicode's explicit directional embeddings, overrides and isolates (UAX #9): they make a
/// name read as another in lists and logs.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Line and paragraph separators: line breaks by another name.
pub fn is_line_break(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Characters that print as nothing on their own: zero-width spaces and joiners, the word
/// joiner and invisible operators, the BOM, directional marks, fillers (Hangul, braille blank,
/// Mongolian vowel separator, Khmer inherent vowels), variation selectors, tag characters,
/// the combining grapheme joiner and combining marks (nothing to combine with).
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{2064}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}'
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}')
}

/// Nothing visible at all: only whitespace and invisible characters.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_is_whitespace_and_invisible_only() {
        for blank in [
            "",
            "   ",
            "\u{200B}\u{200D}",
            "\u{3164}",
            "\u{2800}\u{2800}",
            "\u{0301}\u{0302}",
            "\u{E0041}\u{E0042}",
            "\u{FE0F}",
            "\u{17B4}",
        ] {
            assert!(is_blank(blank), "{blank:?}");
        }
        for visible in ["a", "\u{200B}a", "é", "e\u{0301}", "مفتاح", "日本"] {
            assert!(!is_blank(visible), "{visible:?}");
        }
        assert!(is_line_break('\u{2028}'));
        assert!(is_bidi_control('\u{202E}'));
    }
}
