//! Browsing results: any evaluation of the session can be viewed in every panel (its
//! setting's ranges and curves, its per-layer fidelity, its blacklist) without changing
//! the current state; one key adopts it. Also the yes/no questions (quit, cancel, adopt)
//! and what happens to the queued jobs when a job is cancelled.

use super::app::{App, Command, Confirm};
use super::event::JobKind;
use super::keymap::Mode;
use super::model;
use crate::session::{EvalId, Origin, StageId};

impl App {
    /// The stage under the stage marker (n/p move it).
    pub fn marked_stage(&self) -> StageId {
        StageId::ALL
            .get(self.stage_cursor)
            .or(StageId::ALL.last())
            .copied()
            .unwrap_or(StageId::Calibrate)
    }

    /// Asks `what` (Mode::Confirm until y or n).
    pub(super) fn ask(&mut self, what: Confirm) {
        self.confirm = Some(what);
        self.mode = Mode::Confirm;
    }

    /// The question was answered yes.
    pub(super) fn confirmed(&mut self) -> Vec<Command> {
        match self.confirm.take() {
            Some(Confirm::Quit) => {
                self.quit = true;
                vec![Command::Quit]
            }
            Some(Confirm::Cancel) => {
                if !self.busy() {
                    self.say("nothing to cancel: the job ended meanwhile");
                    return vec![];
                }
                self.say("cancelling…");
                vec![Command::Cancel]
            }
            Some(Confirm::Adopt(id)) => self.send_adopt(id),
            Some(Confirm::ApplyConfig { text, rerun, .. }) => {
                self.apply_config(text, Some(rerun), false)
            }
            Some(Confirm::Layers { layers, exclude }) => self.send_layers(layers, exclude),
            Some(Confirm::DiscardEdits) => {
                self.close_editor();
                self.say("edits discarded");
                vec![]
            }
            None => vec![],
        }
    }

    /// `s` to a question: apply the edited configuration to a new session file, leaving
    /// this session as it is. Other questions ignore it.
    pub(super) fn confirmed_new_session(&mut self) -> Vec<Command> {
        match self.confirm.take() {
            Some(Confirm::ApplyConfig { text, rerun, .. }) => {
                self.apply_config(text, Some(rerun), true)
            }
            other => {
                self.confirm = other;
                vec![]
            }
        }
    }

    /// `x`: cancel the job in flight, after asking.
    pub(super) fn ask_cancel(&mut self) {
        if self.busy() {
            self.ask(Confirm::Cancel);
        } else {
            self.say("nothing to cancel");
        }
    }

    /// Esc: clear the range mark, else back to the current state, else clear the filter,
    /// else the message.
    pub(super) fn back(&mut self) {
        if self.bisect.mark.take().is_some() {
            self.say("range mark cleared");
        } else if self.viewing.take().is_some() {
            self.refresh();
            self.say("back to the current state");
        } else if !self.filter.is_empty() {
            self.filter.clear();
            self.refresh();
        } else {
            self.message = None;
        }
    }

    /// Views `id` in every panel (the current evaluation itself: back to current).
    pub fn view(&mut self, id: EvalId) {
        if self.session.evaluation(id).is_none() {
            return;
        }
        let current = self.session.current.evaluation == Some(id);
        self.viewing = (!current).then_some(id);
        self.refresh();
        let what = model::short_describe(&self.session, id);
        self.say(if current {
            format!("current state: {what}")
        } else if self.review {
            format!("viewing {what}; Esc returns")
        } else {
            format!("viewing {what}; a adopts, Esc returns")
        });
    }

    /// `v`: the marked stage's results in turn (its best, then stage 7's blacklists).
    pub(super) fn view_stage(&mut self) {
        let stage = self.marked_stage();
        let results = model::stage_results(&self.session, stage);
        let next = match self
            .viewing
            .and_then(|v| results.iter().position(|&r| r == v))
        {
            Some(p) => results.get(p + 1).or(results.first()),
            None => results.first(),
        };
        match next.copied() {
            Some(id) => self.view(id),
            None => self.say(format!(
                "stage {} has no result yet (n/p move the stage marker)",
                stage.step()
            )),
        }
    }

    /// `[` / `]`: the previous or next evaluation of the history, from the one in view.
    pub(super) fn step_eval(&mut self, by: i64) {
        let n = self.session.evaluation_count() as i64;
        if n == 0 {
            self.say("no evaluation yet");
            return;
        }
        let from = model::evaluation_in_view(&self.session, self.viewing);
        let at = match from {
            Some(i) => (i64::from(i.0) + by).clamp(0, n - 1),
            None if by < 0 => n - 1,
            None => 0,
        };
        let id = EvalId(u32::try_from(at).unwrap_or(0));
        if Some(id) == from {
            self.say(if by < 0 {
                "this is the first evaluation"
            } else {
                "this is the last evaluation"
            });
            return;
        }
        self.view(id);
    }

    /// `a`: the viewed result becomes the current state. Asks first when the current
    /// state is the user's own work (toggles, an applied configuration, never evaluated);
    /// waits while a job runs, so no queued toggle lands on the wrong state.
    pub(super) fn adopt(&mut self) -> Vec<Command> {
        let Some(id) = self.viewing else {
            self.say("nothing viewed: v (a stage's results), [ or ] pick one, then a adopts it");
            return vec![];
        };
        if self.busy() {
            self.say("a job is running: adopt once it ends (x cancels it)");
            return vec![];
        }
        let s = &self.session;
        let own_work = match s.current_evaluation() {
            Some((_, e)) => e.origin == Origin::User,
            None => s.current.setting.is_some() || !s.current.exclude.is_empty(),
        };
        if own_work {
            self.ask(Confirm::Adopt(id));
            return vec![];
        }
        self.send_adopt(id)
    }

    pub(super) fn send_adopt(&mut self, id: EvalId) -> Vec<Command> {
        self.viewing = None;
        self.refresh();
        self.queued.push(JobKind::Adopt(id));
        self.say(format!(
            "adopting {}…",
            model::short_describe(&self.session, id)
        ));
        vec![Command::Adopt(id)]
    }

    /// The flow ended: when the worker did not adopt its result (the user had changed the
    /// current state), the result is put in view so one key adopts it.
    pub(super) fn flow_finished(&mut self, result: Option<EvalId>, adopted: bool) {
        let Some(r) = result else {
            self.say("flow finished: no INT8 result");
            return;
        };
        let what = model::short_describe(&self.session, r);
        if adopted {
            self.say(format!("flow finished: {what} is now the current state"));
        } else {
            self.viewing = Some(r);
            self.refresh();
            self.say(format!(
                "flow finished with {what}: viewing it; a adopts it, Esc keeps your current state"
            ));
        }
    }

    /// After a cancel or the worker's end: forgets the queued jobs (the worker dropped
    /// them) and says which, as `; dropped 2 queued: toggle Conv_3, stage 7`.
    pub(super) fn drop_queued(&mut self) -> String {
        if self.queued.is_empty() {
            return String::new();
        }
        let names: Vec<String> = self
            .queued
            .drain(..)
            .map(|k| match k {
                JobKind::Toggle(l) => format!("toggle {l}"),
                JobKind::Stage(s) => format!("stage {}", s.step()),
                JobKind::Adopt(i) => format!("adopt {i}"),
                JobKind::Layers { layers, exclude } => format!(
                    "{} {} layers",
                    if exclude { "exclude" } else { "include" },
                    layers.len()
                ),
                JobKind::Load => "load".into(),
            })
            .collect();
        format!(
            "; dropped {} queued: {} (not run)",
            names.len(),
            names.join(", ")
        )
    }

    /// "viewing #17" or "current", for the header and the panel titles.
    pub fn view_tag(&self) -> String {
        match self.viewing {
            Some(i) => format!("viewing {i}"),
            None => "current".into(),
        }
    }
}
