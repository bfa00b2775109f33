//! **libskmem.so**: the C allocator interface (`malloc`, `free`, `calloc`,
//! `realloc`, the aligned family, `malloc_usable_size`) over
//! [`skmem_alloc`]'s ladder of size classes, each a magazine cache of this
//! framework. Built as a `cdylib`, it replaces the C library's allocator in
//! an unmodified program:
//!
//! ```text
//! scripts/build-libskmem.sh            # prints target/release/libskmem.so
//! LD_PRELOAD=$PWD/target/release/libskmem.so SKMEM_SHOW_STATS=1 python3 -c 'print(1)'
//! ```
//!
//! # What this layer adds to `skmem_alloc`
//!
//! [`skmem_alloc`] allocates and frees; this crate gives those entry points
//! the exact shape C and glibc promise:
//!
//! * **errno.** Failures return `NULL` with `errno` = `ENOMEM` (no memory,
//!   sizes above `PTRDIFF_MAX`, `calloc`/`reallocarray`/`pvalloc` size
//!   overflow) or `EINVAL` (an alignment that is not a power of two where
//!   one is required, or one above `SIZE_MAX / 2 + 1` for `memalign`).
//!   [`posix_memalign`] returns the error instead and leaves `errno` and
//!   `*memptr` alone.
//! * **Zero sizes.** `malloc(0)` (and every aligned variant of size 0)
//!   returns a unique, freeable, non-`NULL` pointer. `realloc(p, 0)` with a
//!   non-`NULL` `p` frees `p` and returns `NULL` without touching `errno`,
//!   as glibc does (C23 leaves this undefined; glibc is what programs on
//!   this platform were tested against). `realloc(NULL, n)` is `malloc(n)`.
//! * **Alignment.** Every `malloc`/`calloc`/`realloc` result of 16 bytes or
//!   more is 16-byte aligned (`alignof(max_align_t)` on x86-64 and
//!   AArch64), as glibc's are and as C23 asks (an object of 16-byte
//!   alignment may be that small); smaller requests are 8-aligned, which
//!   is all an object of fewer than 16 bytes can need.
//!   `aligned_alloc` rejects an alignment that is not a power of two with
//!   `EINVAL` (glibc 2.38 and C17 DR 460); `memalign` rounds it up to the
//!   next power of two (glibc's rule); `valloc` and `pvalloc` use the page
//!   size, `pvalloc` also rounding the size up to whole pages.
//! * **Bad pointers.** `free(NULL)` does nothing. A pointer this allocator
//!   did not return (foreign, interior) is reported on stderr with its
//!   address and the process aborts, by [`skmem_alloc::free`]; nothing is
//!   followed or corrupted. A double free is caught at the call when the
//!   block is still the last one its thread freed in its class, otherwise
//!   later by the slab layer; see skmem-alloc's "What is not detected".
//! * **`SKMEM_DEBUG=guards,poison,audit,leaks|all[,continue]`** (read once,
//!   at the first allocation): skmem's run-time debug mode for every size
//!   class. The per-thread free lists are bypassed (every `malloc`/`free`
//!   goes through the class cache's checked paths, one object at a time:
//!   much slower, like libumem's `UMEM_DEBUG`), so any double free
//!   (`free(a); free(b); free(a)`), foreign or interior free is reported on
//!   stderr with the address and aborts; `guards` puts a redzone after each
//!   block (sized from the size class, so an overrun is seen from the
//!   block's usable size on: `malloc(40)` is a 48-byte block), checked on
//!   free; `poison` catches writes after free; `leaks` prints what is still
//!   out at exit (blocks resting in the class caches' magazines are listed
//!   as such, not as held by the program). `continue` reports and goes on.
//! * **glibc's other allocator entry points** (`__libc_malloc` and its
//!   siblings, `malloc_trim`, `mallopt`, `mallinfo`, `mallinfo2`,
//!   `malloc_stats`, `malloc_info`): exported here so that no program
//!   reaches glibc's allocator with one of our pointers. The `__libc_*`
//!   names are the same functions; `malloc_trim` returns freed slabs to
//!   the system, `mallinfo`/`mallinfo2`/`malloc_stats` report skmem's own
//!   counts, `mallopt` accepts and ignores glibc's tunables.
//! * **`SKMEM_SHOW_STATS=1`** (read when the library is loaded): the
//!   one-line [`skmem_alloc::print_summary`] on stderr when the process
//!   exits normally, printed from an ELF destructor that does not allocate.
//!   So that programs which close stderr at exit (coreutils does, from
//!   `atexit`) still show it, the library then keeps a close-on-exec
//!   duplicate of the initial stderr (descriptor 64 or above) and prints to
//!   it if descriptor 2 is closed by the time the destructor runs.
//!
//! # Building and installing
//!
//! `scripts/build-libskmem.sh` builds the release library and names it
//! `libskmem.so` (cargo calls it `libskmem_malloc.so`);
//! `scripts/build-libskmem.sh --install PREFIX` also installs the header
//! `include/skmem.h` (the two skmem-only functions, [`skmem_owns`] and
//! [`skmem_print_summary`]) and `skmem.pc` for `pkg-config --libs skmem`.
//! With a nightly toolchain the script compiles the thread fronts'
//! thread-locals with the initial-exec TLS model (no `__tls_get_addr` call
//! per `malloc`), which is right for a library that is preloaded or linked
//! at start-up, the two ways a malloc replacement is used; a late
//! `dlopen` of that build may fail for want of static TLS space.
//!
//! # Safety and correctness
//!
//! * Rust code inside the library allocates through
//!   [`skmem_alloc::SkmemAlloc`], the `#[global_allocator]` set below, so
//!   Rust's runtime never calls back into the exported `malloc`, and
//!   `skmem_alloc` itself allocates nothing through the global allocator:
//!   no path re-enters itself.
//! * Every exported function is `extern "C"`: a Rust panic inside one
//!   cannot unwind into C, it aborts the process.
//! * Nothing here keeps state besides three atomics (the page size, the
//!   `SKMEM_SHOW_STATS` flag and its stderr duplicate); all allocator state
//!   lives in `skmem_alloc`.

use core::ffi::{c_char, c_int, c_void};
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use skmem_alloc::SkmemAlloc;

/// Rust code in this library (and the panic machinery) allocates from the
/// same size classes as C code, without going through the exported `malloc`.
#[global_allocator]
static GLOBAL: SkmemAlloc = SkmemAlloc::new();

/// `alignof(max_align_t)` on the 64-bit platforms this library supports:
/// what glibc guarantees for every `malloc` result of at least this size.
const MAX_ALIGN: usize = 16;

/// The largest size any allocation may have (`PTRDIFF_MAX`): pointer
/// differences inside an object must be representable.
const MAX_SIZE: usize = isize::MAX as usize;

/// The largest alignment `memalign` accepts (glibc: `SIZE_MAX / 2 + 1`).
const MAX_MEMALIGN: usize = usize::MAX / 2 + 1;

fn set_errno(code: c_int) {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's whole life.
    unsafe { *libc::__errno_location() = code };
}

/// The system page size, read once (`sysconf` does not allocate).
fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let cached = PAGE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: `sysconf` only reads process parameters.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let page = usize::try_from(page)
        .ok()
        .filter(|p| p.is_power_of_two())
        .unwrap_or(4096);
    PAGE.store(page, Ordering::Relaxed);
    page
}

/// `NULL` with `errno = ENOMEM`: the common failure.
#[cold]
#[inline(never)]
fn out_of_memory() -> *mut c_void {
    set_errno(libc::ENOMEM);
    ptr::null_mut()
}

/// `NULL` with `errno = EINVAL`: a bad alignment.
#[cold]
#[inline(never)]
fn invalid_argument() -> *mut c_void {
    set_errno(libc::EINVAL);
    ptr::null_mut()
}

/// The size to ask `skmem_alloc` for so that the block is `malloc`-aligned:
/// its classes up to 128 bytes step by 8 and are only 8-aligned when not a
/// multiple of 16, so a request above 16 bytes is rounded up to a multiple
/// of 16 (a class of 16-byte alignment; every class above 128 bytes is
/// one, and larger blocks are page-aligned). A request of 16 bytes or less
/// cannot hold an object of 16-byte alignment besides one of exactly 16
/// bytes, which the 16-byte class serves.
#[inline]
fn malloc_size(size: usize) -> usize {
    if size > MAX_ALIGN && size <= skmem_alloc::MAX_SMALL {
        (size + MAX_ALIGN - 1) & !(MAX_ALIGN - 1)
    } else {
        size
    }
}

/// A `malloc`-aligned block of `size` bytes, or `NULL` (errno untouched).
#[inline]
fn allocate(size: usize) -> *mut u8 {
    if size > MAX_SIZE {
        return ptr::null_mut();
    }
    skmem_alloc::malloc(malloc_size(size))
}

/// A block of `size` bytes aligned to the power of two `align`, or `NULL`
/// (errno untouched).
fn allocate_aligned(size: usize, align: usize) -> *mut u8 {
    debug_assert!(align.is_power_of_two());
    // No object can be aligned beyond half the address space either.
    if size > MAX_SIZE || align > MAX_SIZE {
        return ptr::null_mut();
    }
    // Up to 8 every class is aligned enough. Above that only the classes
    // whose alignment reaches `align` are (a 16-byte alignment on a 1-byte
    // request must not get the 8-byte class, whatever `malloc` rounds to):
    // `skmem_alloc::aligned` picks among those.
    if align <= 8 {
        allocate(size)
    } else {
        skmem_alloc::aligned(size, align)
    }
}

/// The shared body of `memalign`, `valloc` and `pvalloc`: glibc's rules
/// (alignment 0 means none, others round up to a power of two, above
/// `SIZE_MAX / 2 + 1` is `EINVAL`).
fn memalign_impl(align: usize, size: usize) -> *mut c_void {
    if align > MAX_MEMALIGN {
        return invalid_argument();
    }
    let align = align.max(1).next_power_of_two();
    let block = allocate_aligned(size, align);
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// Allocates `size` bytes aligned for any fundamental type; C's `malloc`.
///
/// `malloc(0)` returns a unique pointer that must be freed. On failure
/// (including `size > PTRDIFF_MAX`) returns `NULL` with `errno = ENOMEM`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let block = allocate(size);
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// Frees a block from any allocation function of this library; C's `free`.
///
/// `free(NULL)` does nothing. A pointer this library did not return is
/// reported on stderr (naming the address) and the process aborts.
///
/// # Safety
///
/// `ptr` is `NULL` or a live block of this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: the caller passes NULL or a live block it gives up; a foreign
    // pointer is detected by `skmem_alloc::free`, not followed.
    unsafe { skmem_alloc::free(ptr.cast()) }
}

/// Allocates zeroed memory for `count` elements of `size` bytes; C's
/// `calloc`. A product that overflows (or exceeds `PTRDIFF_MAX`) returns
/// `NULL` with `errno = ENOMEM`; a zero product returns a unique pointer.
#[no_mangle]
pub extern "C" fn calloc(count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size).filter(|&total| total <= MAX_SIZE) else {
        return out_of_memory();
    };
    let block = skmem_alloc::calloc(1, malloc_size(total));
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// Resizes a block, keeping its contents up to the smaller size; C's
/// `realloc` with glibc's choices: `realloc(NULL, n)` is `malloc(n)`;
/// `realloc(p, 0)` frees `p` and returns `NULL` (errno untouched). On
/// failure returns `NULL` with `errno = ENOMEM` and `ptr` stays valid.
///
/// # Safety
///
/// `ptr` is `NULL` or a live block of this library; unless the result is
/// `NULL` with `size != 0`, `ptr` is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: `ptr` is a live block of ours (caller's contract).
        unsafe { skmem_alloc::free(ptr.cast()) };
        return ptr::null_mut();
    }
    if size > MAX_SIZE {
        return out_of_memory();
    }
    // SAFETY: `ptr` is a live block of ours (caller's contract); on failure
    // it is left untouched.
    let block = unsafe { skmem_alloc::realloc(ptr.cast(), malloc_size(size)) };
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// `realloc(ptr, count * size)` with the product checked; glibc's and the
/// BSDs' `reallocarray`. Overflow returns `NULL` with `errno = ENOMEM` and
/// leaves `ptr` valid.
///
/// # Safety
///
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, count: usize, size: usize) -> *mut c_void {
    let Some(total) = count.checked_mul(size) else {
        return out_of_memory();
    };
    // SAFETY: forwarded caller contract.
    unsafe { realloc(ptr, total) }
}

/// Allocates `size` bytes aligned to `align` into `*memptr`; POSIX
/// `posix_memalign`. Returns 0, `EINVAL` (`align` not a power of two times
/// `sizeof(void *)`) or `ENOMEM`; on error `*memptr` and `errno` are left
/// alone.
///
/// # Safety
///
/// `memptr` is valid for writing one pointer.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let block = allocate_aligned(size, align);
    if block.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `memptr` is writable.
    unsafe { memptr.write(block.cast()) };
    0
}

/// Allocates `size` bytes aligned to `align`; C11 `aligned_alloc`. An
/// alignment that is not a power of two returns `NULL` with `errno =
/// EINVAL`; any size is accepted (C17 dropped the multiple-of-alignment
/// rule).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return invalid_argument();
    }
    let block = allocate_aligned(size, align);
    if block.is_null() {
        return out_of_memory();
    }
    block.cast()
}

/// Allocates `size` bytes aligned to `align`, rounded up to a power of two;
/// the obsolete `memalign`. Above `SIZE_MAX / 2 + 1`: `NULL`, `EINVAL`.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    memalign_impl(align, size)
}

/// Allocates `size` bytes aligned to the page size; the obsolete `valloc`.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    memalign_impl(page_size(), size)
}

/// Allocates `size` bytes rounded up to whole pages, page-aligned; the
/// obsolete `pvalloc`. Rounding that overflows: `NULL`, `ENOMEM`.
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    let Some(rounded) = size.checked_add(page - 1) else {
        return out_of_memory();
    };
    memalign_impl(page, rounded & !(page - 1))
}

/// The number of usable bytes in the block at `ptr` (at least the size it
/// was requested with); glibc's `malloc_usable_size`. 0 for `NULL`.
///
/// # Safety
///
/// `ptr` is `NULL` or a live block of this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    // SAFETY: forwarded caller contract.
    unsafe { skmem_alloc::usable_size(ptr.cast()) }
}

/// glibc's `malloc_trim`: returns memory to the system now — flushes the
/// calling thread's cached objects, empties every class's magazines and
/// gives back every empty slab ([`skmem_alloc::reclaim`]; skmem-alloc also
/// does this on its own when classes go idle). Returns 1 if slab memory
/// was released, 0 if not, as glibc. `pad` has no meaning here.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> c_int {
    let before = skmem_alloc::summary().slab_bytes;
    skmem_alloc::reclaim();
    c_int::from(skmem_alloc::summary().slab_bytes < before)
}

/// glibc's `mallopt`: glibc's tunables (arena counts, mmap thresholds, trim
/// thresholds) have no meaning for size classes; every call is accepted
/// and ignored (returns 1, success), so that programs which tune glibc
/// carry on unchanged.
#[no_mangle]
pub extern "C" fn mallopt(_param: c_int, _value: c_int) -> c_int {
    1
}

/// glibc's `mallinfo2`, filled from skmem-alloc's [`skmem_alloc::summary`]:
/// `arena` = bytes of class slabs and metadata, `uordblks` = bytes of them
/// in use (class sizes and metadata blocks), `fordblks` = the rest,
/// `hblks` / `hblkhd` = large objects and their mapped bytes. The fields
/// that describe glibc's bins (`ordblks`, `smblks`, `usmblks`, `fsmblks`,
/// `keepcost`) are 0. Objects cached in threads' magazines count as in
/// use, so the numbers are approximate while other threads run.
#[no_mangle]
pub extern "C" fn mallinfo2() -> libc::mallinfo2 {
    let s = skmem_alloc::summary();
    let slabs = usize::try_from(s.slab_bytes).unwrap_or(usize::MAX);
    let in_use = usize::try_from(s.bytes_in_use).unwrap_or(0);
    let arena = slabs.saturating_add(s.meta_bytes);
    let used = in_use.saturating_add(s.meta_bytes).min(arena);
    libc::mallinfo2 {
        arena,
        ordblks: 0,
        smblks: 0,
        hblks: s.large_objects,
        hblkhd: s.large_bytes,
        usmblks: 0,
        fsmblks: 0,
        uordblks: used,
        fordblks: arena - used,
        keepcost: 0,
    }
}

/// glibc's older `mallinfo`: [`mallinfo2`] with each field truncated to
/// `int`, as glibc does.
#[no_mangle]
pub extern "C" fn mallinfo() -> libc::mallinfo {
    let info = mallinfo2();
    // glibc truncates the same way; the function is deprecated for it.
    let truncate = |value: usize| value as c_int;
    libc::mallinfo {
        arena: truncate(info.arena),
        ordblks: truncate(info.ordblks),
        smblks: truncate(info.smblks),
        hblks: truncate(info.hblks),
        hblkhd: truncate(info.hblkhd),
        usmblks: truncate(info.usmblks),
        fsmblks: truncate(info.fsmblks),
        uordblks: truncate(info.uordblks),
        fordblks: truncate(info.fordblks),
        keepcost: truncate(info.keepcost),
    }
}

/// glibc's `malloc_stats`: prints skmem's one-line summary on stderr
/// (glibc prints its arena statistics there too).
#[no_mangle]
pub extern "C" fn malloc_stats() {
    skmem_alloc::print_summary();
}

/// glibc's `malloc_info`: writes an empty `<malloc version="skmem"/>`
/// element to `stream` (glibc's XML has no fields that apply here).
/// `options` must be 0 (`EINVAL` otherwise, as glibc).
///
/// # Safety
///
/// `stream` is an open `FILE *`.
#[no_mangle]
pub unsafe extern "C" fn malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    if options != 0 {
        set_errno(libc::EINVAL);
        return -1;
    }
    const XML: &[u8] = b"<malloc version=\"skmem\"/>\n\0";
    // SAFETY: `XML` is NUL-terminated; `stream` is open (caller's contract).
    let written = unsafe { libc::fputs(XML.as_ptr().cast::<c_char>(), stream) };
    if written < 0 {
        -1
    } else {
        0
    }
}

/// Whether `ptr` points into memory of this allocator (any block, live or
/// free, start or interior). Exported as `skmem_owns` for C programs and
/// tests that want to see the library in use; O(1), takes no lock.
#[no_mangle]
pub extern "C" fn skmem_owns(ptr: *const c_void) -> c_int {
    c_int::from(skmem_alloc::owns(ptr.cast()))
}

/// Prints the one-line summary (what `SKMEM_SHOW_STATS=1` prints at exit)
/// on stderr now; exported as `skmem_print_summary`.
#[no_mangle]
pub extern "C" fn skmem_print_summary() {
    skmem_alloc::print_summary();
}

/// glibc's public alias of [`malloc`].
#[no_mangle]
pub extern "C" fn __libc_malloc(size: usize) -> *mut c_void {
    malloc(size)
}

/// glibc's public alias of [`free`].
///
/// # Safety
///
/// As for [`free`].
#[no_mangle]
pub unsafe extern "C" fn __libc_free(ptr: *mut c_void) {
    // SAFETY: forwarded caller contract.
    unsafe { free(ptr) }
}

/// glibc's public alias of [`calloc`].
#[no_mangle]
pub extern "C" fn __libc_calloc(count: usize, size: usize) -> *mut c_void {
    calloc(count, size)
}

/// glibc's public alias of [`realloc`].
///
/// # Safety
///
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded caller contract.
    unsafe { realloc(ptr, size) }
}

/// glibc's public alias of [`memalign`].
#[no_mangle]
pub extern "C" fn __libc_memalign(align: usize, size: usize) -> *mut c_void {
    memalign(align, size)
}

/// glibc's public alias of [`valloc`].
#[no_mangle]
pub extern "C" fn __libc_valloc(size: usize) -> *mut c_void {
    valloc(size)
}

/// glibc's public alias of [`pvalloc`].
#[no_mangle]
pub extern "C" fn __libc_pvalloc(size: usize) -> *mut c_void {
    pvalloc(size)
}

/// Whether `SKMEM_SHOW_STATS` asked for the summary at exit.
static SHOW_STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);

/// With `SKMEM_SHOW_STATS`: a close-on-exec duplicate of the stderr the
/// program started with, or -1. Programs such as coreutils close their
/// stderr in an `atexit` handler, which runs before ELF destructors; the
/// summary then goes to this duplicate.
static STARTUP_STDERR: AtomicI32 = AtomicI32::new(-1);

/// Runs when the library is loaded (before `main` for a preloaded or linked
/// library): reads `SKMEM_SHOW_STATS` once, since a program may change its
/// environment later. Any value other than empty or `0` turns it on.
extern "C" fn read_environment_at_load() {
    // SAFETY: the name is NUL-terminated; `getenv` returns NULL or a
    // NUL-terminated string owned by the environment, read at once.
    let wanted = unsafe {
        let value = libc::getenv(c"SKMEM_SHOW_STATS".as_ptr());
        !value.is_null() && *value != 0 && !(*value == b'0' as c_char && *value.add(1) == 0)
    };
    if wanted {
        // Above the low descriptors a program may expect to be free.
        // SAFETY: `fcntl` on a descriptor number; fails cleanly if fd 2
        // is not open.
        let copy = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_DUPFD_CLOEXEC, 64) };
        STARTUP_STDERR.store(copy, Ordering::Relaxed);
    }
    SHOW_STATS_AT_EXIT.store(wanted, Ordering::Relaxed);
}

/// Runs at normal process exit (from `exit` or `main` returning, after the
/// program's own destructors): prints the summary if asked. Registered as an
/// ELF destructor rather than with `atexit`, which may allocate.
extern "C" fn print_summary_at_exit() {
    if !SHOW_STATS_AT_EXIT.load(Ordering::Relaxed) {
        return;
    }
    let copy = STARTUP_STDERR.load(Ordering::Relaxed);
    // SAFETY: `fcntl(F_GETFD)` only asks whether descriptor 2 is open.
    let stderr_closed = unsafe { libc::fcntl(libc::STDERR_FILENO, libc::F_GETFD) } == -1;
    if stderr_closed && copy >= 0 {
        // SAFETY: `copy` is our own descriptor; descriptor 2 is closed, so
        // `dup2` takes nothing from the program, and it is closed again.
        unsafe {
            libc::dup2(copy, libc::STDERR_FILENO);
            skmem_alloc::print_summary();
            libc::close(libc::STDERR_FILENO);
        }
    } else {
        skmem_alloc::print_summary();
    }
}

#[used]
#[link_section = ".init_array"]
static READ_ENVIRONMENT_AT_LOAD: extern "C" fn() = read_environment_at_load;

#[used]
#[link_section = ".fini_array"]
static PRINT_SUMMARY_AT_EXIT: extern "C" fn() = print_summary_at_exit;
