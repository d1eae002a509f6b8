//! Text chosen by the sandbox (file names, diff lines, argv, hosts),
//! made safe to print on a terminal: control characters, C1 codes and
//! bidirectional overrides are shown escaped, so escape sequences cannot
//! move the cursor, retitle the window or hide lines from a reviewer.
//! `--json` output is never passed through here: it stays exact.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Text chosen by the sandbox, made safe for a terminal: every control
/// character (and DEL, and the C1 range) is shown as `\xNN` / `\u{NNNN}`,
/// so escape sequences cannot move the cursor or hide lines.
pub fn terminal_safe(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if ch.is_control() {
            if (ch as u32) < 0x100 {
                out.push_str(&format!("\\x{:02x}", ch as u32));
            } else {
                out.push_str(&format!("\\u{{{:04x}}}", ch as u32));
            }
        } else if matches!(ch, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        {
            // Bidirectional overrides reorder what the reviewer sees.
            out.push_str(&format!("\\u{{{:04x}}}", ch as u32));
        } else {
            out.push(ch);
        }
    }
    out
}

/// A path from the sandbox, shown safely (invalid UTF-8 as `\xNN`).
pub fn safe_path(p: &Path) -> String {
    let mut s = String::new();
    for chunk in p.as_os_str().as_bytes().utf8_chunks() {
        s.push_str(&terminal_safe(chunk.valid()));
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

/// A multi-line text made safe line by line: the line breaks stay,
/// everything else that [`terminal_safe`] escapes is escaped.
pub fn terminal_safe_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for line in s.split_inclusive('\n') {
        match line.strip_suffix('\n') {
            Some(l) => {
                out.push_str(&terminal_safe(l));
                out.push('\n');
            }
            None => out.push_str(&terminal_safe(line)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn terminal_safe_escapes_controls_and_bidi() {
        assert_eq!(terminal_safe("a\x1b[2Kb"), "a\\x1b[2Kb");
        assert_eq!(terminal_safe("x\ry\n"), "x\\x0dy\\x0a");
        assert_eq!(terminal_safe("\u{202e}abc"), "\\u{202e}abc");
        assert_eq!(terminal_safe("\u{9b}2J"), "\\x9b2J");
        assert_eq!(
            safe_path(Path::new(OsStr::from_bytes(b"a\xffb"))),
            "a\\xffb"
        );
    }

    #[test]
    fn lines_keep_their_breaks() {
        assert_eq!(terminal_safe_lines("a\x1b\nb\n"), "a\\x1b\nb\n");
    }
}
