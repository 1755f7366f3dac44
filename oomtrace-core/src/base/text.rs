//! Untrusted text on a terminal.
//!
//! Process names, cgroup paths and log lines are chosen by whoever runs the
//! workload (or wrote the log). Printed raw, a newline in a comm forges a line
//! of our output ("victim init (pid 1)") and an ESC starts a terminal control
//! sequence (retitling the window, rewriting the screen, worse on some
//! terminals). [`escape`] and [`Escaped`] make such text inert: every C0
//! control (U+0000–U+001F, including ESC, CR, LF and TAB), DEL (U+007F), every
//! C1 control (U+0080–U+009F), the Unicode line and paragraph separators
//! (U+2028, U+2029) and the bidirectional controls (U+061C, U+200E/F,
//! U+202A–U+202E, U+2066–U+2069: a name holding U+202E shows the rest of
//! our line reversed) become visible escapes, `\x1b` for C0 and DEL and
//! `\u{85}` / `\u{202e}` for the others. Everything else — letters of any
//! script, emoji, backslashes — is left alone.
//!
//! This is for terminals only: JSON output keeps the exact text (serde escapes
//! what JSON needs), and dumps keep the bytes they were given.

use std::{borrow::Cow, fmt};

/// True for the characters [`escape`] rewrites.
pub fn is_unsafe(c: char) -> bool {
    matches!(
        c,
        '\0'..='\x1f'
            | '\x7f'
            | '\u{80}'..='\u{9f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{61c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// `s` made safe for a terminal; borrowed when nothing needed escaping.
pub fn escape(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_unsafe) {
        Cow::Owned(Escaped(s).to_string())
    } else {
        Cow::Borrowed(s)
    }
}

/// Displays the wrapped text with [`escape`]'s rules, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| is_unsafe(c)) {
            f.write_str(&rest[..at])?;
            if c <= '\x7f' {
                write!(f, "\\x{:02x}", c as u32)?;
            } else {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[at + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// A path for a message: lossy for non-UTF-8 names, then escaped.
pub fn escape_path(path: &std::path::Path) -> String {
    Escaped(&path.to_string_lossy()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_newline_stays_on_its_line() {
        let comm = "x\nvictim     init (pid 1)";
        let shown = escape(comm);
        assert_eq!(shown, "x\\x0avictim     init (pid 1)");
        assert_eq!(shown.lines().count(), 1);
        let cr = escape("ok\r  victim init (pid 1)");
        assert_eq!(cr, "ok\\x0d  victim init (pid 1)");
        assert!(!cr.contains('\r'));
    }

    #[test]
    fn escape_sequences_are_inert() {
        // OSC 0 (window title) and a CSI colour / clear-screen.
        let title = "\u{1b}]0;pwned\u{7}";
        assert_eq!(escape(title), "\\x1b]0;pwned\\x07");
        assert_eq!(escape("\u{1b}[2J\u{1b}[31mred"), "\\x1b[2J\\x1b[31mred");
        // The C1 forms of CSI (U+009B) and OSC (U+009D), and NEL.
        assert_eq!(
            escape("\u{9b}2J\u{9d}0;t\u{85}"),
            "\\u{9b}2J\\u{9d}0;t\\u{85}"
        );
        for s in [title, "\u{9b}31m", "a\u{7f}b", "tab\there", "nul\0"] {
            assert!(!escape(s).chars().any(is_unsafe), "{s:?}");
        }
    }

    #[test]
    fn every_control_is_escaped_and_nothing_else() {
        for c in (0u32..=0x10_ffff).filter_map(char::from_u32) {
            let s = c.to_string();
            let e = escape(&s);
            if is_unsafe(c) {
                let expected = if c <= '\x7f' {
                    format!("\\x{:02x}", c as u32)
                } else {
                    format!("\\u{{{:x}}}", c as u32)
                };
                assert_eq!(e, expected, "{c:?}");
            } else {
                assert!(matches!(e, Cow::Borrowed(_)), "{c:?}");
            }
        }
        for c in [
            '\u{80}', '\u{9f}', '\u{2028}', '\u{2029}', '\u{1f}', '\u{7f}', '\u{202a}', '\u{202e}',
            '\u{2066}', '\u{2069}', '\u{61c}', '\u{200e}', '\u{200f}',
        ] {
            assert!(is_unsafe(c));
        }
        // The zero-width joiner holds emoji together; U+202F is a space.
        for c in [
            '\u{a0}', '\u{7e}', '\u{20}', '\u{2027}', '\u{202f}', '\u{2065}', '\u{200d}',
        ] {
            assert!(!is_unsafe(c));
        }
    }

    #[test]
    fn ordinary_unicode_is_untouched() {
        for s in [
            "",
            "java",
            "systemd/user@1000.service",
            "system-getty.slice/serial\\x2dgetty@ttyS0.service",
            "Ωmega ✓ 日本語 🐧 naïve",
        ] {
            assert!(matches!(escape(s), Cow::Borrowed(t) if t == s), "{s}");
            assert_eq!(Escaped(s).to_string(), s);
        }
        assert_eq!(escape("日本\u{2028}語"), "日本\\u{2028}語");
    }

    #[test]
    fn paths_are_escaped_too() {
        use std::os::unix::ffi::OsStrExt as _;
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(b"/tmp/a\x1b[2J\xffb"));
        assert_eq!(escape_path(p), "/tmp/a\\x1b[2J\u{fffd}b");
    }
}
