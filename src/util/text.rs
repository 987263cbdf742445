//! Text from files (model names, a command's output) made safe for a terminal.

/// `s` with every control character (C0, DEL, C1) written as an escape (`\x1b`, `\n`,
/// `\u{9b}`), so a name cannot move the cursor, recolour the screen or break a line.
pub fn escape_control(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The last non-empty line of `text` (a command's stderr summarized), escaped.
pub fn last_line(text: &str) -> String {
    escape_control(
        text.lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or(""),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(escape_control("Conv@0"), "Conv@0");
        assert_eq!(
            escape_control("a\x1b[31mred\x07\n\u{9b}é"),
            "a\\x1b[31mred\\x07\\n\\u{9b}é"
        );
        assert_eq!(
            last_line("x\nTraceback\nValueError: bad\n\n"),
            "ValueError: bad"
        );
    }
}
