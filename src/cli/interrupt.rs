//! Ctrl-C for long headless commands: the first SIGINT asks the running work to stop at
//! its next safe point (what finished is already saved); a second one ends the process at
//! once, as Ctrl-C normally does (the handler is installed with `SA_RESETHAND`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set by the signal handler (a handler may only touch atomics).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Installs the SIGINT handler and forwards an interrupt to `cancel` (a small thread
/// polls the handler's flag every 50 ms).
pub fn forward_to(cancel: Arc<AtomicBool>) {
    // SAFETY: `sa` is fully initialized (zeroed, then the handler, flags and an empty
    // mask), and the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
    }
    std::thread::spawn(move || {
        while !INTERRUPTED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        cancel.store(true, Ordering::SeqCst);
    });
}

/// Whether Ctrl-C was pressed.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
