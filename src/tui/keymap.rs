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
    /// "Quit anyway?"
    ConfirmQuit,
}

impl Mode {
    pub fn title(self) -> &'static str {
        match self {
            Mode::Normal => "panels",
            Mode::Filter => "filter (after /)",
            Mode::Editor => "configuration editor",
            Mode::Help => "help",
            Mode::ConfirmQuit => "quit?",
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
    Cancel,
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
    HelpClose,
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
    }
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
    b(
        M::Normal,
        &[c(' ')],
        A::Toggle,
        "exclude/include, re-evaluate",
        Some("exclude"),
    ),
    b(
        M::Normal,
        &[k(KeyCode::Esc)],
        A::Cancel,
        "cancel the job in flight",
        Some("cancel"),
    ),
    b(
        M::Normal,
        &[c('n')],
        A::NextStage,
        "next stage (runs it if new)",
        Some("next stage"),
    ),
    b(M::Normal, &[c('p')], A::PrevStage, "previous stage", None),
    b(
        M::Normal,
        &[c('e')],
        A::Edit,
        "edit the configuration",
        Some("config"),
    ),
    b(
        M::Normal,
        &[c('s')],
        A::Save,
        "save (autosaves too)",
        Some("save"),
    ),
    b(
        M::Normal,
        &[c('/')],
        A::Filter,
        "filter layers by name",
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
    b(
        M::Editor,
        &[ctrl('s')],
        A::EditorApply,
        "validate, apply, re-run",
        None,
    ),
    b(
        M::Editor,
        &[k(KeyCode::Esc)],
        A::EditorClose,
        "close, do not apply",
        None,
    ),
    b(
        M::Help,
        &[c('?'), k(KeyCode::Esc), c('q')],
        A::HelpClose,
        "close the help",
        None,
    ),
    b(M::ConfirmQuit, &[c('y')], A::ConfirmYes, "quit", None),
    b(
        M::ConfirmQuit,
        &[c('n'), k(KeyCode::Esc)],
        A::ConfirmNo,
        "stay",
        None,
    ),
];

/// The action bound to `key` in `mode`.
pub fn lookup(mode: Mode, key: &KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    KEYMAP
        .iter()
        .filter(|b| b.mode == mode)
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

/// The footer's entries: (keys, word), for the bindings that have a footer word. The
/// select entry also names its upward keys (`j/k`).
pub fn footer_entries(theme: &Theme) -> Vec<(String, &'static str)> {
    KEYMAP
        .iter()
        .filter_map(|bnd| {
            let word = bnd.footer?;
            let keys = if bnd.action == Action::Down {
                let up = KEYMAP.iter().find(|x| x.action == Action::Up)?;
                format!(
                    "{}/{}",
                    key_name(&bnd.keys[1], theme),
                    key_name(&up.keys[1], theme)
                )
            } else {
                key_name(&bnd.keys[0], theme)
            };
            Some((keys, word))
        })
        .collect()
}

/// The help text's rows per mode: (mode title, [(keys, help)]).
pub fn help_sections(theme: &Theme) -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let modes = [M::Normal, M::Filter, M::Editor, M::ConfirmQuit];
    modes
        .iter()
        .map(|&m| {
            let rows = KEYMAP
                .iter()
                .filter(|bnd| bnd.mode == m)
                .map(|bnd| (keys_label(bnd, theme), bnd.help))
                .collect();
            (m.title(), rows)
        })
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
        s.push_str(&format!(
            "| {} | `{}` | {} |\n",
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
                if a.mode == bb.mode {
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
        assert_eq!(lookup(Mode::Normal, &ev), Some(Action::Bottom));
        let ev = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(lookup(Mode::Normal, &ev), Some(Action::Quit));
    }

    #[test]
    fn footer_names_the_main_keys() {
        let f = footer_entries(&Theme::PLAIN);
        let words: Vec<&str> = f.iter().map(|(_, w)| *w).collect();
        assert_eq!(
            words,
            [
                "select",
                "exclude",
                "cancel",
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
