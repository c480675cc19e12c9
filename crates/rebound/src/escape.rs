//! Escaping for text that ends up on one line of a human-readable report: file names
//! and paths may hold any byte but `/` and NUL, so a crafted name with a newline could
//! otherwise split a report line and fake another one (`found: ...`, `result: intact`).

use std::borrow::Cow;

/// `s` with every control character, every bidirectional-override character (which can
/// make a line read in another order than it is written) and every backslash written as
/// an escape: `\\`, `\n`, `\r`, `\t`, `\x1b` (other C0 controls and DEL), `\u{85}` (C1
/// controls and the bidi characters). Ordinary text, including non-ASCII letters, is
/// returned as it is, without copying.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, true)
}

/// As [`escape`], leaving backslashes as they are: for text that is escaped in part
/// already, such as a message naming a file whose name is not UTF-8 (the filesystem
/// layer's `escape_name` writes its bytes `\xNN`) or a `last-repair` record. Control
/// characters still never reach the output.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape_with(s, false)
}

fn escape_with(s: &str, backslash: bool) -> Cow<'_, str> {
    let needs = |c: char| needs_escape(c) && (backslash || c != '\\');
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' if !backslash => out.push(c),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        // Bidirectional marks, embeddings, overrides and isolates.
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn ordinary_names_are_not_copied() {
        assert!(matches!(
            escape("/usr/app/main.py é"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn controls_backslash_and_bidi_are_escaped_and_never_leave_a_newline() {
        let e = escape("a\nb\r\tc\\d\u{1b}[31m\u{7f}\u{85}\u{202e}");
        assert_eq!(e, "a\\nb\\r\\tc\\\\d\\x1b[31m\\x7f\\u{85}\\u{202e}");
        assert!(!e.contains('\n'));
    }

    #[test]
    fn escape_controls_keeps_backslashes_of_text_escaped_already() {
        assert_eq!(
            super::escape_controls("caf\\xe9\n\u{1b}"),
            "caf\\xe9\\n\\x1b"
        );
    }
}
