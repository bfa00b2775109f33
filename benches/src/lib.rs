//! The shared harness of the skmem benchmarks.
//!
//! Every contender — skmem's layers, general-purpose allocators, and the
//! object pools Rust users pick today — is wrapped as an [`ObjPool`]: a
//! source of fixed-size objects with `get`/`put` and batch variants. The
//! workloads in [`workload`] are generic over that trait, so every contender
//! runs *the same code* around its own two calls, with the same object size
//! and the same access pattern. The criterion harness (`benches/wall.rs`) and
//! the iai-callgrind harness (`benches/iai.rs`) both build on this crate.
//!
//! | module | what it holds |
//! |---|---|
//! | [`peers`] | `System`, mimalloc, jemalloc (each called through `GlobalAlloc` directly, never as the global allocator), `sharded-slab`, `lockfree-object-pool`, a `Vec` free-stack pool as in ixy.rs |
//! | [`skmem`] | the slab cache alone and the magazine cache per `CpuLocal` policy |
//! | [`ctor`] | an object with an expensive constructor, for the constructed-object reuse workload |
//! | [`ring`] | a lock-free single-producer single-consumer ring (the producer/consumer hand-off) |
//! | [`workload`] | single pair, random working-set replace, batch, burst, two threads doing pairs, producer/consumer through the ring |
//!
//! # Object size
//!
//! The primary size is [`OBJ_SIZE`] (64 B, one cache line: the size of a
//! small packet descriptor or a tree node); [`OBJ_SIZE_LARGE`] (256 B) is the
//! secondary one. General-purpose allocators are asked for
//! `Layout::from_size_align(size, 8)`, their best case (skmem hands out
//! cache-line aligned objects, which is more than the peers are asked for).

pub mod ctor;
pub mod peers;
pub mod ring;
pub mod skmem;
pub mod workload;

use core::ptr::NonNull;

/// The primary object size, in bytes.
pub const OBJ_SIZE: usize = 64;
/// The secondary object size, in bytes.
pub const OBJ_SIZE_LARGE: usize = 256;
/// The number of objects in the burst workload: far more than a magazine
/// (or two) holds, so a burst goes through the depot and the slab layer.
pub const BURST: usize = 4096;
/// How many objects a fixed-capacity contender (the `Vec` free stack, the
/// skmem regions) is built to hold: enough for every workload's peak.
pub const POOL_CAPACITY: usize = 16 * 1024;
/// The batch sizes measured.
pub const BATCHES: [usize; 2] = [32, 256];

/// An object handed out by a pointer-based contender.
///
/// `Send` because the object is plain memory owned by whoever holds the
/// handle; the producer/consumer workload sends handles across threads.
#[repr(transparent)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ptr(pub NonNull<u8>);

// SAFETY: a `Ptr` is the exclusive claim on one allocated object of plain
// bytes; moving the claim to another thread is what freeing it there means,
// and every contender wrapped here allows frees from any thread.
unsafe impl Send for Ptr {}

/// A source of fixed-size objects, as the workloads see it.
///
/// A contender whose objects are reached through a key (`sharded-slab`) or
/// a guard (`lockfree-object-pool`) uses that as its handle; the workloads
/// only move handles around and [`read`](Self::read) through them.
pub trait ObjPool {
    /// What `get` hands out: a pointer, a key or a guard.
    type Handle<'a>
    where
        Self: 'a;

    /// Takes one object. Panics if the contender is exhausted (a benchmark
    /// misconfiguration, never an expected outcome).
    fn get(&self) -> Self::Handle<'_>;

    /// Gives one object back.
    ///
    /// # Safety
    ///
    /// `h` was returned by `get` or `get_batch` on this very pool and has not
    /// been given back since.
    unsafe fn put<'a>(&'a self, h: Self::Handle<'a>);

    /// Reads the `u32` at word index `word` of the object behind `h`
    /// (through whatever access path the contender offers).
    fn read(&self, h: &Self::Handle<'_>, word: usize) -> u32;

    /// Takes `n` objects, appending them to `out` (whose capacity the caller
    /// has reserved). The default takes them one by one.
    #[inline]
    fn get_batch<'a>(&'a self, out: &mut Vec<Self::Handle<'a>>, n: usize) {
        for _ in 0..n {
            out.push(self.get());
        }
    }

    /// Gives back every object in `hs`, leaving it empty. The default gives
    /// them back one by one.
    ///
    /// # Safety
    ///
    /// As for [`put`](Self::put), for every handle in `hs`.
    #[inline]
    unsafe fn put_batch<'a>(&'a self, hs: &mut Vec<Self::Handle<'a>>) {
        for h in hs.drain(..) {
            // SAFETY: the caller vouches for every handle in `hs`.
            unsafe { self.put(h) };
        }
    }
}

/// Reads the `u32` at word index `word` of the object at `p`.
///
/// # Safety
///
/// `p` points at a live object of at least `4 * (word + 1)` bytes, aligned
/// for `u32`, that no one writes concurrently.
#[inline]
pub unsafe fn read_word(p: NonNull<u8>, word: usize) -> u32 {
    // SAFETY: the caller guarantees the object is live, large enough and
    // aligned; a raw read forms no reference into it.
    unsafe { p.cast::<u32>().add(word).read() }
}
