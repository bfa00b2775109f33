//! User views: an arena's mappable regions stitched into one contiguous
//! span of some address space (the seed's `IOSKMapper`).
//!
//! # How a view is built
//!
//! 1. Reserve the whole span ([`ArenaLayout::total_len`]) as anonymous,
//!    private, `PROT_NONE` memory: nothing else can be placed inside it, and
//!    whatever is not replaced next (the guard regions) faults on access.
//! 2. For every region with data, map its memfd span over its fixed offset
//!    with `MAP_SHARED | MAP_FIXED`: read-write, or read-only for
//!    [`UREADONLY`](skmem_traits::RegionMode::UREADONLY) regions. Read-only
//!    regions are mapped from a descriptor opened read-only, so the view
//!    cannot be `mprotect`ed back to writable: the kernel refuses
//!    `PROT_WRITE` on a shared mapping of a read-only file. Re-opening the
//!    descriptor read-write through `/proc` does not help a peer either: the
//!    owner sealed those memfds with `F_SEAL_FUTURE_WRITE` (see the
//!    [arena docs](crate#redirect-and-peers-that-do-not-cooperate)).
//!
//! Before anything is mapped, every memfd's size is checked against the
//! layout (`fstat`): a file shorter than its region would map, and the first
//! access past its end would raise `SIGBUS`, so it is refused with an error
//! naming the region and both sizes.
//!
//! A view maps each region's **whole** range. In the owner, segments that
//! were never created (or were freed) are `PROT_NONE`; in a view they are
//! ordinary memfd pages that read as zero. Data only flows through objects
//! the pool hands out: the owner never reads a byte it has not handed to the
//! user through an object (a packet, a slot descriptor), and it
//! re-initialises every object it creates. A user writing elsewhere in a
//! region only spends memory of the memfd (at most the region's span), which
//! the owner's segment discard punches out again.
//!
//! # Redirect
//!
//! Redirecting a view maps private, zero-filled anonymous memory over every
//! redirectable region (not [`NOREDIRECT`](skmem_traits::RegionMode::NOREDIRECT)),
//! with the same protection: the user keeps running, reads zeros and its
//! writes land in its own private pages, never in the pool. Guard and
//! no-redirect regions (the schema) stay as they are.
//!
//! # Safety and correctness
//!
//! * A view owns its reservation from creation to drop; every `MAP_FIXED`
//!   lands inside it, so no mapping of anyone else is ever replaced.
//! * Local views are remapped (redirect) and unmapped (drop) only with the
//!   arena's state lock held, so a redirect never races with the unmap.
//! * The memory of a view may be written by another process at any time:
//!   it is accessed through raw pointers only, with volatile loads and
//!   stores of integers or byte copies, and every offset and index is
//!   checked against the layout before use, so no access leaves the view.

use core::ptr::{self, NonNull};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use skmem_packet::{ubft, umd, IDX_NONE};
use skmem_traits::{Error, Protection, Result};

use crate::id::{RegionId, ViewId};
use crate::layout::{ArenaLayout, PoolInfo, ViewRegion};
use crate::owner::Core;
use crate::sys::{map, redirect, unmap};
use crate::wire::{self, Kind};

/// What a remote view learned from the arena's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlEvent {
    /// The owner redirected this view: its redirectable regions are now
    /// zero pages (already done when this is returned).
    Redirected,
    /// The owner closed the control socket (it dropped the arena or
    /// exited). The view stays mapped; what the owner left in it is
    /// whatever was there.
    OwnerGone,
}

pub(crate) enum Link {
    /// Created by `Arena::map_local`: the arena tracks it exactly.
    Local(Arc<Core>),
    /// Received from the owner; `socket` is our duplicate of the control
    /// socket.
    Remote {
        socket: OwnedFd,
        owner_gone: AtomicBool,
    },
}

/// A user view of an arena: every mappable region at its fixed offset of
/// one contiguous span of this process's address space.
///
/// Created by [`Arena::map_local`](crate::Arena::map_local) (a second view
/// in the owner's process) or [`UserView::receive`] (in a peer process, from
/// the descriptor and memfds sent by [`Arena::send_view`](crate::Arena::send_view)).
/// Dropping it unmaps the span; a remote view tells the owner it did so.
///
/// The memory may change under the view at any time (the owner, other
/// views, devices), so the view only offers raw pointers and copying
/// accessors that check every offset.
pub struct UserView {
    base: NonNull<u8>,
    layout: ArenaLayout,
    info: PoolInfo,
    name: String,
    schema_offset: Option<usize>,
    id: ViewId,
    redirected: Arc<AtomicBool>,
    link: Link,
}

// SAFETY: `base` addresses a mapping the view owns; every access through it
// is either a raw-pointer copy (callers of the pointer accessors take on
// its safety) or checked by the view; remapping happens under the arena's
// lock (local) or by the view itself with `&self` holding no references into
// the memory, so the view may move between and be shared by threads.
unsafe impl Send for UserView {}
// SAFETY: see `Send`.
unsafe impl Sync for UserView {}

impl core::fmt::Debug for UserView {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UserView")
            .field("arena", &self.name)
            .field("id", &self.id)
            .field("base", &self.base)
            .field("len", &self.layout.total_len)
            .field("local", &self.is_local())
            .field("redirected", &self.is_redirected())
            .finish()
    }
}

impl UserView {
    pub(crate) fn new_local(
        core: Arc<Core>,
        base: NonNull<u8>,
        id: ViewId,
        redirected: Arc<AtomicBool>,
    ) -> UserView {
        UserView {
            base,
            layout: core.layout.clone(),
            info: core.info,
            name: core.name.clone(),
            schema_offset: core.schema_offset,
            id,
            redirected,
            link: Link::Local(core),
        }
    }

    /// Receives a view sent by [`Arena::send_view`](crate::Arena::send_view)
    /// on `socket` (blocking), checks the descriptor and maps it. The view
    /// keeps a duplicate of the socket to follow the owner's control
    /// messages ([`poll`](Self::poll)) and to report its own unmapping.
    pub fn receive(socket: impl AsFd) -> Result<UserView> {
        let socket = socket.as_fd();
        wire::check_socket(socket)?;
        let mut closed = false;
        let msg = loop {
            match wire::recv(socket, true, &mut closed)? {
                Some(m) if m.kind == Kind::View => break m,
                Some(m) => {
                    return Err(Error::Invalid {
                        field: "view descriptor",
                        reason: format!("expected a view, got {:?}", m.kind),
                    })
                }
                None if closed => {
                    return Err(Error::Invalid {
                        field: "socket",
                        reason: "the owner closed the socket before sending a view".into(),
                    })
                }
                None => continue,
            }
        };
        let page = rustix::param::page_size();
        let dec = wire::decode_layout(&msg.body, page)?;
        let want = dec
            .layout
            .regions
            .iter()
            .filter(|r| r.prot != Protection::None)
            .count();
        if msg.fds.len() != want {
            return Err(Error::Invalid {
                field: "view descriptor",
                reason: format!("{} descriptors for {want} regions", msg.fds.len()),
            });
        }
        let mut it = msg.fds.iter();
        let fds: Vec<Option<BorrowedFd<'_>>> = dec
            .layout
            .regions
            .iter()
            .map(|r| (r.prot != Protection::None).then(|| it.next().expect("counted").as_fd()))
            .collect();
        let base = map(&dec.layout, &fds)?;
        // The mappings keep the memfds alive; the descriptors are closed
        // when `msg` drops.
        let socket = match wire::dup(socket) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: mapped just above, never handed out.
                unsafe { unmap(base, dec.layout.total_len) };
                return Err(e);
            }
        };
        Ok(UserView {
            base,
            layout: dec.layout,
            info: dec.info,
            name: dec.name,
            schema_offset: dec.schema_offset,
            id: ViewId(msg.view),
            redirected: Arc::new(AtomicBool::new(false)),
            link: Link::Remote {
                socket,
                owner_gone: AtomicBool::new(false),
            },
        })
    }

    /// The arena's name.
    pub fn arena_name(&self) -> &str {
        &self.name
    }

    /// This view's id (the owner's name for it).
    pub fn id(&self) -> ViewId {
        self.id
    }

    /// `true` for a view created in the owner's process.
    pub fn is_local(&self) -> bool {
        matches!(self.link, Link::Local(_))
    }

    /// First byte of the view.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Length of the view.
    pub fn len(&self) -> usize {
        self.layout.total_len
    }

    /// Always `false`: a view holds at least one region.
    pub fn is_empty(&self) -> bool {
        self.layout.total_len == 0
    }

    /// Where each region sits.
    pub fn layout(&self) -> &ArenaLayout {
        &self.layout
    }

    /// What the packet pool behind the view looks like.
    pub fn pool_info(&self) -> &PoolInfo {
        &self.info
    }

    /// `true` once the view was redirected (for a remote view: once it
    /// processed the owner's redirect message).
    pub fn is_redirected(&self) -> bool {
        self.redirected.load(Ordering::Acquire)
    }

    /// The region `id` of this view, and its first byte.
    pub fn region(&self, id: RegionId) -> Option<(ViewRegion, NonNull<u8>)> {
        let r = *self.layout.region(id)?;
        // In bounds: offset < total_len (checked layout).
        let p = self.base.as_ptr().wrapping_add(r.offset);
        Some((r, NonNull::new(p).expect("inside a mapping")))
    }

    /// Address of object `index` of region `id` in this view.
    pub fn object(&self, id: RegionId, index: u32) -> Option<NonNull<u8>> {
        let (r, p) = self.region(id)?;
        let off = r.object_offset(index)?;
        NonNull::new(p.as_ptr().wrapping_add(off))
    }

    /// Checks `[offset, offset + len)` of region `id` for an access.
    fn range(&self, id: RegionId, offset: usize, len: usize, write: bool) -> Result<*mut u8> {
        let Some((r, p)) = self.region(id) else {
            return Err(Error::Invalid {
                field: id.name(),
                reason: format!("view of `{}` has no region `{id}`", self.name),
            });
        };
        let needed = match (r.prot, write) {
            (Protection::None, _) => Some("is a guard region: never accessible"),
            (Protection::ReadOnly, true) => Some("is read-only in user views"),
            _ => None,
        };
        if let Some(reason) = needed {
            return Err(Error::Invalid {
                field: id.name(),
                reason: format!("region `{id}` {reason}"),
            });
        }
        let end = offset.saturating_add(len);
        if end > r.len {
            return Err(Error::OutOfRange {
                field: "offset + len",
                value: end as u64,
                limit: r.len as u64 + 1,
            });
        }
        Ok(p.as_ptr().wrapping_add(offset))
    }

    /// Copies bytes out of region `id` at `offset`.
    pub fn read(&self, id: RegionId, offset: usize, out: &mut [u8]) -> Result<()> {
        let src = self.range(id, offset, out.len(), false)?;
        // SAFETY:
        // * `src..src + out.len()` is inside a readable region of the view
        //   (checked), which stays mapped while `&self` lives;
        // * `out` is our own memory and cannot overlap a mapping we own;
        // * the bytes may change concurrently; a copy of plain bytes is the
        //   only access, no reference into the view is formed.
        unsafe { ptr::copy_nonoverlapping(src.cast_const(), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Copies bytes into region `id` at `offset`; refused for read-only and
    /// guard regions.
    pub fn write(&self, id: RegionId, offset: usize, data: &[u8]) -> Result<()> {
        let dst = self.range(id, offset, data.len(), true)?;
        // SAFETY: as in `read`, for a writable region.
        unsafe { ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// Reads the `u32` at `offset` of region `id` (volatile).
    #[allow(clippy::cast_ptr_alignment)] // `offset` is checked 4-aligned
    pub fn read_u32(&self, id: RegionId, offset: usize) -> Result<u32> {
        if offset % 4 != 0 {
            return Err(Error::invalid_param(
                "offset",
                offset as u64,
                "must be 4-byte aligned",
            ));
        }
        let p = self.range(id, offset, 4, false)?;
        // SAFETY: in a readable region (checked), 4-aligned (regions are
        // page-aligned, `offset` checked); a volatile load of an integer
        // tolerates concurrent writers.
        Ok(unsafe { ptr::read_volatile(p.cast::<u32>()) })
    }

    /// Writes the `u32` at `offset` of region `id` (volatile).
    #[allow(clippy::cast_ptr_alignment)] // `offset` is checked 4-aligned
    pub fn write_u32(&self, id: RegionId, offset: usize, v: u32) -> Result<()> {
        if offset % 4 != 0 {
            return Err(Error::invalid_param(
                "offset",
                offset as u64,
                "must be 4-byte aligned",
            ));
        }
        let p = self.range(id, offset, 4, true)?;
        // SAFETY: in a writable region (checked), 4-aligned.
        unsafe { ptr::write_volatile(p.cast::<u32>(), v) };
        Ok(())
    }

    /// The layout the owner wrote into the schema object (read-only to
    /// users). Lets a process that only has the mapping find its way.
    pub fn read_schema(&self) -> Result<ArenaLayout> {
        let off = self.schema_offset.ok_or_else(|| Error::Invalid {
            field: "schema",
            reason: format!("arena `{}` has no schema object", self.name),
        })?;
        let (r, _) = self
            .region(RegionId::Schema)
            .expect("checked with the offset");
        let mut buf = vec![0u8; (r.len - off).min(wire::MAX_LAYOUT)];
        self.read(RegionId::Schema, off, &mut buf)?;
        Ok(wire::decode_layout(&buf, rustix::param::page_size())?.layout)
    }

    // ------------------------------------------------------------------
    // User side of the packet pool (the user half of a channel).
    // ------------------------------------------------------------------

    /// Offset of the user metadata of packet `md_idx` in the `umd` region.
    fn umd_offset(&self, md_idx: u32) -> Result<usize> {
        if md_idx >= self.info.md_capacity {
            return Err(Error::OutOfRange {
                field: "md_index",
                value: md_idx as u64,
                limit: self.info.md_capacity as u64,
            });
        }
        let r = self
            .layout
            .region(RegionId::Umd)
            .ok_or_else(|| Error::Invalid {
                field: "umd",
                reason: "the view has no user metadata".into(),
            })?;
        r.object_offset(md_idx).ok_or(Error::OutOfRange {
            field: "md_index",
            value: md_idx as u64,
            limit: r.obj_count as u64,
        })
    }

    /// The native buffer of a handed-over packet: (buffer offset in
    /// `buf_def`, data offset, data length), all checked.
    fn native_buffer(&self, md_idx: u32) -> Result<(usize, u32, u32)> {
        let u = self.umd_offset(md_idx)?;
        let nb = u + umd::BUF;
        let buf_idx = self.read_u32(RegionId::Umd, nb + ubft::BUF_INDEX)?;
        if buf_idx == IDX_NONE {
            return Err(Error::Invalid {
                field: "buf_index",
                reason: format!("packet {md_idx} has no native buffer"),
            });
        }
        let r = self
            .layout
            .region(RegionId::BufDef)
            .ok_or_else(|| Error::Invalid {
                field: "buf_def",
                reason: "the view has no buffers".into(),
            })?;
        let boff = r.object_offset(buf_idx).ok_or(Error::OutOfRange {
            field: "buf_index",
            value: buf_idx as u64,
            limit: r.obj_count as u64,
        })?;
        let doff = self.read_u32(RegionId::Umd, nb + ubft::DOFF)?;
        let dlen = self.read_u32(RegionId::Umd, nb + ubft::DLEN)?;
        let cap = self.info.buf_size;
        if doff > cap || dlen > cap - doff {
            return Err(Error::OutOfRange {
                field: "data_len",
                value: doff as u64 + dlen as u64,
                limit: cap as u64 + 1,
            });
        }
        Ok((boff, doff, dlen))
    }

    /// Length of packet `md_idx` as its user metadata says.
    pub fn packet_len(&self, md_idx: u32) -> Result<u32> {
        let u = self.umd_offset(md_idx)?;
        self.read_u32(RegionId::Umd, u + umd::LEN)
    }

    /// Copies the data of the native buffer of packet `md_idx` (handed to
    /// this process by `PacketPool::upp_insert`) into `out`; returns the
    /// bytes copied (at most the data length). Only the packet's first
    /// (native) buflet is read.
    pub fn read_packet(&self, md_idx: u32, out: &mut [u8]) -> Result<usize> {
        let (boff, doff, dlen) = self.native_buffer(md_idx)?;
        let n = out.len().min(dlen as usize);
        self.read(RegionId::BufDef, boff + doff as usize, &mut out[..n])?;
        Ok(n)
    }

    /// Replaces the data of packet `md_idx` with `data`: writes it at the
    /// start of the native buffer and sets the data offset, data length and
    /// packet length in the user metadata, which the owner validates when
    /// the packet comes back (`PacketPool::upp_remove`).
    pub fn write_packet(&self, md_idx: u32, data: &[u8]) -> Result<usize> {
        if data.len() > self.info.buf_size as usize {
            return Err(Error::OutOfRange {
                field: "data.len()",
                value: data.len() as u64,
                limit: self.info.buf_size as u64 + 1,
            });
        }
        let (boff, _, _) = self.native_buffer(md_idx)?;
        self.write(RegionId::BufDef, boff, data)?;
        let u = self.umd_offset(md_idx)?;
        let nb = u + umd::BUF;
        self.write_u32(RegionId::Umd, nb + ubft::DOFF, 0)?;
        self.write_u32(RegionId::Umd, nb + ubft::DLEN, data.len() as u32)?;
        self.write_u32(RegionId::Umd, u + umd::LEN, data.len() as u32)?;
        Ok(data.len())
    }

    // ------------------------------------------------------------------
    // Control
    // ------------------------------------------------------------------

    /// Processes the owner's pending control messages without blocking
    /// (remote views; a local view has none and returns `Ok(None)`). A
    /// redirect is carried out before this returns
    /// [`ControlEvent::Redirected`]. Call it from the peer's event loop:
    /// redirect of a remote view is cooperative (see the
    /// [arena docs](crate#redirect-and-peers-that-do-not-cooperate)).
    pub fn poll(&self) -> Result<Option<ControlEvent>> {
        self.control(false)
    }

    /// As [`poll`](Self::poll), but waits for the next control event.
    pub fn wait(&self) -> Result<ControlEvent> {
        loop {
            if let Some(e) = self.control(true)? {
                return Ok(e);
            }
        }
    }

    fn control(&self, blocking: bool) -> Result<Option<ControlEvent>> {
        let Link::Remote { socket, owner_gone } = &self.link else {
            return Ok(None);
        };
        if owner_gone.load(Ordering::Acquire) {
            return Ok(Some(ControlEvent::OwnerGone));
        }
        let mut closed = false;
        match wire::recv(socket.as_fd(), blocking, &mut closed)? {
            None if closed => {
                owner_gone.store(true, Ordering::Release);
                Ok(Some(ControlEvent::OwnerGone))
            }
            None => Ok(None),
            Some(m) if m.kind == Kind::Redirect && m.view == self.id.0 => {
                if !self.redirected.swap(true, Ordering::AcqRel) {
                    // SAFETY: the view is ours and mapped while `&self`
                    // lives; remote views are unmapped only by `drop`,
                    // which cannot run concurrently with `&self`.
                    unsafe { redirect(self.base, &self.layout) }?;
                }
                // Best effort: the owner learns we obeyed.
                let _ = wire::send_simple(socket.as_fd(), Kind::Redirected, self.id.0);
                Ok(Some(ControlEvent::Redirected))
            }
            Some(m) => Err(Error::Invalid {
                field: "control message",
                reason: format!("unexpected {:?} for view {}", m.kind, m.view),
            }),
        }
    }
}

impl Drop for UserView {
    fn drop(&mut self) {
        match &self.link {
            Link::Local(core) => core.unmap_local(self.id, self.base),
            Link::Remote { socket, .. } => {
                // SAFETY: the view is ours and `&mut self` means no one
                // uses it any more.
                unsafe { unmap(self.base, self.layout.total_len) };
                let _ = wire::send_simple(socket.as_fd(), Kind::Closed, self.id.0);
            }
        }
    }
}
