//! Owned packets: a packet handle that holds its pool and frees itself on
//! drop (as ixy.rs does), with safe accessors.
//!
//! [`Packet`] and [`Buflet`] are raw `Copy` handles for drivers that keep
//! packets in rings and pass them between processes: every accessor is
//! `unsafe` because nothing ties a handle to its allocation. An
//! [`OwnedPacket`] is that tie: it owns the packet exclusively, keeps its
//! pool alive (a [`PacketPool`] handle), and gives it back when dropped, so
//! its accessors are safe.
//!
//! # Safety and correctness
//!
//! * An `OwnedPacket` is created only from a packet just allocated from its
//!   pool (or, through the `unsafe` [`OwnedPacket::from_raw`], one the
//!   caller vouches for) and is the packet's only owner until it is dropped
//!   or turned back into a raw handle: every `&self` accessor reads memory
//!   of an allocated packet no one writes concurrently, every writer takes
//!   `&mut self`.
//! * Buffer bytes are copied with raw copies, never referenced, except by
//!   [`OwnedPacket::data`] / [`OwnedPacket::data_mut`], which form slices
//!   only when no other process or packet can write the buffer: the pool is
//!   kernel-only (its buffer regions are not mappable by another process)
//!   and the buffer's use count is 1 (not shared with a cloned buflet).
//!   A device that was given the buffer's IOVA must not write it while the
//!   packet is owned; handing a buffer to a device goes through
//!   [`OwnedPacket::into_raw`].
//! * Dropping frees the packet with [`PacketPool::free_packet`]; a refusal
//!   (the raw handle was handed to a user process with `upp_insert`, or
//!   attached to another packet) is logged and the packet left where it is:
//!   the pool takes back what users hold when it is torn down, and an
//!   attached packet is freed with its parent.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;

use skmem_traits::{AllocFlags, CpuLocal, Error, Result, SegmentSource};

use super::{Buflet, MetadataType, Packet, PacketPool};

/// A packet owned by this value: freed back to its pool on drop (ixy.rs
/// style), with safe accessors, next to the raw `Copy` [`Packet`] handle.
///
/// It owns the packet exclusively and holds a handle to its pool, so the
/// pool outlives it. Buffer bytes are copied ([`write_payload`](Self::write_payload),
/// [`read_payload`](Self::read_payload)); slices ([`data`](Self::data),
/// [`data_mut`](Self::data_mut)) are given only when no other process or
/// packet can write the buffer (a kernel-only pool, a buffer not shared).
/// A drop refused by the pool (the raw handle was handed to a user process
/// or attached to another packet) is logged and the packet stays where it
/// is, to be reclaimed at the pool's teardown or with its parent.
pub struct OwnedPacket<S: SegmentSource, L: CpuLocal = skmem_magazine::DefaultLocal> {
    packet: Packet,
    pool: PacketPool<S, L>,
}

impl<S: SegmentSource, L: CpuLocal> PacketPool<S, L> {
    /// Allocates a packet with `bufcnt` buflets (as
    /// [`alloc_packet`](Self::alloc_packet)) owned by the returned value.
    pub fn alloc_owned(&self, bufcnt: u16, flags: AllocFlags) -> Result<OwnedPacket<S, L>> {
        let packet = self.alloc_packet(bufcnt, flags)?;
        Ok(OwnedPacket {
            packet,
            pool: self.clone(),
        })
    }

    /// The device address of a packet's data: its first buflet's
    /// (`None` when the packet has no buffer or the source has no IOVAs).
    ///
    /// # Safety
    ///
    /// See [`Packet`]'s accessor contract.
    pub unsafe fn packet_iova(&self, p: Packet) -> Option<u64> {
        // SAFETY: forwarded.
        unsafe { p.first_buflet().and_then(|b| self.buflet_iova(b)) }
    }
}

impl<S: SegmentSource, L: CpuLocal> OwnedPacket<S, L> {
    /// Takes ownership of a raw packet handle.
    ///
    /// # Safety
    ///
    /// `packet` was allocated from `pool` and not freed, and nothing else
    /// uses it (no other owner, not in a queue or ring, not handed to a
    /// user process) from now on.
    pub unsafe fn from_raw(pool: &PacketPool<S, L>, packet: Packet) -> Self {
        OwnedPacket {
            packet,
            pool: pool.clone(),
        }
    }

    /// Gives up ownership: the raw handle, to be freed with
    /// [`PacketPool::free_packet`] (or made owned again).
    pub fn into_raw(self) -> Packet {
        let me = ManuallyDrop::new(self);
        // SAFETY: `me` is never used or dropped again, so its pool handle
        // is moved out (and dropped) exactly once.
        drop(unsafe { core::ptr::read(&me.pool) });
        me.packet
    }

    /// The raw handle, still owned by `self`. Using it through the
    /// `unsafe` handle API must not race with `self`'s accessors (the
    /// handle contract), nor free or hand the packet away.
    pub fn as_raw(&self) -> Packet {
        self.packet
    }

    /// The pool the packet belongs to.
    pub fn pool(&self) -> &PacketPool<S, L> {
        &self.pool
    }

    /// Packet or quantum.
    pub fn md_type(&self) -> MetadataType {
        self.packet.md_type()
    }

    /// Packet length in bytes (what [`write_payload`](Self::write_payload)
    /// last stored).
    pub fn len(&self) -> usize {
        // SAFETY: the packet is allocated and owned by `self` (module docs).
        unsafe { self.packet.len() as usize }
    }

    /// `true` when the packet length is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buflets holding a buffer.
    pub fn buflet_count(&self) -> usize {
        // SAFETY: as in `len`.
        unsafe { self.packet.buflet_count() as usize }
    }

    /// Total capacity of the packet's buffers.
    pub fn capacity(&self) -> usize {
        // SAFETY: as in `len`.
        unsafe { self.packet.capacity() }
    }

    /// The packet's buflets, in chain order.
    pub fn buflets(&self) -> impl Iterator<Item = BufletRef<'_, S, L>> + '_ {
        // SAFETY: as in `len`; the iterator borrows `self`, so the packet
        // stays allocated while it runs.
        unsafe { self.packet.buflets() }.map(move |b| BufletRef {
            buflet: b,
            pool: &self.pool,
            _packet: PhantomData,
        })
    }

    /// The device address of the packet's data (its first buflet's), when
    /// the pool's source maps buffers for DMA; `None` otherwise.
    pub fn iova(&self) -> Option<u64> {
        self.buflets().next().and_then(|b| b.iova())
    }

    /// Copies `data` into the packet's buffers and sets its length; returns
    /// the bytes copied (fewer when the buffers are too small).
    pub fn write_payload(&mut self, data: &[u8]) -> usize {
        // SAFETY: as in `len`, and `&mut self` makes the access exclusive.
        unsafe { self.packet.write_payload(data) }
    }

    /// Copies the packet's data into `out`; returns the bytes copied.
    pub fn read_payload(&self, out: &mut [u8]) -> usize {
        // SAFETY: as in `len`.
        unsafe { self.packet.read_payload(out) }
    }

    /// The data window of the packet's first buffer, as a slice.
    ///
    /// Refused with [`Error::Invalid`] naming `data` when another party
    /// may write the buffer (see the module docs: a pool that is not
    /// kernel-only, or a shared buffer) or the packet has no buffer; use
    /// [`read_payload`](Self::read_payload) then.
    pub fn data(&self) -> Result<&[u8]> {
        let (addr, off, len) = self.private_window()?;
        // SAFETY: `addr + off .. + len` lies in the buffer (`set_data` and
        // `write` keep the window inside the capacity), which only this
        // packet can reach (checked by `private_window`) and which stays
        // allocated while `self` is borrowed.
        Ok(unsafe { core::slice::from_raw_parts(addr.add(off), len) })
    }

    /// The data window of the packet's first buffer, mutable; refused as
    /// [`data`](Self::data) is.
    pub fn data_mut(&mut self) -> Result<&mut [u8]> {
        let (addr, off, len) = self.private_window()?;
        // SAFETY: as in `data`, and `&mut self` makes the access unique.
        Ok(unsafe { core::slice::from_raw_parts_mut(addr.add(off), len) })
    }

    /// Sets the first buflet's data window (offset and length in its
    /// buffer) and the packet length; refuses a window that does not fit.
    pub fn set_data(&mut self, offset: usize, len: usize) -> Result<()> {
        let first = self.first()?;
        // SAFETY: as in `len`, exclusive through `&mut self`.
        unsafe { first.set_data(offset, len) }?;
        // The packet length is the sum of its buflets' windows.
        let total: usize = self.buflets().map(|b| b.data_len()).sum();
        // SAFETY: as above; the packet's length field is kernel metadata.
        unsafe { (*self.packet.kmd()).len = total as u32 };
        Ok(())
    }

    fn first(&self) -> Result<Buflet> {
        // SAFETY: as in `len`.
        unsafe { self.packet.first_buflet() }.ok_or_else(|| Error::Invalid {
            field: "data",
            reason: format!("packet {:?} has no buffer", self.packet),
        })
    }

    /// Address, offset and length of the first buffer's window, when no one
    /// but this packet can write the buffer.
    fn private_window(&self) -> Result<(*mut u8, usize, usize)> {
        let first = self.first()?;
        if !self.pool.is_kernel_only() {
            return Err(Error::Invalid {
                field: "data",
                reason: format!(
                    "pool `{}` maps its buffers into user processes: copy with read_payload",
                    self.pool.name()
                ),
            });
        }
        // SAFETY: as in `len`; the buflet has a buffer (first_buflet).
        let uses = unsafe { self.pool.buffer_use_count(first) };
        if uses != 1 {
            return Err(Error::Invalid {
                field: "data",
                reason: format!(
                    "the buffer of packet {:?} is shared by {uses} buflets: copy with read_payload",
                    self.packet
                ),
            });
        }
        // SAFETY: as in `len`.
        Ok(unsafe { (first.addr(), first.data_offset(), first.data_len()) })
    }
}

impl<S: SegmentSource, L: CpuLocal> Drop for OwnedPacket<S, L> {
    fn drop(&mut self) {
        // SAFETY: the packet is allocated from `self.pool`, owned by `self`
        // and never used again.
        if let Err(e) = unsafe { self.pool.free_packet(self.packet) } {
            tracing::error!(pool = %self.pool.name(), error = %e, "an owned packet could not be freed; the pool keeps it until teardown");
        }
    }
}

impl<S: SegmentSource, L: CpuLocal> fmt::Debug for OwnedPacket<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPacket")
            .field("packet", &self.packet)
            .field("len", &self.len())
            .field("buflets", &self.buflet_count())
            .finish()
    }
}

/// A buflet of an [`OwnedPacket`], borrowed from it: safe accessors.
pub struct BufletRef<'p, S: SegmentSource, L: CpuLocal> {
    buflet: Buflet,
    pool: &'p PacketPool<S, L>,
    _packet: PhantomData<&'p OwnedPacket<S, L>>,
}

impl<S: SegmentSource, L: CpuLocal> BufletRef<'_, S, L> {
    /// The raw handle (see [`OwnedPacket::as_raw`] for its use).
    pub fn as_raw(&self) -> Buflet {
        self.buflet
    }

    /// Capacity of the buffer.
    pub fn capacity(&self) -> usize {
        // SAFETY: the buflet belongs to a packet borrowed for `'p`.
        unsafe { self.buflet.capacity() }
    }

    /// Offset of the data window in the buffer.
    pub fn data_offset(&self) -> usize {
        // SAFETY: as in `capacity`.
        unsafe { self.buflet.data_offset() }
    }

    /// Bytes in the data window.
    pub fn data_len(&self) -> usize {
        // SAFETY: as in `capacity`.
        unsafe { self.buflet.data_len() }
    }

    /// `true` when the buffer is a large one.
    pub fn is_large(&self) -> bool {
        // SAFETY: as in `capacity`.
        unsafe { self.buflet.is_large() }
    }

    /// Copies the data window into `out`; returns the bytes copied.
    pub fn read(&self, out: &mut [u8]) -> usize {
        // SAFETY: as in `capacity`.
        unsafe { self.buflet.read(out) }
    }

    /// The device address of the data window's start, when the pool's
    /// source maps buffers for DMA; `None` otherwise.
    pub fn iova(&self) -> Option<u64> {
        // SAFETY: as in `capacity`.
        unsafe { self.pool.buflet_iova(self.buflet) }
    }
}

impl<S: SegmentSource, L: CpuLocal> fmt::Debug for BufletRef<'_, S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufletRef")
            .field("buflet", &self.buflet)
            .field("capacity", &self.capacity())
            .field("data_offset", &self.data_offset())
            .field("data_len", &self.data_len())
            .finish()
    }
}
