//! `qtune tui -c CONFIG [--session S]`, and `qtune` alone: the terminal UI on the bundled
//! demo when stdout is a terminal (the headless demo otherwise, for scripts and CI).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use qtune::config::Config;
use qtune::session::StageId;
use qtune::tui::{App, Theme, model, run};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The configuration (model and data are named in it).
    #[arg(short = 'c', long = "config", value_name = "CONFIG")]
    pub config: PathBuf,
    /// The session file: resumed when it exists, created otherwise
    /// [default: <config name>.session.json in the current folder].
    #[arg(long, value_name = "S")]
    pub session: Option<PathBuf>,
    /// Capture the mouse: a click selects a layer row or a panel, the wheel scrolls. Off
    /// by default so the terminal's own selection (copy and paste, also over SSH) works.
    #[arg(long)]
    pub mouse: bool,
}

/// `qtune tui`.
pub fn run(a: Args, model: Option<PathBuf>, ascii: bool) -> Result<u8> {
    if model.is_some() {
        bail!("--model is not supported by `tui`: name the model in the configuration");
    }
    let session = a.session.unwrap_or_else(|| {
        let stem = a.config.file_stem().unwrap_or_default().to_string_lossy();
        PathBuf::from(format!("{stem}.session.json"))
    });
    if let Some(why) = no_ansi_terminal() {
        // what the UI would show first, as text: stage 1's evaluation (or the session's
        // current result), the same as `qtune eval`
        let resume = session.exists();
        eprintln!(
            "qtune tui: {why}; headless instead: `qtune eval -c {}{}`",
            a.config.display(),
            if resume {
                format!(" --session {}", session.display())
            } else {
                String::new()
            }
        );
        return super::eval::run(
            super::eval::Args {
                config: a.config,
                params: None,
                session: resume.then_some(session),
                json: false,
                dump_outputs: None,
            },
            None,
            false,
        );
    }
    open(&a.config, &session, ascii, a.mouse)
}

/// Why the full-screen UI cannot run here (stdin or stdout not a terminal, `TERM=dumb`
/// or unset): then the headless output is printed instead of escapes.
pub fn no_ansi_terminal() -> Option<&'static str> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return Some("stdin or stdout is not a terminal");
    }
    match std::env::var("TERM").ok().as_deref() {
        Some("dumb") => Some("TERM=dumb cannot show the full-screen UI"),
        None | Some("") => Some("TERM is not set"),
        _ => None,
    }
}

/// `qtune` with no arguments.
pub fn demo(quiet: bool, ascii: bool) -> Result<u8> {
    if no_ansi_terminal().is_some() {
        return super::demo::run(quiet);
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/default.yaml");
    open(&config, Path::new("qtune-demo.session.json"), ascii, false)
}

fn open(config: &Path, session_path: &Path, ascii: bool, mouse: bool) -> Result<u8> {
    // validate the configuration before taking the terminal over
    let cfg = Config::load(config)?;
    super::guard::check(
        &[("--session", session_path)],
        &super::guard::config_inputs(config, &cfg),
    )?;
    let config_abs = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let session = if session_path.exists() {
        qtune::session::load(session_path)?
    } else {
        model::placeholder(
            cfg.model.display().to_string(),
            Some(config_abs.display().to_string()),
            cfg.raw.clone(),
        )
    };
    let mut app = App::new(session, Theme::from_env(ascii));
    app.session_path = Some(session_path.to_path_buf());
    app.config_path = Some(config_abs.clone());
    app.config_text = std::fs::read_to_string(config).ok();
    app.chrome.mouse = mouse;
    run::run(
        app,
        Some(run::Live {
            config: config_abs,
            session_path: session_path.to_path_buf(),
            run: Some(StageId::Calibrate),
        }),
    )
    .context("terminal UI")?;
    Ok(0)
}

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Layers in the synthetic session.
    #[arg(long, default_value_t = 200)]
    pub layers: usize,
    #[arg(long, default_value_t = 160)]
    pub width: u16,
    #[arg(long, default_value_t = 48)]
    pub height: u16,
    #[arg(long, default_value_t = 1000)]
    pub frames: usize,
}

/// `qtune bench-tui` (hidden): frame draw time on a synthetic session, no terminal needed.
pub fn bench(a: BenchArgs) -> Result<u8> {
    let (mean, max) = qtune::tui::bench(a.layers, a.width, a.height, a.frames);
    println!(
        "frame {}x{}, {} layers, {} frames: mean {mean:.3} ms, max {max:.3} ms",
        a.width, a.height, a.layers, a.frames
    );
    Ok(0)
}
