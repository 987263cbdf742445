//! Small helpers shared across modules: safe file access, the writer lock, the memory
//! budget, terminal-safe text.

pub mod budget;
pub mod fs;
pub mod lock;
pub mod text;

pub use fs::write_atomic;
