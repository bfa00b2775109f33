//! The calling thread's CPU id, read cheaply.
//!
//! # Where the id comes from
//!
//! 1. **rseq** (Linux x86-64, glibc ≥ 2.35): glibc registers a
//!    `struct rseq` per thread inside its thread control block, at
//!    `thread pointer + __rseq_offset`, and the kernel stores the CPU the
//!    thread runs on in its `cpu_id` field (a `u32` at byte offset 4) every
//!    time the thread returns to user space after being scheduled. Reading
//!    it is one `fs`-relative load. glibc publishes `__rseq_offset` and
//!    `__rseq_size`; both are looked up once with `dlsym` (so a binary built
//!    here still loads on an older glibc, which lacks them) and cached.
//!    `__rseq_size == 0` means glibc did not register (too old a kernel,
//!    `GLIBC_TUNABLES=glibc.pthread.rseq=0`, or valgrind, which refuses the
//!    `rseq` system call). A negative `cpu_id` (`-1` uninitialised, `-2`
//!    registration failed for this thread) also means "no rseq".
//! 2. **Fallback**: `sched_getcpu`, called at most once every
//!    [`REFRESH`] look-ups per thread; in between the thread reuses the id it
//!    cached in thread-local storage.
//! 3. Miri, loom and other platforms never get here (see `percpu.rs`).
//!
//! The look-up runs when a per-CPU cache makes its slots ([`init`]); until
//! then [`cpu_id`] serves the fallback, so the fast path tests only one
//! word: "is there an rseq offset?".
//!
//! # Why a stale id is fine
//!
//! The id only picks which slot a thread uses; every slot is behind its own
//! lock. A thread can be migrated right after reading the id even on the
//! rseq path, so the per-CPU policy never relied on the id being current:
//! a wrong id only makes an operation use another CPU's slot (less local,
//! possibly contended), never incorrect. Caching the fallback id for a few
//! calls widens that window slightly and saves a `getcpu` system call (or
//! vDSO call) on almost every operation.
//!
//! # Safety
//!
//! * `__rseq_offset` is the offset of the calling thread's `struct rseq`
//!   from its thread pointer, the same for every thread (it lies in the
//!   static TLS block), fixed before `main` and never changed; `__rseq_size`
//!   is non-zero only when glibc registered that area. So when
//!   `__rseq_size >= 8`, the 4 bytes at `fs:[__rseq_offset + 4]` are the
//!   current thread's `cpu_id`, valid memory for the thread's whole life.
//! * The kernel writes `cpu_id` asynchronously (between instructions of this
//!   thread, never concurrently with them: it writes on the way back to
//!   user space of this very thread). An aligned 4-byte load is single-copy
//!   atomic on x86-64, so the load sees either the old or the new id. The
//!   load is inline assembly: no Rust reference or pointer to the area is
//!   ever formed, so no aliasing or provenance rule is involved.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

/// Fallback look-ups served from the thread's cached id between two real
/// `sched_getcpu` calls.
pub(crate) const REFRESH: u32 = 64;

/// Offset of `cpu_id` from the thread pointer, or [`NONE`].
static CPU_ID_OFFSET: AtomicIsize = AtomicIsize::new(NONE);
/// No rseq `cpu_id` to read: not looked up yet, or glibc has no registered
/// rseq area. Never a real offset: on x86-64 `fs:[0]` holds the thread
/// control block's self-pointer, so `cpu_id` is never there. A zero test
/// is the cheapest check on the fast path.
const NONE: isize = 0;
/// The look-up ran (whatever it found).
static LOOKED_UP: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The fallback's cached id and the look-ups left before a refresh.
    static CACHED: Cell<(u32, u32)> = const { Cell::new((0, 0)) };
}

/// Looks up glibc's rseq area once per process (idempotent, cheap after
/// the first call). Until it has run, [`cpu_id`] serves the fallback, which
/// is correct, merely slower: the per-CPU policy calls this when it makes
/// its slots, before any thread can look a slot up.
pub(crate) fn init() {
    if !LOOKED_UP.load(Ordering::Relaxed) {
        lookup();
    }
}

/// The calling thread's CPU id (possibly stale, see the module docs).
#[inline(always)]
pub(crate) fn cpu_id() -> usize {
    let off = CPU_ID_OFFSET.load(Ordering::Relaxed);
    if off != NONE {
        if let Some(id) = read_cpu_id(off) {
            return id;
        }
    }
    cached()
}

/// The rseq `cpu_id` at `fs:[off]`, or `None` when this thread's area is
/// not registered.
///
/// `off` must be a value [`lookup`] stored (other than `NONE`),
/// or [`area_offset`]` + 4`.
#[inline(always)]
pub(crate) fn read_cpu_id(off: isize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        let id: i32;
        // SAFETY: `off != NONE` means `lookup` stored
        // `__rseq_offset + 4` with `__rseq_size >= 8`: `fs:[off]` is this
        // thread's rseq `cpu_id`, valid for the thread's life and read with
        // one aligned 4-byte load (module docs, Safety). The asm only reads
        // memory and keeps the stack and flags; it is not `pure`, so every
        // call reads afresh.
        unsafe {
            core::arch::asm!(
                "mov {id:e}, dword ptr fs:[{off}]",
                off = in(reg) off,
                id = out(reg) id,
                options(nostack, readonly, preserves_flags),
            );
        }
        usize::try_from(id).ok()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = off;
        None
    }
}

/// The fallback: the thread's cached id, refreshed with `sched_getcpu`
/// every [`REFRESH`] calls.
#[inline(always)]
fn cached() -> usize {
    CACHED
        .try_with(|c| {
            let (id, left) = c.get();
            if left != 0 {
                c.set((id, left - 1));
                id as usize
            } else {
                refresh(c)
            }
        })
        // Thread-local storage already torn down (a destructor running at
        // thread exit): ask the system.
        .unwrap_or_else(|_| getcpu())
}

/// Asks the system for the id and restarts the countdown.
#[cold]
#[inline(never)]
fn refresh(c: &Cell<(u32, u32)>) -> usize {
    let id = getcpu();
    c.set((id as u32, REFRESH - 1));
    id
}

/// `sched_getcpu`, 0 on error.
#[cold]
#[inline(never)]
fn getcpu() -> usize {
    // SAFETY: `sched_getcpu` has no preconditions; it returns -1 on error.
    let c = unsafe { libc::sched_getcpu() };
    c.max(0) as usize
}

/// Looks up glibc's rseq offset and size and publishes the result in
/// [`CPU_ID_OFFSET`] (idempotent: every racing thread stores the same);
/// returns it.
#[cold]
#[inline(never)]
fn lookup() -> isize {
    let off = rseq_cpu_id_offset().unwrap_or(NONE);
    CPU_ID_OFFSET.store(off, Ordering::Relaxed);
    LOOKED_UP.store(true, Ordering::Relaxed);
    off
}

/// `__rseq_offset + 4` when glibc registered an rseq area large enough to
/// hold `cpu_id`.
fn rseq_cpu_id_offset() -> Option<isize> {
    let (offset, size) = glibc_rseq()?;
    if size < 8 {
        return None;
    }
    let off = offset.checked_add(4)?;
    (off != NONE).then_some(off)
}

/// `__rseq_offset` when glibc registered an rseq area that holds the
/// original ABI fields up to `flags` (`cpu_id_start`, `cpu_id`, `rseq_cs`,
/// `flags`: 20 bytes), which is what the per-CPU fronts' critical sections
/// use (`cpu_id` at +4, `rseq_cs` at +8).
pub(crate) fn area_offset() -> Option<isize> {
    let (offset, size) = glibc_rseq()?;
    (size >= 20 && offset.checked_add(8).is_some() && offset + 4 != NONE).then_some(offset)
}

/// glibc's `(__rseq_offset, __rseq_size)` when both exist and the size is
/// non-zero (x86-64 only: the only architecture the inline loads serve).
fn glibc_rseq() -> Option<(isize, u32)> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    // SAFETY: `dlsym` with `RTLD_DEFAULT` and a NUL-terminated name has no
    // other preconditions; it returns null when the symbol is absent.
    let size = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()) };
    // SAFETY: as above.
    let offset = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()) };
    if size.is_null() || offset.is_null() {
        return None;
    }
    // SAFETY: glibc defines `__rseq_size` as a `const unsigned int` that is
    // set before `main` and never written again; `dlsym` returned its
    // address, which is valid and aligned for the process's life.
    let size = unsafe { size.cast::<u32>().read() };
    // SAFETY: likewise, `__rseq_offset` is a `const ptrdiff_t`.
    let offset = unsafe { offset.cast::<isize>().read() };
    (size != 0).then_some((offset, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_id_is_an_online_cpu() {
        // SAFETY: `sysconf` has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) } as usize;
        init();
        for _ in 0..(3 * REFRESH) {
            assert!(cpu_id() < n.max(1));
        }
        assert!(LOOKED_UP.load(Ordering::Relaxed));
    }

    #[test]
    fn rseq_agrees_with_sched_getcpu_when_registered() {
        let Some(off) = rseq_cpu_id_offset() else {
            // No rseq here (valgrind, old glibc, tunable off): the
            // fallback serves ids, checked by the test above.
            return;
        };
        assert!(off > 4);
        // Pin to each allowed CPU in turn, so neither read can be stale.
        // SAFETY: a zeroed `cpu_set_t` is a valid empty set; the calls get
        // valid pointers and the set's size.
        unsafe {
            let mut set: libc::cpu_set_t = core::mem::zeroed();
            assert_eq!(libc::sched_getaffinity(0, size_of_val(&set), &mut set), 0);
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect();
            assert!(!cpus.is_empty());
            for &cpu in &cpus {
                let mut one: libc::cpu_set_t = core::mem::zeroed();
                libc::CPU_SET(cpu, &mut one);
                assert_eq!(libc::sched_setaffinity(0, size_of_val(&one), &one), 0);
                assert_eq!(read_cpu_id(off), Some(cpu));
                assert_eq!(cpu_id(), cpu);
                assert_eq!(libc::sched_getcpu(), cpu as i32);
            }
            assert_eq!(libc::sched_setaffinity(0, size_of_val(&set), &set), 0);
        }
    }

    #[test]
    fn fallback_refreshes_after_refresh_calls() {
        CACHED.with(|c| c.set((7, 2)));
        assert_eq!(cached(), 7);
        assert_eq!(cached(), 7);
        assert_eq!(CACHED.with(Cell::get), (7, 0));
        // The third call asks the system and restarts the count.
        let got = cached();
        assert_eq!(CACHED.with(Cell::get), (got as u32, REFRESH - 1));
        // SAFETY: `sysconf` has no preconditions.
        let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) } as usize;
        assert!(got < n.max(1));
    }
}
