//! The memory budget: how much qtune lets one input (a model's constants, a tensor, an
//! image, a file) take before refusing it with a clear error instead of aborting on a
//! failed allocation.
//!
//! The budget is `QTUNE_MEMORY_MB` when set; otherwise half the physical memory, or three
//! quarters of a lower address-space, data-segment or cgroup limit.

use std::sync::OnceLock;

/// A request over the budget.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs {}, more than the memory budget of {} (set QTUNE_MEMORY_MB to change it)",
    human(*bytes),
    human(*limit)
)]
pub struct BudgetError {
    pub what: String,
    pub bytes: u64,
    pub limit: u64,
}

/// The budget in bytes.
pub fn limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var("QTUNE_MEMORY_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&mb| mb > 0)
            .map(|mb| mb.saturating_mul(1 << 20))
            .unwrap_or_else(default_limit)
    })
}

fn default_limit() -> u64 {
    // SAFETY: sysconf only reads system constants.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let phys = if pages > 0 && page > 0 {
        (pages as u64).saturating_mul(page as u64)
    } else {
        8 << 30
    };
    let mut lim = phys / 2;
    for l in [
        rlimit(libc::RLIMIT_AS),
        rlimit(libc::RLIMIT_DATA),
        cgroup_max(),
    ]
    .into_iter()
    .flatten()
    {
        lim = lim.min(l / 4 * 3);
    }
    lim.max(64 << 20)
}

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(resource, &mut r) } == 0;
    (ok && r.rlim_cur != libc::RLIM_INFINITY).then_some(r.rlim_cur)
}

fn cgroup_max() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

/// Refuses `bytes` for `what` when it is over the budget.
pub fn check(what: impl FnOnce() -> String, bytes: u64) -> Result<(), BudgetError> {
    check_against(what, bytes, limit())
}

fn check_against(what: impl FnOnce() -> String, bytes: u64, limit: u64) -> Result<(), BudgetError> {
    if bytes <= limit {
        Ok(())
    } else {
        Err(BudgetError {
            what: what(),
            bytes,
            limit,
        })
    }
}

/// A running total against the budget (e.g. all constants of a model).
#[derive(Clone, Debug)]
pub struct Tally {
    used: u64,
    limit: u64,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::with_limit(limit())
    }
}

impl Tally {
    pub fn with_limit(limit: u64) -> Tally {
        Tally { used: 0, limit }
    }

    /// Adds `bytes`, refusing them (and naming `what` and the total) past the budget.
    pub fn add(&mut self, what: impl FnOnce() -> String, bytes: u64) -> Result<(), BudgetError> {
        let total = self.used.saturating_add(bytes);
        let before = self.used;
        check_against(
            || match before {
                0 => what(),
                _ => format!("{} (with those before it)", what()),
            },
            total,
            self.limit,
        )?;
        self.used = total;
        Ok(())
    }

    pub fn used(&self) -> u64 {
        self.used
    }
}

/// `n` copies of `value`, allocated fallibly and within the budget.
pub fn try_vec<T: Clone>(
    what: impl FnOnce() -> String,
    n: usize,
    value: T,
) -> Result<Vec<T>, BudgetError> {
    let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    let mut what = Some(what);
    check(|| (what.take().expect("once"))(), bytes)?;
    let mut v = Vec::new();
    if v.try_reserve_exact(n).is_err() {
        return Err(BudgetError {
            what: what.map(|w| w()).unwrap_or_default() + " (the allocation failed)",
            bytes,
            limit: limit(),
        });
    }
    v.resize(n, value);
    Ok(v)
}

/// `1.5 GiB`, `12.0 MiB`, `512 bytes`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_refuses_the_request_that_crosses_the_limit() {
        let mut t = Tally::with_limit(100);
        t.add(|| "a".into(), 60).unwrap();
        let e = t.add(|| "constant `b`".into(), 50).unwrap_err();
        assert_eq!(e.bytes, 110);
        assert!(
            e.to_string()
                .starts_with("constant `b` (with those before it) needs 110 bytes"),
            "{e}"
        );
        assert_eq!(t.used(), 60);
        assert!(limit() >= 64 << 20);
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn try_vec_refuses_what_does_not_fit() {
        let e = try_vec(|| "tensor `x`".into(), usize::MAX / 8, 0u64).unwrap_err();
        assert!(e.to_string().contains("tensor `x`"), "{e}");
        assert_eq!(try_vec(|| "y".into(), 3, 1u8).unwrap(), vec![1, 1, 1]);
    }
}
