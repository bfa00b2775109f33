//! The per-CPU *front* of [`PerCpu`](super::PerCpu): a small array of
//! object pointers per CPU that the calling thread pops and pushes with
//! restartable sequences (rseq), without any atomic read-modify-write.
//!
//! # Design
//!
//! tcmalloc's per-CPU cache is the model. Each CPU has one cache-padded
//! [`Front`] block `{ count, stopped, rounds[FRONT_CAP] }` in front of the
//! CPU's locked magazine slot. A single-object alloc or free is one rseq
//! critical section on the block of the CPU the thread runs on:
//!
//! 1. store the address of the section's descriptor (`struct rseq_cs`,
//!    emitted into the `__rseq_cs` section) into the thread's
//!    `rseq.rseq_cs` (the area glibc registered at `fs:[__rseq_offset]`);
//! 2. read `rseq.cpu_id`, index the block, refuse if `stopped != 0` or the
//!    front is empty (pop) / full (push);
//! 3. load or store the round;
//! 4. **commit** with one plain 4-byte store of the new `count`, the last
//!    instruction of the section.
//!
//! If the kernel preempts, migrates or signals the thread anywhere before
//! the commit, it resumes the thread at the section's abort handler (which
//! follows the 4-byte signature `0x53053053`, glibc's `RSEQ_SIG` on x86),
//! which reports "aborted"; the caller counts it ([`rseq_aborts`]) and
//! retries. So between step 2 and the commit the thread ran on that CPU
//! without interruption: no other thread touched that block (other threads
//! on that CPU would have had to preempt it), and the commit either
//! happened completely or not at all.
//!
//! A miss (front empty, full, or stopped) goes to the cache's locked slot
//! path: a refill pops about half a front from the magazines and pushes it
//! with one batch section (a copy loop, then the same one-store commit);
//! a spill takes half a front out with a batch section and frees it with the
//! object through the locked slot. Objects that a batch section cannot
//! place go back through the locked slot, so nothing is lost.
//!
//! # Remote operations: the stop / fence handshake
//!
//! Purge, resize and cache drop must reach the objects in *every* CPU's
//! front, from whichever thread runs them ([`Fronts::drain_all`]):
//!
//! 1. take the fronts' `stop` lock (remote operations are serialised);
//! 2. add 1 to `stopped` of every block;
//! 3. one `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)` (registered
//!    once per process with `..._REGISTER_PRIVATE_EXPEDITED_RSEQ`): it
//!    interrupts every CPU that runs a thread of this process, which aborts
//!    any critical section running there, and is a full memory barrier on
//!    every one of them. A thread preempted *inside* a section is not
//!    running; the kernel aborts its section when it resumes;
//! 4. read and empty the blocks with ordinary atomic loads and stores;
//! 5. subtract 1 from every `stopped` (release), drop the lock.
//!
//! After step 3 no section that began before it can still commit (it was
//! aborted), and every section that begins after it reads `stopped != 0`
//! and refuses. So in step 4 the remote side is alone on every block.
//!
//! # Fallback
//!
//! The mode is chosen once per process ([`rseq_mode`]): rseq when this is
//! x86-64 Linux outside Miri and loom, glibc registered an rseq area
//! (`__rseq_size != 0`; valgrind and `GLIBC_TUNABLES=glibc.pthread.rseq=0`
//! turn it off), the calling thread's `cpu_id` is valid, the membarrier
//! registration succeeded, and `SKMEM_RSEQ` is not `0`. Otherwise caches
//! have no fronts and run today's locked slot (`per-cpu(locked)`). A thread
//! whose own registration failed (`cpu_id < 0`) leaves every section before
//! touching a block and takes the locked path.
//!
//! # Safety and correctness
//!
//! * Only the critical sections (inline assembly, plain `mov`s) and the
//!   remote side under `stopped` + membarrier write a block. Rust never
//!   forms a reference to a block's fields that the sections write; it uses
//!   atomics, which on x86-64 compile to the same plain loads and stores,
//!   so the two sides agree on what a single access is.
//! * `count <= FRONT_CAP` always (every section checks before its commit);
//!   `rounds[..count]` hold object pointers owned by the cache, each once.
//! * A section only reads `rounds[..count]` and writes `rounds[count..]`
//!   before its commit; writes past `count` by an aborted section are
//!   harmless, since nothing reads a round at or above `count`.
//! * The block array has a power-of-two length `mask + 1` and the index is
//!   `cpu_id & mask`, so a section never leaves the array.

use core::ptr::NonNull;
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::mem::MaybeUninit;

use super::FRONT_CAP;

/// One CPU's front. Exactly `1 << BLOCK_SHIFT` = 1024 bytes (the critical
/// sections index blocks with that shift) and aligned to them, so no two CPUs share a cache
/// line.
#[repr(C, align(1024))]
pub(crate) struct Front {
    /// Valid rounds; written by a section's commit and by stopped remotes.
    count: AtomicU32,
    /// Non-zero while a remote operation works on the block (or for good
    /// in a cache without magazines).
    stopped: AtomicU32,
    /// Object pointers; `rounds[..count]` are valid.
    rounds: [AtomicPtr<u8>; FRONT_CAP],
}

/// log2 of a block's size: the sections find a CPU's block with a shift.
const BLOCK_SHIFT: u32 = 10;

const _: () = assert!(size_of::<Front>() == 1 << BLOCK_SHIFT);
const _: () = assert!(core::mem::offset_of!(Front, stopped) == 4);
const _: () = assert!(core::mem::offset_of!(Front, rounds) == 8);
const _: () = assert!(
    8 + 8 * FRONT_CAP == 1 << BLOCK_SHIFT,
    "a block is its header and FRONT_CAP rounds"
);

impl Front {
    fn new() -> Self {
        Front {
            count: AtomicU32::new(0),
            stopped: AtomicU32::new(0),
            rounds: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
        }
    }
}

/// Critical sections aborted (and retried) so far, in this process.
static ABORTS: AtomicU64 = AtomicU64::new(0);

/// How many rseq critical sections of the per-CPU fronts the kernel has
/// aborted (preemption, migration, signal or a remote stop) in this
/// process. Zero in `per-cpu(locked)` mode.
pub fn rseq_aborts() -> u64 {
    ABORTS.load(Ordering::Relaxed)
}

/// The process's mode: not decided yet.
const MODE_UNKNOWN: u8 = 0;
/// rseq fronts in use.
const MODE_RSEQ: u8 = 1;
/// Locked slots only.
const MODE_LOCKED: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_UNKNOWN);

/// Whether per-CPU caches made from now on run their fronts on rseq
/// (decided once per process; see the module docs, Fallback).
pub fn rseq_mode() -> bool {
    match MODE.load(Ordering::Acquire) {
        MODE_RSEQ => true,
        MODE_LOCKED => false,
        _ => decide(),
    }
}

#[cold]
fn decide() -> bool {
    let ok = rseq_usable();
    // Racing deciders compute the same answer from process-wide facts.
    MODE.store(if ok { MODE_RSEQ } else { MODE_LOCKED }, Ordering::Release);
    tracing::debug!(rseq = ok, "per-cpu front mode decided");
    ok
}

fn rseq_usable() -> bool {
    if !cfg!(target_arch = "x86_64") || std::env::var_os("SKMEM_RSEQ").is_some_and(|v| v == "0") {
        return false;
    }
    let Some(area) = super::rseq::area_offset() else {
        return false;
    };
    if super::rseq::read_cpu_id(area + 4).is_none() {
        return false;
    }
    rustix::thread::membarrier(rustix::thread::MembarrierCommand::RegisterPrivateExpeditedRseq)
        .is_ok()
}

/// What the single-object sections read, at fixed offsets, so that they
/// need one input register for all of it (the sections use 3 or 4
/// registers in all, which keeps the inlined fast path small).
#[repr(C)]
struct Hot {
    /// `__rseq_offset`: the thread's `struct rseq` is at `fs:[area]`.
    area: isize,
    /// `blocks.len() - 1`.
    mask: usize,
    /// Address of the first block.
    base: usize,
}

const _: () = assert!(core::mem::offset_of!(Hot, mask) == 8);
const _: () = assert!(core::mem::offset_of!(Hot, base) == 16);

/// The fronts of one cache: one [`Front`] per slot.
pub(crate) struct Fronts {
    hot: Hot,
    /// Power-of-two many blocks (empty when the process runs locked).
    blocks: Box<[Front]>,
    /// Fronts in use (false when locked, or switched off for good).
    on: AtomicBool,
    /// Serialises remote operations (stop, drain, unstop).
    stop: parking_lot::Mutex<()>,
}

impl core::fmt::Debug for Fronts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fronts")
            .field("blocks", &self.blocks.len())
            .field("on", &self.is_on())
            .finish()
    }
}

/// Outcome codes of a critical section: committed.
const DONE: u32 = 0;
/// Refused: the front is stopped, empty (pop) or full (push).
const REFUSED: u32 = 1;
/// Aborted by the kernel; retry.
const ABORTED: u32 = 2;
/// This thread has no registered rseq area (`cpu_id < 0`): use the locked
/// slot.
const UNREGISTERED: u32 = 3;

/// What the pop section returns instead of an object: refused (empty or
/// stopped).
const POP_REFUSED: usize = 0;
/// Pop: this thread has no registered rseq area.
const POP_UNREGISTERED: usize = 1;
/// Pop: aborted by the kernel; retry.
const POP_ABORTED: usize = 2;
/// The largest pop code; objects live above it.
const POP_CODES_END: usize = POP_ABORTED;

/// The descriptor and the prologue shared by every section: publishes the
/// descriptor (`66`), then (label `2`, the section's start) finds this
/// CPU's block in `{t}`, leaving through label `9` when the thread's rseq
/// registration failed (`cpu_id < 0`) and through `7` (refused) when the
/// block is stopped. Each section then defines `3` (post-commit: right
/// after the commit store), `7`, `9` and `4` (abort, after the signature)
/// with [`cs_epilogue!`].
macro_rules! cs_prologue {
    () => {
        concat!(
            ".pushsection __rseq_cs, \"aw\"\n",
            ".balign 32\n",
            "66:\n",
            // version 0, flags 0, start_ip, post_commit_offset, abort_ip
            ".long 0, 0\n",
            ".quad 2f, 3f - 2f, 4f\n",
            ".popsection\n",
            "lea {t}, [rip + 66b]\n",
            "mov qword ptr fs:[{area} + 8], {t}\n",
            "2:\n",
            "mov {t:e}, dword ptr fs:[{area} + 4]\n",
            "test {t:e}, {t:e}\n",
            "js 9f\n",
            "and {t}, {mask}\n",
            "shl {t}, {shift}\n",
            "add {t}, {blocks}\n",
            "cmp dword ptr [{t} + 4], 0\n",
            "jne 7f\n",
        )
    };
}

/// [`cs_prologue!`] for the single-object sections, with everything read
/// through `{f}` (a pointer to [`Hot`]) and `{a}` as scratch.
macro_rules! hot_prologue {
    () => {
        concat!(
            ".pushsection __rseq_cs, \"aw\"\n",
            ".balign 32\n",
            "66:\n",
            ".long 0, 0\n",
            ".quad 2f, 3f - 2f, 4f\n",
            ".popsection\n",
            "lea {t}, [rip + 66b]\n",
            "mov {a}, qword ptr [{f}]\n",
            "mov qword ptr fs:[{a} + 8], {t}\n",
            "2:\n",
            "mov {t:e}, dword ptr fs:[{a} + 4]\n",
            "test {t:e}, {t:e}\n",
            "js 9f\n",
            "and {t}, qword ptr [{f} + 8]\n",
            "shl {t}, {shift}\n",
            "add {t}, qword ptr [{f} + 16]\n",
            "cmp dword ptr [{t} + 4], 0\n",
            "jne 7f\n",
        )
    };
}

/// The exits of a single-object section other than its commit, placed in
/// a cold text section so that the committed path falls straight through
/// label `3` (the end of the section) with no taken jump: `7` (refused),
/// `9` (unregistered) and, after the signature, the abort handler `4`; each
/// sets its status with the given instruction and jumps back to `3`.
macro_rules! cold_exits {
    ($refused:literal, $unregistered:literal, $aborted:literal) => {
        concat!(
            ".pushsection .text.unlikely.skmem_rseq, \"ax\", @progbits\n",
            "7:\n",
            $refused,
            "\n",
            "jmp 3b\n",
            "9:\n",
            $unregistered,
            "\n",
            "jmp 3b\n",
            ".long 0x53053053\n",
            "4:\n",
            $aborted,
            "\n",
            "jmp 3b\n",
            ".popsection\n",
        )
    };
}

/// Status codes after label `3` (done), `7` (refused), `9` (unregistered)
/// and the abort handler `4`, preceded by the signature.
macro_rules! cs_epilogue {
    () => {
        concat!(
            "3:\n",
            "xor {st:e}, {st:e}\n",
            "jmp 8f\n",
            "7:\n",
            "mov {st:e}, 1\n",
            "jmp 8f\n",
            "9:\n",
            "mov {st:e}, 3\n",
            "jmp 8f\n",
            ".long 0x53053053\n",
            "4:\n",
            "mov {st:e}, 2\n",
            "8:\n",
        )
    };
}

impl Fronts {
    /// Fronts for `n` slots (a power of two) when the process runs rseq,
    /// none otherwise.
    pub(crate) fn new(n: usize) -> Self {
        debug_assert!(n.is_power_of_two());
        let area = if rseq_mode() {
            super::rseq::area_offset()
        } else {
            None
        };
        let blocks: Box<[Front]> = match area {
            Some(_) => (0..n).map(|_| Front::new()).collect(),
            None => Box::new([]),
        };
        Fronts {
            hot: Hot {
                area: area.unwrap_or(0),
                mask: n - 1,
                base: blocks.as_ptr() as usize,
            },
            on: AtomicBool::new(!blocks.is_empty()),
            blocks,
            stop: parking_lot::Mutex::new(()),
        }
    }

    /// Whether the fast path runs on these fronts.
    #[inline(always)]
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Switches the fronts off for good (before the cache is shared).
    pub(crate) fn disable(&self) {
        self.on.store(false, Ordering::Relaxed);
    }

    /// Pops one object from this CPU's front: `Some(Some(obj))`, `Some(None)`
    /// when refused (empty, stopped), `None` when off or this thread has no
    /// rseq registration.
    ///
    /// Inline: one section and one compare; everything but a hit (refusal,
    /// abort and retry) is out of line, so the caller's fast path stays a
    /// straight line without calls.
    #[inline(always)]
    pub(crate) fn pop(&self) -> Option<Option<NonNull<u8>>> {
        if !self.is_on() {
            return None;
        }
        let res = self.pop_once();
        if res > POP_CODES_END {
            // SAFETY: any value above the codes is a round below `count`:
            // an object pointer, never null (module docs, Safety).
            return Some(Some(unsafe { NonNull::new_unchecked(res as *mut u8) }));
        }
        self.pop_not_hit(res)
    }

    /// `pop` after a section that did not hand out an object: decodes the
    /// refusal, or counts the abort and retries.
    #[cold]
    #[inline(never)]
    fn pop_not_hit(&self, mut res: usize) -> Option<Option<NonNull<u8>>> {
        loop {
            match res {
                POP_REFUSED => return Some(None),
                POP_UNREGISTERED => return None,
                POP_ABORTED => {
                    count_abort();
                    res = self.pop_once();
                }
                // SAFETY: as in `pop`.
                obj => return Some(Some(unsafe { NonNull::new_unchecked(obj as *mut u8) })),
            }
        }
    }

    /// One pop section: the object, or one of the `POP_*` codes (no object
    /// lives at an address below 4).
    #[inline(always)]
    fn pop_once(&self) -> usize {
        let res: usize;
        // SAFETY: `is_on` (checked by every caller) means `blocks` holds
        // `mask + 1` blocks at `base` and `area` is glibc's `__rseq_offset`,
        // with an area registered (module docs, Fallback); `f` points to
        // `self.hot`. The section reads `fs:[area + 4]` (cpu_id), writes
        // `fs:[area + 8]` (rseq_cs) with the address of its static
        // descriptor, and touches only the block at `cpu_id & mask`:
        // `count` and `rounds[count - 1]`, after checking `stopped == 0`
        // and `count > 0`; it commits with one store of `count` (module
        // docs, Safety). No stack, no calls.
        unsafe {
            core::arch::asm!(
                hot_prologue!(),
                "mov {a:e}, dword ptr [{t}]",
                "test {a:e}, {a:e}",
                "jz 7f",
                "sub {a:e}, 1",
                "mov {f}, qword ptr [{t} + {a} * 8 + 8]",
                "mov dword ptr [{t}], {a:e}",
                "3:",
                cold_exits!("xor {f:e}, {f:e}", "mov {f:e}, 1", "mov {f:e}, 2"),
                f = inout(reg) core::ptr::addr_of!(self.hot) => res,
                a = out(reg) _,
                t = out(reg) _,
                shift = const BLOCK_SHIFT,
                options(nostack),
            );
        }
        res
    }

    /// Pushes one object onto this CPU's front: `Some(true)` done,
    /// `Some(false)` refused (full, stopped), `None` when off or this
    /// thread has no rseq registration. Like [`pop`](Self::pop), only the
    /// commit is inline.
    #[inline(always)]
    pub(crate) fn push(&self, obj: NonNull<u8>) -> Option<bool> {
        if !self.is_on() {
            return None;
        }
        let status = self.push_once(obj);
        if status == DONE {
            return Some(true);
        }
        self.push_not_done(status, obj)
    }

    /// `push` after a section that did not commit: decodes the refusal, or
    /// counts the abort and retries.
    #[cold]
    #[inline(never)]
    fn push_not_done(&self, mut status: u32, obj: NonNull<u8>) -> Option<bool> {
        loop {
            match status {
                DONE => return Some(true),
                REFUSED => return Some(false),
                UNREGISTERED => return None,
                _ => {
                    debug_assert_eq!(status, ABORTED);
                    count_abort();
                    status = self.push_once(obj);
                }
            }
        }
    }

    /// One push section: `DONE`, `REFUSED`, `ABORTED` or `UNREGISTERED`.
    #[inline(always)]
    fn push_once(&self, obj: NonNull<u8>) -> u32 {
        let status: usize;
        // SAFETY: as in `pop_once`; the section stores `obj` into
        // `rounds[count]` after checking `count < FRONT_CAP` and
        // commits `count + 1`.
        unsafe {
            core::arch::asm!(
                hot_prologue!(),
                "mov {a:e}, dword ptr [{t}]",
                "cmp {a:e}, {cap}",
                "jae 7f",
                "mov qword ptr [{t} + {a} * 8 + 8], {obj}",
                "add {a:e}, 1",
                // The status `DONE`, set before the commit (an abort
                // overwrites it); the commit stays the last instruction.
                "xor {f:e}, {f:e}",
                "mov dword ptr [{t}], {a:e}",
                "3:",
                cold_exits!("mov {f:e}, 1", "mov {f:e}, 3", "mov {f:e}, 2"),
                f = inout(reg) core::ptr::addr_of!(self.hot) => status,
                obj = in(reg) obj.as_ptr(),
                a = out(reg) _,
                t = out(reg) _,
                shift = const BLOCK_SHIFT,
                cap = const FRONT_CAP,
                options(nostack),
            );
        }
        status as u32
    }

    /// Pushes a prefix of `objs` onto this CPU's front in one commit and
    /// returns its length (0 when off, stopped or full).
    pub(crate) fn push_batch(&self, objs: &[NonNull<u8>]) -> usize {
        if !self.is_on() || objs.is_empty() {
            return 0;
        }
        loop {
            let status: u32;
            let placed: usize;
            // SAFETY: as in `pop`. With `room = FRONT_CAP - count > 0` (refused
            // otherwise) and `m = min(room, objs.len()) >= 1`, the section
            // copies `objs[..m]` (reads within the slice) into
            // `rounds[count..count + m]` (within the block, as
            // `count + m <= FRONT_CAP`) and commits `count + m`.
            unsafe {
                core::arch::asm!(
                    cs_prologue!(),
                    "mov {n:e}, dword ptr [{t}]",
                    "mov {end:e}, {cap}",
                    "sub {end:e}, {n:e}",
                    "jbe 7f",
                    "cmp {k}, {end}",
                    "cmova {k}, {end}",
                    "lea {end}, [{n} + {k}]",
                    "5:",
                    "mov {x}, qword ptr [{src}]",
                    "add {src}, 8",
                    "mov qword ptr [{t} + {n} * 8 + 8], {x}",
                    "add {n}, 1",
                    "cmp {n}, {end}",
                    "jb 5b",
                    "mov dword ptr [{t}], {n:e}",
                    cs_epilogue!(),
                    area = in(reg) self.hot.area,
                    mask = in(reg) self.hot.mask,
                    blocks = in(reg) self.hot.base,
                    src = inout(reg) objs.as_ptr() => _,
                    k = inout(reg) objs.len() => placed,
                    t = out(reg) _,
                    n = out(reg) _,
                    end = out(reg) _,
                    x = out(reg) _,
                    st = out(reg) status,
                    shift = const BLOCK_SHIFT,
                    cap = const FRONT_CAP,
                options(nostack),
                );
            }
            match status {
                DONE => return placed,
                REFUSED | UNREGISTERED => return 0,
                _ => {
                    debug_assert_eq!(status, ABORTED);
                    count_abort();
                }
            }
        }
    }

    /// Pops up to `out.len()` objects from this CPU's front in one commit
    /// into a prefix of `out`; returns how many (0 when off, stopped or
    /// empty).
    pub(crate) fn pop_batch(&self, out: &mut [MaybeUninit<NonNull<u8>>]) -> usize {
        if !self.is_on() || out.is_empty() {
            return 0;
        }
        loop {
            let status: u32;
            let taken: usize;
            // SAFETY: as in `pop`. With `count > 0` (refused otherwise) and
            // `m = min(count, out.len()) >= 1`, the section copies
            // `rounds[count - m..count]` into `out[..m]` (writes within the
            // slice, which the caller only reads after `DONE`) and commits
            // `count - m`.
            unsafe {
                core::arch::asm!(
                    cs_prologue!(),
                    "mov {n:e}, dword ptr [{t}]",
                    "test {n:e}, {n:e}",
                    "jz 7f",
                    "cmp {k}, {n}",
                    "cmova {k}, {n}",
                    "mov {end}, {n}",
                    "sub {n}, {k}",
                    "mov {i}, {n}",
                    "5:",
                    "mov {x}, qword ptr [{t} + {i} * 8 + 8]",
                    "mov qword ptr [{dst}], {x}",
                    "add {dst}, 8",
                    "add {i}, 1",
                    "cmp {i}, {end}",
                    "jb 5b",
                    "mov dword ptr [{t}], {n:e}",
                    cs_epilogue!(),
                    area = in(reg) self.hot.area,
                    mask = in(reg) self.hot.mask,
                    blocks = in(reg) self.hot.base,
                    dst = inout(reg) out.as_mut_ptr() => _,
                    k = inout(reg) out.len() => taken,
                    t = out(reg) _,
                    n = out(reg) _,
                    end = out(reg) _,
                    i = out(reg) _,
                    x = out(reg) _,
                    st = out(reg) status,
                    shift = const BLOCK_SHIFT,
                options(nostack),
                );
            }
            match status {
                DONE => return taken,
                REFUSED | UNREGISTERED => return 0,
                _ => {
                    debug_assert_eq!(status, ABORTED);
                    count_abort();
                }
            }
        }
    }

    /// Objects in all fronts now (racy; exact when no section runs).
    pub(crate) fn cached(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.count.load(Ordering::Relaxed) as usize)
            .sum()
    }

    /// Empties every CPU's front into `out`, from any thread, with the
    /// stop / fence handshake (module docs).
    ///
    /// # Panics
    ///
    /// When the membarrier system call fails after its registration had
    /// succeeded; the fronts are then left untouched (and unstopped), so
    /// nothing is lost.
    pub(crate) fn drain_all(&self, out: &mut Vec<NonNull<u8>>) {
        if self.blocks.is_empty() {
            return;
        }
        let _serial = self.stop.lock();
        let stopped = Stopped::new(&self.blocks);
        fence(Ordering::SeqCst);
        if let Err(e) = fence_all_cpus() {
            panic!("membarrier(PRIVATE_EXPEDITED_RSEQ) failed after registration: {e}");
        }
        fence(Ordering::SeqCst);
        for b in stopped.blocks {
            let n = b.count.load(Ordering::Relaxed) as usize;
            assert!(n <= FRONT_CAP, "front count {n} out of range");
            for r in &b.rounds[..n] {
                let obj = NonNull::new(r.load(Ordering::Relaxed));
                out.push(obj.expect("null round below a front's count"));
            }
            b.count.store(0, Ordering::Relaxed);
        }
    }
}

/// `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ)` over every CPU.
/// Registers again and retries once if the kernel says the process is not
/// registered (`EPERM`: e.g. a child after `fork`, should the registration
/// not carry over).
fn fence_all_cpus() -> rustix::io::Result<()> {
    use rustix::thread::{membarrier, MembarrierCommand};
    match membarrier(MembarrierCommand::PrivateExpeditedRseq) {
        Err(rustix::io::Errno::PERM) => {
            membarrier(MembarrierCommand::RegisterPrivateExpeditedRseq)?;
            membarrier(MembarrierCommand::PrivateExpeditedRseq)
        }
        r => r,
    }
}

/// Every block's `stopped` raised while alive; lowered (release) on drop,
/// unwinding included.
struct Stopped<'a> {
    blocks: &'a [Front],
}

impl<'a> Stopped<'a> {
    fn new(blocks: &'a [Front]) -> Self {
        for b in blocks {
            b.stopped.fetch_add(1, Ordering::Relaxed);
        }
        Stopped { blocks }
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        for b in self.blocks {
            b.stopped.fetch_sub(1, Ordering::Release);
        }
    }
}

/// Counts an aborted section (the caller retries). Inline, so that the
/// fast path makes no call: a call would make the function save and
/// restore callee-saved registers on every path, the locked one included.
#[inline(always)]
fn count_abort() {
    ABORTS.fetch_add(1, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(i: usize) -> NonNull<u8> {
        NonNull::new((0x1000 + 64 * i) as *mut u8).unwrap()
    }

    /// Addresses, which (unlike pointers) may cross threads.
    fn addrs(objs: &[NonNull<u8>]) -> Vec<usize> {
        objs.iter().map(|o| o.as_ptr() as usize).collect()
    }

    /// Pins the calling thread to `cpu` (returns false when not allowed).
    fn pin(cpu: usize) -> bool {
        // SAFETY: a zeroed `cpu_set_t` is a valid empty set; the call gets
        // a valid pointer and the set's size.
        unsafe {
            let mut one: libc::cpu_set_t = core::mem::zeroed();
            libc::CPU_SET(cpu, &mut one);
            libc::sched_setaffinity(0, size_of_val(&one), &one) == 0
        }
    }

    fn fronts() -> Option<Fronts> {
        let f = Fronts::new(crate::local::ncpus().next_power_of_two());
        // valgrind / no rseq: nothing to test here; the locked fallback is
        // covered by the cache tests.
        f.is_on().then_some(f)
    }

    #[test]
    fn push_pop_and_batches_on_the_current_cpu() {
        let Some(f) = fronts() else { return };
        assert!(pin(0));
        for i in 0..FRONT_CAP {
            assert_eq!(f.push(obj(i)), Some(true), "push {i}");
        }
        assert_eq!(f.push(obj(99)), Some(false), "a full front refuses");
        assert_eq!(f.cached(), FRONT_CAP);
        assert_eq!(
            f.blocks[0].count.load(Ordering::Relaxed) as usize,
            FRONT_CAP
        );
        for i in (0..FRONT_CAP).rev() {
            assert_eq!(f.pop(), Some(Some(obj(i))), "LIFO");
        }
        assert_eq!(f.pop(), Some(None), "an empty front refuses");
        // Batches: FRONT_CAP + 9 offered, FRONT_CAP placed; take 10, then
        // the remaining FRONT_CAP - 10.
        let objs: Vec<_> = (0..FRONT_CAP + 9).map(obj).collect();
        assert_eq!(f.push_batch(&objs), FRONT_CAP);
        assert_eq!(f.push_batch(&objs), 0, "full");
        let mut out = [MaybeUninit::uninit(); 10];
        assert_eq!(f.pop_batch(&mut out), 10);
        // SAFETY: the prefix of 10 was written.
        let got: Vec<_> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
        assert_eq!(got, objs[FRONT_CAP - 10..FRONT_CAP]);
        let mut rest = [MaybeUninit::uninit(); FRONT_CAP + 1];
        assert_eq!(f.pop_batch(&mut rest), FRONT_CAP - 10);
        // SAFETY: the prefix of FRONT_CAP - 10 was written.
        let got: Vec<_> = rest[..FRONT_CAP - 10]
            .iter()
            .map(|o| unsafe { o.assume_init() })
            .collect();
        assert_eq!(got, objs[..FRONT_CAP - 10]);
        assert_eq!(f.pop_batch(&mut rest), 0, "empty");
        assert_eq!(f.cached(), 0);
    }

    #[test]
    fn a_stopped_front_refuses_and_drain_takes_everything() {
        let Some(f) = fronts() else { return };
        let cpus = crate::local::ncpus();
        let mut pushed = Vec::new();
        for cpu in 0..cpus {
            if !pin(cpu) {
                continue;
            }
            for i in 0..5 {
                let o = obj(cpu * 100 + i);
                assert_eq!(f.push(o), Some(true));
                pushed.push(o);
            }
        }
        f.blocks[0].stopped.fetch_add(1, Ordering::Relaxed);
        assert!(pin(0));
        assert_eq!(f.pop(), Some(None), "stopped");
        assert_eq!(f.push(obj(7)), Some(false), "stopped");
        assert_eq!(f.push_batch(&[obj(7)]), 0);
        f.blocks[0].stopped.fetch_sub(1, Ordering::Relaxed);
        let mut drained = Vec::new();
        f.drain_all(&mut drained);
        drained.sort();
        pushed.sort();
        assert_eq!(drained, pushed);
        assert_eq!(f.cached(), 0);
        assert!(f
            .blocks
            .iter()
            .all(|b| b.stopped.load(Ordering::Relaxed) == 0));
        assert_eq!(f.push(obj(1)), Some(true), "unstopped again");
    }

    /// A thread whose rseq area is not registered (here: unregistered on
    /// purpose) leaves every section before touching a block, and a
    /// `PerCpu` cache serves it through the locked slot.
    #[test]
    fn a_thread_without_rseq_takes_the_locked_path() {
        use crate::{Cache, CacheConfig, PerCpu};
        let Some(f) = fronts() else { return };
        let area = super::super::rseq::area_offset().expect("rseq mode has an area");
        let cache = Cache::builder("unregistered", 64)
            .capacity(64)
            .locality::<PerCpu>()
            .config(CacheConfig::default().register(false))
            .build()
            .unwrap();
        assert_eq!(cache.stats().locality, "per-cpu(rseq)");
        std::thread::scope(|s| {
            s.spawn(|| {
                let tp: usize;
                // SAFETY: on x86-64 glibc, `fs:[0]` holds the thread
                // pointer (the TCB's self pointer); a plain load.
                unsafe {
                    core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                        options(nostack, readonly, preserves_flags));
                }
                let rseq = (tp as isize + area) as *mut libc::c_void;
                // SAFETY: unregisters this thread's rseq area with the
                // arguments glibc registered it with (its address, 32
                // bytes, RSEQ_SIG); the kernel then stops updating it and
                // sets `cpu_id` to -1. Nothing else of this thread uses rseq.
                let r = unsafe { libc::syscall(libc::SYS_rseq, rseq, 32u32, 1i32, 0x5305_3053u32) };
                assert_eq!(r, 0, "rseq unregister: {}", std::io::Error::last_os_error());
                assert_eq!(f.push(obj(1)), None);
                assert_eq!(f.pop(), None);
                assert_eq!(f.push_batch(&[obj(1)]), 0);
                assert_eq!(f.pop_batch(&mut [MaybeUninit::uninit(); 4]), 0);
                assert_eq!(f.cached(), 0);
                let before = cache.stats();
                let a = cache.alloc().unwrap();
                // SAFETY: from `cache`, not used again.
                unsafe { cache.free(a) };
                let b = cache.alloc().unwrap();
                assert_eq!(a, b, "the locked slot's magazine gave it back");
                // SAFETY: as above.
                unsafe { cache.free(b) };
                let after = cache.stats();
                assert_eq!(
                    after.cpu_free - before.cpu_free,
                    2,
                    "frees went through the slot"
                );
                assert_eq!(
                    after.cpu_alloc - before.cpu_alloc,
                    1,
                    "one alloc came from the slot"
                );
            });
        });
    }

    /// A child process after `fork` keeps the fronts working: its purge
    /// (stop, membarrier, drain) reaches the object its front holds.
    #[test]
    fn fronts_work_in_a_forked_child() {
        use crate::{Cache, CacheConfig, PerCpu};
        if fronts().is_none() {
            return;
        }
        // SAFETY: the child only runs the closure below (fresh cache, the
        // heap, no locks another thread of the parent could hold except
        // malloc's, which glibc makes fork-safe) and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            let ok = std::panic::catch_unwind(|| {
                let cache = Cache::builder("forked", 64)
                    .capacity(64)
                    .locality::<PerCpu>()
                    .config(CacheConfig::default().register(false))
                    .build()
                    .unwrap();
                let a = cache.alloc().unwrap();
                // SAFETY: from `cache`, not used again.
                unsafe { cache.free(a) };
                assert_eq!(cache.stats().cached_objs, 1);
                cache.purge();
                assert_eq!(cache.stats().cached_objs, 0);
                assert_eq!(cache.layer().stats().sl_bufinuse, 0);
            })
            .is_ok();
            // SAFETY: ends the child without running the parent's atexit
            // handlers or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child failed: {status:#x}"
        );
    }

    /// More threads than CPUs pass objects through the fronts while a
    /// remote thread keeps draining: every object is seen exactly once,
    /// and the kernel aborted sections (preemption, migration, membarrier).
    #[test]
    fn contended_fronts_abort_and_lose_nothing() {
        let Some(f) = fronts() else { return };
        let f = std::sync::Arc::new(f);
        let cpus = crate::local::ncpus();
        let threads = 2 * cpus + 2;
        const PER: usize = 2_000;
        let before = rseq_aborts();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let drainer = {
            let (f, stop) = (f.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    f.drain_all(&mut got);
                    std::thread::yield_now();
                }
                addrs(&got)
            })
        };
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let f = f.clone();
                std::thread::spawn(move || {
                    let mut held: Vec<NonNull<u8>> = (0..PER).map(|i| obj(t * PER + i)).collect();
                    let mut out = Vec::new();
                    // At least 200 rounds, then on until the kernel has
                    // aborted a section (bounded: the test fails after 20 s).
                    let start = std::time::Instant::now();
                    for round in 0.. {
                        if round >= 200
                            && (rseq_aborts() > before || start.elapsed().as_secs() >= 20)
                        {
                            break;
                        }
                        if round % 20 == 0 {
                            pin((t + round / 20) % cpus);
                        }
                        // Push what we hold, then pop some back.
                        held.retain(|&o| f.push(o) != Some(true));
                        for _ in 0..8 {
                            match f.pop() {
                                Some(Some(o)) => out.push(o),
                                _ => break,
                            }
                        }
                        let mut buf = [MaybeUninit::uninit(); 8];
                        let n = f.pop_batch(&mut buf);
                        // SAFETY: the prefix `n` was written.
                        out.extend(buf[..n].iter().map(|o| unsafe { o.assume_init() }));
                        let start = out.len().saturating_sub(4);
                        let k = f.push_batch(&out[start..]);
                        out.drain(start..start + k);
                    }
                    held.extend(out);
                    addrs(&held)
                })
            })
            .collect();
        let mut all: Vec<usize> = workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        stop.store(true, Ordering::Relaxed);
        all.extend(drainer.join().unwrap());
        let mut rest = Vec::new();
        f.drain_all(&mut rest);
        all.extend(addrs(&rest));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "an object came back twice");
        assert_eq!(n, threads * PER, "an object was lost");
        let aborts = rseq_aborts() - before;
        eprintln!("rseq aborts: {aborts}");
        assert!(aborts > 0, "no critical section was aborted");
    }
}
