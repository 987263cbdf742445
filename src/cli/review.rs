//! `qtune review SESSION`: a saved session, read-only, without model or data.

use std::path::PathBuf;

use anyhow::{Context, Result};
use qtune::tui::{App, Theme, run};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The session file.
    pub session: PathBuf,
    /// Print a Markdown summary (stages, best result, blacklists, worst layers) instead of
    /// opening the UI; also what a non-terminal or `TERM=dumb` gets.
    #[arg(long)]
    pub print: bool,
}

pub fn run(a: Args, ascii: bool) -> Result<u8> {
    let session = qtune::session::load(&a.session)?;
    if a.print || super::tui::no_ansi_terminal().is_some() {
        print!("{}", qtune::session::summary::markdown(&session));
        return Ok(0);
    }
    let mut app = App::new(session, Theme::from_env(ascii));
    app.review = true;
    app.session_path = Some(a.session.clone());
    app.config_path = app.session.config_file.as_ref().map(PathBuf::from);
    app.config_text = app
        .config_path
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok());
    let hint = match app.resume_hint() {
        Some(h) => format!("read-only review; to resume: {h}"),
        None => "read-only review (the configuration file is not here: resume unavailable)".into(),
    };
    app.message = Some(qtune::tui::app::Message {
        text: hint,
        error: false,
    });
    run::run(app, None).context("terminal UI")?;
    Ok(0)
}
