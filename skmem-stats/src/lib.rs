//! skmem statistics for people and for other processes.
//!
//! * [`dump`]: every registered region, cache, packet pool and arena of
//!   this process as plain-text tables (the registry is
//!   [`skmem_traits::registry`]; the tables are the stats structs'
//!   `Display`).
//! * [`publish`]: a background thread copies the registry's stats into a
//!   memfd named `skmem-stats` every interval; another process finds it
//!   under `/proc/PID/fd` and reads it with [`Reader`] (this is what
//!   `skmem-top` does). Off by default.
//! * [`init_from_env`]: `SKMEM_STATS=publish` starts publishing (interval
//!   `SKMEM_STATS_INTERVAL_MS`, default 1000), `SKMEM_SHOW_STATS=1` prints
//!   the dump to standard error when the process exits. On Linux it runs
//!   by itself when the program is loaded, in every program that links
//!   this crate (the `skmem` facade does: it re-exports it as
//!   `skmem::stats`), so the environment variables work without a line of
//!   code; calling it again is harmless, and is how a program learns
//!   whether starting the publisher failed.
//!
//! ```
//! let region_or_cache = skmem_stats::dump(); // tables, possibly empty
//! # let _ = region_or_cache;
//! ```
//!
//! # The published region
//!
//! A versioned header and fixed-size records, each under its own seqlock,
//! so a reader never sees a torn record: see [`layout`]. The writer seals
//! the memfd against shrinking and growing before anyone can map it, so a
//! reader can never fault on a page past the end; the reader refuses a
//! region without those seals, a region smaller than its header says, a
//! wrong magic or an unknown version, with a [`ReadError`] naming what was
//! wrong. Shared memory is read and written through raw pointers with
//! volatile accesses only, never through Rust references.
//!
//! # At exit
//!
//! The `SKMEM_SHOW_STATS` hook runs from `atexit`. It formats into a
//! 4 KiB buffer on its own stack and hands each full buffer to `write(2)`
//! on standard error, so the output itself never allocates; taking the
//! snapshot does allocate (the stats structs own their names) through the
//! global allocator, which is still alive at `atexit` time even when it is
//! skmem itself (Rust never destroys statics).

pub mod layout;
mod reader;
mod writer;

pub use reader::{ReadError, Reader, Snapshot, SnapshotEntry};
pub use skmem_traits::registry::{dump, dump_to, Kind, Stats};
pub use writer::{is_publishing, publish, publish_with_capacity, stop_publishing};

use std::sync::Once;
use std::time::Duration;

/// The name of the published memfd (`/proc/PID/fd/N` links to
/// `/memfd:skmem-stats (deleted)`).
pub const MEMFD_NAME: &str = "skmem-stats";

/// Reads `SKMEM_STATS` and `SKMEM_SHOW_STATS` once and does what they
/// ask: `SKMEM_STATS=publish` starts [`publish`] (interval from
/// `SKMEM_STATS_INTERVAL_MS`, default 1000 ms); `SKMEM_SHOW_STATS=1`
/// prints [`dump`] to standard error at exit. Later calls do nothing.
/// Returns the error of starting the publisher, if any.
pub fn init_from_env() -> std::io::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        if std::env::var_os("SKMEM_SHOW_STATS").is_some_and(|v| v == "1") {
            install_exit_dump();
        }
        if std::env::var_os("SKMEM_STATS").is_some_and(|v| v == "publish") {
            let ms = std::env::var("SKMEM_STATS_INTERVAL_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .filter(|&ms| ms > 0)
                .unwrap_or(1000);
            result = publish(Duration::from_millis(ms));
        }
    });
    result
}

/// Runs [`init_from_env`] when the program is loaded (an ELF
/// `.init_array` entry, run by the dynamic loader or the C runtime before
/// `main`), but only when one of its variables is set, so a program that
/// sets neither pays one `getenv` per variable. A failure to start the
/// publisher is said on standard error: there is no caller to return it
/// to.
#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static INIT_FROM_ENV_AT_LOAD: extern "C" fn() = init_from_env_at_load;

#[cfg(target_os = "linux")]
extern "C" fn init_from_env_at_load() {
    // Unwinding out of an `.init_array` function would be undefined
    // behaviour: nothing here should panic, and a panic is contained.
    let _ = std::panic::catch_unwind(|| {
        let asked = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        if asked("SKMEM_STATS") || asked("SKMEM_SHOW_STATS") {
            if let Err(e) = init_from_env() {
                let msg = format!("skmem-stats: SKMEM_STATS=publish failed: {e}\n");
                // SAFETY: writes a live byte buffer to fd 2.
                unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
            }
        }
    });
}

/// Prints [`dump`] to standard error when the process exits normally
/// (`exit` or a return from `main`). Installing twice prints once.
pub fn install_exit_dump() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: `exit_dump` is an `extern "C" fn()` that does not unwind
        // (it catches panics) and stays valid for the life of the process.
        let rc = unsafe { libc::atexit(exit_dump) };
        if rc != 0 {
            eprintln!("skmem-stats: atexit refused the SKMEM_SHOW_STATS hook");
        }
    });
}

/// Formats into a fixed buffer and writes it with `write(2)` when full.
struct FdWriter {
    buf: [u8; 4096],
    len: usize,
}

impl FdWriter {
    fn flush(&mut self) {
        let mut rest = &self.buf[..self.len];
        while !rest.is_empty() {
            // SAFETY: `rest` is a live byte slice; fd 2 is only written.
            let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                break;
            }
            rest = &rest[n as usize..];
        }
        self.len = 0;
    }
}

impl std::fmt::Write for FdWriter {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

extern "C" fn exit_dump() {
    let _ = std::panic::catch_unwind(|| {
        let mut w = FdWriter {
            buf: [0; 4096],
            len: 0,
        };
        let _ = std::fmt::Write::write_str(&mut w, "skmem stats at exit\n");
        let mut any = false;
        skmem_traits::registry::for_each(|_, _, _| any = true);
        if any {
            let _ = dump_to(&mut w);
        } else {
            let _ = std::fmt::Write::write_str(&mut w, "(no skmem object is alive)\n");
        }
        w.flush();
    });
}

#[cfg(test)]
mod tests;
