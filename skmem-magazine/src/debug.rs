//! The magazine layer's debug path (see `skmem_slab::debug`).
//!
//! A cache whose layer beneath is in debug mode never enables the
//! magazines of its CPU slots (and switches its lock-free front off, as a
//! cache without magazines does): every `alloc` and `free` misses the empty
//! slot and falls into the existing slow paths, which hand the call to
//! [`DebugMags`]. The fast paths themselves carry no debug code, so caches
//! without debug flags run exactly as before.
//!
//! [`DebugMags`] is one locked magazine, a FIFO of up to a magazine's worth
//! of objects (FIFO, so that a freed object rests as long as possible and a
//! write after free has time to show). Every free is validated by the layer
//! beneath against its record *before* the object enters it (double free,
//! foreign and interior pointers, redzone), and every object leaving it is
//! checked (freed pattern, redzone). Objects of constructed caches stay
//! constructed in it and are not poisoned; with
//! [`POISON`](skmem_slab::DebugFlags::POISON) such a cache keeps no object
//! here at all, so that every free reaches the slab layer, where the
//! destructor runs and the pattern is written.
//!
//! # Invariants
//!
//! Every pointer in the FIFO is an object of the layer beneath that the
//! layer marked as resting in a magazine and nobody else holds; it leaves
//! the FIFO only through the layer's `debug_from_magazine`.

use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::collections::VecDeque;

use crate::sync::Mutex;
use skmem_slab::DebugFlags;

use crate::cache::CacheConfig;
use crate::layer::ObjectLayer;

/// Object pointers resting in the debug magazine.
struct Fifo(VecDeque<NonNull<u8>>);

// SAFETY: the pointers are objects of the cache, only handed between
// threads under the mutex; nothing is dereferenced here.
unsafe impl Send for Fifo {}

/// The debug magazine of one cache.
pub(crate) struct DebugMags {
    fifo: Mutex<Fifo>,
    cap: usize,
}

impl DebugMags {
    /// The debug magazine for a cache over `below` whose magazines would
    /// hold `rounds`; `None` when `below` is not in debug mode.
    pub(crate) fn for_layer(
        below: &dyn ObjectLayer,
        rounds: u32,
        config: &CacheConfig,
    ) -> Option<Self> {
        let flags = below.debug_flags();
        if !flags.enabled() {
            return None;
        }
        let cap = if config.no_magazines
            || (flags.contains(DebugFlags::POISON) && below.is_constructed())
        {
            0
        } else {
            rounds as usize
        };
        Some(DebugMags {
            fifo: Mutex::new(Fifo(VecDeque::with_capacity(cap))),
            cap,
        })
    }

    /// Objects resting here.
    pub(crate) fn len(&self) -> usize {
        self.fifo.lock().0.len()
    }

    /// Fills a prefix of `out` from the magazine (oldest first), each
    /// object checked by `below`; returns the count.
    pub(crate) fn take(
        &self,
        below: &dyn ObjectLayer,
        out: &mut [MaybeUninit<NonNull<u8>>],
    ) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(obj) = self.fifo.lock().0.pop_front() else {
                break;
            };
            // SAFETY: `obj` was taken in by `debug_to_magazine` and just
            // left the FIFO: this call alone holds it.
            unsafe { below.debug_from_magazine(obj) };
            out[n].write(obj);
            n += 1;
        }
        n
    }

    /// Frees `objs`: into the magazine while it has room (each validated by
    /// `below` first; a refused free is dropped after its report), else
    /// straight to `below`.
    ///
    /// # Safety
    ///
    /// As [`Cache::free`](crate::Cache::free) for each element.
    pub(crate) unsafe fn free(&self, below: &dyn ObjectLayer, objs: &[NonNull<u8>]) {
        for &obj in objs {
            let mut fifo = self.fifo.lock();
            if fifo.0.len() < self.cap {
                // SAFETY: forwarded from the caller; a validated object is
                // kept here until `take` or `drain` hands it on.
                if unsafe { below.debug_to_magazine(obj) } {
                    fifo.0.push_back(obj);
                }
            } else {
                drop(fifo);
                // SAFETY: forwarded from the caller; `below` validates it.
                unsafe { below.free(obj) };
            }
        }
    }

    /// Gives every resting object back to `below` (purge, drop), each
    /// checked on the way out.
    pub(crate) fn drain(&self, below: &dyn ObjectLayer) {
        let objs: Vec<NonNull<u8>> = self.fifo.lock().0.drain(..).collect();
        for &obj in &objs {
            // SAFETY: each object left the FIFO above and is held by this
            // call alone.
            unsafe { below.debug_from_magazine(obj) };
        }
        if !objs.is_empty() {
            // SAFETY: objects of `below`, marked held again above, held by
            // nobody else.
            unsafe { below.free_batch(&objs) };
        }
    }
}
