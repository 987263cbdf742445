//! Sessions round-trip exactly and never crash the tool: every number survives save →
//! load bit for bit, the journal replays to the saved state (a torn last line is the save
//! in flight), and damaged files — truncated, flipped, with ids out of range, wrong types —
//! are refused with a message naming the file, never a panic.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use qtune::session::{self, EvalId, Session, SessionFile, StageId, journal_path};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sessions/format1-demo.json")
}

fn demo() -> Session {
    session::load(&fixture()).expect("the format-1 fixture loads")
}

fn bytes_of(s: &Session, dir: &Path, name: &str) -> Vec<u8> {
    let p = dir.join(name);
    session::save(s, &p).unwrap();
    std::fs::read(p).unwrap()
}

/// Sets the numbers of evaluation 0 and of setting 0's first activation to `x`.
fn plant(s: &mut Session, x: f64) -> Session {
    let mut v: serde_json::Value = serde_json::to_value(&*s).unwrap();
    let num = if x.is_finite() {
        serde_json::json!(x)
    } else if x.is_nan() {
        serde_json::json!("NaN")
    } else if x > 0.0 {
        serde_json::json!("inf")
    } else {
        serde_json::json!("-inf")
    };
    let e = &mut v["evaluations"][0]["report"];
    for k in [
        "int8",
        "delta",
        "output_cosine",
        "output_sqnr_db",
        "seconds",
    ] {
        e[k] = num.clone();
    }
    e["layers"][0]["cosine"] = num.clone();
    let first = v["settings"][0]["activations"]
        .as_object_mut()
        .and_then(|m| m.values_mut().next())
        .unwrap();
    if x.is_finite() {
        first[0] = serde_json::json!(-x.abs());
        first[1] = serde_json::json!(x.abs());
        first[4] = num.clone();
    }
    serde_json::from_value(v).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Save → load → save gives the same bytes, and every planted number comes back with
    /// the same bits, whatever the number (subnormals, ±0, ±∞, NaN included).
    #[test]
    fn numbers_round_trip_bit_for_bit(bits in any::<u64>()) {
        let x = f64::from_bits(bits);
        let dir = tempfile::tempdir().unwrap();
        let s = plant(&mut demo(), x);
        let first = bytes_of(&s, dir.path(), "a.json");
        let back = session::load(&dir.path().join("a.json")).unwrap();
        let second = bytes_of(&back, dir.path(), "b.json");
        prop_assert_eq!(&first, &second);
        let got = back.evaluation(EvalId(0)).unwrap().report.int8;
        prop_assert!(got.to_bits() == x.to_bits() || (x.is_nan() && got.is_nan()));
    }
}

#[test]
fn the_journal_replays_to_what_was_saved_and_ignores_a_torn_last_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    let full = demo();
    // Start from the first three evaluations' worth of state, then save as they come.
    let mut s = demo();
    let mut file = SessionFile::create(&p, &s).unwrap();
    s.log("one more step");
    s.stage_mut(StageId::Traverse).seconds += 1.5;
    file.save(&s).unwrap();
    s.log("and another");
    file.save(&s).unwrap();
    let journal = std::fs::read(journal_path(&p)).unwrap();
    assert_eq!(
        journal.iter().filter(|&&b| b == b'\n').count(),
        2,
        "one line per save"
    );
    assert_eq!(session::load(&p).unwrap(), s);
    // A save cut short by a kill: the torn line is dropped, the rest stays.
    let mut torn = journal.clone();
    torn.extend_from_slice(br#"{"seq":3,"head":{"form"#);
    std::fs::write(journal_path(&p), &torn).unwrap();
    assert_eq!(session::load(&p).unwrap(), s);
    // Compaction folds everything into the snapshot.
    file.compact(&s).unwrap();
    assert!(!journal_path(&p).exists());
    assert_eq!(session::load(&p).unwrap(), s);
    assert_ne!(full.log.len(), s.log.len());
}

#[test]
fn a_journal_line_that_does_not_continue_the_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    let mut s = demo();
    let mut file = SessionFile::create(&p, &s).unwrap();
    s.log("x");
    file.save(&s).unwrap();
    let j = std::fs::read_to_string(journal_path(&p)).unwrap();
    let doubled = format!("{j}{}", j.replace("\"seq\":1", "\"seq\":3"));
    std::fs::write(journal_path(&p), doubled).unwrap();
    let e = session::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("s.json.journal:2") && e.contains("follows record 1"),
        "{e}"
    );
}

#[test]
fn ids_out_of_range_are_named_with_their_field_and_value() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    let n = v["settings"].as_array().unwrap().len();
    v["evaluations"][3]["setting"] = 99.into();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = session::load(&p).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: evaluations[3].setting = 99, but there are {n} settings",
            p.display()
        )
    );
}

#[test]
fn wrong_types_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture()).unwrap()).unwrap();
    v["evaluations"][2]["report"]["samples"] = "many".into();
    std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    let e = session::load(&p).unwrap_err().to_string();
    assert!(e.contains("evaluations[2].report.samples"), "{e}");
    assert!(e.starts_with(&p.display().to_string()), "{e}");
}

/// Damages `bytes` in one of several ways chosen by `kind` and `at`.
fn damage(bytes: &[u8], kind: u8, at: usize, with: u8) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let i = at % b.len().max(1);
    match kind % 4 {
        0 => b.truncate(i),
        1 => {
            if let Some(x) = b.get_mut(i) {
                *x ^= with | 1;
            }
        }
        2 => {
            // a digit changed: indices, counts and numbers move
            if let Some(pos) = b.iter().skip(i).position(u8::is_ascii_digit) {
                b[i + pos] = b'0' + with % 10;
            }
        }
        _ => {
            // a value replaced by another type
            if let Some(pos) = b.iter().skip(i).position(|&c| c == b':') {
                let at = i + pos + 1;
                b.splice(at..at, b"null,\"x\":".iter().copied());
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever the damage, loading returns a session or an error naming the file; it never
    /// panics, and what loads is valid (every accessor finds what the ids name).
    #[test]
    fn damaged_sessions_load_or_are_refused_never_panic(kind in 0u8..4, at in any::<usize>(), with in any::<u8>()) {
        let original = std::fs::read(fixture()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        std::fs::write(&p, damage(&original, kind, at, with)).unwrap();
        match std::panic::catch_unwind(|| session::load(&p)) {
            Err(_) => prop_assert!(false, "load panicked"),
            Ok(Err(e)) => prop_assert!(e.to_string().starts_with(&p.display().to_string()), "{}", e),
            Ok(Ok(s)) => {
                for (_, e) in s.evaluations() {
                    if let Some(id) = e.setting {
                        prop_assert!(s.setting(id).is_some());
                    }
                }
                for r in s.stages.iter() {
                    for id in r.best.iter().chain(&r.evaluations) {
                        prop_assert!(s.evaluation(*id).is_some());
                    }
                }
            }
        }
    }
}
