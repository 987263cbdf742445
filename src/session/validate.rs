//! Checks a loaded session once, so the rest of the code can rely on it: every stored id
//! names a record that exists, every layer name is a layer, every setting is a valid
//! search setting with usable quantization parameters.

use std::collections::HashSet;

use super::Session;
use super::ids::{EvalId, SettingId};
use super::record::ActivationSummary;
use crate::calib::QuantizeAlgo;

/// What is wrong, and where: `field` is a path such as `evaluations[12].setting`.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub field: String,
    pub msg: String,
}

type Check = Result<(), Invalid>;

fn bad(field: impl Into<String>, msg: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        msg: msg.into(),
    }
}

/// Validates `s` (see the module doc).
pub fn validate(s: &Session) -> Check {
    let layers = layer_names(s)?;
    for (id, r) in s.settings() {
        let f = format!("settings[{}]", id.0);
        let st = &r.setting;
        let params = st.search_params();
        params
            .validate()
            .map_err(|e| bad(format!("{f}.setting"), e.to_string()))?;
        if st.batch_count == 0 {
            return Err(bad(format!("{f}.setting.batch_count"), "0 is not allowed"));
        }
        for (name, a) in &r.activations {
            check_activation(&format!("{f}.activations[{name:?}]"), st.quantize_algo, a)?;
        }
    }
    for (id, e) in s.evaluations() {
        let f = format!("evaluations[{}]", id.0);
        setting_id(s, &format!("{f}.setting"), e.setting)?;
        names_in(&layers, &format!("{f}.exclude"), &e.exclude)?;
        if e.report
            .layers
            .iter()
            .any(|l| !layers.contains(l.name.as_str()))
        {
            return Err(bad(
                format!("{f}.report.layers"),
                "names a layer the session does not have",
            ));
        }
    }
    for r in s.stages.iter() {
        let f = format!("stages (step {})", r.stage.step());
        eval_id(s, &format!("{f}.best"), r.best)?;
        if let Some(b) = r
            .best
            .filter(|&b| s.evaluation(b).is_some_and(|e| !e.is_complete()))
        {
            return Err(bad(
                format!("{f}.best"),
                format!("= {}, a stopped evaluation", b.0),
            ));
        }
        for &e in &r.evaluations {
            eval_id(s, &format!("{f}.evaluations"), Some(e))?;
        }
        if !(r.seconds.is_finite() && r.seconds >= 0.0) {
            return Err(bad(
                format!("{f}.seconds"),
                format!("{} is not a duration", r.seconds),
            ));
        }
        for (k, x) in r.searches.iter().enumerate() {
            let g = format!("{f}.searches[{k}]");
            names_in(&layers, &format!("{g}.exclude"), &x.exclude)?;
            let ranked: Vec<String> = x.ranking.iter().map(|(n, _)| n.clone()).collect();
            names_in(&layers, &format!("{g}.ranking"), &ranked)?;
            eval_id(s, &format!("{g}.result"), x.result)?;
            for &e in &x.tried {
                eval_id(s, &format!("{g}.tried"), Some(e))?;
            }
        }
    }
    setting_id(s, "current.setting", s.current.setting)?;
    eval_id(s, "current.evaluation", s.current.evaluation)?;
    names_in(&layers, "current.exclude", &s.current.exclude)?;
    if !(s.max_drop.is_finite() && s.max_drop >= 0.0) {
        return Err(bad(
            "max_drop",
            format!("{} is not allowed; allowed: a number >= 0", s.max_drop),
        ));
    }
    Ok(())
}

fn layer_names(s: &Session) -> Result<HashSet<&str>, Invalid> {
    let mut names = HashSet::new();
    for (i, l) in s.layers.iter().enumerate() {
        if l.name.is_empty() || !names.insert(l.name.as_str()) {
            return Err(bad(
                format!("layers[{i}].name"),
                format!("{:?} is empty or not unique", l.name),
            ));
        }
    }
    Ok(names)
}

fn names_in(layers: &HashSet<&str>, field: &str, names: &[String]) -> Check {
    let mut seen = HashSet::new();
    for n in names {
        if !layers.contains(n.as_str()) {
            return Err(bad(field, format!("{n:?} is not a layer of the session")));
        }
        if !seen.insert(n) {
            return Err(bad(field, format!("{n:?} is listed twice")));
        }
    }
    Ok(())
}

fn setting_id(s: &Session, field: &str, id: Option<SettingId>) -> Check {
    match id {
        Some(i) if s.setting(i).is_none() => Err(bad(
            field,
            format!("= {}, but there are {} settings", i.0, s.settings_len()),
        )),
        _ => Ok(()),
    }
}

fn eval_id(s: &Session, field: &str, id: Option<EvalId>) -> Check {
    match id {
        Some(i) if s.evaluation(i).is_none() => Err(bad(
            field,
            format!(
                "= {}, but there are {} evaluations",
                i.0,
                s.evaluation_count()
            ),
        )),
        _ => Ok(()),
    }
}

/// Parameters `quant::apply` can use: a finite range, a positive finite scale, an offset
/// that is a valid zero point for the algorithm.
fn check_activation(field: &str, algo: QuantizeAlgo, a: &ActivationSummary) -> Check {
    if !(a.lo.is_finite() && a.hi.is_finite() && a.lo <= a.hi) {
        return Err(bad(
            field,
            format!("range [{}, {}] is not a finite range", a.lo, a.hi),
        ));
    }
    if !(a.scale.is_finite() && a.scale > 0.0) {
        return Err(bad(
            field,
            format!("scale {} is not a positive number", a.scale),
        ));
    }
    let offsets = match algo {
        QuantizeAlgo::HalfOffset => -255..=0,
        QuantizeAlgo::NonOffset => 0..=0,
    };
    if !offsets.contains(&a.offset) {
        return Err(bad(
            field,
            format!(
                "offset {} is not allowed for {}; allowed: {offsets:?}",
                a.offset,
                algo.as_str()
            ),
        ));
    }
    Ok(())
}
