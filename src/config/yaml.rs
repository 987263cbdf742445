//! The only place that touches `serde_yaml` (archived upstream, stable): parsing with
//! positions, and writing. Swapping the YAML crate means rewriting this file only.
//!
//! Parsing is bounded: before the typed pass, one pass counts the values the document
//! expands to (aliases included) and refuses an "alias bomb" long before it could take
//! the memory; a UTF-8 byte-order mark is accepted; messages are said in the terms of the
//! file (a list, a number, a name), not of serde.

use std::cell::Cell;
use std::fmt;

use serde::Serialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Visitor};

/// A YAML or schema error with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// Dotted path of the offending key (`evaluation.metric`, `preprocess_parameter[0].size`).
    pub path: Option<String>,
    /// What went wrong, without position.
    pub message: String,
}

/// Deserializes `text` into `T`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    check_expansion(text).map_err(convert)?;
    serde_yaml::from_str(text).map_err(convert)
}

fn convert(e: serde_yaml::Error) -> YamlError {
    let line = e.location().map(|l| l.line());
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    // serde_yaml prefixes the key path: "evaluation.metric: unknown variant ..."
    let (path, message) = match msg.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (Some(p.to_string()), m.to_string()),
        _ => (None, msg),
    };
    YamlError {
        line,
        path,
        message: plain(&message),
    }
}

const EXPANDS: &str = "the document expands to far more values than it spells (aliases `*name` repeating anchors); qtune refuses it";

/// serde's vocabulary in the file's terms.
fn plain(msg: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        (
            "expected a YAML tag starting with '!'",
            "expected one of the allowed names (see configs/template.yaml)",
        ),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected a list"),
        ("expected a boolean", "expected true or false"),
        ("an array of length 3", "a list of 3 numbers"),
        ("struct RawConfig", "a mapping of keys"),
        ("struct RawInput", "a mapping of keys"),
        ("struct RawEvaluation", "a mapping of keys"),
        ("struct RawTune", "a mapping of keys"),
        ("struct RawGrid", "a mapping of keys"),
    ];
    let mut m = msg.to_string();
    for (from, to) in WORDS {
        m = m.replace(from, to);
    }
    if m.contains("repetition limit exceeded") {
        m = EXPANDS.into();
    }
    if m.contains("more than one document") {
        m = "more than one YAML document (`---`) in the file; a configuration is one mapping"
            .into();
    }
    m
}

/// Serializes `value` as YAML.
pub fn to_string<T: Serialize>(value: &T) -> Result<String, YamlError> {
    serde_yaml::to_string(value).map_err(|e| YamlError {
        line: None,
        path: None,
        message: e.to_string(),
    })
}

/// Walks the whole document (aliases expanded) without building it, refusing one that
/// expands to far more than it spells: more values than `100000 + len` or more scalar
/// bytes than `1 MiB + 2·len`. A document without aliases can never hit either bound.
fn check_expansion(text: &str) -> Result<(), serde_yaml::Error> {
    let limits = Limits {
        nodes: Cell::new(100_000 + text.len()),
        bytes: Cell::new((1 << 20) + 2 * text.len()),
    };
    let de = serde_yaml::Deserializer::from_str(text);
    Walk(&limits).deserialize(de)
}

struct Limits {
    nodes: Cell<usize>,
    bytes: Cell<usize>,
}

#[derive(Clone, Copy)]
struct Walk<'a>(&'a Limits);

impl Walk<'_> {
    fn count<E: de::Error>(self, bytes: usize) -> Result<(), E> {
        let l = self.0;
        match (
            l.nodes.get().checked_sub(1),
            l.bytes.get().checked_sub(bytes),
        ) {
            (Some(n), Some(b)) => {
                l.nodes.set(n);
                l.bytes.set(b);
                Ok(())
            }
            _ => Err(E::custom(EXPANDS)),
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.count(1)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.count(8)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.count(v.len())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.count(0)
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.count(0)
    }
    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.deserialize(d)
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.count(0)?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.count(0)?;
        while map.next_key_seed(self)?.is_some() {
            map.next_value_seed(self)?;
        }
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        use de::VariantAccess;
        // A tagged value (`!Tag value`): the tag, then its value.
        let ((), variant) = data.variant_seed(self)?;
        variant.newtype_variant_seed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_bomb_is_refused_quickly_and_a_few_aliases_are_fine() {
        let mut bomb = String::from("a: &a [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"]\n");
        let mut prev = 'a';
        for name in 'b'..='j' {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
            prev = name;
        }
        let t = std::time::Instant::now();
        let e = from_str::<serde_yaml::Value>(&bomb).unwrap_err();
        assert!(e.message.contains("expands"), "{e:?}");
        // Few aliases of one large string: bounded by bytes, not by serde_yaml's jumps.
        let big = format!(
            "a: &a \"{}\"\nb: [{}]\n",
            "x".repeat(100_000),
            vec!["*a"; 200].join(", ")
        );
        let e = from_str::<serde_yaml::Value>(&big).unwrap_err();
        assert!(e.message.contains("expands"), "{e:?}");
        assert!(t.elapsed().as_secs() < 5);
        let ok = "m: &m [1, 2, 3]\nstd: *m\nmean: *m\n";
        let v: serde_yaml::Value = from_str(ok).unwrap();
        assert_eq!(v["std"], v["m"]);
    }

    #[test]
    fn a_byte_order_mark_is_accepted_and_serde_words_are_translated() {
        let v: serde_yaml::Value = from_str("\u{feff}model: m.onnx\n").unwrap();
        assert_eq!(v["model"], "m.onnx");
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            n: u32,
        }
        let e = from_str::<S>("n: [1]\n").unwrap_err();
        assert!(e.message.contains("expected a whole number"), "{e:?}");
    }
}
