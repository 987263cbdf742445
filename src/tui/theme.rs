//! Colours and glyphs: `NO_COLOR` drops every colour (bold and reverse stay), `--ascii` or a
//! non-UTF-8 locale replaces braille, block and box-drawing glyphs with plain ASCII.

use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::border;

/// How to draw: with colour or not, with Unicode glyphs or ASCII only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
    pub ascii: bool,
}

const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// Eighths of a cell, for horizontal bars.
const HBLOCKS: [&str; 9] = [" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"];
/// Eighths of a cell, for vertical bars.
const VBLOCKS: [&str; 9] = [" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"];
const ASCII_V: [&str; 9] = [" ", " ", ".", ".", ":", ":", "|", "|", "#"];

impl Theme {
    /// Colour unless `NO_COLOR` is set (non-empty); ASCII when asked or when the locale is
    /// not UTF-8.
    pub fn from_env(ascii: bool) -> Theme {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Theme {
            color: !no_color,
            ascii: ascii || !locale_is_utf8(),
        }
    }

    /// The theme snapshot tests use.
    pub const PLAIN: Theme = Theme {
        color: true,
        ascii: false,
    };

    fn fg(&self, c: Color) -> Style {
        if self.color {
            Style::new().fg(c)
        } else {
            Style::new()
        }
    }

    pub fn good(&self) -> Style {
        self.fg(Color::Green)
    }
    pub fn bad(&self) -> Style {
        self.fg(Color::Red).add_modifier(if self.color {
            Modifier::empty()
        } else {
            Modifier::BOLD
        })
    }
    pub fn warn(&self) -> Style {
        self.fg(Color::Yellow)
    }
    pub fn dim(&self) -> Style {
        if self.color {
            Style::new().fg(Color::DarkGray)
        } else {
            Style::new()
        }
    }
    pub fn accent(&self) -> Style {
        self.fg(Color::Cyan)
    }
    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }
    pub fn key(&self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
    pub fn selected(&self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }
    /// Series colours for curves (KL, SYMKL, JSD).
    pub fn series(&self, i: usize) -> Style {
        self.fg([Color::Cyan, Color::Magenta, Color::Yellow][i % 3])
    }

    pub fn border(&self) -> border::Set {
        if self.ascii {
            ASCII_BORDER
        } else {
            border::PLAIN
        }
    }

    /// A horizontal bar of `frac` (0..=1) of `width` cells.
    pub fn hbar(&self, frac: f64, width: usize) -> String {
        let frac = if frac.is_finite() {
            frac.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let eighths = (frac * width as f64 * 8.0).round() as usize;
        let (full, part) = (eighths / 8, eighths % 8);
        let mut s = String::with_capacity(width * 3);
        if self.ascii {
            s.extend(std::iter::repeat_n('#', full));
            if part >= 4 && full < width {
                s.push('=');
            } else if full < width {
                s.push(' ');
            }
        } else {
            s.extend(std::iter::repeat_n('█', full));
            if full < width {
                s.push_str(HBLOCKS[part]);
            }
        }
        while s.chars().count() < width {
            s.push(' ');
        }
        s
    }

    /// A vertical block of `eighths` (0..=8) of a cell.
    pub fn vblock(&self, eighths: usize) -> &'static str {
        let e = eighths.min(8);
        if self.ascii { ASCII_V[e] } else { VBLOCKS[e] }
    }

    pub fn glyph(&self, g: Glyph) -> &'static str {
        let (u, a) = match g {
            Glyph::Excluded => ("✗", "x"),
            Glyph::Cursor => ("▶", ">"),
            Glyph::Check => ("✓", "+"),
            Glyph::Cross => ("✗", "x"),
            Glyph::Delta => ("Δ", "d"),
            Glyph::Approx => ("≈", "~"),
            Glyph::PlusMinus => ("±", "+-"),
            Glyph::Dot => ("·", "."),
            Glyph::Arrow => ("→", "->"),
            Glyph::Ellipsis => ("…", "~"),
            Glyph::Up => ("↑", "Up"),
            Glyph::Down => ("↓", "Down"),
            Glyph::Left => ("←", "Left"),
            Glyph::Right => ("→", "Right"),
            Glyph::Ge => ("≥", ">="),
            Glyph::VLine => ("│", "|"),
            Glyph::HLine => ("─", "-"),
            Glyph::Pending => ("○", "o"),
            Glyph::Running => ("◐", "*"),
            Glyph::Skipped => ("–", "-"),
        };
        if self.ascii { a } else { u }
    }
}

/// Glyphs that have an ASCII replacement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Glyph {
    Approx,
    PlusMinus,
    Excluded,
    Cursor,
    Check,
    Cross,
    Delta,
    Dot,
    Arrow,
    Ellipsis,
    Up,
    Down,
    Left,
    Right,
    Ge,
    VLine,
    HLine,
    Pending,
    Running,
    Skipped,
}

/// Whether the effective character-type locale (LC_ALL, else LC_CTYPE, else LANG) names
/// UTF-8. No locale at all is the C locale: ASCII.
pub fn locale_is_utf8() -> bool {
    let var = ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.is_empty());
    var.is_some_and(|v| {
        let v = v.to_ascii_lowercase();
        v.contains("utf-8") || v.contains("utf8")
    })
}

/// `s` cut to `width` characters, with an ellipsis when cut.
pub fn fit(s: &str, width: usize, theme: &Theme) -> String {
    let n = s.chars().count();
    if n <= width {
        return s.to_string();
    }
    let ell = theme.glyph(Glyph::Ellipsis);
    let keep = width.saturating_sub(ell.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    if width >= ell.chars().count() {
        out.push_str(ell);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_have_their_width() {
        for t in [
            Theme::PLAIN,
            Theme {
                color: false,
                ascii: true,
            },
        ] {
            for f in [0.0, 0.3, 0.55, 1.0, f64::NAN] {
                assert_eq!(t.hbar(f, 10).chars().count(), 10);
            }
            assert!(t.ascii || t.hbar(1.0, 3) == "███");
        }
        assert!(
            Theme {
                color: false,
                ascii: true
            }
            .hbar(0.7, 10)
            .is_ascii()
        );
    }

    #[test]
    fn fit_cuts_with_ellipsis() {
        assert_eq!(fit("conv_block_12", 8, &Theme::PLAIN), "conv_bl…");
        assert_eq!(fit("abc", 8, &Theme::PLAIN), "abc");
    }
}
