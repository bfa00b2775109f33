//! The depot: full and empty magazines shared by all CPU slots of a cache,
//! with working-set accounting.
//!
//! Each list counts its magazines (`total`) and remembers the lowest
//! `total` seen since the last update (`min`). At every update the old
//! `min` becomes the `reaplimit`: that many magazines sat in the list the
//! whole interval, unused, so they lie outside the working set and a reap
//! may give them back. Zeroing the working set makes every magazine
//! reapable (purge does that). These are the seed's `ml_min` and
//! `ml_reaplimit`; one deliberate difference: a reap lowers `reaplimit` by
//! what it took, so two reaps within one interval do not eat into the
//! working set.
//!
//! # Invariants
//!
//! Guarded by the cache's depot lock:
//!
//! * every magazine in `full` holds `rounds` valid objects, every magazine
//!   in `empty` none, and every magazine's `cap == rounds` (the cache
//!   refuses magazines of another size, and drains both lists when the size
//!   changes);
//! * `min <= total` and `reaplimit` is whatever the last update left (it is
//!   clamped by `min` when used).

use crate::magazine::{Chain, MagBox};

/// One list of the depot (the seed's `skmem_maglist`).
pub(crate) struct MagList {
    chain: Chain,
    /// Lowest `total` since the last working-set update.
    pub(crate) min: u64,
    /// Magazines that may be reaped (outside the working set).
    pub(crate) reaplimit: u64,
    /// Magazines handed out of this list so far.
    pub(crate) alloc: u64,
}

impl MagList {
    const fn new() -> Self {
        MagList {
            chain: Chain::new(),
            min: 0,
            reaplimit: 0,
            alloc: 0,
        }
    }

    /// Magazines in the list.
    pub(crate) fn total(&self) -> u64 {
        self.chain.len() as u64
    }

    /// Takes up to `n` magazines (the seed's `skmem_depot_batch_alloc`).
    pub(crate) fn take(&mut self, n: usize, out: &mut Chain) -> usize {
        let mut got = 0;
        while got < n {
            let Some(mag) = self.chain.pop() else { break };
            out.push(mag);
            got += 1;
            self.alloc += 1;
            if self.total() < self.min {
                self.min = self.total();
            }
        }
        got
    }

    /// Files one magazine.
    pub(crate) fn put(&mut self, mag: MagBox) {
        self.chain.push(mag);
    }

    /// Takes every magazine, leaving the list empty and its working set zero.
    pub(crate) fn drain(&mut self, out: &mut Chain) {
        while let Some(mag) = self.chain.pop() {
            out.push(mag);
        }
        self.min = 0;
        self.reaplimit = 0;
    }

    /// Starts a new interval: what stayed unused becomes reapable.
    fn ws_update(&mut self) {
        self.reaplimit = self.min;
        self.min = self.total();
    }

    /// Makes everything reapable; `true` if that changed anything.
    fn ws_zero(&mut self) -> bool {
        let t = self.total();
        let changed = self.reaplimit != t || self.min != t;
        self.reaplimit = t;
        self.min = t;
        changed
    }

    /// Takes the magazines outside the working set.
    fn take_reapable(&mut self, out: &mut Chain) -> usize {
        let n = self.reaplimit.min(self.min) as usize;
        let got = self.take(n, out);
        self.reaplimit -= got as u64;
        got
    }
}

/// The depot of one cache (the depot half of the seed's `skmem_cache`).
pub(crate) struct Depot {
    /// Full magazines.
    pub(crate) full: MagList,
    /// Empty magazines.
    pub(crate) empty: MagList,
    /// Current ladder step.
    pub(crate) step: usize,
    /// Rounds of the current step's magazines.
    pub(crate) rounds: u32,
    /// Times the working set was zeroed.
    pub(crate) ws_zero: u64,
    /// Contention count seen at the last update.
    pub(crate) contention_prev: u64,
    /// Set by a resize: the next update does not judge contention (the
    /// seed's `skm_depot_contention_prev = contention + INT_MAX`).
    pub(crate) skip_next_judgement: bool,
}

impl Depot {
    /// An empty depot at ladder step `step` of `rounds` rounds.
    pub(crate) const fn new(step: usize, rounds: u32) -> Self {
        Depot {
            full: MagList::new(),
            empty: MagList::new(),
            step,
            rounds,
            ws_zero: 0,
            contention_prev: 0,
            skip_next_judgement: false,
        }
    }

    /// Starts a new working-set interval on both lists.
    pub(crate) fn ws_update(&mut self) {
        self.full.ws_update();
        self.empty.ws_update();
    }

    /// Makes every magazine reapable (counted when it changed anything).
    pub(crate) fn ws_zero(&mut self) {
        let f = self.full.ws_zero();
        let e = self.empty.ws_zero();
        if f || e {
            self.ws_zero += 1;
        }
    }

    /// Takes the full and empty magazines outside the working set.
    pub(crate) fn take_reapable(&mut self, full: &mut Chain, empty: &mut Chain) -> (usize, usize) {
        (
            self.full.take_reapable(full),
            self.empty.take_reapable(empty),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::magazine::MagBox;

    fn depot_with(full: usize, empty: usize) -> Depot {
        let mut d = Depot::new(0, 2);
        for _ in 0..full {
            d.full.put(MagBox::new(2).unwrap());
        }
        for _ in 0..empty {
            d.empty.put(MagBox::new(2).unwrap());
        }
        d
    }

    #[test]
    fn unused_magazines_leave_the_working_set_after_an_interval() {
        let mut d = depot_with(5, 3);
        d.ws_update(); // interval 1 begins: min = total
        let mut c = Chain::new();
        assert_eq!(d.full.take(2, &mut c), 2); // 2 full used in interval 1
        assert_eq!(d.full.min, 3);
        for m in core::iter::from_fn(|| c.pop()) {
            d.full.put(m); // and given back
        }
        d.ws_update(); // interval 2: 3 full and 3 empty were never touched
        assert_eq!(d.full.reaplimit, 3);
        assert_eq!(d.empty.reaplimit, 3);
        let (mut f, mut e) = (Chain::new(), Chain::new());
        assert_eq!(d.take_reapable(&mut f, &mut e), (3, 3));
        assert_eq!(d.full.total(), 2);
        assert_eq!(d.empty.total(), 0);
        // A second reap in the same interval leaves the working set alone.
        let (mut f2, mut e2) = (Chain::new(), Chain::new());
        assert_eq!(d.take_reapable(&mut f2, &mut e2), (0, 0));
        assert_eq!(d.full.total(), 2);
    }

    #[test]
    fn fresh_depot_reaps_nothing_until_an_update() {
        let mut d = depot_with(4, 4);
        let (mut f, mut e) = (Chain::new(), Chain::new());
        assert_eq!(d.take_reapable(&mut f, &mut e), (0, 0));
        d.ws_update();
        assert_eq!(
            d.take_reapable(&mut f, &mut e),
            (0, 0),
            "min was 0 during the first interval"
        );
        d.ws_update();
        assert_eq!(d.take_reapable(&mut f, &mut e), (4, 4));
    }

    #[test]
    fn ws_zero_makes_everything_reapable_and_counts_once() {
        let mut d = depot_with(2, 1);
        d.ws_zero();
        assert_eq!(d.ws_zero, 1);
        d.ws_zero();
        assert_eq!(d.ws_zero, 1, "nothing changed the second time");
        let (mut f, mut e) = (Chain::new(), Chain::new());
        assert_eq!(d.take_reapable(&mut f, &mut e), (2, 1));
        assert_eq!(d.full.alloc, 2);
        assert_eq!(d.empty.alloc, 1);
    }

    #[test]
    fn drain_empties_and_resets() {
        let mut d = depot_with(3, 2);
        d.ws_zero();
        let mut c = Chain::new();
        d.full.drain(&mut c);
        d.empty.drain(&mut c);
        assert_eq!(c.len(), 5);
        assert_eq!((d.full.total(), d.full.min, d.full.reaplimit), (0, 0, 0));
    }
}
