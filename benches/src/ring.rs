//! A bounded lock-free single-producer single-consumer ring, for the
//! producer/consumer workload.
//!
//! A channel (`std::sync::mpsc`) costs about as much per message as the
//! allocators being compared, so a hand-off through one measures the
//! channel. This ring is Lamport's circular buffer with each side caching
//! the other side's index (as in folly's `ProducerConsumerQueue` and
//! rigtorp's `SPSCQueue`): a push or pop is a slot write or read plus one
//! release store of the own index, and it reads the other side's index
//! (one shared cache line) only when the cached copy says the ring looks
//! full or empty. No read-modify-write anywhere.
//!
//! # Invariants
//!
//! * `head` (next slot to pop) is written only by the one [`Consumer`],
//!   `tail` (next slot to push) only by the one [`Producer`]; both count up
//!   forever (wrapping) and index the buffer modulo its power-of-two size.
//! * Slots `head..tail` hold initialised values; the others are
//!   uninitialised. The producer writes a slot before its release store of
//!   `tail` publishes it; the consumer reads a slot before its release store
//!   of `head` hands it back. The acquire loads on the other side order
//!   those accesses, so a slot never has two accessors at once.
//! * [`SpscRing::split`] borrows the ring mutably, so at most one producer
//!   and one consumer exist at a time.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Keeps `head` and `tail` on separate cache-line pairs (adjacent-line
/// prefetch pulls lines in twos), so the two sides do not false-share.
#[repr(align(128))]
struct Padded<T>(T);

/// A bounded SPSC ring of `T`.
pub struct SpscRing<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: usize,
    head: Padded<AtomicUsize>,
    tail: Padded<AtomicUsize>,
}

// SAFETY: values cross from the producer's thread to the consumer's (hence
// `T: Send`); each slot is accessed by one side at a time as the module
// invariants describe, and the indices are atomics.
unsafe impl<T: Send> Sync for SpscRing<T> {}

impl<T> SpscRing<T> {
    /// A ring holding up to `capacity` values (rounded up to a power of two).
    ///
    /// # Panics
    ///
    /// If `capacity` is zero.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0, "SpscRing::new: capacity must be at least 1");
        let size = capacity.next_power_of_two();
        SpscRing {
            slots: (0..size)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
            mask: size - 1,
            head: Padded(AtomicUsize::new(0)),
            tail: Padded(AtomicUsize::new(0)),
        }
    }

    /// How many values the ring holds at most.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// The producer and consumer ends. The mutable borrow makes them the
    /// only ones until both are dropped.
    pub fn split(&mut self) -> (Producer<'_, T>, Consumer<'_, T>) {
        let head = self.head.0.load(Ordering::Relaxed);
        let tail = self.tail.0.load(Ordering::Relaxed);
        let ring = &*self;
        (
            Producer {
                ring,
                tail,
                head_cache: head,
            },
            Consumer {
                ring,
                head,
                tail_cache: tail,
            },
        )
    }
}

impl<T> Drop for SpscRing<T> {
    fn drop(&mut self) {
        let tail = *self.tail.0.get_mut();
        let mut head = *self.head.0.get_mut();
        while head != tail {
            // SAFETY: slots `head..tail` hold initialised values (module
            // invariants) and `&mut self` excludes every other accessor.
            unsafe { self.slots[head & self.mask].get_mut().assume_init_drop() };
            head = head.wrapping_add(1);
        }
    }
}

/// The pushing end of an [`SpscRing`].
pub struct Producer<'r, T> {
    ring: &'r SpscRing<T>,
    /// Our own index (the ring's `tail`), kept locally: only we write it.
    tail: usize,
    /// The consumer's `head` as last read.
    head_cache: usize,
}

impl<T> Producer<'_, T> {
    /// Appends `v`, or hands it back if the ring is full.
    #[inline]
    pub fn push(&mut self, v: T) -> Result<(), T> {
        let ring = self.ring;
        if self.tail.wrapping_sub(self.head_cache) > ring.mask {
            self.head_cache = ring.head.0.load(Ordering::Acquire);
            if self.tail.wrapping_sub(self.head_cache) > ring.mask {
                return Err(v);
            }
        }
        // SAFETY: the slot at `tail` is outside `head..tail` (the ring is not
        // full), so it is uninitialised and the consumer does not touch it
        // until the release store below publishes it.
        unsafe { (*ring.slots[self.tail & ring.mask].get()).write(v) };
        self.tail = self.tail.wrapping_add(1);
        ring.tail.0.store(self.tail, Ordering::Release);
        Ok(())
    }
}

/// The popping end of an [`SpscRing`].
pub struct Consumer<'r, T> {
    ring: &'r SpscRing<T>,
    /// Our own index (the ring's `head`), kept locally: only we write it.
    head: usize,
    /// The producer's `tail` as last read.
    tail_cache: usize,
}

impl<T> Consumer<'_, T> {
    /// Removes the oldest value, or `None` if the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        let ring = self.ring;
        if self.head == self.tail_cache {
            self.tail_cache = ring.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cache {
                return None;
            }
        }
        // SAFETY: `head != tail`, so the slot at `head` holds a value the
        // producer published with its release store (which our acquire load
        // ordered before this read); the producer does not reuse the slot
        // until the release store below hands it back. Reading moves the
        // value out, leaving the slot logically uninitialised.
        let v = unsafe { (*ring.slots[self.head & ring.mask].get()).assume_init_read() };
        self.head = self.head.wrapping_add(1);
        ring.head.0.store(self.head, Ordering::Release);
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_full_and_empty() {
        let mut ring = SpscRing::new(3);
        assert_eq!(ring.capacity(), 4);
        let (mut p, mut c) = ring.split();
        assert_eq!(c.pop(), None);
        for i in 0..4 {
            p.push(i).unwrap();
        }
        assert_eq!(p.push(9), Err(9), "a full ring refuses");
        assert_eq!(c.pop(), Some(0));
        p.push(4).unwrap();
        assert_eq!(
            (1..5).map(|_| c.pop().unwrap()).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        assert_eq!(c.pop(), None);
    }

    #[test]
    fn drop_releases_values_left_inside() {
        use std::sync::Arc;
        let token = Arc::new(());
        {
            let mut ring = SpscRing::new(8);
            let (mut p, mut c) = ring.split();
            for _ in 0..5 {
                p.push(Arc::clone(&token)).unwrap();
            }
            drop(c.pop());
            assert_eq!(Arc::strong_count(&token), 5);
        }
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "values left in the ring were dropped"
        );
    }

    #[test]
    fn two_threads_see_every_value_in_order() {
        const N: u64 = 200_000;
        let mut ring = SpscRing::new(64);
        let (mut p, mut c) = ring.split();
        std::thread::scope(|s| {
            s.spawn(move || {
                for i in 0..N {
                    let mut v = i;
                    while let Err(back) = p.push(v) {
                        v = back;
                        // Yield, not spin: the test machine may be loaded.
                        std::thread::yield_now();
                    }
                }
            });
            let mut want = 0;
            while want < N {
                match c.pop() {
                    Some(v) => {
                        assert_eq!(v, want);
                        want += 1;
                    }
                    None => std::thread::yield_now(),
                }
            }
        });
    }
}
