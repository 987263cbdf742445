//! The terminal UI (DESIGN.md "house style"): one event enum and one loop; the worker thread
//! owns the engine and reports through the same channel; the views render the latest
//! session snapshot plus the job's progress and never compute.

pub mod app;
mod bisect;
mod browse;
pub mod chrome;
pub mod event;
pub mod fixture;
pub mod keymap;
pub mod model;
pub mod run;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod worker;

pub use app::{App, Command};
pub use theme::Theme;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod chrome_tests;

/// Draws `frames` frames of the fixture session with `layers` layers at `w`×`h` into a test
/// backend, moving the selection each frame; returns (mean, max) milliseconds per frame.
pub fn bench(layers: usize, w: u16, h: u16, frames: usize) -> (f64, f64) {
    use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let mut app = App::new(fixture::session(layers), Theme::PLAIN);
    let mut term =
        ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).expect("test backend");
    let mut total = 0.0;
    let mut max: f64 = 0.0;
    for i in 0..frames {
        let code = if (i / layers).is_multiple_of(2) {
            KeyCode::Down
        } else {
            KeyCode::Up
        };
        app.handle_key(KeyEvent::new(code, KeyModifiers::NONE));
        let t0 = std::time::Instant::now();
        term.draw(|f| view::draw(f, &mut app)).expect("draw");
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        total += ms;
        max = max.max(ms);
    }
    (total / frames.max(1) as f64, max)
}
