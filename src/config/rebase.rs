//! Moving a configuration's text to another folder: its relative paths (model, data, labels)
//! are made absolute against the folder it was written for, and everything else the user
//! wrote — comments, order, spelling — is kept. The edited text is rewritten in place, path
//! by path, and checked by parsing it again; only if that check fails is the document
//! written anew from its values (comments lost, said in a first-line comment).

use std::path::Path;

use super::raw::{OneOrMany, RawConfig};
use super::yaml::{self, YamlError};

/// `text` with its relative paths made absolute against `base`, and the configuration it
/// now parses to. Paths already absolute are left alone.
pub fn rebase_paths(text: &str, base: &Path) -> Result<(String, RawConfig), YamlError> {
    let raw: RawConfig = yaml::from_str(text)?;
    let mut rebased = raw.clone();
    let mut moves: Vec<(String, String)> = Vec::new();
    for_each_path(&mut rebased, |p| {
        if Path::new(p.as_str()).is_relative() {
            let abs = base.join(p.as_str()).display().to_string();
            moves.push((p.clone(), abs.clone()));
            *p = abs;
        }
    });
    if moves.is_empty() {
        return Ok((text.to_string(), raw));
    }
    let edited = replace_scalars(text, &moves);
    if yaml::from_str::<RawConfig>(&edited).ok().as_ref() == Some(&rebased) {
        return Ok((edited, rebased));
    }
    let mut out = String::from(
        "# written by qtune from the edited configuration (its comments could not be kept)\n",
    );
    out.push_str(&yaml::to_string(&rebased)?);
    Ok((out, rebased))
}

/// Calls `f` on every file path of the configuration.
fn for_each_path(raw: &mut RawConfig, mut f: impl FnMut(&mut String)) {
    if let Some(m) = raw.model.as_mut() {
        f(m);
    }
    for input in &mut raw.preprocess_parameter {
        if let Some(p) = input.input_file_path.as_mut() {
            f(p);
        }
    }
    if let Some(e) = raw.evaluation.as_mut() {
        match e.input_file_path.as_mut() {
            Some(OneOrMany::One(p)) => f(p),
            Some(OneOrMany::Many(ps)) => ps.iter_mut().for_each(&mut f),
            None => {}
        }
        if let Some(l) = e.labels.as_mut() {
            f(l);
        }
    }
}

/// Replaces each `old` that stands as a whole scalar on a line (after `: ` or `- `, bare or
/// quoted) by `new`, quoted like the original. The caller checks the result.
fn replace_scalars(text: &str, moves: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let mut line = line.to_string();
        for (old, new) in moves {
            if let Some(l) = replace_in_line(&line, old, new) {
                line = l;
            }
        }
        out.push_str(&line);
    }
    out
}

fn replace_in_line(line: &str, old: &str, new: &str) -> Option<String> {
    for quote in ["\"", "'", ""] {
        let needle = format!("{quote}{old}{quote}");
        let Some(at) = line.find(&needle) else {
            continue;
        };
        let before = line.get(..at)?.trim_end();
        let after = line.get(at + needle.len()..)?;
        let starts_scalar = before.ends_with(':') || before.ends_with('-');
        let ends_scalar = after.trim().is_empty() || after.trim_start().starts_with('#');
        if starts_scalar && ends_scalar && !(quote.is_empty() && new.contains(": ")) {
            let head = line.get(..at)?;
            return Some(format!("{head}{quote}{new}{quote}{after}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_comments_and_order_while_rebasing() {
        let text = "# my detector\nmodel: det.onnx   # the float model\nbin: 150\n\
                    preprocess_parameter:\n  - input_type: IMAGE\n    input_file_path: 'calib'\n\
                    evaluation:\n  input_file_path:\n    - \"a\"\n    - /abs/b\n  labels: l.txt\n";
        let (out, raw) = rebase_paths(text, Path::new("/base")).unwrap();
        assert_eq!(raw.model.as_deref(), Some("/base/det.onnx"));
        assert!(out.starts_with("# my detector\nmodel: /base/det.onnx   # the float model\n"));
        assert!(out.contains("input_file_path: '/base/calib'"));
        assert!(out.contains("- \"/base/a\"\n    - /abs/b\n"));
        assert!(out.contains("labels: /base/l.txt"));
    }

    #[test]
    fn text_without_relative_paths_is_kept_verbatim() {
        let text = "# note\nmodel: /m.onnx\nbin: 150 # fine\n";
        let (out, _) = rebase_paths(text, Path::new("/base")).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn falls_back_to_a_fresh_document_when_the_text_cannot_be_edited() {
        // a flow mapping: the scalar does not stand alone on its line
        let text = "model: m.onnx\nevaluation: {labels: l.txt, metric: top1}\n";
        let (out, raw) = rebase_paths(text, Path::new("/base")).unwrap();
        assert!(out.starts_with("# written by qtune"));
        let again: RawConfig = yaml::from_str(&out).unwrap();
        assert_eq!(again, raw);
        assert_eq!(
            raw.evaluation.and_then(|e| e.labels).as_deref(),
            Some("/base/l.txt")
        );
    }
}
