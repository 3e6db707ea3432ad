//! Text people type: what counts as visible (the one place names and passwords are checked for
//! characters that print as nothing or reorder what is around them), names and emails.

use crate::error::ApiError;

/// `1234567` → `1,234,567`: counts in messages people read.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

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
        | '\u{E0000}'..='\u{E007F}' | '\u{E0100}'..='\u{E01EF}'
        | '\u{061C}' | '\u{206A}'..='\u{206F}' | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1D173}'..='\u{1D17A}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{13430}'..='\u{1343F}')
}

/// A reason given for an audited action: 1 to 500 characters, something visible, no control
/// characters.
pub fn check_reason(raw: &str, field: &str) -> Result<String, ApiError> {
    let reason = raw.trim();
    if reason.chars().count() > 500 || reason.chars().any(is_line_break) || is_blank(reason) {
        return Err(ApiError::validation(
            field,
            "say why, in 1 to 500 characters",
        ));
    }
    Ok(reason.to_owned())
}

/// A description: up to 500 characters, trimmed, no control characters but line breaks.
pub fn check_description(raw: &str, field: &str) -> Result<String, ApiError> {
    let text = raw.trim();
    if text.chars().count() > 500 || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::validation(
            field,
            "up to 500 characters, no control characters",
        ));
    }
    Ok(text.to_owned())
}

/// Nothing visible at all: only whitespace and invisible characters.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| c.is_whitespace() || is_invisible(c))
}

/// Normalises and checks an email address (case-insensitive: stored lower-case).
pub fn normalize_email(raw: &str, field: &str) -> Result<String, ApiError> {
    use unicode_normalization::UnicodeNormalization;
    // One spelling per address: composed (NFC) and lower-case; characters that print as
    // nothing or reorder text make look-alike addresses and are refused.
    let email: String = raw.trim().nfc().collect::<String>().to_lowercase();
    if email.chars().any(|c| is_invisible(c) || is_bidi_control(c)) {
        return Err(ApiError::validation(
            field,
            "enter a valid email address, like name@example.com",
        ));
    }
    let bad = || ApiError::validation(field, "enter a valid email address, like name@example.com");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !domain.contains('@');
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(bad());
    }
    Ok(email)
}

/// A display name: trimmed, 1 to 100 characters, no control characters or line separators,
/// no bidirectional overrides, embeddings or isolates (they make a name read as another in
/// lists and logs), and something visible (see `text`).
pub fn check_name(raw: &str, field: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(is_line_break) {
        return Err(ApiError::validation(field, "use 1 to 100 characters"));
    }
    if name.chars().any(is_bidi_control) {
        return Err(ApiError::validation(
            field,
            "names may not contain text-direction controls",
        ));
    }
    if is_blank(name) {
        return Err(ApiError::validation(
            field,
            "use at least one visible character",
        ));
    }
    Ok(name.to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_grouped_by_thousands() {
        use super::group_thousands as g;
        assert_eq!(g(0), "0");
        assert_eq!(g(999), "999");
        assert_eq!(g(1000), "1,000");
        assert_eq!(g(850000), "850,000");
        assert_eq!(g(1234567), "1,234,567");
    }

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
