//! The key map: one table binds keys to actions per mode; the help overlay and the footer
//! are generated from it, so what the screen says is what the keys do.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::theme::{Glyph, Theme};

/// What the keyboard is talking to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The panels.
    Normal,
    /// Typing a layer-name filter after `/`.
    Filter,
    /// The configuration editor.
    Editor,
    /// The help overlay.
    Help,
    /// A yes/no question: quit while busy, cancel the job, adopt a result.
    Confirm,
}

/// Where a binding works: everywhere, only with a worker (`qtune tui`), or only in
/// `qtune review` (read-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Both,
    Live,
    Review,
}

impl Scope {
    /// Whether a binding of this scope works in review (`review`) or live.
    pub fn applies(self, review: bool) -> bool {
        match self {
            Scope::Both => true,
            Scope::Live => !review,
            Scope::Review => review,
        }
    }
}

impl Mode {
    pub fn title(self) -> &'static str {
        match self {
            Mode::Normal => "panels",
            Mode::Filter => "filter (after /)",
            Mode::Editor => "configuration editor",
            Mode::Help => "help",
            Mode::Confirm => "confirm",
        }
    }
}

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Toggle,
    /// Cancel the job in flight (asks first).
    CancelJob,
    /// Esc: stop viewing a result, else clear the filter, else the message.
    Back,
    /// View the marked stage's results in turn (best, then stage 7's blacklists).
    View,
    PrevEval,
    NextEval,
    /// Make the viewed result the current state (asks when that discards work).
    Adopt,
    NextStage,
    PrevStage,
    Edit,
    Save,
    Help,
    Quit,
    Filter,
    Sort,
    LogScale,
    Curves,
    NextTab,
    PrevTab,
    FilterAccept,
    FilterClear,
    EditorApply,
    EditorClose,
    ConfirmYes,
    ConfirmNo,
    ConfirmNewSession,
    HelpClose,
    HelpUp,
    HelpDown,
    /// Exclude every layer up to the cursor (include them when all are excluded).
    ExcludeUpTo,
    /// Exclude every layer from the cursor on (include them when all are excluded).
    ExcludeFrom,
    /// Set or clear the range mark (space then toggles the range).
    Mark,
    /// The previous blacklist tried becomes the current state.
    Undo,
    /// The next blacklist tried becomes the current state.
    Redo,
    /// A panel by its number (`1`-`5`).
    SelectTab,
    /// The focused panel full screen, or back.
    Zoom,
    HelpPageUp,
    HelpPageDown,
}

/// One key: a code and the modifiers that must be held (Shift is ignored for characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}
const fn c(ch: char) -> Key {
    k(KeyCode::Char(ch))
}
const fn ctrl(ch: char) -> Key {
    Key {
        code: KeyCode::Char(ch),
        mods: KeyModifiers::CONTROL,
    }
}

/// A row of the key map.
pub struct Binding {
    pub mode: Mode,
    pub keys: &'static [Key],
    pub action: Action,
    /// What the help overlay says.
    pub help: &'static str,
    /// The footer's word, for the main keys.
    pub footer: Option<&'static str>,
    /// Where it works (help and footer list only what works where they are shown).
    pub scope: Scope,
}

const fn b(
    mode: Mode,
    keys: &'static [Key],
    action: Action,
    help: &'static str,
    footer: Option<&'static str>,
) -> Binding {
    Binding {
        mode,
        keys,
        action,
        help,
        footer,
        scope: Scope::Both,
    }
}

/// A binding of `scope` only.
const fn only(scope: Scope, bnd: Binding) -> Binding {
    Binding { scope, ..bnd }
}

use Action as A;
use Mode as M;

/// Every binding. Order is the order of the help overlay and the footer.
pub const KEYMAP: &[Binding] = &[
    b(
        M::Normal,
        &[k(KeyCode::Up), c('k')],
        A::Up,
        "previous layer",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::Down), c('j')],
        A::Down,
        "next layer",
        Some("select"),
    ),
    b(
        M::Normal,
        &[k(KeyCode::PageUp)],
        A::PageUp,
        "a page up",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::PageDown)],
        A::PageDown,
        "a page down",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::Home), c('g')],
        A::Top,
        "first layer",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::End), c('G')],
        A::Bottom,
        "last layer",
        None,
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c(' ')],
            A::Toggle,
            "exclude/include, re-evaluate",
            Some("exclude"),
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('x')],
            A::CancelJob,
            "cancel the job in flight (asks)",
            Some("cancel"),
        ),
    ),
    b(
        M::Normal,
        &[c('v')],
        A::View,
        "view the marked stage's results",
        Some("view"),
    ),
    b(
        M::Normal,
        &[c('[')],
        A::PrevEval,
        "view the previous evaluation",
        None,
    ),
    b(
        M::Normal,
        &[c(']')],
        A::NextEval,
        "view the next evaluation",
        None,
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('a')],
            A::Adopt,
            "adopt the viewed result (asks)",
            Some("adopt"),
        ),
    ),
    b(
        M::Normal,
        &[k(KeyCode::Esc)],
        A::Back,
        "back to current; clear filter",
        None,
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('n')],
            A::NextStage,
            "next stage (runs it if new)",
            Some("next stage"),
        ),
    ),
    only(
        Scope::Review,
        b(M::Normal, &[c('n')], A::NextStage, "next stage", None),
    ),
    b(M::Normal, &[c('p')], A::PrevStage, "previous stage", None),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('e')],
            A::Edit,
            "edit the configuration",
            Some("config"),
        ),
    ),
    only(
        Scope::Review,
        b(
            M::Normal,
            &[c('e')],
            A::Edit,
            "show the configuration",
            Some("config"),
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('s')],
            A::Save,
            "save (autosaves too)",
            Some("save"),
        ),
    ),
    b(
        M::Normal,
        &[c('/')],
        A::Filter,
        "filter by name; :x excluded",
        Some("filter"),
    ),
    b(
        M::Normal,
        &[c('o')],
        A::Sort,
        "sort: order/rank/fidelity",
        None,
    ),
    b(
        M::Normal,
        &[c('l')],
        A::LogScale,
        "histogram linear/log",
        None,
    ),
    b(
        M::Normal,
        &[c('d')],
        A::Curves,
        "divergence: one type/all 3",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::Tab)],
        A::NextTab,
        "next panel (tab)",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::BackTab)],
        A::PrevTab,
        "previous panel (tab)",
        None,
    ),
    b(M::Normal, &[c('?')], A::Help, "this help", Some("help")),
    b(
        M::Normal,
        &[c('q'), ctrl('c')],
        A::Quit,
        "quit (asks if busy)",
        Some("quit"),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('<')],
            A::ExcludeUpTo,
            "exclude all up to here (asks)",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('>')],
            A::ExcludeFrom,
            "exclude all from here on (asks)",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('V')],
            A::Mark,
            "mark a range; space toggles it",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('u')],
            A::Undo,
            "undo: previous blacklist tried",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Normal,
            &[c('U'), ctrl('r')],
            A::Redo,
            "redo: next blacklist tried",
            None,
        ),
    ),
    // terminal conventions (issue 13): panel numbers and arrows, C-d/C-u paging, zoom
    b(
        M::Normal,
        &[c('1'), c('2'), c('3'), c('4'), c('5')],
        A::SelectTab,
        "panel 1-5, in the tabs' order",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::Right)],
        A::NextTab,
        "next panel",
        None,
    ),
    b(
        M::Normal,
        &[k(KeyCode::Left)],
        A::PrevTab,
        "previous panel",
        None,
    ),
    b(M::Normal, &[ctrl('d')], A::PageDown, "a page down", None),
    b(M::Normal, &[ctrl('u')], A::PageUp, "a page up", None),
    b(
        M::Normal,
        &[c('z')],
        A::Zoom,
        "zoom the panel full screen/back",
        None,
    ),
    b(
        M::Filter,
        &[k(KeyCode::Enter)],
        A::FilterAccept,
        "keep the filter",
        None,
    ),
    b(
        M::Filter,
        &[k(KeyCode::Esc)],
        A::FilterClear,
        "clear the filter",
        None,
    ),
    only(
        Scope::Live,
        b(
            M::Editor,
            &[ctrl('s')],
            A::EditorApply,
            "validate, apply, re-run",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Editor,
            &[k(KeyCode::Esc)],
            A::EditorClose,
            "close, do not apply",
            None,
        ),
    ),
    only(
        Scope::Review,
        b(M::Editor, &[k(KeyCode::Esc)], A::EditorClose, "close", None),
    ),
    b(
        M::Help,
        &[c('?'), k(KeyCode::Esc), c('q')],
        A::HelpClose,
        "close the help",
        None,
    ),
    b(
        M::Help,
        &[k(KeyCode::Up), c('k'), k(KeyCode::PageUp)],
        A::HelpUp,
        "scroll the help up",
        None,
    ),
    b(
        M::Help,
        &[k(KeyCode::Down), c('j'), k(KeyCode::PageDown)],
        A::HelpDown,
        "scroll the help down",
        None,
    ),
    b(
        M::Help,
        &[ctrl('u')],
        A::HelpPageUp,
        "the help a page up",
        None,
    ),
    b(
        M::Help,
        &[ctrl('d')],
        A::HelpPageDown,
        "the help a page down",
        None,
    ),
    // review never asks: nothing runs and nothing changes
    only(
        Scope::Live,
        b(
            M::Confirm,
            &[c('y')],
            A::ConfirmYes,
            "yes (quit, cancel, adopt, apply)",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Confirm,
            &[c('n'), k(KeyCode::Esc)],
            A::ConfirmNo,
            "no",
            None,
        ),
    ),
    only(
        Scope::Live,
        b(
            M::Confirm,
            &[c('s')],
            A::ConfirmNewSession,
            "apply to a new session file",
            None,
        ),
    ),
];

/// The action bound to `key` in `mode`, live (`review` false) or in review.
pub fn lookup(mode: Mode, key: &KeyEvent, review: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    KEYMAP
        .iter()
        .filter(|b| b.mode == mode && b.scope.applies(review))
        .find(|b| b.keys.iter().any(|k| matches(k, key)))
        .map(|b| b.action)
}

fn matches(k: &Key, ev: &KeyEvent) -> bool {
    let mut mods = ev.modifiers;
    if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
        mods.remove(KeyModifiers::SHIFT);
    }
    k.code == ev.code && k.mods == mods
}

/// A key's name as printed.
pub fn key_name(k: &Key, theme: &Theme) -> String {
    let base = match k.code {
        KeyCode::Up => theme.glyph(Glyph::Up).to_string(),
        KeyCode::Down => theme.glyph(Glyph::Down).to_string(),
        KeyCode::Left => theme.glyph(Glyph::Left).to_string(),
        KeyCode::Right => theme.glyph(Glyph::Right).to_string(),
        KeyCode::Char(' ') => "space".into(),
        KeyCode::Char(ch) => ch.to_string(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "S-Tab".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        other => format!("{other:?}"),
    };
    if k.mods.contains(KeyModifiers::CONTROL) {
        format!("C-{base}")
    } else {
        base
    }
}

/// All keys of a binding, `↑/k`.
pub fn keys_label(bnd: &Binding, theme: &Theme) -> String {
    bnd.keys
        .iter()
        .map(|k| key_name(k, theme))
        .collect::<Vec<_>>()
        .join("/")
}

/// The footer's entries: (keys, word), for the bindings that have a footer word and work
/// live (`review` false) or in review. The select entry also names its upward keys (`j/k`).
pub fn footer_entries(theme: &Theme, review: bool) -> Vec<(String, &'static str)> {
    KEYMAP
        .iter()
        .filter(|bnd| bnd.scope.applies(review))
        .filter_map(|bnd| {
            let word = bnd.footer?;
            let keys = if bnd.action == Action::Down {
                let up = KEYMAP.iter().find(|x| x.action == Action::Up)?;
                format!(
                    "{}/{}",
                    key_name(bnd.keys.get(1)?, theme),
                    key_name(up.keys.get(1)?, theme)
                )
            } else {
                key_name(bnd.keys.first()?, theme)
            };
            Some((keys, word))
        })
        .collect()
}

/// The help text's rows per mode, of the bindings that work live (`review` false) or in
/// review: (mode title, [(keys, help)]).
pub fn help_sections(
    theme: &Theme,
    review: bool,
) -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let modes = [M::Normal, M::Filter, M::Editor, M::Help, M::Confirm];
    modes
        .iter()
        .map(|&m| {
            let rows = KEYMAP
                .iter()
                .filter(|bnd| bnd.mode == m && bnd.scope.applies(review))
                .map(|bnd| (keys_label(bnd, theme), bnd.help))
                .collect();
            (m.title(), rows)
        })
        .filter(|(_, rows): &(&str, Vec<_>)| !rows.is_empty())
        .collect()
}

/// The key table as Markdown (for the README).
pub fn markdown_table() -> String {
    let theme = Theme {
        color: false,
        ascii: false,
    };
    let mut s = String::from("| where | keys | what |\n|---|---|---|\n");
    for bnd in KEYMAP.iter().filter(|bnd| bnd.mode != M::Help) {
        let keys = keys_label(bnd, &theme).replace('|', "\\|");
        let scope = match bnd.scope {
            Scope::Both => "",
            Scope::Live => " (not in review)",
            Scope::Review => " (review)",
        };
        s.push_str(&format!(
            "| {} | `{}` | {}{scope} |\n",
            bnd.mode.title(),
            keys,
            bnd.help
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice_in_a_mode() {
        for (i, a) in KEYMAP.iter().enumerate() {
            for bb in &KEYMAP[i + 1..] {
                let overlap = [false, true]
                    .iter()
                    .any(|&r| a.scope.applies(r) && bb.scope.applies(r));
                if a.mode == bb.mode && overlap {
                    for ka in a.keys {
                        assert!(!bb.keys.contains(ka), "{ka:?} bound twice in {:?}", a.mode);
                    }
                }
            }
        }
    }

    #[test]
    fn shifted_letters_match() {
        let ev = KeyEvent::new(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(lookup(Mode::Normal, &ev, false), Some(Action::Bottom));
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(Mode::Normal, &ev, false), Some(Action::Quit));
    }

    #[test]
    fn review_binds_only_what_works_read_only() {
        let space = KeyEvent::new(KeyCode::Char(' '), KeyModifiers::NONE);
        assert_eq!(lookup(Mode::Normal, &space, false), Some(Action::Toggle));
        assert_eq!(lookup(Mode::Normal, &space, true), None);
        let words: Vec<&str> = footer_entries(&Theme::PLAIN, true)
            .iter()
            .map(|(_, w)| *w)
            .collect();
        assert_eq!(
            words,
            ["select", "view", "config", "filter", "help", "quit"]
        );
        let help: Vec<&str> = help_sections(&Theme::PLAIN, true)
            .into_iter()
            .flat_map(|(_, rows)| rows.into_iter().map(|(_, h)| h))
            .collect();
        for live_only in [
            "exclude/include",
            "cancel",
            "adopt",
            "save",
            "apply",
            "runs it",
        ] {
            assert!(
                help.iter().all(|h| !h.contains(live_only)),
                "review help lists `{live_only}`: {help:?}"
            );
        }
    }

    #[test]
    fn footer_names_the_main_keys() {
        let f = footer_entries(&Theme::PLAIN, false);
        let words: Vec<&str> = f.iter().map(|(_, w)| *w).collect();
        assert_eq!(
            words,
            [
                "select",
                "exclude",
                "cancel",
                "view",
                "adopt",
                "next stage",
                "config",
                "save",
                "filter",
                "help",
                "quit"
            ]
        );
        assert_eq!(f[0].0, "j/k");
    }
}
