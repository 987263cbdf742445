//! Serde helpers for numbers that must survive JSON exactly.
//!
//! JSON has no NaN or ±∞ (serde_json writes them as `null`, and `null` does not read back
//! as an `f64`), and a float32 written as its shortest decimal may parse back one ULP off
//! when read through float64. These helpers make every number round-trip bit for bit
//! (NaN payloads aside): non-finite values as the strings `"NaN"`, `"inf"`, `"-inf"`, and
//! float32 values widened to float64 (exact) on the way out.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An `f64` that may be NaN or ±∞: `#[serde(with = "crate::serde_num::f64_any")]`.
pub mod f64_any {
    use super::*;

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_str(non_finite_name(*x))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(NumberOrName)
    }
}

/// An `Option<f64>` whose value may be NaN or ±∞ (`None` is `null`).
pub mod opt_f64_any {
    use super::*;

    pub fn serialize<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match x {
            None => s.serialize_none(),
            Some(v) => f64_any::serialize(v, s),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct W(#[serde(with = "f64_any")] f64);
        Ok(Option::<W>::deserialize(d)?.map(|w| w.0))
    }
}

/// An `f32` written as the exact `f64` of the same value, read back exactly. (Older files
/// hold the shortest float32 decimal instead; it reads back as the nearest float32.)
pub mod f32_exact {
    use super::*;

    pub fn serialize<S: Serializer>(x: &f32, s: S) -> Result<S::Ok, S::Error> {
        f64_any::serialize(&f64::from(*x), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(d.deserialize_any(NumberOrName)? as f32)
    }
}

/// A `Vec<(String, f64)>` whose numbers may be NaN or ±∞.
pub mod named_f64_any {
    use super::*;

    #[derive(Serialize, Deserialize)]
    struct Pair(String, #[serde(with = "f64_any")] f64);

    pub fn serialize<S: Serializer>(v: &[(String, f64)], s: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<Pair> = v.iter().map(|(n, x)| Pair(n.clone(), *x)).collect();
        pairs.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        let pairs = Vec::<Pair>::deserialize(d)?;
        Ok(pairs.into_iter().map(|Pair(n, x)| (n, x)).collect())
    }
}

/// An `f64` that may be NaN or ±∞, as a value (for tuples and arrays of such numbers).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnyF64(#[serde(with = "f64_any")] pub f64);

fn non_finite_name(x: f64) -> &'static str {
    if x.is_nan() {
        "NaN"
    } else if x > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// Reads a number, or one of the names of the non-finite values.
struct NumberOrName;

impl Visitor<'_> for NumberOrName {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number, or \"NaN\", \"inf\", \"-inf\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" => Ok(f64::NAN),
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super::f64_any")]
        a: f64,
        #[serde(with = "super::f32_exact")]
        b: f32,
        #[serde(with = "super::opt_f64_any")]
        c: Option<f64>,
    }

    fn round_trip(t: &T) -> T {
        serde_json::from_str(&serde_json::to_string(t).unwrap()).unwrap()
    }

    #[test]
    fn non_finite_and_float32_values_round_trip_bit_for_bit() {
        for a in [
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.9099999999999999,
            -0.0,
            1e-310,
        ] {
            for b in [f32::MIN_POSITIVE, 0.1, 3.4e38, 1.0e-45] {
                let t = T { a, b, c: Some(a) };
                let u = round_trip(&t);
                assert_eq!(u.a.to_bits(), a.to_bits());
                assert_eq!(u.b.to_bits(), b.to_bits());
                assert_eq!(u.c.map(f64::to_bits), Some(a.to_bits()));
            }
        }
        let u = round_trip(&T {
            a: f64::NAN,
            b: f32::NAN,
            c: None,
        });
        assert!(u.a.is_nan() && u.b.is_nan() && u.c.is_none());
    }

    #[test]
    fn a_float32_written_as_its_shortest_decimal_reads_back_exactly() {
        for b in [0.0392091f32, 1.0e-7, 3.3333333] {
            let text = format!(r#"{{"a":1,"b":{b},"c":null}}"#);
            let t: T = serde_json::from_str(&text).unwrap();
            assert_eq!(t.b.to_bits(), b.to_bits());
        }
    }
}
