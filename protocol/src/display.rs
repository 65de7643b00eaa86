//! Making text from the wire safe to put on a terminal.
//!
//! Anyone who can publish into a room can put any bytes into a message. Printed as
//! they are, ANSI escape sequences could recolour the screen, move the cursor, rewrite
//! earlier lines or set the window title. Every component that shows or logs text from
//! the wire passes it through [`sanitize`] first.

use std::borrow::Cow;

/// Whether a character may reach the terminal: no C0 or C1 control characters (which
/// include ESC, CSI, BEL and newlines), no DEL, and no invisible format character
/// ([`is_format`]) that would let a message display differently from what it says.
pub fn is_displayable(c: char) -> bool {
    !(c.is_control() || is_format(c))
}

/// Invisible characters that change how the text around them is shown: Unicode's
/// format characters (category Cf: bidirectional marks, embeddings, overrides and
/// isolates, U+061C, zero-width characters, the BOM, tag characters, ...) and the
/// line and paragraph separators U+2028/U+2029, which some terminals and tools take
/// for line ends.
pub fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00ad}'
        | '\u{0600}'..='\u{0605}'
        | '\u{061c}'
        | '\u{06dd}'
        | '\u{070f}'
        | '\u{0890}'..='\u{0891}'
        | '\u{08e2}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{110bd}'
        | '\u{110cd}'
        | '\u{13430}'..='\u{1343f}'
        | '\u{1bca0}'..='\u{1bca3}'
        | '\u{1d173}'..='\u{1d17a}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}')
}

/// Escapes, in JSON text, every control and format character as `\uXXXX` (a
/// surrogate pair beyond U+FFFF). serde_json escapes only C0 controls, `"` and `\`,
/// so DEL, C1 controls and bidirectional overrides would otherwise reach a terminal
/// that shows the JSON. Outside strings JSON is ASCII, so this only touches string
/// contents and is lossless: a JSON parser reads back the same text.
pub fn escape_json(json: String) -> String {
    if !json.chars().any(|c| c.is_control() || is_format(c)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_control() || is_format(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Returns `text` with every non-displayable character replaced by U+FFFD, borrowing
/// when there is nothing to replace (the common case).
///
/// Replacing rather than dropping keeps it visible that something was there.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if text.chars().all(is_displayable) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(
            text.chars()
                .map(|c| if is_displayable(c) { c } else { '\u{fffd}' })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_and_controls() {
        assert_eq!(sanitize("hi"), "hi");
        assert!(matches!(sanitize("hi"), Cow::Borrowed(_)));
        let s = sanitize("\u{1b}[2J\u{1b}]0;title\u{7}x\r\ny\u{9b}z\u{7f}\u{202e}");
        assert!(s.chars().all(is_displayable));
        assert!(s.ends_with('\u{fffd}'));
        assert!(s.contains('x') && s.contains('y') && s.contains('z'));
    }

    #[test]
    fn invisible_format_characters_are_neutralised() {
        for c in [
            '\u{061c}',
            '\u{200b}',
            '\u{200d}',
            '\u{2060}',
            '\u{feff}',
            '\u{2028}',
            '\u{2029}',
            '\u{e0041}',
            '\u{2066}',
            '\u{2069}',
            '\u{202e}',
        ] {
            assert_eq!(
                sanitize(&format!("a{c}b")),
                "a\u{fffd}b",
                "U+{:04X}",
                c as u32
            );
        }
        assert_eq!(sanitize("héllo wörld ✓ 日本"), "héllo wörld ✓ 日本");
    }

    #[test]
    fn json_escapes_every_control_and_format_character_losslessly() {
        let text =
            "a\u{7f}b\u{9b}c\u{202e}d\u{2066}e\u{200b}f\u{feff}g\u{e0041}h\u{2028}i\u{1b}j é";
        let json = escape_json(serde_json::to_string(text).unwrap());
        assert!(json.is_ascii() || json.chars().all(|c| !c.is_control() && !is_format(c)));
        assert!(
            json.contains("\\u007f") && json.contains("\\udb40\\udc41"),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
    }
}
