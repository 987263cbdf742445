//! Entering and leaving the terminal: raw mode and the alternate screen, restored on quit, on
//! error (a guard's Drop) and on panic (a hook that restores before the message prints).
//! With `--mouse` the mouse is captured too, and released the same three ways.

use std::io::{Stdout, stdout};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::{cursor, event, execute, terminal};

pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The terminal in TUI mode; dropping it restores the terminal.
pub struct Guard {
    pub term: Term,
}

/// Whether the mouse is captured (so `restore` releases it).
static MOUSE: AtomicBool = AtomicBool::new(false);

impl Guard {
    /// Raw mode and the alternate screen; `mouse`: capture the mouse as well.
    pub fn enter(mouse: bool) -> Result<Guard> {
        install_panic_hook();
        terminal::enable_raw_mode().context("entering raw mode (is stdout a terminal?)")?;
        let mut out = stdout();
        if let Err(e) = execute!(out, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e).context("entering the alternate screen");
        }
        if mouse {
            MOUSE.store(true, Ordering::SeqCst);
            if let Err(e) = execute!(out, event::EnableMouseCapture) {
                restore();
                return Err(e).context("capturing the mouse");
            }
        }
        let term = Terminal::new(CrosstermBackend::new(out)).inspect_err(|_| restore())?;
        Ok(Guard { term })
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves raw mode and the alternate screen and releases the mouse (harmless when not in
/// them).
pub fn restore() {
    if MOUSE.swap(false, Ordering::SeqCst) {
        let _ = execute!(stdout(), event::DisableMouseCapture);
    }
    let _ = terminal::disable_raw_mode();
    let _ = execute!(stdout(), terminal::LeaveAlternateScreen, cursor::Show);
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A worker's panic is caught and shown in the UI (worker::spawn); restoring
            // the terminal then would leave the UI running deaf to its keys.
            if std::thread::current().name() == Some(super::worker::THREAD_NAME) {
                return;
            }
            restore();
            previous(info);
        }));
    });
}
