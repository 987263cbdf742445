//! Bisection tools: exclude (or include) every layer up to the cursor, from the cursor on,
//! or a marked range, as one job with one re-evaluation (asking first when that changes
//! more than a few layers); undo / redo over the blacklists tried (adopting the previous
//! or next of them); the `:x` / `:i` filter tokens for excluded / included layers.

use super::app::{App, Command, Confirm};
use super::event::JobKind;
use super::model::{self, LayerRow};
use crate::session::{EvalId, Origin, Session, StageId};

/// Changing more layers than this in one job asks first.
pub const ASK_ABOVE: usize = 3;

/// The bisection state of the layer list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bisect {
    /// The layer where a range starts (`V`); the cursor is its other end.
    pub mark: Option<String>,
}

impl Bisect {
    /// The marked range as row positions `(first, last)`, inclusive, when a mark is set
    /// and its layer is among `rows`.
    pub fn range(&self, rows: &[LayerRow], cursor: usize) -> Option<(usize, usize)> {
        let m = self.mark.as_ref()?;
        let p = rows.iter().position(|r| &r.name == m)?;
        Some((p.min(cursor), p.max(cursor)))
    }

    /// Whether row `i` is in the marked range.
    pub fn in_range(&self, i: usize, rows: &[LayerRow], cursor: usize) -> bool {
        self.range(rows, cursor)
            .is_some_and(|(lo, hi)| (lo..=hi).contains(&i))
    }
}

/// Which rows a several-layer toggle covers, in the list's order (sorted and filtered as
/// shown).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// The first row to the cursor.
    UpTo,
    /// The cursor to the last row.
    From,
    /// The marked range.
    Range,
}

/// A filter split into its name part and its state token: `:x` only excluded layers,
/// `:i` only included ones (the last token wins); the other words, joined by a space, are
/// a case-insensitive substring of the name.
pub fn parse_filter(filter: &str) -> (String, Option<bool>) {
    let mut only = None;
    let mut words = Vec::new();
    for w in filter.split_whitespace() {
        match w.to_lowercase().as_str() {
            ":x" => only = Some(true),
            ":i" => only = Some(false),
            other => words.push(other.to_string()),
        }
    }
    (words.join(" "), only)
}

/// The blacklists tried, in the order they ran: the user's evaluations and every stage's
/// results (bests, stage 7's blacklists), complete ones only. Undo / redo step through it.
pub fn tried(s: &Session) -> Vec<EvalId> {
    let results: Vec<EvalId> = StageId::ALL
        .iter()
        .flat_map(|&st| model::stage_results(s, st))
        .collect();
    s.evaluations()
        .filter(|(i, e)| e.is_complete() && (e.origin == Origin::User || results.contains(i)))
        .map(|(i, _)| i)
        .collect()
}

/// `Conv_1`, `Conv_1, Conv_2` or `Conv_1 … Conv_9 (9)`.
fn names(layers: &[String]) -> String {
    match layers {
        [first, _, _, .., last] => format!("{first} … {last} ({})", layers.len()),
        _ => layers.join(", "),
    }
}

impl App {
    /// `V`: sets the range mark at the cursor, or clears it.
    pub(super) fn toggle_mark(&mut self) {
        if self.bisect.mark.take().is_some() {
            self.say("range mark cleared");
            return;
        }
        let Some(name) = self.selected_row().map(|r| r.name.clone()) else {
            return;
        };
        self.say(format!(
            "range from {name}: move the cursor, space toggles the range (V/Esc clears)"
        ));
        self.bisect.mark = Some(name);
    }

    /// `<`, `>`, or space with a mark: excludes every layer of the span, or includes them
    /// all when all are excluded already; one job, asking first above `ASK_ABOVE` layers.
    pub(super) fn toggle_span(&mut self, span: Span) -> Vec<Command> {
        if self.review {
            self.read_only();
            return vec![];
        }
        if let Some(v) = self.viewing {
            self.say(format!(
                "viewing {v}: toggles change the current state; Esc returns to it, a adopts {v}"
            ));
            return vec![];
        }
        let c = self.cursor;
        let (lo, hi) = match span {
            Span::UpTo => (0, c),
            Span::From => (c, self.rows.len().saturating_sub(1)),
            Span::Range => match self.bisect.range(&self.rows, c) {
                Some(r) => r,
                None => {
                    self.bisect.mark = None;
                    self.say("the range's first layer is filtered out: mark cleared");
                    return vec![];
                }
            },
        };
        let rows = self.rows.get(lo..=hi).unwrap_or_default();
        let exclude = !rows.iter().all(|r| r.excluded);
        let layers: Vec<String> = rows
            .iter()
            .filter(|r| r.excluded != exclude)
            .map(|r| r.name.clone())
            .collect();
        if layers.is_empty() {
            return vec![];
        }
        if layers.len() > ASK_ABOVE {
            self.ask(Confirm::Layers { layers, exclude });
            return vec![];
        }
        self.send_layers(layers, exclude)
    }

    /// Sends a several-layer toggle (one layer: the plain toggle); clears the range mark.
    pub(super) fn send_layers(&mut self, layers: Vec<String>, exclude: bool) -> Vec<Command> {
        self.bisect.mark = None;
        let verb = if exclude { "exclude" } else { "include" };
        let what = names(&layers);
        if self.busy() {
            self.say(format!(
                "{verb} {what}: queued after the job in flight (x cancels both)"
            ));
        } else {
            self.say(format!("{verb} {what}: re-evaluating…"));
        }
        if let [one] = layers.as_slice() {
            self.queued.push(JobKind::Toggle(one.clone()));
            return vec![Command::Toggle(one.clone())];
        }
        self.queued.push(JobKind::Layers {
            layers: layers.clone(),
            exclude,
        });
        vec![Command::SetLayers { layers, exclude }]
    }

    /// A several-layer toggle ended: says what it gave (Δ against the state before).
    pub(super) fn layers_set(
        &mut self,
        layers: &[String],
        excluded: bool,
        before: Option<f64>,
        after: f64,
    ) {
        let d = before.map_or(String::new(), |b| {
            format!(
                " ({}prev {})",
                self.theme.glyph(super::theme::Glyph::Delta),
                model::fmt_delta(after - b)
            )
        });
        let verb = if excluded { "excluded" } else { "included" };
        self.say(format!(
            "{} {verb}: INT8 {}{d}; u undoes",
            names(layers),
            model::fmt_metric(after)
        ));
    }

    /// `u` (`by` -1) / `U` (+1): the previous or next blacklist tried becomes the current
    /// state (the adopt job; nothing is lost, the other stays in the list).
    pub(super) fn undo(&mut self, by: i32) -> Vec<Command> {
        if self.review {
            self.read_only();
            return vec![];
        }
        if self.busy() {
            self.say("a job is running: undo / redo once it ends (x cancels it)");
            return vec![];
        }
        let list = tried(&self.session);
        let cur = self.session.current.evaluation;
        let target = if by < 0 {
            list.iter().rev().find(|&&i| cur.is_none_or(|c| i < c))
        } else {
            list.iter().find(|&&i| cur.is_some_and(|c| i > c))
        };
        let Some(&id) = target else {
            self.say(if by < 0 {
                "undo: no earlier blacklist tried"
            } else {
                "redo: no later blacklist tried"
            });
            return vec![];
        };
        let cmds = self.send_adopt(id);
        let word = if by < 0 { "undo" } else { "redo" };
        self.say(format!(
            "{word}: adopting {}…",
            model::short_describe(&self.session, id)
        ));
        cmds
    }
}

#[cfg(test)]
#[path = "bisect_tests.rs"]
mod tests;
