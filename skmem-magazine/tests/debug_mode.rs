//! The debug mode end to end: each detection triggered on purpose, in a
//! child process (this test binary run again on one test, with
//! `SKMEM_DEBUG_CHILD` set), whose stderr and exit status are asserted:
//! the report's content, and an abort (SIGABRT) by default. The
//! report-and-continue mode is tested in process.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use skmem_magazine::{Cache, DebugFlags, Global, PerCpu, PerThread};
use skmem_slab::Heap;
use skmem_slab::SlabCache;

const CHILD: &str = "SKMEM_DEBUG_CHILD";

/// The report count is process-wide: tests that read it run one at a time.
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn counting() -> std::sync::MutexGuard<'static, ()> {
    COUNTING.lock().unwrap_or_else(|e| e.into_inner())
}

fn in_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs test `name` of this binary in a child process (with extra
/// environment `env`) and returns its output.
fn child(name: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("SKMEM_DEBUG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_aborted(out: &Output) {
    assert_eq!(
        out.status.signal(),
        Some(libc_sigabrt()),
        "child should abort; status {:?}, stderr:\n{}",
        out.status,
        stderr(out)
    );
}

fn libc_sigabrt() -> i32 {
    6
}

/// The address a child printed on a line `ADDR <hex>` (stdout).
fn printed(out: &Output, key: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    // The harness prints `test <name> ... ` before the first line.
    let tag = format!("{key} ");
    text.lines()
        .find_map(|l| {
            let at = l.find(&tag)?;
            let ok = at == 0 || l.as_bytes()[at - 1] == b' ';
            ok.then(|| l[at + tag.len()..].split_whitespace().next().unwrap_or(""))
        })
        .unwrap_or_else(|| panic!("child printed no {key}: {text}"))
        .to_owned()
}

type DebugCache<L = PerThread> = Cache<SlabCache<Heap>, L>;

fn cache<L: skmem_magazine::CpuLocal>(name: &str, size: usize, flags: DebugFlags) -> DebugCache<L> {
    Cache::builder(name, size)
        .capacity(64)
        .locality::<L>()
        .debug(flags)
        .build()
        .unwrap()
}

#[test]
fn double_free_through_a_magazine_is_reported_with_audit_and_aborts() {
    if in_child() {
        let c = cache::<PerThread>("dbl", 64, DebugFlags::ALL);
        let a = c.alloc().unwrap();
        println!("ADDR {:#x}", a.as_ptr() as usize);
        // SAFETY: allocated above; the second free is the bug under test.
        unsafe {
            c.free(a);
            c.free(a);
        }
        println!("NOT REACHED");
        return;
    }
    let out = child(
        "double_free_through_a_magazine_is_reported_with_audit_and_aborts",
        &[],
    );
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = printed(&out, "ADDR");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `dbl`: {addr}: double free: the object was already freed and rests in a magazine"
        )),
        "{err}"
    );
    // Audit: the free into the magazine and the allocation, newest first.
    let into = err.find("free (into magazine)").expect(&err);
    let alloc = err.find("    alloc ").expect(&err);
    assert!(into < alloc, "{err}");
    assert!(err.contains("callers 0x"), "{err}");
    assert!(err.contains("skmem debug: aborting"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("NOT REACHED"));
}

#[test]
fn double_free_report_and_continue_keeps_the_cache_sound() {
    let _serial = counting();
    // In process: the double free is reported and refused; the next two
    // allocations are distinct (without the debug mode they would both be
    // `a`).
    for flags in [DebugFlags::AUDIT, DebugFlags::ALL] {
        let c = cache::<Global>("dbl-continue", 64, flags | DebugFlags::CONTINUE);
        let a = c.alloc().unwrap();
        let before = skmem_slab::debug::report_count();
        // SAFETY: allocated above; the second free is refused.
        unsafe {
            c.free(a);
            c.free(a);
        }
        assert_eq!(skmem_slab::debug::report_count(), before + 1);
        let x = c.alloc().unwrap();
        let y = c.alloc().unwrap();
        assert_ne!(
            x, y,
            "a refused double free must not hand an object out twice"
        );
        // SAFETY: allocated above, freed once.
        unsafe {
            c.free(x);
            c.free(y);
        }
        c.purge();
        assert_eq!(c.stats().slab.sl_bufinuse, 0);
        c.layer().check_invariants().unwrap();
    }
}

#[test]
fn double_free_with_percpu_locality_is_caught_too() {
    let _serial = counting();
    let c = cache::<PerCpu>("dbl-percpu", 64, DebugFlags::AUDIT | DebugFlags::CONTINUE);
    let a = c.alloc().unwrap();
    let before = skmem_slab::debug::report_count();
    // SAFETY: allocated above; the second free is refused.
    unsafe {
        c.free(a);
        c.free(a);
    }
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
    assert_ne!(c.alloc().unwrap(), c.alloc().unwrap());
}

#[test]
fn foreign_pointer_from_another_cache_is_reported() {
    if in_child() {
        let mine = cache::<PerThread>("mine", 64, DebugFlags::GUARDS);
        let other = cache::<PerThread>("other", 64, DebugFlags::empty());
        let b = other.alloc().unwrap();
        println!("ADDR {:#x}", b.as_ptr() as usize);
        // SAFETY: the bug under test: `b` belongs to `other`.
        unsafe { mine.free(b) };
        return;
    }
    let out = child("foreign_pointer_from_another_cache_is_reported", &[]);
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = printed(&out, "ADDR");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `mine`: {addr}: free of a foreign pointer: not an object of this cache"
        )),
        "{err}"
    );
}

#[test]
fn interior_pointer_is_reported_with_its_object_and_offset() {
    if in_child() {
        let c = cache::<PerThread>("interior", 64, DebugFlags::POISON);
        let a = c.alloc().unwrap();
        println!("ADDR {:#x}", a.as_ptr() as usize);
        // SAFETY: the bug under test: 24 bytes into `a`.
        unsafe { c.free(NonNull::new_unchecked(a.as_ptr().add(24))) };
        return;
    }
    let out = child(
        "interior_pointer_is_reported_with_its_object_and_offset",
        &[],
    );
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = usize::from_str_radix(printed(&out, "ADDR").trim_start_matches("0x"), 16).unwrap();
    assert!(
        err.contains(&format!(
            "skmem debug: cache `interior`: {:#x}: free of an interior pointer: 24 bytes into object {addr:#x}",
            addr + 24
        )),
        "{err}"
    );
}

/// Writes `len` zero bytes from `offset` of a fresh object, frees it, and
/// prints the object's address.
fn overrun_child(name: &str, offset: usize, len: usize) {
    let c = cache::<PerThread>(name, 64, DebugFlags::GUARDS | DebugFlags::AUDIT);
    let a = c.alloc().unwrap();
    println!("ADDR {:#x}", a.as_ptr() as usize);
    // SAFETY: the bug under test: a write past the 64-byte object, into
    // its redzone (inside its chunk, so no other object is hit).
    unsafe { std::ptr::write_bytes(a.as_ptr().add(offset), 0, len) };
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
}

#[test]
fn overrun_by_one_byte_is_reported_at_offset_64() {
    if in_child() {
        return overrun_child("over1", 64, 1);
    }
    let out = child("overrun_by_one_byte_is_reported_at_offset_64", &[]);
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = printed(&out, "ADDR");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `over1`: {addr}: redzone damaged (buffer overrun): first damaged byte at offset 64, byte 1 past the end of the object (object size 64)"
        )),
        "{err}"
    );
    assert!(err.contains("    free "), "audit shows the free: {err}");
}

#[test]
fn overrun_by_sixteen_bytes_is_reported() {
    if in_child() {
        // Only the 16th byte past the end: the first damaged one.
        return overrun_child("over16", 64 + 15, 1);
    }
    let out = child("overrun_by_sixteen_bytes_is_reported", &[]);
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = printed(&out, "ADDR");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `over16`: {addr}: redzone damaged (buffer overrun): first damaged byte at offset 79, byte 16 past the end of the object (object size 64)"
        )),
        "{err}"
    );
}

#[test]
fn overrun_of_sixteen_bytes_in_continue_mode_is_counted_and_the_free_goes_on() {
    let _serial = counting();
    let c = cache::<Global>(
        "over16-continue",
        64,
        DebugFlags::GUARDS | DebugFlags::CONTINUE,
    );
    let a = c.alloc().unwrap();
    let before = skmem_slab::debug::report_count();
    // SAFETY: the bug under test: 16 bytes past the object, in its redzone.
    unsafe { std::ptr::write_bytes(a.as_ptr().add(64), 0x41, 16) };
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
    // The redzone was rewritten: the object comes back clean.
    let b = c.alloc().unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { c.free(b) };
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
}

#[test]
fn use_after_free_write_into_a_magazine_is_reported_with_its_offset() {
    if in_child() {
        let c = cache::<PerThread>("uaf", 64, DebugFlags::POISON | DebugFlags::AUDIT);
        let a = c.alloc().unwrap();
        println!("ADDR {:#x}", a.as_ptr() as usize);
        // SAFETY: allocated above, freed once.
        unsafe { c.free(a) };
        // SAFETY: the bug under test: a write after free (the object
        // rests, poisoned, in the debug magazine).
        unsafe { a.as_ptr().add(40).write(0) };
        let b = c.alloc().unwrap();
        println!("AGAIN {:#x}", b.as_ptr() as usize);
        return;
    }
    let out = child(
        "use_after_free_write_into_a_magazine_is_reported_with_its_offset",
        &[],
    );
    assert_aborted(&out);
    let err = stderr(&out);
    let addr = printed(&out, "ADDR");
    assert!(
        err.contains(&format!(
            "skmem debug: cache `uaf`: {addr}: use after free: freed object written at offset 40 while resting in a magazine (object size 64)"
        )),
        "{err}"
    );
    assert!(err.contains("alloc (from magazine)"), "{err}");
}

#[test]
fn poison_patterns_are_visible_and_writes_after_free_in_the_slab_are_caught() {
    let _serial = counting();
    // Straight on a slab cache (no magazine): the uninitialised pattern on
    // allocation, the freed pattern checked when handed out again.
    let region = skmem_slab::Region::<Heap>::new(
        skmem_slab::RegionParams::new("poison-slab", 64, 8).seg_size(64 * 8),
        Default::default(),
    )
    .unwrap();
    let slab = SlabCache::new(
        region,
        skmem_slab::SlabConfig::new("poison-slab", 64)
            .debug(DebugFlags::POISON | DebugFlags::CONTINUE),
        skmem_traits::NoCtor,
    )
    .unwrap();
    let a = slab
        .alloc_with(skmem_magazine::AllocFlags::NoSleep)
        .unwrap();
    // SAFETY: 64 bytes of an object we hold.
    let bytes = unsafe { std::slice::from_raw_parts(a.as_ptr(), 64) }.to_vec();
    assert_eq!(
        &bytes[..4],
        &skmem_slab::debug::UNINIT_PATTERN.to_le_bytes(),
        "new objects carry the uninitialised pattern"
    );
    // SAFETY: allocated above, freed once.
    unsafe { slab.free(a) };
    // SAFETY: 64 bytes of the freed (not released: the slab is cached)
    // object.
    let freed = unsafe { std::slice::from_raw_parts(a.as_ptr(), 64) }.to_vec();
    assert_eq!(&freed[..4], &skmem_slab::debug::FREE_PATTERN.to_le_bytes());
    // SAFETY: the bug under test: a write into a free object.
    unsafe { a.as_ptr().add(9).write(7) };
    let before = skmem_slab::debug::report_count();
    let b = slab
        .alloc_with(skmem_magazine::AllocFlags::NoSleep)
        .unwrap();
    assert_eq!(b, a, "the slab hands the same object out again");
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
    // SAFETY: allocated above, freed once.
    unsafe { slab.free(b) };
    slab.check_invariants().unwrap();
}

#[test]
fn try_free_of_a_bad_address_is_an_error_naming_it_in_debug_mode() {
    let c = cache::<Global>("try", 64, DebugFlags::GUARDS);
    let a = c.alloc().unwrap();
    // SAFETY: allocated above, freed once through the slab layer.
    unsafe { c.layer().try_free(a.as_ptr()) }.unwrap();
    // SAFETY: the second free is refused with an error.
    let err = unsafe { c.layer().try_free(a.as_ptr()) }.unwrap_err();
    assert!(err.to_string().contains("double free"), "{err}");
}

/// A `tracing` subscriber counting error events (no formatting).
struct CountErrors(&'static AtomicUsize);

impl tracing::Subscriber for CountErrors {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn leak_child(with_subscriber: bool) {
    static EVENTS: AtomicUsize = AtomicUsize::new(0);
    if with_subscriber {
        tracing::subscriber::set_global_default(CountErrors(&EVENTS)).unwrap();
    }
    let c = cache::<PerThread>("leaky", 64, DebugFlags::LEAKS | DebugFlags::AUDIT);
    let a = c.alloc().unwrap();
    let b = c.alloc().unwrap();
    let rests = c.alloc().unwrap();
    // SAFETY: allocated above, freed once (it rests in the magazine and is
    // given back at drop: not a leak).
    unsafe { c.free(rests) };
    println!("ADDR {:#x}", a.as_ptr() as usize);
    println!("ADDR2 {:#x}", b.as_ptr() as usize);
    drop(c);
    println!("EVENTS {}", EVENTS.load(Ordering::SeqCst));
}

fn assert_leak_report(out: &Output) {
    assert!(
        out.status.success(),
        "a leak report does not abort: {}",
        stderr(out)
    );
    let err = stderr(out);
    assert!(
        err.contains(
            "skmem debug: cache `leaky`: leak report at drop: 2 objects still out (2 held by users, 0 in magazines)"
        ),
        "{err}"
    );
    for key in ["ADDR", "ADDR2"] {
        let addr = printed(out, key);
        assert!(
            err.contains(&format!("  object {addr} (held by a user)")),
            "{err}"
        );
    }
    assert_eq!(
        err.matches("    alloc ").count(),
        2,
        "one alloc each: {err}"
    );
}

#[test]
fn leak_at_drop_is_reported_on_stderr_without_a_subscriber() {
    if in_child() {
        return leak_child(false);
    }
    let out = child(
        "leak_at_drop_is_reported_on_stderr_without_a_subscriber",
        &[],
    );
    assert_leak_report(&out);
    assert_eq!(printed(&out, "EVENTS"), "0");
}

#[test]
fn leak_at_drop_is_reported_on_stderr_and_to_a_subscriber() {
    if in_child() {
        return leak_child(true);
    }
    let out = child(
        "leak_at_drop_is_reported_on_stderr_and_to_a_subscriber",
        &[],
    );
    assert_leak_report(&out);
    let events: usize = printed(&out, "EVENTS").parse().unwrap();
    assert!(events >= 1, "the subscriber saw the leak report");
}

#[test]
fn leaks_of_a_cache_alive_at_exit_are_reported_at_exit() {
    if in_child() {
        let c = cache::<PerThread>("immortal", 64, DebugFlags::LEAKS);
        let a = c.alloc().unwrap();
        println!("ADDR {:#x}", a.as_ptr() as usize);
        std::mem::forget(c);
        return;
    }
    let out = child("leaks_of_a_cache_alive_at_exit_are_reported_at_exit", &[]);
    assert!(out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("skmem debug: cache `immortal`: leak report at process exit: 1 objects still out (1 held by users, 0 in magazines)"),
        "{err}"
    );
    assert!(err.contains(&format!(
        "object {} (held by a user)",
        printed(&out, "ADDR")
    )));
}

#[test]
fn skmem_debug_environment_variable_switches_caches_on() {
    if in_child() {
        // No per-cache flags: the builder starts from SKMEM_DEBUG.
        let c: DebugCache = Cache::builder("from-env", 64).capacity(8).build().unwrap();
        println!("FLAGS {}", c.layer().debug_flags().bits());
        let a = c.alloc().unwrap();
        // SAFETY: the second free is refused (continue mode).
        unsafe {
            c.free(a);
            c.free(a);
        }
        println!("REPORTS {}", skmem_slab::debug::report_count());
        return;
    }
    let out = child(
        "skmem_debug_environment_variable_switches_caches_on",
        &[("SKMEM_DEBUG", "all,continue")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        printed(&out, "FLAGS"),
        (DebugFlags::ALL | DebugFlags::CONTINUE).bits().to_string()
    );
    assert_eq!(printed(&out, "REPORTS"), "1");
    assert!(stderr(&out).contains("double free"));
}

#[test]
fn caches_without_flags_are_not_in_debug_mode() {
    let c = cache::<Global>("plain", 64, DebugFlags::empty());
    assert!(c.layer().debug_flags().is_empty());
    let a = c.alloc().unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
    assert_eq!(
        c.stats().cpu_rounds,
        1,
        "the object rests in a CPU magazine"
    );
}

/// Writes a magic word at the start of each object; counts calls.
#[derive(Default)]
struct Stamp {
    built: AtomicUsize,
    torn: AtomicUsize,
}

const MAGIC: u64 = 0x5354_414d_5053_4b4d;

impl skmem_traits::ObjectCtor for Stamp {
    fn construct(
        &self,
        obj: skmem_traits::ObjectInfo,
        _: Option<skmem_traits::ObjectInfo>,
        _: skmem_magazine::AllocFlags,
    ) -> skmem_traits::Result<()> {
        // SAFETY: the slab layer hands the constructor an object it owns.
        unsafe { obj.addr.as_ptr().cast::<u64>().write_unaligned(MAGIC) };
        self.built.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn destruct(&self, obj: skmem_traits::ObjectInfo, _: Option<skmem_traits::ObjectInfo>) {
        // SAFETY: as above.
        let word = unsafe { obj.addr.as_ptr().cast::<u64>().read_unaligned() };
        assert_eq!(
            word, MAGIC,
            "destructed an object whose constructed state was lost"
        );
        self.torn.fetch_add(1, Ordering::SeqCst);
    }
}

fn stamped(name: &str, flags: DebugFlags) -> Cache<SlabCache<Heap, std::sync::Arc<Stamp>>, Global> {
    Cache::builder(name, 64)
        .capacity(16)
        .locality::<Global>()
        .ctor(std::sync::Arc::new(Stamp::default()))
        .debug(flags)
        .build()
        .unwrap()
}

#[test]
fn constructed_objects_keep_their_state_in_the_debug_magazine() {
    // Without poison the debug magazine keeps constructed objects: no
    // destructor on free, none on the second allocation, state intact.
    let c = stamped("stamp-audit", DebugFlags::AUDIT | DebugFlags::GUARDS);
    let a = c.alloc().unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
    assert_eq!(c.stats().cpu_rounds, 1, "rests in the debug magazine");
    let b = c.alloc().unwrap();
    assert_eq!(b, a);
    // SAFETY: a constructed object we hold.
    assert_eq!(unsafe { b.as_ptr().cast::<u64>().read_unaligned() }, MAGIC);
    let ctor = c.layer().ctor().clone();
    assert_eq!(
        (
            ctor.built.load(Ordering::SeqCst),
            ctor.torn.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    // SAFETY: allocated above, freed once.
    unsafe { c.free(b) };
    c.purge();
    assert_eq!(ctor.torn.load(Ordering::SeqCst), 1);
}

#[test]
fn constructed_caches_with_poison_verify_on_the_way_to_the_slab_layer() {
    let _serial = counting();
    // With poison every free reaches the slab layer: destructor, then the
    // freed pattern; the next allocation checks it, then constructs.
    let c = stamped("stamp-poison", DebugFlags::POISON | DebugFlags::CONTINUE);
    let a = c.alloc().unwrap();
    // SAFETY: allocated above, freed once.
    unsafe { c.free(a) };
    let ctor = c.layer().ctor().clone();
    assert_eq!(ctor.torn.load(Ordering::SeqCst), 1, "destructed at once");
    assert_eq!(
        c.stats().cpu_rounds,
        0,
        "no constructed object rests poisoned"
    );
    // SAFETY: the freed object's memory is still the cached slab's.
    let word = unsafe { a.as_ptr().add(8).cast::<u32>().read_unaligned() };
    assert_eq!(word, skmem_slab::debug::FREE_PATTERN);
    // SAFETY: the bug under test: a write after free.
    unsafe { a.as_ptr().add(12).write(0) };
    let before = skmem_slab::debug::report_count();
    let b = c.alloc().unwrap();
    assert_eq!(b, a);
    assert_eq!(
        skmem_slab::debug::report_count(),
        before + 1,
        "write after free seen"
    );
    // SAFETY: a constructed object we hold.
    assert_eq!(unsafe { b.as_ptr().cast::<u64>().read_unaligned() }, MAGIC);
    // SAFETY: allocated above, freed once.
    unsafe { c.free(b) };
}

#[test]
fn batches_and_purge_run_the_checks() {
    let _serial = counting();
    let c = cache::<PerThread>("batch", 64, DebugFlags::ALL | DebugFlags::CONTINUE);
    let mut out = [std::mem::MaybeUninit::uninit(); 40];
    assert_eq!(
        c.alloc_batch(&mut out, skmem_magazine::AllocFlags::NoSleep),
        40
    );
    // SAFETY: `alloc_batch` initialised all 40.
    let objs: Vec<NonNull<u8>> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
    let distinct: std::collections::HashSet<_> = objs.iter().collect();
    assert_eq!(distinct.len(), 40);
    let before = skmem_slab::debug::report_count();
    // SAFETY: the bug under test: object 3 overrun by one byte.
    unsafe { objs[3].as_ptr().add(64).write(0) };
    // SAFETY: allocated above, freed once each.
    unsafe { c.free_batch(&objs) };
    assert_eq!(skmem_slab::debug::report_count(), before + 1, "the overrun");
    let cached = c.stats().cpu_rounds;
    assert!(cached > 0);
    // A write into an object resting in the magazine shows at purge.
    // SAFETY: the bug under test (the memory stays the cache's).
    unsafe { objs[0].as_ptr().add(5).write(1) };
    c.purge();
    assert_eq!(
        skmem_slab::debug::report_count(),
        before + 2,
        "write after free at purge"
    );
    assert_eq!(c.stats().cpu_rounds, 0);
    assert_eq!(c.stats().slab.sl_bufinuse, 0);
    c.layer().check_invariants().unwrap();
}

#[test]
fn skmem_debug_leaks_reports_the_cache_and_its_region_at_drop() {
    if in_child() {
        let c: DebugCache = Cache::builder("region-leak", 64)
            .capacity(8)
            .build()
            .unwrap();
        let _kept = c.alloc().unwrap();
        drop(c);
        return;
    }
    let out = child(
        "skmem_debug_leaks_reports_the_cache_and_its_region_at_drop",
        &[("SKMEM_DEBUG", "leaks")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let cache = err
        .find("skmem debug: cache `region-leak`: leak report at drop: 1 objects still out (1 held by users, 0 in magazines)")
        .expect(&err);
    let region = err
        .find("skmem debug: region `region-leak`: leak report at drop: 1 segments still in use")
        .expect(&err);
    assert!(cache < region, "the cache goes first: {err}");
}

#[test]
fn slab_chains_and_batches_run_the_debug_checks() {
    let _serial = counting();
    let region = skmem_slab::Region::<Heap>::new(
        skmem_slab::RegionParams::new("chain-slab", 80, 64),
        Default::default(),
    )
    .unwrap();
    let slab = SlabCache::new(
        region,
        skmem_slab::SlabConfig::new("chain-slab", 64)
            .batch(true)
            .debug(DebugFlags::ALL | DebugFlags::CONTINUE),
        skmem_traits::NoCtor,
    )
    .unwrap();
    let (head, n) = slab
        .alloc_chain(5, skmem_magazine::AllocFlags::NoSleep)
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(slab.stats().sl_bufinuse, 5);
    let before = skmem_slab::debug::report_count();
    // SAFETY: the chain was allocated above and is freed once.
    assert_eq!(unsafe { slab.free_chain(head) }, 5);
    assert_eq!(skmem_slab::debug::report_count(), before, "a sound chain");
    assert_eq!(slab.stats().sl_bufinuse, 0);
    // A batch with a repeated element: the repeat is reported and skipped,
    // the rest is freed.
    let mut out = [std::mem::MaybeUninit::uninit(); 3];
    assert_eq!(
        slab.alloc_batch(&mut out, skmem_magazine::AllocFlags::NoSleep),
        3
    );
    // SAFETY: `alloc_batch` initialised all three.
    let objs: Vec<NonNull<u8>> = out.iter().map(|o| unsafe { o.assume_init() }).collect();
    // SAFETY: the repeat of `objs[0]` is the bug under test.
    unsafe { slab.free_batch(&[objs[0], objs[1], objs[0], objs[2]]) };
    assert_eq!(skmem_slab::debug::report_count(), before + 1);
    assert_eq!(slab.stats().sl_bufinuse, 0);
    slab.check_invariants().unwrap();
}
