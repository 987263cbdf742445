//! The UI state and its update: keys become state changes and commands for the worker; the
//! worker's events update the session snapshot and the job's progress. No terminal here, so
//! every binding is testable as key → commands + state.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use ratatui::crossterm::event::{KeyCode, KeyEvent};
use tui_textarea::{CursorMove, TextArea};

use super::event::{JobEvent, JobKind, Phase};
use super::keymap::{Action, Mode, lookup};
use super::model::{self, LayerRow, Sort};
use super::theme::Theme;
use crate::calib::DisplayHistogram;
use crate::config::{Config, ConfigError, RawConfig};
use crate::session::{Session, StageId, StageState};

/// What the UI asks of the worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    RunStage(StageId),
    Toggle(String),
    Save,
    /// Cancel the job in flight (and drop the queued ones).
    Cancel,
    /// Use this configuration (already validated) and re-run from `rerun`.
    ApplyConfig {
        text: String,
        rerun: Option<StageId>,
    },
    Quit,
}

/// The panels; on small terminals, the tabs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Layers,
    Histogram,
    Curve,
    Accuracy,
    Stages,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Layers,
        Tab::Histogram,
        Tab::Curve,
        Tab::Accuracy,
        Tab::Stages,
    ];
    pub fn title(self) -> &'static str {
        match self {
            Tab::Layers => "Layers",
            Tab::Histogram => "Histogram",
            Tab::Curve => "Divergence",
            Tab::Accuracy => "Accuracy",
            Tab::Stages => "Stages",
        }
    }
    fn step(self, by: isize) -> Tab {
        let i = Tab::ALL.iter().position(|t| *t == self).unwrap_or(0) as isize;
        Tab::ALL[(i + by).rem_euclid(Tab::ALL.len() as isize) as usize]
    }
}

/// The job in flight.
#[derive(Clone, Debug)]
pub struct Job {
    pub kind: JobKind,
    pub started: Instant,
    /// Current phase: (phase, done, total, since).
    pub phase: Option<(Phase, usize, usize, Instant)>,
    /// The running estimate of the evaluation in flight (not a result until final).
    pub estimate: Option<crate::eval::Estimate>,
}

/// A toggle and what its re-evaluation gave.
#[derive(Clone, Debug, PartialEq)]
pub struct ToggleResult {
    pub layer: String,
    pub excluded: bool,
    pub before: Option<f64>,
    pub after: f64,
    pub evaluation: crate::session::EvalId,
}

/// A line for the user in the footer.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// The configuration editor.
pub struct Editor {
    pub textarea: TextArea<'static>,
    /// The validation error: (1-based line, message).
    pub error: Option<(Option<usize>, String)>,
    pub read_only: bool,
}

impl Editor {
    pub fn text(&self) -> String {
        let mut t = self.textarea.lines().join("\n");
        t.push('\n');
        t
    }
}

/// The whole UI state.
pub struct App {
    pub session: Session,
    /// `qtune review`: no worker, nothing runs.
    pub review: bool,
    pub session_path: Option<PathBuf>,
    /// The configuration file (for validation paths and the editor's text).
    pub config_path: Option<PathBuf>,
    pub config_text: Option<String>,
    pub theme: Theme,
    pub mode: Mode,
    pub tab: Tab,
    pub rows: Vec<LayerRow>,
    /// Position of the selection in `rows`.
    pub cursor: usize,
    /// The selected layer's name (kept across sorting and filtering).
    pub selected: Option<String>,
    pub filter: String,
    pub sort: Sort,
    pub log_scale: bool,
    pub all_curves: bool,
    /// Index into `StageId::ALL` of the stage in view.
    pub stage_cursor: usize,
    pub job: Option<Job>,
    /// Jobs sent but not started yet.
    pub queued: Vec<JobKind>,
    pub live: Option<(usize, BTreeMap<String, DisplayHistogram>)>,
    pub toggles: Vec<ToggleResult>,
    pub message: Option<Message>,
    pub editor: Option<Editor>,
    /// The clock the views use (set by the loop; fixed in tests).
    pub now: Instant,
    /// Rows of the layer list on screen (set when drawn; for PgUp/PgDn).
    pub page: usize,
    /// First layer row on screen.
    pub layer_offset: usize,
    pub quit: bool,
}

impl App {
    pub fn new(session: Session, theme: Theme) -> App {
        let mut app = App {
            session,
            review: false,
            session_path: None,
            config_path: None,
            config_text: None,
            theme,
            mode: Mode::Normal,
            tab: Tab::Layers,
            rows: Vec::new(),
            cursor: 0,
            selected: None,
            filter: String::new(),
            sort: Sort::Graph,
            log_scale: true,
            all_curves: false,
            stage_cursor: 0,
            job: None,
            queued: Vec::new(),
            live: None,
            toggles: Vec::new(),
            message: None,
            editor: None,
            now: Instant::now(),
            page: 10,
            layer_offset: 0,
            quit: false,
        };
        app.stage_cursor = app.last_run_stage().unwrap_or(0);
        app.refresh();
        app
    }

    /// The selected row.
    pub fn selected_row(&self) -> Option<&LayerRow> {
        self.rows.get(self.cursor)
    }

    /// Whether quitting now would lose work: a job in flight or queued.
    pub fn unsaved(&self) -> bool {
        !self.review && (self.job.is_some() || !self.queued.is_empty())
    }

    /// Whether the worker is busy.
    pub fn busy(&self) -> bool {
        self.job.is_some() || !self.queued.is_empty()
    }

    /// Rebuilds the rows, keeping the selected layer selected.
    pub fn refresh(&mut self) {
        self.rows = model::build_rows(&self.session, &self.filter, self.sort);
        let pos = self
            .selected
            .as_ref()
            .and_then(|n| self.rows.iter().position(|r| &r.name == n));
        self.cursor = pos.unwrap_or(self.cursor.min(self.rows.len().saturating_sub(1)));
        self.selected = self.rows.get(self.cursor).map(|r| r.name.clone());
    }

    fn move_cursor(&mut self, to: isize) {
        if self.rows.is_empty() {
            return;
        }
        let last = self.rows.len() as isize - 1;
        self.cursor = to.clamp(0, last) as usize;
        self.selected = Some(self.rows[self.cursor].name.clone());
    }

    fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    fn read_only(&mut self) {
        let hint = self
            .resume_hint()
            .map_or(String::new(), |h| format!("; resume: {h}"));
        self.say(format!("read-only review{hint}"));
    }

    /// The command that resumes a reviewed session, when its configuration file exists.
    pub fn resume_hint(&self) -> Option<String> {
        let cfg = self.session.config_file.as_ref()?;
        if !std::path::Path::new(cfg).exists() {
            return None;
        }
        let s = self
            .session_path
            .as_ref()
            .map_or("SESSION".into(), |p| p.display().to_string());
        Some(format!("qtune tui -c {cfg} --session {s}"))
    }

    /// The last stage that is not pending (its index in `StageId::ALL`).
    pub fn last_run_stage(&self) -> Option<usize> {
        StageId::ALL.iter().rposition(|&s| {
            !matches!(
                model::stage_state(&self.session, s),
                StageState::Pending | StageState::Skipped
            )
        })
    }

    /// Handles one key press; returns what the worker must do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match self.mode {
            Mode::Editor => self.editor_key(key),
            Mode::Filter => self.filter_key(key),
            Mode::Help => {
                if lookup(Mode::Help, &key) == Some(Action::HelpClose) {
                    self.mode = Mode::Normal;
                }
                vec![]
            }
            Mode::ConfirmQuit => match lookup(Mode::ConfirmQuit, &key) {
                Some(Action::ConfirmYes) => {
                    self.quit = true;
                    vec![Command::Quit]
                }
                Some(Action::ConfirmNo) => {
                    self.mode = Mode::Normal;
                    vec![]
                }
                _ => vec![],
            },
            Mode::Normal => match lookup(Mode::Normal, &key) {
                Some(a) => {
                    self.message = self.message.take().filter(|m| m.error);
                    self.act(a)
                }
                None => vec![],
            },
        }
    }

    fn act(&mut self, a: Action) -> Vec<Command> {
        let c = self.cursor as isize;
        let page = self.page.max(1) as isize;
        match a {
            Action::Up => self.move_cursor(c - 1),
            Action::Down => self.move_cursor(c + 1),
            Action::PageUp => self.move_cursor(c - page),
            Action::PageDown => self.move_cursor(c + page),
            Action::Top => self.move_cursor(0),
            Action::Bottom => self.move_cursor(isize::MAX / 2),
            Action::Toggle => return self.toggle(),
            Action::Cancel => {
                if self.busy() {
                    self.say("cancelling…");
                    return vec![Command::Cancel];
                }
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.refresh();
                }
                self.message = None;
            }
            Action::NextStage => return self.next_stage(),
            Action::PrevStage => self.stage_cursor = self.stage_cursor.saturating_sub(1),
            Action::Edit => self.open_editor(),
            Action::Save => {
                if self.review {
                    self.read_only();
                } else {
                    return vec![Command::Save];
                }
            }
            Action::Help => self.mode = Mode::Help,
            Action::Quit => {
                if self.unsaved() {
                    self.mode = Mode::ConfirmQuit;
                } else {
                    self.quit = true;
                    return vec![Command::Quit];
                }
            }
            Action::Filter => self.mode = Mode::Filter,
            Action::Sort => {
                self.sort = self.sort.next();
                self.refresh();
                self.say(format!("layers sorted by {}", self.sort.label()));
            }
            Action::LogScale => self.log_scale = !self.log_scale,
            Action::Curves => self.all_curves = !self.all_curves,
            Action::NextTab => self.tab = self.tab.step(1),
            Action::PrevTab => self.tab = self.tab.step(-1),
            _ => {}
        }
        vec![]
    }

    fn toggle(&mut self) -> Vec<Command> {
        if self.review {
            self.read_only();
            return vec![];
        }
        let Some(name) = self.selected_row().map(|r| r.name.clone()) else {
            return vec![];
        };
        if self.busy() {
            self.say(format!(
                "{name}: queued after the job in flight (Esc cancels)"
            ));
        }
        self.queued.push(JobKind::Toggle(name.clone()));
        vec![Command::Toggle(name)]
    }

    fn next_stage(&mut self) -> Vec<Command> {
        // the stage in view was interrupted (cancel, kill): n resumes it
        let here = StageId::ALL[self.stage_cursor.min(StageId::ALL.len() - 1)];
        if !self.review
            && !self.busy()
            && model::stage_state(&self.session, here) == StageState::Running
        {
            self.queued.push(JobKind::Stage(here));
            return vec![Command::RunStage(here)];
        }
        let Some(&stage) = StageId::ALL.get(self.stage_cursor + 1) else {
            return vec![];
        };
        self.stage_cursor += 1;
        let state = model::stage_state(&self.session, stage);
        let kind = JobKind::Stage(stage);
        let in_flight =
            self.queued.contains(&kind) || self.job.as_ref().is_some_and(|j| j.kind == kind);
        // a stage left running by a cancel or a kill can be run again (it resumes)
        let pending = match state {
            StageState::Pending | StageState::Skipped => true,
            StageState::Running => !in_flight,
            _ => false,
        };
        if !pending || in_flight {
            return vec![];
        }
        if self.review {
            self.read_only();
            return vec![];
        }
        self.queued.push(kind);
        vec![Command::RunStage(stage)]
    }

    fn open_editor(&mut self) {
        let text = self.config_text.clone().unwrap_or_else(|| {
            crate::config::yaml::to_string(&self.session.config).unwrap_or_default()
        });
        let mut textarea = TextArea::new(text.lines().map(str::to_string).collect());
        textarea.set_line_number_style(self.theme.dim());
        self.editor = Some(Editor {
            textarea,
            error: None,
            read_only: self.review,
        });
        self.mode = Mode::Editor;
    }

    fn editor_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match lookup(Mode::Editor, &key) {
            Some(Action::EditorClose) => {
                self.editor = None;
                self.mode = Mode::Normal;
                vec![]
            }
            Some(Action::EditorApply) => self.apply_editor(),
            _ => {
                if let Some(ed) = self.editor.as_mut()
                    && !ed.read_only
                {
                    ed.textarea.input(key);
                }
                vec![]
            }
        }
    }

    fn apply_editor(&mut self) -> Vec<Command> {
        let Some(ed) = self.editor.as_mut() else {
            return vec![];
        };
        if ed.read_only {
            ed.error = Some((None, "read-only review: nothing is applied".into()));
            return vec![];
        }
        let text = ed.text();
        let path = self
            .config_path
            .clone()
            .unwrap_or_else(|| PathBuf::from("config.yaml"));
        match Config::parse(&text, &path) {
            Err(ConfigError::At { line, msg, .. }) => {
                let row = line.saturating_sub(1).min(u16::MAX as usize) as u16;
                ed.textarea.move_cursor(CursorMove::Jump(row, 0));
                ed.error = Some((Some(line), msg));
                vec![]
            }
            Err(e) => {
                ed.error = Some((None, e.to_string()));
                vec![]
            }
            Ok(cfg) => {
                let rerun = affected_stage(&self.session.config, &cfg.raw);
                self.editor = None;
                self.mode = Mode::Normal;
                match rerun {
                    None => self.say("configuration unchanged"),
                    Some(s) => self.say(format!(
                        "configuration applied; re-running from stage {}",
                        s.step()
                    )),
                }
                vec![Command::ApplyConfig { text, rerun }]
            }
        }
    }

    fn filter_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match lookup(Mode::Filter, &key) {
            Some(Action::FilterAccept) => self.mode = Mode::Normal,
            Some(Action::FilterClear) => {
                self.filter.clear();
                self.mode = Mode::Normal;
            }
            _ => match key.code {
                KeyCode::Char(c) => self.filter.push(c),
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                _ => return vec![],
            },
        }
        self.refresh();
        vec![]
    }

    /// Handles news from the worker.
    pub fn handle_job(&mut self, ev: JobEvent) {
        match ev {
            JobEvent::Started(kind) => {
                if let Some(p) = self.queued.iter().position(|k| *k == kind) {
                    self.queued.remove(p);
                }
                if let JobKind::Stage(s) = &kind {
                    self.stage_cursor = StageId::ALL.iter().position(|x| x == s).unwrap_or(0);
                }
                self.job = Some(Job {
                    kind,
                    started: self.now,
                    phase: None,
                    estimate: None,
                });
            }
            JobEvent::Snapshot(s) => {
                self.session = *s;
                if let Some((n, _)) = &self.live
                    && self.session.histograms.contains_key(n)
                {
                    self.live = None;
                }
                self.refresh();
            }
            JobEvent::Progress { phase, done, total } => {
                let now = self.now;
                if let Some(job) = self.job.as_mut() {
                    let since = match job.phase {
                        Some((p, d, _, since)) if p == phase && d <= done => since,
                        _ => now,
                    };
                    job.phase = Some((phase, done, total, since));
                }
            }
            JobEvent::Estimate(e) => {
                if let Some(job) = self.job.as_mut() {
                    job.estimate = (!e.is_final()).then_some(e);
                }
            }
            JobEvent::LiveHistograms {
                batch_count,
                histograms,
            } => self.live = Some((batch_count, *histograms)),
            JobEvent::Toggled {
                layer,
                excluded,
                before,
                after,
                evaluation,
            } => {
                let d = before.map_or(String::new(), |b| {
                    format!(
                        " ({} {})",
                        self.theme.glyph(super::theme::Glyph::Delta),
                        model::fmt_delta(after - b)
                    )
                });
                let verb = if excluded { "excluded" } else { "included" };
                self.say(format!(
                    "{layer} {verb}: INT8 {}{d}",
                    model::fmt_metric(after)
                ));
                self.toggles.push(ToggleResult {
                    layer,
                    excluded,
                    before,
                    after,
                    evaluation,
                });
            }
            JobEvent::Saved(p) => self.say(format!("saved {}", p.display())),
            JobEvent::FlowFinished { result, adopted } => {
                let what =
                    result.map_or("no INT8 result".to_string(), |r| self.session.describe(r));
                self.say(if adopted {
                    format!("flow finished: {what} is now the current state")
                } else {
                    format!("flow finished with {what}; your current state was kept (it changed during the run)")
                });
            }
            JobEvent::Finished(kind) => {
                self.job = None;
                if let JobKind::Stage(s) = kind {
                    let state = model::stage_state(&self.session, s);
                    self.say(format!("stage {} done: {}", s.step(), state_word(state)));
                }
            }
            JobEvent::Cancelled(kind) => {
                self.job = None;
                self.queued.clear();
                self.say(format!("cancelled: {}", kind.label()));
            }
            JobEvent::Error(e) => {
                self.job = None;
                self.queued.clear();
                self.error(e);
            }
            JobEvent::Exited => {
                self.job = None;
                self.queued.clear();
            }
        }
    }
}

/// How a stage state reads.
pub fn state_word(s: StageState) -> &'static str {
    match s {
        StageState::Pending => "pending",
        StageState::Running => "running",
        StageState::Met => "target met",
        StageState::Missed => "target missed",
        StageState::Skipped => "skipped",
    }
}

/// The first stage a configuration change affects: the `tune:` section only steers the
/// search (stage 3 on); everything else changes what stage 1 calibrates or measures.
pub fn affected_stage(old: &RawConfig, new: &RawConfig) -> Option<StageId> {
    if old == new {
        return None;
    }
    let strip = |r: &RawConfig| RawConfig {
        tune: None,
        ..r.clone()
    };
    if strip(old) == strip(new) {
        Some(StageId::Modify)
    } else {
        Some(StageId::Calibrate)
    }
}
