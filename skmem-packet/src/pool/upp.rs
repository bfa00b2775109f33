//! Packets and buflets handed to a user process (the seed's `upp`
//! functions: `pp_insert_upp*`, `pp_remove_upp*`, `pp_find_upp`,
//! `pp_purge_upp`, `pp_isempty_upp`).
//!
//! # Hand-off and hand-back
//!
//! [`upp_insert`](PacketPool::upp_insert) *externalizes* a packet: it
//! writes the packet's indices, counts and data windows into the user
//! metadata and user buflets, records the packet (by metadata index) and
//! each of its external buflets (by buflet index) as held by the owner, and
//! **detaches** the kernel chain: from then on each buflet is tracked on its
//! own, so the user may move buflets between the packets it holds.
//!
//! [`upp_remove`](PacketPool::upp_remove) *internalizes*: it reads the user
//! metadata the user wrote and validates everything before changing
//! anything — redzone, metadata index, buflet count, every buflet index of
//! the chain (in range, held by a user, by this owner, not seen twice),
//! every data window, the packet length. Only when all of it holds does it
//! relink the kernel chain and forget the tracking entries; on any error
//! the pool is exactly as before (the packet and its buflets stay held by
//! the owner, to be handed back correctly or purged).
//!
//! User-written values are used only as keys into the pool's own tables and
//! compared with kernel-side values; they never become addresses.

use core::ptr::{self, NonNull};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use hashbrown::HashMap;
use skmem_traits::{CpuLocal, Error, Result, SegmentSource};

use super::ctor::redzone;
use super::meta::{self, ubft, umd, Kbuf, Kmd, BUF_EXTERNAL, IDX_NONE, NO_OWNER};
use super::{Buflet, MetadataType, Packet, PacketPool};

#[derive(Clone, Copy)]
pub(crate) struct KPtr(pub(crate) *mut Kmd);
#[derive(Clone, Copy)]
pub(crate) struct BPtr(pub(crate) *mut Kbuf);
// SAFETY: addresses of pool objects, only dereferenced under the pool's
// contracts (the tracking table owns the objects it lists).
unsafe impl Send for KPtr {}
// SAFETY: as above.
unsafe impl Send for BPtr {}

/// The tracking tables (the seed's two hash tables of 64 buckets).
#[derive(Default)]
pub(crate) struct Upp {
    pub(crate) pkts: HashMap<u32, (KPtr, u32)>,
    pub(crate) bfts: HashMap<u32, (BPtr, u32)>,
}

fn window(
    field_off: &'static str,
    field_len: &'static str,
    off: u32,
    len: u32,
    cap: u32,
) -> Result<()> {
    if off > cap {
        return Err(Error::OutOfRange {
            field: field_off,
            value: off as u64,
            limit: cap as u64 + 1,
        });
    }
    if len > cap - off {
        return Err(Error::OutOfRange {
            field: field_len,
            value: len as u64,
            limit: (cap - off) as u64 + 1,
        });
    }
    Ok(())
}

/// Publishes buflet `b` to its user mirror `ub`: buflet index `bft_idx`,
/// buffer index, data window, and `next_idx` as the next buflet's index.
///
/// # Safety
///
/// `b` is a live buflet the caller owns; `ub` is a user buflet mirror
/// (`ubft` layout), written with volatile stores only.
unsafe fn write_ubft(ub: *mut u8, bft_idx: u32, b: *const Kbuf, next_idx: u32) {
    // SAFETY: the caller's contract.
    unsafe {
        meta::wr32(ub, ubft::BFT_INDEX, bft_idx);
        meta::wr32(ub, ubft::BUF_INDEX, (*b).buf_idx);
        meta::wr32(ub, ubft::DLEN, (*b).dlen);
        meta::wr32(ub, ubft::DOFF, (*b).doff);
        meta::wr32(ub, ubft::NEXT_INDEX, next_idx);
    }
}

/// Reads back the data window `(dlen, doff)` a user wrote for external
/// buflet `b`, tracked as `bft_idx`: the mirror must still name `bft_idx`
/// and the window must fit `b`'s buffer.
///
/// # Safety
///
/// `b` is a tracked (hence live) external buflet; its `ubft` mirror is
/// read with volatile loads only.
unsafe fn read_ubft_window(b: *const Kbuf, bft_idx: u32) -> Result<(u32, u32)> {
    // SAFETY: the caller's contract.
    unsafe {
        let ub = (*b).ubft;
        if meta::rd32(ub, ubft::BFT_INDEX) != bft_idx {
            return Err(Error::Invalid {
                field: "buflet_index",
                reason: format!("user buflet {bft_idx} names another index"),
            });
        }
        let (dlen, doff) = (meta::rd32(ub, ubft::DLEN), meta::rd32(ub, ubft::DOFF));
        window(
            "buflet_data_offset",
            "buflet_data_len",
            doff,
            dlen,
            (*b).cap,
        )?;
        Ok((dlen, doff))
    }
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    fn check_user_pool(&self, owner: u32) -> Result<()> {
        if self.inner.kernel_only {
            return Err(Error::Invalid {
                field: "kernel_only",
                reason: "a kernel-only pool has no user metadata".into(),
            });
        }
        if owner == NO_OWNER {
            return Err(Error::invalid_param(
                "owner",
                owner as u64,
                "reserved for \"nobody\"",
            ));
        }
        Ok(())
    }

    /// Hands a packet to user process `owner`: writes its user metadata and
    /// tracks it and its buflets. Returns its metadata index, the name the
    /// user will hand it back by.
    ///
    /// # Safety
    ///
    /// `p` is allocated from this pool and owned by the caller, who gives it
    /// up (until [`upp_remove`](Self::upp_remove) returns it).
    pub unsafe fn upp_insert(&self, owner: u32, p: Packet) -> Result<u32> {
        self.check_user_pool(owner)?;
        let k = p.kmd();
        let mut upp = self.inner.upp.lock();
        // SAFETY: the caller's contract: `p` is allocated and ours; `umd`
        // is its mirror (non-null in a user pool), written with volatile
        // stores only; chain buflets are allocated and belong to `p`.
        unsafe {
            if (*k).owner != NO_OWNER {
                return Err(Error::Busy {
                    name: self.inner.name.clone(),
                    reason: "the packet is already held by a user",
                });
            }
            let u = (*k).umd;
            meta::wr32(u, umd::MD_INDEX, (*k).index);
            meta::wr16(u, umd::MD_TYPE, self.inner.md_type.tag() as u16);
            meta::wr16(u, umd::BUFS_CNT, (*k).bufs_cnt);
            meta::wr32(u, umd::LEN, (*k).len);
            write_ubft(
                u.add(umd::BUF),
                IDX_NONE,
                ptr::addr_of!((*k).buf),
                (*k).buf.next_idx,
            );
            let mut cur = (*k).buf.next;
            while !cur.is_null() {
                write_ubft((*cur).ubft, (*cur).bft_idx, cur, (*cur).next_idx);
                let next = (*cur).next;
                (*cur).next = ptr::null_mut();
                (*cur).next_idx = IDX_NONE;
                (*cur).owner = owner;
                upp.bfts.insert((*cur).bft_idx, (BPtr(cur), owner));
                cur = next;
            }
            (*k).buf.next = ptr::null_mut();
            (*k).buf.next_idx = IDX_NONE;
            (*k).bufs_cnt = u16::from(!(*k).buf.addr.is_null());
            (*k).owner = owner;
            upp.pkts.insert((*k).index, (KPtr(k), owner));
            Ok((*k).index)
        }
    }

    /// Hands every packet of `pkts` to `owner` (the seed's
    /// `pp_insert_upp_batch`); stops at the first error.
    ///
    /// # Safety
    ///
    /// As [`upp_insert`](Self::upp_insert) for each.
    pub unsafe fn upp_insert_batch(&self, owner: u32, pkts: &[Packet]) -> Result<()> {
        for &p in pkts {
            // SAFETY: forwarded.
            unsafe { self.upp_insert(owner, p) }?;
        }
        Ok(())
    }

    /// Hands a standalone buflet to `owner`; returns its buflet index.
    ///
    /// # Safety
    ///
    /// `b` is an external buflet allocated from this pool, in no packet,
    /// owned by the caller, who gives it up.
    pub unsafe fn upp_insert_buflet(&self, owner: u32, b: Buflet) -> Result<u32> {
        self.check_user_pool(owner)?;
        let kb = b.ptr();
        let mut upp = self.inner.upp.lock();
        // SAFETY: the caller's contract; `ubft` is the buflet's mirror.
        unsafe {
            if (*kb).flags & BUF_EXTERNAL == 0 {
                return Err(Error::Invalid {
                    field: "buflet",
                    reason: "the native buflet of a packet".into(),
                });
            }
            if (*kb).owner != NO_OWNER {
                return Err(Error::Busy {
                    name: self.inner.name.clone(),
                    reason: "the buflet is already held by a user",
                });
            }
            write_ubft((*kb).ubft, (*kb).bft_idx, kb, IDX_NONE);
            (*kb).owner = owner;
            upp.bfts.insert((*kb).bft_idx, (BPtr(kb), owner));
            Ok((*kb).bft_idx)
        }
    }

    /// Takes back packet `md_idx` from `owner`, rebuilding its buflet chain
    /// from the user metadata after validating every field the user can
    /// write: redzone, metadata index, buflet count, each buflet index of
    /// the chain (in range, held by a user, by this owner, no loop), every
    /// data window and the length. On error nothing changes.
    pub fn upp_remove(&self, owner: u32, md_idx: u32) -> Result<Packet> {
        let cap = self.inner.md_capacity;
        let mut upp = self.inner.upp.lock();
        let Some(&(KPtr(k), o)) = upp.pkts.get(&md_idx) else {
            return Err(if md_idx >= cap {
                Error::OutOfRange {
                    field: "md_index",
                    value: md_idx as u64,
                    limit: cap as u64,
                }
            } else {
                Error::Invalid {
                    field: "md_index",
                    reason: format!("packet {md_idx} is not held by a user"),
                }
            });
        };
        if o != owner {
            return Err(Error::Invalid {
                field: "owner",
                reason: format!("packet {md_idx} is held by {o}, not by {owner}"),
            });
        }
        let max = self.inner.max_frags;
        let bcap = self.buflet_capacity();
        let mut chain: Vec<(*mut Kbuf, u32, u32)> = Vec::new();
        // SAFETY: `k` is tracked, hence allocated and held by the table;
        // its `umd` and each tracked buflet's `ubft` are their mirrors, read
        // with volatile loads only. Nothing is written before every check
        // passed.
        unsafe {
            let u = (*k).umd;
            if meta::rd64(u, umd::REDZONE) != redzone((*k).umd_roff, self.inner.secret) {
                return Err(Error::Invalid {
                    field: "redzone",
                    reason: format!("user metadata of packet {md_idx} was overwritten"),
                });
            }
            let uidx = meta::rd32(u, umd::MD_INDEX);
            if uidx != md_idx {
                return Err(Error::Invalid {
                    field: "md_index",
                    reason: format!("user metadata of packet {md_idx} says {uidx}"),
                });
            }
            let bufs_cnt = meta::rd16(u, umd::BUFS_CNT);
            if bufs_cnt > max {
                return Err(Error::OutOfRange {
                    field: "bufs_cnt",
                    value: bufs_cnt as u64,
                    limit: max as u64 + 1,
                });
            }
            let nb = u.add(umd::BUF);
            let has = !(*k).buf.addr.is_null();
            let (ndlen, ndoff) = (meta::rd32(nb, ubft::DLEN), meta::rd32(nb, ubft::DOFF));
            window("data_offset", "data_len", ndoff, ndlen, (*k).buf.cap)?;
            let mut total = (*k).buf.cap as u64;
            let mut count = u16::from(has);
            let mut idx = meta::rd32(nb, ubft::NEXT_INDEX);
            if idx != IDX_NONE && self.inner.md_type == MetadataType::Quantum {
                return Err(Error::Invalid {
                    field: "next_buflet_index",
                    reason: "a quantum has no buflet chain".into(),
                });
            }
            while idx != IDX_NONE {
                if count >= bufs_cnt {
                    return Err(Error::Invalid {
                        field: "bufs_cnt",
                        reason: format!(
                            "the chain of packet {md_idx} is longer than its bufs_cnt {bufs_cnt}"
                        ),
                    });
                }
                if idx >= bcap {
                    return Err(Error::OutOfRange {
                        field: "next_buflet_index",
                        value: idx as u64,
                        limit: bcap as u64,
                    });
                }
                let Some(&(BPtr(b), bo)) = upp.bfts.get(&idx) else {
                    return Err(Error::Invalid {
                        field: "next_buflet_index",
                        reason: format!("buflet {idx} is not held by a user"),
                    });
                };
                if bo != owner {
                    return Err(Error::Invalid {
                        field: "buflet_owner",
                        reason: format!("buflet {idx} is held by {bo}, not by {owner}"),
                    });
                }
                if chain.iter().any(|&(c, _, _)| c == b) {
                    return Err(Error::Invalid {
                        field: "next_buflet_index",
                        reason: format!("buflet {idx} appears twice (loop)"),
                    });
                }
                let (dlen, doff) = read_ubft_window(b, idx)?;
                total += (*b).cap as u64;
                chain.push((b, dlen, doff));
                count += 1;
                idx = meta::rd32((*b).ubft, ubft::NEXT_INDEX);
            }
            if count != bufs_cnt {
                return Err(Error::Invalid {
                    field: "bufs_cnt",
                    reason: format!(
                        "packet {md_idx} says {bufs_cnt} buflets, its chain has {count}"
                    ),
                });
            }
            let len = meta::rd32(u, umd::LEN);
            if len as u64 > total {
                return Err(Error::OutOfRange {
                    field: "len",
                    value: len as u64,
                    limit: total + 1,
                });
            }

            // Commit.
            upp.pkts.remove(&md_idx);
            (*k).buf.dlen = ndlen;
            (*k).buf.doff = ndoff;
            let mut prev: *mut Kbuf = ptr::addr_of_mut!((*k).buf);
            for &(b, dlen, doff) in &chain {
                upp.bfts.remove(&(*b).bft_idx);
                (*b).owner = NO_OWNER;
                (*b).dlen = dlen;
                (*b).doff = doff;
                (*b).next = ptr::null_mut();
                (*b).next_idx = IDX_NONE;
                (*prev).next = b;
                (*prev).next_idx = (*b).bft_idx;
                prev = b;
            }
            (*k).bufs_cnt = count;
            (*k).len = len;
            (*k).owner = NO_OWNER;
        }
        Ok(Packet::from_kmd(k, self.inner.md_type))
    }

    /// Takes back a standalone buflet from `owner`, validating its user
    /// data window. On error nothing changes.
    pub fn upp_remove_buflet(&self, owner: u32, bft_idx: u32) -> Result<Buflet> {
        let bcap = self.buflet_capacity();
        let mut upp = self.inner.upp.lock();
        let Some(&(BPtr(b), bo)) = upp.bfts.get(&bft_idx) else {
            return Err(if bft_idx >= bcap {
                Error::OutOfRange {
                    field: "buflet_index",
                    value: bft_idx as u64,
                    limit: bcap as u64,
                }
            } else {
                Error::Invalid {
                    field: "buflet_index",
                    reason: format!("buflet {bft_idx} is not held by a user"),
                }
            });
        };
        if bo != owner {
            return Err(Error::Invalid {
                field: "buflet_owner",
                reason: format!("buflet {bft_idx} is held by {bo}, not by {owner}"),
            });
        }
        // SAFETY: tracked, hence allocated; the mirror is read volatile.
        unsafe {
            let (dlen, doff) = read_ubft_window(b, bft_idx)?;
            upp.bfts.remove(&bft_idx);
            (*b).owner = NO_OWNER;
            (*b).dlen = dlen;
            (*b).doff = doff;
            Ok(Buflet(NonNull::new_unchecked(b)))
        }
    }

    /// The packet with metadata index `md_idx` if a user holds it, and who.
    pub fn upp_find(&self, md_idx: u32) -> Option<(Packet, u32)> {
        let upp = self.inner.upp.lock();
        upp.pkts
            .get(&md_idx)
            .map(|&(KPtr(k), o)| (Packet::from_kmd(k, self.inner.md_type), o))
    }

    /// The buflet with index `bft_idx` if a user holds it on its own, and who.
    pub fn upp_find_buflet(&self, bft_idx: u32) -> Option<(Buflet, u32)> {
        let upp = self.inner.upp.lock();
        // SAFETY: tracked buflets are non-null objects.
        upp.bfts
            .get(&bft_idx)
            .map(|&(BPtr(b), o)| (Buflet(unsafe { NonNull::new_unchecked(b) }), o))
    }

    /// Address of the user metadata of a packet a user holds: what the
    /// user process sees (another process would map it at its own
    /// address). Write to it only with raw pointer writes.
    pub fn user_metadata(&self, md_idx: u32) -> Option<NonNull<u8>> {
        let upp = self.inner.upp.lock();
        // SAFETY: tracked packets are allocated; `umd` is a kernel field.
        upp.pkts
            .get(&md_idx)
            .and_then(|&(KPtr(k), _)| NonNull::new(unsafe { (*k).umd }))
    }

    /// Address of the user buflet of a buflet a user holds.
    pub fn user_buflet(&self, bft_idx: u32) -> Option<NonNull<u8>> {
        let upp = self.inner.upp.lock();
        // SAFETY: tracked buflets are allocated; `ubft` is a kernel field.
        upp.bfts
            .get(&bft_idx)
            .and_then(|&(BPtr(b), _)| NonNull::new(unsafe { (*b).ubft }))
    }

    /// Frees everything `owner` holds (its process died; the seed's
    /// `pp_purge_upp`). Returns (packets, buflets) freed.
    ///
    /// A transmit-completion callback that panics does not stop the purge:
    /// every packet and buflet is freed first, then the first panic is
    /// resumed.
    pub fn upp_purge(&self, owner: u32) -> (usize, usize) {
        self.purge_upp(Some(owner))
    }

    /// Frees everything every user holds.
    pub fn upp_purge_all(&self) -> (usize, usize) {
        self.purge_upp(None)
    }

    pub(crate) fn purge_upp(&self, owner: Option<u32>) -> (usize, usize) {
        let (pkts, bfts) = {
            let mut upp = self.inner.upp.lock();
            let mut pkts = Vec::new();
            upp.pkts.retain(|_, &mut (KPtr(k), o)| {
                if owner.map_or(true, |w| w == o) {
                    pkts.push(Packet::from_kmd(k, self.inner.md_type));
                    false
                } else {
                    true
                }
            });
            let mut bfts = Vec::new();
            upp.bfts.retain(|_, &mut (BPtr(b), o)| {
                if owner.map_or(true, |w| w == o) {
                    // SAFETY: tracked buflets are non-null objects.
                    bfts.push(Buflet(unsafe { NonNull::new_unchecked(b) }));
                    false
                } else {
                    true
                }
            });
            (pkts, bfts)
        };
        // SAFETY: the tables held these objects (allocated, chains detached
        // at hand-off, each listed once); they were just removed, so this
        // is their only free.
        unsafe {
            for p in &pkts {
                (*p.kmd()).owner = NO_OWNER;
            }
        }
        // A transmit-completion callback may panic while the packets are
        // freed (after all of them are): the buflets, already out of the
        // table, must still go back before the panic goes on.
        // SAFETY: as above.
        let freed = catch_unwind(AssertUnwindSafe(|| unsafe {
            self.free_batch_checked(&pkts)
        }));
        // SAFETY: as above.
        unsafe { self.free_buflet_batch(&bfts) };
        if let Err(payload) = freed {
            resume_unwind(payload);
        }
        (pkts.len(), bfts.len())
    }

    /// `true` when no user holds a packet or a buflet (the seed's
    /// `pp_isempty_upp` counts packets only).
    pub fn upp_is_empty(&self) -> bool {
        let upp = self.inner.upp.lock();
        upp.pkts.is_empty() && upp.bfts.is_empty()
    }

    /// (packets, buflets) users hold now.
    pub fn upp_counts(&self) -> (usize, usize) {
        let upp = self.inner.upp.lock();
        (upp.pkts.len(), upp.bfts.len())
    }
}
