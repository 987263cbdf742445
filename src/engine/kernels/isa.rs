//! Which instruction set the kernels use: chosen at run time from the CPU's features,
//! overridable with `QTUNE_ISA=scalar|avx2|avx512` and, per plan, by the library
//! (`PlanOptions::isa`) so that tests can run every path the machine supports.
//!
//! The ISA in force on a thread is a scoped override (`with_isa`, set by `Plan` while it
//! runs) or else the process default (`default_isa`: `QTUNE_ISA` when valid and
//! supported, else the best the CPU has). Kernels read it once on entry (`Isa::current`)
//! and pass it to the tasks they spawn, so rayon workers run what their caller chose.

use std::cell::Cell;
use std::sync::OnceLock;

/// An instruction set the kernels are written for, ordered from the most portable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust (the compiler's baseline target; no explicit SIMD).
    Scalar,
    /// x86-64 AVX2 with FMA (256-bit).
    Avx2,
    /// x86-64 AVX-512 F, BW, VL and DQ (512-bit), with AVX2 and FMA.
    Avx512,
}

/// Errors of ISA selection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IsaError {
    #[error("`{0}` is not an instruction set qtune has kernels for (scalar, avx2, avx512)")]
    Unknown(String),
    #[error("the {isa} kernels need {missing}, which this CPU lacks (it supports: {supported})")]
    Unsupported {
        isa: &'static str,
        missing: String,
        supported: String,
    },
}

/// The environment variable that overrides the default ISA.
pub const ISA_ENV: &str = "QTUNE_ISA";

impl Isa {
    /// Every ISA, most portable first.
    pub const ALL: [Isa; 3] = [Isa::Scalar, Isa::Avx2, Isa::Avx512];

    /// The name `QTUNE_ISA` uses: `scalar`, `avx2`, `avx512`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `QTUNE_ISA` value (case-insensitive).
    pub fn parse(s: &str) -> Result<Isa, IsaError> {
        Isa::ALL
            .into_iter()
            .find(|i| i.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| IsaError::Unknown(s.to_string()))
    }

    /// The CPU features this ISA needs.
    fn required(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Avx2 => &["avx2", "fma"],
            Isa::Avx512 => &["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq"],
        }
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn is_supported(self) -> bool {
        self.required().iter().all(|f| has_feature(f))
    }

    /// Every ISA this CPU supports, most portable first (always starts with `Scalar`).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The widest ISA this CPU supports.
    pub fn best() -> Isa {
        *Isa::supported().last().unwrap_or(&Isa::Scalar)
    }

    /// Checks that the CPU supports `self`, naming what it lacks otherwise.
    pub fn check(self) -> Result<Isa, IsaError> {
        let missing: Vec<&str> = self
            .required()
            .iter()
            .copied()
            .filter(|f| !has_feature(f))
            .collect();
        if missing.is_empty() {
            return Ok(self);
        }
        Err(IsaError::Unsupported {
            isa: self.name(),
            missing: missing.join(", "),
            supported: Isa::supported()
                .iter()
                .map(|i| i.name())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The ISA in force on this thread: the innermost `with_isa` scope, else the process
    /// default. Always one the CPU supports.
    #[inline]
    pub fn current() -> Isa {
        SCOPED.with(Cell::get).unwrap_or_else(default_isa)
    }

    /// Whether the 8-bit dot-product instructions (u8 × s8 → i32 without 16-bit
    /// saturation) exist for this ISA's vector width on this CPU: AVX512-VNNI for
    /// `Avx512`, AVX-VNNI for `Avx2`.
    pub fn has_vnni(self) -> bool {
        match self {
            Isa::Scalar => false,
            Isa::Avx2 => self.is_supported() && has_feature("avxvnni"),
            Isa::Avx512 => self.is_supported() && has_feature("avx512vnni"),
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

thread_local! {
    static SCOPED: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Runs `f` with `isa` in force on this thread (restored afterwards, also on unwind).
/// An ISA the CPU lacks is replaced by the widest supported one below it, so no scope
/// can ever run instructions the CPU does not have.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPED.with(|s| s.set(self.0));
        }
    }
    let isa = Isa::supported()
        .into_iter()
        .rfind(|i| *i <= isa)
        .unwrap_or(Isa::Scalar);
    let _restore = Restore(SCOPED.with(|s| s.replace(Some(isa))));
    f()
}

/// The `QTUNE_ISA` override, if set: an unknown name or an ISA this CPU lacks is an
/// error (the command line reports it; the library then uses `Isa::best`).
pub fn isa_from_env() -> Result<Option<Isa>, IsaError> {
    match std::env::var(ISA_ENV) {
        Ok(v) if !v.trim().is_empty() => Isa::parse(&v)?.check().map(Some),
        _ => Ok(None),
    }
}

/// The process default: `QTUNE_ISA` when it names a supported ISA, else `Isa::best`.
/// Read once.
pub fn default_isa() -> Isa {
    static DEFAULT: OnceLock<Isa> = OnceLock::new();
    *DEFAULT.get_or_init(|| isa_from_env().ok().flatten().unwrap_or_else(Isa::best))
}

/// The SIMD-related features of this CPU, as `std::arch` names them (for reports).
pub fn cpu_features() -> Vec<&'static str> {
    const NAMES: [&str; 13] = [
        "sse4.2",
        "avx",
        "avx2",
        "fma",
        "f16c",
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512dq",
        "avx512vnni",
        "avx512bf16",
        "avx512fp16",
        "avxvnni",
    ];
    NAMES.into_iter().filter(|f| has_feature(f)).collect()
}

/// Whether the CPU has the feature `std::arch` calls `name`.
fn has_feature(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        match name {
            "sse4.2" => has!("sse4.2"),
            "avx" => has!("avx"),
            "avx2" => has!("avx2"),
            "fma" => has!("fma"),
            "f16c" => has!("f16c"),
            "avx512f" => has!("avx512f"),
            "avx512bw" => has!("avx512bw"),
            "avx512vl" => has!("avx512vl"),
            "avx512dq" => has!("avx512dq"),
            "avx512vnni" => has!("avx512vnni"),
            "avx512bf16" => has!("avx512bf16"),
            "avx512fp16" => has!("avx512fp16"),
            "avxvnni" => has!("avxvnni"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for isa in Isa::ALL {
            assert_eq!(Isa::parse(isa.name()), Ok(isa));
        }
        assert_eq!(Isa::parse(" AVX2 "), Ok(Isa::Avx2));
        assert!(matches!(Isa::parse("sse"), Err(IsaError::Unknown(_))));
    }

    #[test]
    fn scalar_is_always_supported_and_best_is_supported() {
        assert_eq!(Isa::supported()[0], Isa::Scalar);
        assert!(Isa::best().is_supported());
        assert!(Isa::current().is_supported());
        for isa in Isa::ALL {
            assert_eq!(isa.check().is_ok(), isa.is_supported());
        }
    }

    #[test]
    fn scopes_nest_restore_and_never_exceed_the_cpu() {
        let outer = Isa::current();
        with_isa(Isa::Scalar, || {
            assert_eq!(Isa::current(), Isa::Scalar);
            with_isa(Isa::Avx512, || {
                assert!(Isa::current().is_supported());
                assert_eq!(Isa::current(), Isa::best().min(Isa::Avx512));
            });
            assert_eq!(Isa::current(), Isa::Scalar);
        });
        assert_eq!(Isa::current(), outer);
    }
}
