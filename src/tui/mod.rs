//! The terminal UI (DESIGN.md "house style"): one event enum and one loop; the worker thread
//! owns the engine and reports through the same channel; the views render the latest
//! session snapshot plus the job's progress and never compute.

pub mod app;
pub mod event;
pub mod fixture;
pub mod keymap;
pub mod model;
pub mod terminal;
pub mod theme;
pub mod view;

pub use app::{App, Command};
pub use theme::Theme;
