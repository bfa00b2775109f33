//! Transaction audit: who allocated and freed an object, when, from where.
//!
//! # Limits
//!
//! * Callers are raw return addresses (no symbols: resolve them with
//!   `addr2line -e <binary>` after subtracting the module's load address,
//!   or in a debugger). They are collected by libgcc's `_Unwind_Backtrace`
//!   on Linux, which walks the `.eh_frame` unwind tables (present in Rust
//!   binaries by default, also in release builds) and does not allocate;
//!   elsewhere, and under Miri, no frames are recorded.
//! * At most [`AUDIT_FRAMES`] frames are kept, starting at the caller of the
//!   capture function; the first few are skmem's own free / alloc path, the
//!   user's code follows (inlined functions have no frame of their own).
//! * Unwinding costs a few microseconds per transaction: audit is for
//!   debugging, not production.

use core::ffi::c_void;
use std::cell::Cell;

/// Transactions kept per object (newest replaces oldest).
pub const AUDIT_DEPTH: usize = 4;
/// Caller return addresses kept per transaction.
pub const AUDIT_FRAMES: usize = 12;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnKind {
    /// Handed out by the slab layer.
    Alloc,
    /// Given back to the slab layer.
    Free,
    /// Freed by the user into a magazine (kept constructed).
    ToMagazine,
    /// Handed out again from a magazine.
    FromMagazine,
}

impl TxnKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            TxnKind::Alloc => "alloc",
            TxnKind::Free => "free",
            TxnKind::ToMagazine => "free (into magazine)",
            TxnKind::FromMagazine => "alloc (from magazine)",
        }
    }
}

/// One transaction of an object.
#[derive(Debug, Clone, Copy)]
pub struct Txn {
    /// What happened.
    pub kind: TxnKind,
    /// Kernel thread id of the caller.
    pub thread: u32,
    /// `CLOCK_MONOTONIC` time, in nanoseconds.
    pub nanos: u64,
    /// Caller return addresses, innermost first; `0` past the last one.
    pub frames: [usize; AUDIT_FRAMES],
}

/// The last [`AUDIT_DEPTH`] transactions of one object.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Ring {
    txns: [Option<Txn>; AUDIT_DEPTH],
    next: u8,
}

impl Ring {
    pub(crate) fn push(&mut self, txn: Txn) {
        self.txns[self.next as usize] = Some(txn);
        self.next = ((self.next as usize + 1) % AUDIT_DEPTH) as u8;
    }

    /// Newest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &Txn> {
        (1..=AUDIT_DEPTH)
            .map(move |k| &self.txns[(self.next as usize + AUDIT_DEPTH - k) % AUDIT_DEPTH])
            .filter_map(Option::as_ref)
    }
}

impl Txn {
    /// The transaction happening now, on this thread.
    #[inline(never)]
    pub(crate) fn now(kind: TxnKind) -> Txn {
        let mut frames = [0usize; AUDIT_FRAMES];
        capture(&mut frames);
        Txn {
            kind,
            thread: thread_id(),
            nanos: monotonic_nanos(),
            frames,
        }
    }
}

fn thread_id() -> u32 {
    thread_local! {
        static TID: Cell<u32> = const { Cell::new(0) };
    }
    TID.try_with(|tid| {
        if tid.get() == 0 {
            tid.set(os_thread_id());
        }
        tid.get()
    })
    .unwrap_or_else(|_| os_thread_id())
}

#[cfg(target_os = "linux")]
fn os_thread_id() -> u32 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() as u32 }
}

#[cfg(not(target_os = "linux"))]
fn os_thread_id() -> u32 {
    0
}

pub(crate) fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(all(target_os = "linux", not(miri)))]
mod unwind {
    use core::ffi::c_void;

    /// Opaque `struct _Unwind_Context`.
    #[repr(C)]
    pub(super) struct Context {
        _opaque: [u8; 0],
    }

    /// `_URC_NO_REASON`: go on walking.
    pub(super) const NO_REASON: i32 = 0;
    /// `_URC_END_OF_STACK`: stop.
    pub(super) const END_OF_STACK: i32 = 5;

    pub(super) type Trace = extern "C" fn(*mut Context, *mut c_void) -> i32;

    // libgcc_s (or LLVM's libunwind), which the standard library already
    // links on Linux for unwinding panics.
    extern "C" {
        pub(super) fn _Unwind_Backtrace(trace: Trace, arg: *mut c_void) -> i32;
        pub(super) fn _Unwind_GetIP(ctx: *mut Context) -> usize;
    }
}

struct Walk<'a> {
    frames: &'a mut [usize; AUDIT_FRAMES],
    n: usize,
    skip: usize,
}

#[cfg(all(target_os = "linux", not(miri)))]
extern "C" fn on_frame(ctx: *mut unwind::Context, arg: *mut c_void) -> i32 {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive and not
    // otherwise borrowed during the walk.
    let walk = unsafe { &mut *arg.cast::<Walk<'_>>() };
    // SAFETY: `ctx` is the context libgcc hands to this callback.
    let ip = unsafe { unwind::_Unwind_GetIP(ctx) };
    if ip == 0 {
        return unwind::END_OF_STACK;
    }
    if walk.skip > 0 {
        walk.skip -= 1;
        return unwind::NO_REASON;
    }
    walk.frames[walk.n] = ip;
    walk.n += 1;
    if walk.n == AUDIT_FRAMES {
        unwind::END_OF_STACK
    } else {
        unwind::NO_REASON
    }
}

/// Fills `frames` with the return addresses of the callers of
/// [`Txn::now`] (its own frame skipped).
#[inline(never)]
fn capture(frames: &mut [usize; AUDIT_FRAMES]) {
    let mut walk = Walk {
        frames,
        n: 0,
        // `capture` and `Txn::now`.
        skip: 2,
    };
    #[cfg(all(target_os = "linux", not(miri)))]
    // SAFETY: `on_frame` matches the callback type and only uses `arg` as
    // the `Walk` passed here, which outlives the call.
    unsafe {
        unwind::_Unwind_Backtrace(on_frame, std::ptr::addr_of_mut!(walk).cast::<c_void>());
    }
    let _ = &mut walk;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest() {
        let mut ring = Ring::default();
        for k in [
            TxnKind::Alloc,
            TxnKind::Free,
            TxnKind::Alloc,
            TxnKind::ToMagazine,
            TxnKind::FromMagazine,
        ] {
            ring.push(Txn::now(k));
        }
        let kinds: Vec<_> = ring.newest_first().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                TxnKind::FromMagazine,
                TxnKind::ToMagazine,
                TxnKind::Alloc,
                TxnKind::Free
            ]
        );
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    #[test]
    fn capture_records_callers() {
        let txn = Txn::now(TxnKind::Alloc);
        assert!(
            txn.frames[0] != 0 && txn.frames[1] != 0,
            "{:x?}",
            txn.frames
        );
        assert!(txn.thread != 0 && txn.nanos != 0);
    }
}
