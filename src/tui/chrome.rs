//! The terminal conventions around the panels (issue 13): panel numbers, paging, a zoomed
//! panel, the opt-in mouse and the memory figure. Their state lives here, apart from the
//! panels' own state in `App`, so the views and the key handling stay small.

use ratatui::crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Position, Rect};

use super::app::{App, Tab};
use super::keymap::Mode;

/// Rows the mouse wheel scrolls per notch.
pub const WHEEL_ROWS: isize = 3;

/// State of the conventions.
#[derive(Clone, Debug, Default)]
pub struct Chrome {
    /// The focused panel fills the body (`z` again restores the layout).
    pub zoom: bool,
    /// The mouse is captured (`qtune tui --mouse`); clicks and the wheel are handled.
    pub mouse: bool,
    /// Rows of the help overlay on screen (set when drawn; for C-d/C-u).
    pub help_page: usize,
    /// Where things were drawn last, for the mouse (set by the views).
    pub hits: Hits,
    /// The memory figure the status line shows (set by the loop; `None`: not sampled).
    pub mem: Option<MemFigure>,
    /// The last header had room for the memory figure (else the footer shows it).
    pub mem_in_header: bool,
}

/// Screen areas of the last frame.
#[derive(Clone, Debug, Default)]
pub struct Hits {
    /// The layer list's rows (below its column header).
    pub layer_rows: Option<Rect>,
    /// Each panel (wide layout) or the tab labels (tabs).
    pub panels: Vec<(Tab, Rect)>,
}

/// The process's resident memory and the cache budget it is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFigure {
    /// Resident bytes (`None`: not known here, e.g. no /proc).
    pub resident: Option<u64>,
    /// The re-evaluation caches' budget (`tune.cache_memory_mb`).
    pub cache_budget: u64,
}

impl MemFigure {
    /// Samples the resident memory now, with the budget `session`'s configuration sets.
    pub fn sample(session: &crate::session::Session) -> MemFigure {
        MemFigure {
            resident: resident_bytes(),
            cache_budget: cache_budget(&session.config),
        }
    }

    /// `mem 412 MB / cache 2.0 GB`, or `mem 412M/2.0G` when `short`.
    pub fn label(&self, short: bool) -> String {
        let rss = self.resident.map_or("?".to_string(), |b| bytes(b, short));
        let cache = bytes(self.cache_budget, short);
        if short {
            format!("mem {rss}/{cache}")
        } else {
            format!("mem {rss} / cache {cache}")
        }
    }
}

/// The cache budget a configuration holds the evaluator to (the default when its `tune:`
/// section is invalid, which the worker would refuse anyway).
pub fn cache_budget(raw: &crate::config::RawConfig) -> u64 {
    crate::config::tune::resolve(raw.tune.as_ref())
        .map_or(crate::config::tune::DEFAULT_CACHE_MB << 20, |t| {
            t.cache_bytes
        }) as u64
}

/// Resident bytes of this process from `/proc/self/statm` (its second field, in pages);
/// `None` where there is no such file.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    parse_statm(&statm, page_size())
}

/// The resident bytes of a `statm` line, pages of `page` bytes.
pub fn parse_statm(statm: &str, page: u64) -> Option<u64> {
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the system; it has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(p).ok().filter(|&p| p > 0).unwrap_or(4096)
}

/// `412 MB`, `1.0 GB` (`412M`, `1.0G` when `short`); binary units.
fn bytes(b: u64, short: bool) -> String {
    const MB: f64 = (1u64 << 20) as f64;
    let mb = b as f64 / MB;
    let (n, unit) = if mb >= 1000.0 {
        (format!("{:.1}", mb / 1024.0), "G")
    } else {
        (format!("{mb:.0}"), "M")
    };
    if short {
        format!("{n}{unit}")
    } else {
        format!("{n} {unit}B")
    }
}

impl App {
    /// A panel by its number key (`1`–`5`, in the order of the tabs).
    pub(super) fn select_tab_key(&mut self, key: &KeyEvent) {
        if let KeyCode::Char(c) = key.code
            && let Some(d) = c.to_digit(10)
            && let Some(tab) = (d as usize).checked_sub(1).and_then(|i| Tab::ALL.get(i))
        {
            self.tab = *tab;
        }
    }

    /// Zooms the focused panel to the whole body, or restores the layout.
    pub(super) fn toggle_zoom(&mut self) {
        self.chrome.zoom = !self.chrome.zoom;
        if self.chrome.zoom {
            self.say(format!("{} zoomed; z restores", self.tab.title()));
        }
    }

    /// Scrolls the help a page (`by` pages, negative: up).
    pub(super) fn help_page(&mut self, by: isize) {
        let page = self.chrome.help_page.max(1) as isize;
        self.help_scroll = (self.help_scroll as isize + by * page).max(0) as usize;
    }

    /// Handles a mouse event (only with `--mouse`): a click selects the layer row or the
    /// panel under it, the wheel scrolls the layer list (or the help).
    pub fn handle_mouse(&mut self, ev: MouseEvent) {
        let at = Position::new(ev.column, ev.row);
        match ev.kind {
            MouseEventKind::ScrollDown | MouseEventKind::ScrollUp => {
                let by = if ev.kind == MouseEventKind::ScrollDown {
                    WHEEL_ROWS
                } else {
                    -WHEEL_ROWS
                };
                match self.mode {
                    Mode::Help => {
                        self.help_scroll = (self.help_scroll as isize + by).max(0) as usize
                    }
                    Mode::Normal => {
                        let to = self.cursor as isize + by;
                        self.move_cursor(to);
                    }
                    _ => {}
                }
            }
            MouseEventKind::Down(MouseButton::Left) if self.mode == Mode::Normal => {
                if let Some(tab) = self
                    .chrome
                    .hits
                    .panels
                    .iter()
                    .find(|(_, r)| r.contains(at))
                    .map(|(t, _)| *t)
                {
                    self.tab = tab;
                }
                if let Some(r) = self.chrome.hits.layer_rows.filter(|r| r.contains(at)) {
                    let row = self.layer_offset + usize::from(at.y - r.y);
                    if row < self.rows.len() {
                        self.move_cursor(row as isize);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_gives_resident_pages() {
        assert_eq!(
            parse_statm("1000 250 30 1 0 90 0\n", 4096),
            Some(250 * 4096)
        );
        assert_eq!(parse_statm("garbage", 4096), None);
        assert_eq!(parse_statm("", 4096), None);
    }

    #[test]
    fn memory_reads_in_mb_and_gb() {
        let m = MemFigure {
            resident: Some(412 << 20),
            cache_budget: 1 << 30,
        };
        assert_eq!(m.label(false), "mem 412 MB / cache 1.0 GB");
        assert_eq!(m.label(true), "mem 412M/1.0G");
        let unknown = MemFigure {
            resident: None,
            cache_budget: 2048 << 20,
        };
        assert_eq!(unknown.label(false), "mem ? / cache 2.0 GB");
    }

    #[test]
    fn this_process_has_resident_memory_on_linux() {
        if std::path::Path::new("/proc/self/statm").exists() {
            assert!(resident_bytes().is_some_and(|b| b > 0));
        }
    }
}
