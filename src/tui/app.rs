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
    /// Make this evaluation the current state.
    Adopt(crate::session::EvalId),
    Save,
    /// Cancel the job in flight (and drop the queued ones).
    Cancel,
    /// Use this configuration (already validated, kept as the user wrote it) and re-run
    /// from `rerun`; in a new session file (the current one kept as it is) when `new_session`.
    ApplyConfig {
        text: String,
        rerun: Option<StageId>,
        new_session: bool,
    },
    Quit,
    /// Exclude (`exclude`) or include all of `layers`, in one re-evaluation.
    SetLayers {
        layers: Vec<String>,
        exclude: bool,
    },
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
        let n = Tab::ALL.len() as isize;
        Tab::ALL
            .get((i + by).rem_euclid(n) as usize)
            .copied()
            .unwrap_or(Tab::Layers)
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
    /// A stage job: its evaluations done when this run first reported, and when (the
    /// ETA counts only what this run did, so it is right after a resume).
    pub baseline: Option<(usize, Instant)>,
}

/// What a yes/no question is about.
#[derive(Clone, Debug, PartialEq)]
pub enum Confirm {
    /// Quit with work in flight.
    Quit,
    /// Cancel the job in flight.
    Cancel,
    /// Adopt this evaluation, replacing a current state that was the user's work.
    Adopt(crate::session::EvalId),
    /// Apply an edited configuration that resets stages with results (y: in this session,
    /// s: in a new session file).
    ApplyConfig {
        text: String,
        rerun: StageId,
        /// The stages from `rerun` on that hold results, which the change resets.
        stages_reset: usize,
        /// The change names another model: the session is moved aside, not reset.
        other_model: bool,
    },
    /// Close the editor, dropping edits that were not applied.
    DiscardEdits,
    /// Exclude (`exclude`) or include these layers, more than a few, in one job.
    Layers { layers: Vec<String>, exclude: bool },
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
    /// The text the editor opened with (closing asks only when it was edited).
    pub opened: String,
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
    /// The evaluation the panels show instead of the current state (`None`: current).
    pub viewing: Option<crate::session::EvalId>,
    /// The question asked in `Mode::Confirm`.
    pub confirm: Option<Confirm>,
    /// First row of the help overlay on screen.
    pub help_scroll: usize,
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
    /// The bisection tools' state (the range mark).
    pub bisect: super::bisect::Bisect,
    /// Panel numbers, zoom, mouse, memory figure (`chrome.rs`).
    pub chrome: super::chrome::Chrome,
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
            viewing: None,
            confirm: None,
            help_scroll: 0,
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
            bisect: Default::default(),
            chrome: Default::default(),
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
        if self
            .viewing
            .is_some_and(|i| self.session.evaluation(i).is_none())
        {
            self.viewing = None;
        }
        self.rows = model::build_rows(&self.session, self.viewing, &self.filter, self.sort);
        let pos = self
            .selected
            .as_ref()
            .and_then(|n| self.rows.iter().position(|r| &r.name == n));
        self.cursor = pos.unwrap_or(self.cursor.min(self.rows.len().saturating_sub(1)));
        self.selected = self.rows.get(self.cursor).map(|r| r.name.clone());
    }

    pub(super) fn move_cursor(&mut self, to: isize) {
        if self.rows.is_empty() {
            return;
        }
        let last = self.rows.len() as isize - 1;
        self.cursor = to.clamp(0, last) as usize;
        self.selected = self.rows.get(self.cursor).map(|r| r.name.clone());
    }

    pub(super) fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    pub(super) fn error(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    pub(super) fn read_only(&mut self) {
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
        let review = self.review;
        match self.mode {
            Mode::Editor => self.editor_key(key),
            Mode::Filter => self.filter_key(key),
            Mode::Help => {
                match lookup(Mode::Help, &key, review) {
                    Some(Action::HelpClose) => {
                        self.mode = Mode::Normal;
                        self.help_scroll = 0;
                    }
                    Some(Action::HelpUp) => self.help_scroll = self.help_scroll.saturating_sub(1),
                    Some(Action::HelpDown) => self.help_scroll += 1,
                    Some(Action::HelpPageUp) => self.help_page(-1),
                    Some(Action::HelpPageDown) => self.help_page(1),
                    _ => {}
                }
                vec![]
            }
            Mode::Confirm => match lookup(Mode::Confirm, &key, review) {
                Some(Action::ConfirmYes) => {
                    self.mode = Mode::Normal;
                    self.confirmed()
                }
                Some(Action::ConfirmNo) => {
                    // a question asked from the editor goes back to it, edits kept
                    self.mode = if self.editor.is_some() {
                        Mode::Editor
                    } else {
                        Mode::Normal
                    };
                    self.confirm = None;
                    vec![]
                }
                Some(Action::ConfirmNewSession) => self.confirmed_new_session(),
                _ => vec![],
            },
            Mode::Normal => match lookup(Mode::Normal, &key, review) {
                Some(a) => {
                    self.message = self.message.take().filter(|m| m.error);
                    if a == Action::SelectTab {
                        self.select_tab_key(&key);
                    }
                    self.act(a)
                }
                // a live-only key in review: say why nothing happens
                None if review && lookup(Mode::Normal, &key, false).is_some() => {
                    self.read_only();
                    vec![]
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
            Action::CancelJob => self.ask_cancel(),
            Action::Back => self.back(),
            Action::View => self.view_stage(),
            Action::PrevEval => self.step_eval(-1),
            Action::NextEval => self.step_eval(1),
            Action::Adopt => return self.adopt(),
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
                    self.ask(Confirm::Quit);
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
            Action::ExcludeUpTo => return self.toggle_span(super::bisect::Span::UpTo),
            Action::ExcludeFrom => return self.toggle_span(super::bisect::Span::From),
            Action::Mark => self.toggle_mark(),
            Action::Undo => return self.undo(-1),
            Action::Redo => return self.undo(1),
            Action::Zoom => self.toggle_zoom(),
            _ => {}
        }
        vec![]
    }

    fn toggle(&mut self) -> Vec<Command> {
        if self.review {
            self.read_only();
            return vec![];
        }
        if self.bisect.mark.is_some() {
            return self.toggle_span(super::bisect::Span::Range);
        }
        let Some(name) = self.selected_row().map(|r| r.name.clone()) else {
            return vec![];
        };
        if let Some(v) = self.viewing {
            self.say(format!(
                "viewing {v}: space toggles the current state; Esc returns to it, a adopts {v}"
            ));
            return vec![];
        }
        if self.busy() {
            self.say(format!(
                "{name}: queued after the job in flight (x cancels both)"
            ));
        }
        self.queued.push(JobKind::Toggle(name.clone()));
        vec![Command::Toggle(name)]
    }

    fn next_stage(&mut self) -> Vec<Command> {
        // the stage in view was interrupted (cancel, kill): n resumes it
        let here = self.marked_stage();
        if !self.review
            && !self.busy()
            && model::stage_state(&self.session, here) == StageState::Running
        {
            self.queued.push(JobKind::Stage(here));
            return vec![Command::RunStage(here)];
        }
        let Some(&stage) = StageId::ALL.get(self.stage_cursor + 1) else {
            self.say("stage 8 is the flow's last: the flow has finished (v views results)");
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
        let editor = Editor {
            textarea,
            error: None,
            read_only: self.review,
            opened: String::new(),
        };
        let opened = editor.text();
        self.editor = Some(Editor { opened, ..editor });
        self.mode = Mode::Editor;
    }

    fn editor_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match lookup(Mode::Editor, &key, self.review) {
            Some(Action::EditorClose) => {
                let edited = self
                    .editor
                    .as_ref()
                    .is_some_and(|ed| !ed.read_only && ed.text() != ed.opened);
                if edited {
                    self.ask(Confirm::DiscardEdits);
                } else {
                    self.close_editor();
                }
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
        let opened = ed.opened.clone();
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
                let stages_reset = rerun.map_or(0, |r| {
                    StageId::ALL
                        .iter()
                        .filter(|s| **s >= r)
                        .filter(|s| {
                            let r = self.session.stage(**s);
                            r.best.is_some() || r.state.finished()
                        })
                        .count()
                });
                // the edit names another model file than the text it started from
                let other_model = crate::config::yaml::from_str::<RawConfig>(&opened)
                    .map_or(true, |before| before.model != cfg.raw.model);
                match rerun {
                    Some(rerun) if stages_reset > 0 || other_model => {
                        self.ask(Confirm::ApplyConfig {
                            text,
                            rerun,
                            stages_reset,
                            other_model,
                        });
                        vec![]
                    }
                    _ => self.apply_config(text, rerun, false),
                }
            }
        }
    }

    /// Closes the editor and sends the configuration (nothing to ask, or asked already).
    pub(super) fn apply_config(
        &mut self,
        text: String,
        rerun: Option<StageId>,
        new_session: bool,
    ) -> Vec<Command> {
        self.close_editor();
        match (rerun, new_session) {
            (None, _) => self.say("configuration unchanged"),
            (Some(_), true) => self.say("configuration applied to a new session file"),
            (Some(s), false) => self.say(format!(
                "configuration applied; re-running from stage {}",
                s.step()
            )),
        }
        vec![Command::ApplyConfig {
            text,
            rerun,
            new_session,
        }]
    }

    pub(super) fn close_editor(&mut self) {
        self.editor = None;
        self.mode = Mode::Normal;
    }

    fn filter_key(&mut self, key: KeyEvent) -> Vec<Command> {
        match lookup(Mode::Filter, &key, self.review) {
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
                    baseline: None,
                });
            }
            JobEvent::Snapshot(s) => {
                self.session = *s;
                let now = self.now;
                if let Some(job) = self.job.as_mut()
                    && job.baseline.is_none()
                    && let JobKind::Stage(st) = job.kind
                {
                    job.baseline = Some((self.session.stage(st).evaluations_done, now));
                }
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
            JobEvent::LayersSet {
                layers,
                excluded,
                before,
                after,
                ..
            } => self.layers_set(&layers, excluded, before, after),
            JobEvent::Saved(p) => self.say(format!("saved {}", p.display())),
            JobEvent::FlowFinished { result, adopted } => self.flow_finished(result, adopted),
            JobEvent::Finished(kind) => {
                self.job = None;
                match kind {
                    JobKind::Stage(s) => {
                        let state = model::stage_state(&self.session, s);
                        // the flow's last word stays when this stage ended it
                        if !self
                            .message
                            .as_ref()
                            .is_some_and(|m| m.text.starts_with("flow"))
                        {
                            self.say(format!("stage {} done: {}", s.step(), state_word(state)));
                        }
                    }
                    JobKind::Adopt(i) => self.say(format!(
                        "{i} is now the current state (export --session writes it)"
                    )),
                    _ => {}
                }
            }
            JobEvent::Cancelled(kind) => {
                self.job = None;
                let dropped = self.drop_queued();
                self.say(format!("cancelled: {}{dropped}", kind.label()));
            }
            // a job's error: the worker goes on with the queued jobs
            JobEvent::Error(e) => {
                self.job = None;
                self.error(e);
            }
            JobEvent::Exited => {
                self.job = None;
                let dropped = self.drop_queued();
                if !dropped.is_empty() {
                    let text = self.message.take().map_or(String::new(), |m| m.text);
                    self.error(format!("{text}{dropped}"));
                }
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
