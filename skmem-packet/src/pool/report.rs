//! Statistics and the teardown check ("are all packets back?").

use std::collections::HashSet;

use skmem_traits::stats::{CacheStats, RegionStats};
use skmem_traits::{CpuLocal, SegmentSource};

use super::meta::{self, Kbuf, BUF_LARGE, NO_OWNER};
use super::{MetadataType, PacketPool};

/// A snapshot of a pool and everything beneath it. Serialisable and
/// deserialisable with the `serde` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PoolStats {
    /// Pool name.
    pub name: String,
    /// Backend name.
    pub source: String,
    /// Locality policy name.
    pub locality: String,
    /// Metadata type.
    pub md_type: MetadataType,
    /// Largest buflets per packet.
    pub max_frags: u16,
    /// Buffers on demand.
    pub on_demand: bool,
    /// No user mirror.
    pub kernel_only: bool,
    /// Closed.
    pub closed: bool,
    /// References alive.
    pub refcount: u64,
    /// Default buffer size.
    pub buf_size: u64,
    /// Large buffer size (0: none).
    pub large_buf_size: u64,
    /// Metadata objects in all.
    pub md_capacity: u64,
    /// Packets handed out and not freed (users' included):
    /// allocated from the slab layer minus resting in magazines.
    pub packets_out: u64,
    /// Buflet objects handed out (standalone or in packets).
    pub buflets_out: u64,
    /// Packets users hold.
    pub upp_packets: u64,
    /// Standalone buflets users hold.
    pub upp_buflets: u64,
    /// The metadata cache.
    pub md_cache: CacheStats,
    /// The default buflet cache (on demand).
    pub bft_def: Option<CacheStats>,
    /// The large buflet cache.
    pub bft_large: Option<CacheStats>,
    /// The default buffer cache.
    pub buf_def: CacheStats,
    /// The large buffer cache.
    pub buf_large: Option<CacheStats>,
    /// Every region: kmd, umd, kbft, ubft, buffers.
    pub regions: Vec<RegionStats>,
}

impl PoolStats {
    /// A plain-text table of the caches (for examples and logs).
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pool {} ({}, {}): {:?}, out {} packets / {} buflets, users hold {} / {}",
            self.name,
            self.source,
            self.locality,
            self.md_type,
            self.packets_out,
            self.buflets_out,
            self.upp_packets,
            self.upp_buflets
        );
        let _ = writeln!(
            s,
            "{:<28} {:>8} {:>10} {:>10} {:>8} {:>8} {:>6} {:>8}",
            "cache", "magsize", "cpu_alloc", "cpu_free", "slab_in", "cached", "slabs", "ctor"
        );
        let mut row = |c: &CacheStats| {
            let _ = writeln!(
                s,
                "{:<28} {:>8} {:>10} {:>10} {:>8} {:>8} {:>6} {:>8}",
                c.name,
                c.cpu_mag_size,
                c.cpu_alloc,
                c.cpu_free,
                c.slab.sl_bufinuse,
                c.cached_objs,
                c.slab.sl_create - c.slab.sl_destroy,
                c.slab.ctor
            );
        };
        row(&self.md_cache);
        for c in [
            &self.bft_def,
            &self.bft_large,
            &Some(self.buf_def.clone()),
            &self.buf_large,
        ]
        .into_iter()
        .flatten()
        {
            row(c);
        }
        let _ = writeln!(
            s,
            "{:<28} {:>8} {:>10} {:>10} {:>10}",
            "region", "segs", "in use", "objs", "bytes in use"
        );
        for r in &self.regions {
            let _ = writeln!(
                s,
                "{:<28} {:>8} {:>10} {:>10} {:>10}",
                r.name, r.seg_cnt, r.seginuse, r.c_obj_cnt, r.meminuse
            );
        }
        s
    }
}

impl From<&PoolStats> for skmem_traits::stats::PoolSummary {
    fn from(p: &PoolStats) -> Self {
        skmem_traits::stats::PoolSummary {
            name: p.name.clone(),
            source: p.source.clone(),
            md_capacity: p.md_capacity,
            buf_size: p.buf_size,
            packets_out: p.packets_out,
            buflets_out: p.buflets_out,
            upp_packets: p.upp_packets,
            upp_buflets: p.upp_buflets,
            meminuse: p.regions.iter().map(|r| r.meminuse).sum(),
        }
    }
}

/// What the process registry lists for a pool: a weak reference to it.
///
/// A reader that finds the pool alive holds it as a [`PacketPool`] handle
/// for the length of one `stats` call, so that if the pool's last user
/// drops it meanwhile, the teardown (purging what users hold) still runs,
/// from the reader's drop of that handle.
pub(crate) struct PoolProbe<S: SegmentSource, L: CpuLocal> {
    pool: std::sync::Weak<super::Inner<S, L>>,
}

impl<S: SegmentSource, L: CpuLocal> PoolProbe<S, L> {
    /// Lists the pool `inner` in the registry until it is dropped.
    pub(crate) fn register(inner: &std::sync::Arc<super::Inner<S, L>>) {
        let probe = std::sync::Arc::new(PoolProbe {
            pool: std::sync::Arc::downgrade(inner),
        });
        let entry =
            skmem_traits::registry::register_arc(skmem_traits::registry::Kind::Pool, &probe);
        let _ = inner.probe.set((probe, entry));
    }
}

impl<S: SegmentSource, L: CpuLocal> skmem_traits::registry::Registered for PoolProbe<S, L> {
    fn stats(&self) -> skmem_traits::registry::Stats {
        let summary = match self.pool.upgrade() {
            Some(inner) => {
                let pool = PacketPool {
                    inner: core::mem::ManuallyDrop::new(inner),
                };
                skmem_traits::stats::PoolSummary::from(&pool.stats())
            }
            // Gone between the registry's upgrade of the probe and now.
            None => skmem_traits::stats::PoolSummary::default(),
        };
        skmem_traits::registry::Stats::Pool(summary)
    }
}

/// A packet still out at a teardown check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OutstandingPacket {
    /// Metadata index.
    pub md_index: u32,
    /// The user holding it, if any.
    pub owner: Option<u32>,
    /// Buflets in its chain.
    pub buflets: u16,
    /// Packet length.
    pub len: u32,
}

/// A standalone buflet still out at a teardown check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct OutstandingBuflet {
    /// Buflet index.
    pub bft_index: u32,
    /// The user holding it, if any.
    pub owner: Option<u32>,
    /// With a large buffer.
    pub large: bool,
}

/// What is still out (see [`PacketPool::outstanding`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Outstanding {
    /// Packets not freed.
    pub packets: Vec<OutstandingPacket>,
    /// Buflets not freed and not in an outstanding packet.
    pub buflets: Vec<OutstandingBuflet>,
}

impl Outstanding {
    /// `true` when everything is back.
    pub fn is_empty(&self) -> bool {
        self.packets.is_empty() && self.buflets.is_empty()
    }
}

fn owner(o: u32) -> Option<u32> {
    (o != NO_OWNER).then_some(o)
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    /// A snapshot of the pool's statistics.
    pub fn stats(&self) -> PoolStats {
        let i = &self.inner;
        let md_cache = i.md.stats();
        let mut regions = Vec::new();
        regions.push(i.md.layer().region().stats());
        if let Some(user) = i.md.layer().region().mirror() {
            regions.push(user.0.stats());
        }
        let (mut bft_def, mut bft_large) = (None, None);
        if let Some(b) = &i.bft {
            bft_def = Some(b.def.stats());
            regions.push(b.def.layer().region().stats());
            if let Some(user) = b.def.layer().region().mirror() {
                regions.push(user.0.stats());
            }
            bft_large = b.large.as_ref().map(|l| l.stats());
        }
        let buf_def = i.bufs.def.cache.stats();
        regions.push(i.bufs.def.cache.layer().region().stats());
        let buf_large = i.bufs.large.as_ref().map(|l| {
            regions.push(l.cache.layer().region().stats());
            l.cache.stats()
        });
        let out = |c: &CacheStats| c.slab.sl_bufinuse.saturating_sub(c.cached_objs);
        let (up, ub) = self.upp_counts();
        PoolStats {
            name: i.name.clone(),
            source: S::NAME.into(),
            locality: L::NAME.into(),
            md_type: i.md_type,
            max_frags: i.max_frags,
            on_demand: i.on_demand,
            kernel_only: i.kernel_only,
            closed: self.is_closed(),
            refcount: self.refcount() as u64,
            buf_size: self.buf_size() as u64,
            large_buf_size: self.large_buf_size() as u64,
            md_capacity: i.md_capacity as u64,
            packets_out: out(&md_cache),
            buflets_out: bft_def.as_ref().map_or(0, out) + bft_large.as_ref().map_or(0, out),
            upp_packets: up as u64,
            upp_buflets: ub as u64,
            md_cache,
            bft_def,
            bft_large,
            buf_def,
            buf_large,
            regions,
        }
    }

    /// Lists every packet and standalone buflet still out: the teardown
    /// check. It first purges the metadata and buflet caches (so cached
    /// objects are not mistaken for outstanding ones), then asks the slab
    /// layer, object by object, which are allocated, and reads each one's
    /// metadata (length, buflet chain, holder). Costs time linear in the
    /// pool's size and takes the slab locks: not for fast paths.
    ///
    /// On a live pool use [`stats`](Self::stats) instead: its
    /// `packets_out`, `buflets_out` and `upp_*` counts come from counters
    /// and never touch another thread's objects.
    ///
    /// # Safety
    ///
    /// The pool is quiescent for the whole call: no other thread allocates
    /// from or frees to it, hands packets to or takes them back from users,
    /// or uses (reads or writes through the [`Packet`](super::Packet) and
    /// [`Buflet`](super::Buflet) accessors) any packet or buflet allocated
    /// from it. The metadata of packets still out is read without
    /// synchronisation, and their buflet chains are walked.
    ///
    /// ```compile_fail
    /// # use skmem_backends::Heap;
    /// # use skmem_packet::PacketPoolConfig;
    /// let pool = PacketPoolConfig::new("doc").md_count(64).build::<Heap>(Default::default()).unwrap();
    /// // Reading other threads' packets is not something safe code may do.
    /// let _ = pool.outstanding();
    /// ```
    pub unsafe fn outstanding(&self) -> Outstanding {
        let i = &self.inner;
        i.md.reap_now(true);
        if let Some(b) = &i.bft {
            b.def.reap_now(true);
            if let Some(l) = &b.large {
                l.reap_now(true);
            }
        }
        let mut report = Outstanding::default();
        let mut in_packets = HashSet::new();
        {
            let slab = i.md.layer();
            for seg in slab.region().live_segments() {
                for j in 0..slab.objs_per_slab() as usize {
                    let addr = seg.base.as_ptr().wrapping_add(j * slab.chunk_size());
                    if slab.object_info(addr).is_none() {
                        continue;
                    }
                    let k = meta::as_kmd(addr);
                    // SAFETY: an allocated, constructed metadata object of
                    // this pool that no other thread uses now (the caller's
                    // contract); read-only snapshot of kernel fields.
                    unsafe {
                        let mut b: *mut Kbuf = (*k).buf.next;
                        while !b.is_null() {
                            in_packets.insert(b as usize);
                            b = (*b).next;
                        }
                        report.packets.push(OutstandingPacket {
                            md_index: (*k).index,
                            owner: owner((*k).owner),
                            buflets: (*k).bufs_cnt,
                            len: (*k).len,
                        });
                    }
                }
            }
        };
        if let Some(b) = &i.bft {
            let mut scan = |m: &super::BftCache<S, L>| {
                {
                    let slab = m.layer();
                    for seg in slab.region().live_segments() {
                        for j in 0..slab.objs_per_slab() as usize {
                            let addr = seg.base.as_ptr().wrapping_add(j * slab.chunk_size());
                            if in_packets.contains(&(addr as usize))
                                || slab.object_info(addr).is_none()
                            {
                                continue;
                            }
                            let kb = meta::as_kbuf(addr);
                            // SAFETY: an allocated, constructed buflet of
                            // this cache that no other thread uses now
                            // (the caller's contract); read-only snapshot.
                            unsafe {
                                report.buflets.push(OutstandingBuflet {
                                    bft_index: (*kb).bft_idx,
                                    owner: owner((*kb).owner),
                                    large: (*kb).flags & BUF_LARGE != 0,
                                });
                            }
                        }
                    }
                };
            };
            scan(&b.def);
            if let Some(l) = &b.large {
                scan(l);
            }
        }
        report.packets.sort_by_key(|p| p.md_index);
        report.buflets.sort_by_key(|b| b.bft_index);
        report
    }
}
