//! Leak reports at process exit: debug caches with [`LEAKS`] register here
//! and an `atexit` handler reports those still alive (a cache in a
//! `static`, or leaked) with objects still out.
//!
//! [`LEAKS`]: super::DebugFlags::LEAKS

use std::sync::{Arc, Once, Weak};

use parking_lot::Mutex;

/// A debug cache that can report what is still out.
pub(crate) trait Outstanding: Send + Sync {
    /// Writes the leak report (nothing when no object is out).
    fn report_outstanding(&self, when: &str);
}

static LIVE: Mutex<Vec<Weak<dyn Outstanding>>> = Mutex::new(Vec::new());

extern "C" fn at_exit() {
    // Take the list out under the lock and work on it without: collecting
    // allocates, and when skmem is the process's malloc that allocation may
    // build a class cache whose debug slab registers here (the same lock).
    let registered = core::mem::take(&mut *LIVE.lock());
    let live: Vec<Arc<dyn Outstanding>> = registered.iter().filter_map(Weak::upgrade).collect();
    for cache in live {
        cache.report_outstanding("at process exit");
    }
}

/// Lists `cache` for the exit report (dropped caches fall out by
/// themselves).
pub(crate) fn register_for_exit(cache: Weak<dyn Outstanding>) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // SAFETY: `at_exit` is an `extern "C" fn()` that does not unwind
        // (it catches nothing that can panic: upgrades and stderr writes).
        unsafe { libc::atexit(at_exit) };
    });
    let mut live = LIVE.lock();
    live.retain(|w| w.strong_count() > 0);
    live.push(cache);
}

/// Reports a region dropped with `segments` still in use (their memory is
/// leaked so that whoever holds objects in them can go on using them).
pub(crate) fn report_region(name: &str, segments: u64) {
    use core::fmt::Write;
    let mut text = super::report::StackBuf::new();
    let _ = writeln!(
        text,
        "skmem debug: region `{name}`: leak report at drop: {segments} segments still in use (their memory is leaked)"
    );
    super::report::write_stderr(text.as_bytes());
}
