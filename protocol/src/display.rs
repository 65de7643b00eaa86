//! Making text from the wire safe to put on a terminal.
//!
//! Anyone who can publish into a room can put any bytes into a message. Printed as
//! they are, ANSI escape sequences could recolour the screen, move the cursor, rewrite
//! earlier lines or set the window title. Every component that shows or logs text from
//! the wire passes it through [`sanitize`] first.

use std::borrow::Cow;

/// Whether a character may reach the terminal: no C0 or C1 control characters (which
/// include ESC, CSI, BEL and newlines), no DEL, and no bidirectional overrides that
/// would let a message display differently from what it says.
pub fn is_displayable(c: char) -> bool {
    !(c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}'))
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
}
