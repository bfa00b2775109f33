//! Metadata layouts and the handles that point at them.
//!
//! # Kernel metadata (private)
//!
//! A kernel metadata object ([`Kmd`], the seed's `__kern_quantum` /
//! `__kern_packet` behind its preamble) lives in the pool's private metadata
//! region. Only this process touches it, so it may hold pointers: its native
//! buflet, the next external buflet, the next packet of a chain or queue, an
//! attached packet, its user mirror. It is `#[repr(C)]` and always reached
//! through raw pointers; the pool never forms a Rust reference to it either,
//! because handles are `Copy` and several may name the same object.
//!
//! External buflets ([`Kbuf`] objects in the buflet region) are the same
//! struct as the native buflet embedded in every [`Kmd`].
//!
//! # User metadata (shared)
//!
//! The user mirror of a metadata object (and of an external buflet) sits at
//! the same offset of a shadow region that another process maps. Its bytes
//! can change at any moment, so it is read and written with
//! `read_volatile` / `write_volatile` of plain integers at the offsets of
//! [`umd`] and [`ubft`]; it holds indices, never pointers.

use core::mem::{size_of, MaybeUninit};
use core::ptr::{self, NonNull};

use skmem_traits::{Error, Result};

/// "No object" in an index field (the seed's `OBJ_IDX_NONE`).
pub const IDX_NONE: u32 = u32::MAX;

/// "Nobody" in an owner field.
pub const NO_OWNER: u32 = u32::MAX;

/// What kind of metadata a pool hands out (the seed's
/// `NEXUS_META_TYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum MetadataType {
    /// One buffer per object, nothing else.
    Quantum,
    /// Up to `max_frags` buflets, packet-level fields (attached packet,
    /// transmit-completion request).
    #[default]
    Packet,
}

impl MetadataType {
    /// The tag kept in the low bits of a handle.
    #[inline]
    pub(crate) const fn tag(self) -> usize {
        match self {
            MetadataType::Quantum => 1,
            MetadataType::Packet => 2,
        }
    }
}

// ---------------------------------------------------------------------------
// Kernel-side layouts
// ---------------------------------------------------------------------------

/// The buflet is an object of the buflet region (not embedded in a packet).
pub(crate) const BUF_EXTERNAL: u16 = 1 << 0;
/// The buflet's buffer comes from the large buffer cache.
pub(crate) const BUF_LARGE: u16 = 1 << 1;

/// A buflet: one buffer and the window of it that holds data.
#[repr(C)]
pub(crate) struct Kbuf {
    /// The buffer (null: none attached).
    pub(crate) addr: *mut u8,
    /// Next buflet of the packet's chain (null: last).
    pub(crate) next: *mut Kbuf,
    /// User mirror of this buflet (external buflets of mirrored pools).
    pub(crate) ubft: *mut u8,
    /// Index of the buffer in its region.
    pub(crate) buf_idx: u32,
    /// Index of this buflet in the buflet region (`IDX_NONE` when native).
    pub(crate) bft_idx: u32,
    /// Index of `next` in the buflet region.
    pub(crate) next_idx: u32,
    /// Capacity of the buffer in bytes.
    pub(crate) cap: u32,
    /// Bytes of data.
    pub(crate) dlen: u32,
    /// Offset of the data in the buffer.
    pub(crate) doff: u32,
    /// Process that holds the buflet on its own (`NO_OWNER` otherwise).
    pub(crate) owner: u32,
    /// `BUF_*` flags.
    pub(crate) flags: u16,
    pub(crate) _pad: u16,
}

/// The object is handed out (set on alloc).
pub(crate) const MD_INTERNALIZED: u32 = 1 << 0;
/// Transmit completion callbacks run when the packet is freed.
pub(crate) const MD_TX_COMPL: u32 = 1 << 1;
/// `attached` holds a packet to free with this one.
pub(crate) const MD_HAS_ATTACHED: u32 = 1 << 2;
/// This packet is attached to another one.
pub(crate) const MD_IS_ATTACHED: u32 = 1 << 3;
/// Flags that send a free down the per-packet slow path.
pub(crate) const MD_SLOW: u32 = MD_TX_COMPL | MD_HAS_ATTACHED | MD_IS_ATTACHED;

/// Kernel metadata: the object of the private metadata region.
#[repr(C, align(64))]
pub(crate) struct Kmd {
    /// `MD_*` flags.
    pub(crate) flags: u32,
    /// Index of this object in the metadata region.
    pub(crate) index: u32,
    /// Buflets with a buffer in the chain (native included).
    pub(crate) bufs_cnt: u16,
    /// Largest `bufs_cnt`.
    pub(crate) bufs_max: u16,
    /// Process the packet was handed to (`NO_OWNER`: none).
    pub(crate) owner: u32,
    /// Packet length.
    pub(crate) len: u32,
    /// Offset of the user object in the user metadata region (redzone key).
    pub(crate) umd_roff: u64,
    /// Next packet of a chain or queue.
    pub(crate) next_pkt: *mut Kmd,
    /// Attached packet (freed with this one).
    pub(crate) attached: *mut Kmd,
    /// The user mirror (null in kernel-only pools).
    pub(crate) umd: *mut u8,
    /// The native buflet.
    pub(crate) buf: Kbuf,
}

/// Size of a kernel metadata object.
pub(crate) const KMD_SIZE: usize = size_of::<Kmd>();
/// Size of a buflet object.
pub(crate) const KBUF_SIZE: usize = size_of::<Kbuf>();
const _: () = assert!(KMD_SIZE % 64 == 0 && KMD_SIZE <= 128);
const _: () = assert!(KBUF_SIZE <= 64);

impl Kbuf {
    /// A buflet with nothing attached.
    pub(crate) const EMPTY: Kbuf = Kbuf {
        addr: ptr::null_mut(),
        next: ptr::null_mut(),
        ubft: ptr::null_mut(),
        buf_idx: IDX_NONE,
        bft_idx: IDX_NONE,
        next_idx: IDX_NONE,
        cap: 0,
        dlen: 0,
        doff: 0,
        owner: NO_OWNER,
        flags: 0,
        _pad: 0,
    };
}

// ---------------------------------------------------------------------------
// User-side layouts: byte offsets of plain integers
// ---------------------------------------------------------------------------

/// Byte offsets of the fields of a user metadata object (the mirror of a
/// kernel metadata object). All fields are native-endian integers.
pub mod umd {
    /// `u64`: redzone, `(offset in the user region) ^ pool secret`.
    pub const REDZONE: usize = 0;
    /// `u32`: index of the metadata object in its region.
    pub const MD_INDEX: usize = 8;
    /// `u16`: metadata type (1 quantum, 2 packet).
    pub const MD_TYPE: usize = 12;
    /// `u16`: buflets in the chain (native with a buffer included).
    pub const BUFS_CNT: usize = 14;
    /// `u32`: packet length.
    pub const LEN: usize = 16;
    /// Start of the native buflet (same layout as [`ubft`](super::ubft)).
    pub const BUF: usize = 24;
    /// Bytes a user metadata object needs.
    pub const SIZE: usize = BUF + super::ubft::SIZE;
}

/// Byte offsets of the fields of a user buflet (and of the native buflet
/// inside a user metadata object, from [`umd::BUF`]).
pub mod ubft {
    /// `u32`: index of the buflet in the buflet region (`u32::MAX` native).
    pub const BFT_INDEX: usize = 0;
    /// `u32`: index of the buffer in its region.
    pub const BUF_INDEX: usize = 4;
    /// `u32`: bytes of data.
    pub const DLEN: usize = 8;
    /// `u32`: data offset in the buffer.
    pub const DOFF: usize = 12;
    /// `u32`: index of the next buflet (`u32::MAX`: last).
    pub const NEXT_INDEX: usize = 16;
    /// Bytes a user buflet needs.
    pub const SIZE: usize = 20;
}

const _: () = assert!(umd::SIZE <= KMD_SIZE && ubft::SIZE <= KBUF_SIZE);

/// Reads a `u32` of shared memory.
///
/// # Safety
///
/// `base + off .. + 4` is mapped, readable, 4-byte aligned memory.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn rd32(base: *const u8, off: usize) -> u32 {
    // SAFETY: forwarded from the caller; a volatile read of a plain integer
    // tolerates concurrent writers.
    unsafe { ptr::read_volatile(base.add(off).cast::<u32>()) }
}

/// Reads a `u16` of shared memory.
///
/// # Safety
///
/// As [`rd32`], for 2 bytes.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn rd16(base: *const u8, off: usize) -> u16 {
    // SAFETY: as `rd32`.
    unsafe { ptr::read_volatile(base.add(off).cast::<u16>()) }
}

/// Reads a `u64` of shared memory.
///
/// # Safety
///
/// As [`rd32`], for 8 bytes, 8-aligned.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn rd64(base: *const u8, off: usize) -> u64 {
    // SAFETY: as `rd32`.
    unsafe { ptr::read_volatile(base.add(off).cast::<u64>()) }
}

/// Writes a `u32` of shared memory.
///
/// # Safety
///
/// `base + off .. + 4` is mapped, writable, 4-byte aligned memory.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn wr32(base: *mut u8, off: usize, v: u32) {
    // SAFETY: forwarded from the caller.
    unsafe { ptr::write_volatile(base.add(off).cast::<u32>(), v) }
}

/// Writes a `u16` of shared memory.
///
/// # Safety
///
/// As [`wr32`], for 2 bytes.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn wr16(base: *mut u8, off: usize, v: u16) {
    // SAFETY: forwarded from the caller.
    unsafe { ptr::write_volatile(base.add(off).cast::<u16>(), v) }
}

/// Writes a `u64` of shared memory.
///
/// # Safety
///
/// As [`wr32`], for 8 bytes, 8-aligned.
#[inline]
#[allow(clippy::cast_ptr_alignment)] // alignment is part of the caller contract
pub(crate) unsafe fn wr64(base: *mut u8, off: usize, v: u64) {
    // SAFETY: forwarded from the caller.
    unsafe { ptr::write_volatile(base.add(off).cast::<u64>(), v) }
}

/// Views an object address of the metadata region as kernel metadata.
/// Metadata objects are 64-byte aligned (the slab's alignment).
#[inline(always)]
#[allow(clippy::cast_ptr_alignment)] // objects come from a 64-aligned slab
pub(crate) fn as_kmd(p: *mut u8) -> *mut Kmd {
    p.cast::<Kmd>()
}

/// Views an object address of the buflet region as a buflet (64-aligned
/// slab objects).
#[inline(always)]
#[allow(clippy::cast_ptr_alignment)] // objects come from a 64-aligned slab
pub(crate) fn as_kbuf(p: *mut u8) -> *mut Kbuf {
    p.cast::<Kbuf>()
}

/// The initialised view of a slice of `MaybeUninit`.
///
/// # Safety
///
/// Every element of `s` is initialised.
#[inline(always)]
pub(crate) unsafe fn assume_init_slice<T>(s: &[MaybeUninit<T>]) -> &[T] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout; the caller vouches for
    // initialisation.
    unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<T>(), s.len()) }
}

// ---------------------------------------------------------------------------
// Handles
// ---------------------------------------------------------------------------

const TAG_MASK: usize = 0x3f;

/// A packet (or quantum) handed out by a [`PacketPool`](crate::PacketPool):
/// the address of its kernel metadata with the metadata type in the low
/// bits (the seed's tagged pointers). Eight bytes, `Copy`.
///
/// A handle is only an address: every accessor is `unsafe` with one
/// contract, stated once here.
///
/// # Safety (of every `unsafe` accessor)
///
/// The packet is allocated (handed out and not freed since) from a pool
/// that is still alive or was dropped with the packet outstanding, and no
/// other thread uses the packet at the same time.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Packet(NonNull<u8>);

// SAFETY: a handle is an address; every access through it is `unsafe` and
// its contract (exclusive use of an allocated packet) makes moving the
// handle between threads harmless.
unsafe impl Send for Packet {}
// SAFETY: as above.
unsafe impl Sync for Packet {}

impl core::fmt::Debug for Packet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Packet({:p}, {:?})", self.kmd(), self.md_type())
    }
}

impl Packet {
    /// Tags a kernel metadata address.
    #[inline]
    pub(crate) fn encode(kmd: NonNull<u8>, t: MetadataType) -> Packet {
        // The metadata is 64-byte aligned: the low six bits are free. The
        // offset stays inside the object, so provenance is kept.
        // SAFETY: `kmd + tag` lies inside the same object (tag < 64 <= size).
        Packet(unsafe { kmd.add(t.tag()) })
    }

    /// The kernel metadata this handle points at.
    #[inline]
    pub(crate) fn kmd(self) -> *mut Kmd {
        let tag = self.0.as_ptr() as usize & TAG_MASK;
        as_kmd(self.0.as_ptr().wrapping_sub(tag))
    }

    #[inline]
    pub(crate) fn kmd_nn(self) -> NonNull<u8> {
        // SAFETY: `kmd()` is the untagged, non-null object address.
        unsafe { NonNull::new_unchecked(self.kmd().cast::<u8>()) }
    }

    #[inline]
    pub(crate) fn from_kmd(kmd: *mut Kmd, t: MetadataType) -> Packet {
        // SAFETY: callers pass the non-null address of a metadata object.
        Packet::encode(unsafe { NonNull::new_unchecked(kmd.cast::<u8>()) }, t)
    }

    /// The metadata type encoded in the handle (no memory access).
    #[inline]
    pub fn md_type(self) -> MetadataType {
        if self.0.as_ptr() as usize & TAG_MASK == MetadataType::Quantum.tag() {
            MetadataType::Quantum
        } else {
            MetadataType::Packet
        }
    }

    /// The raw tagged value (for logs and hashing; not an address).
    #[inline]
    pub fn raw(self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Index of the metadata object in its region.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    #[inline]
    pub unsafe fn md_index(self) -> u32 {
        // SAFETY: the type's contract: the metadata is allocated.
        unsafe { (*self.kmd()).index }
    }

    /// Number of buflets with a buffer.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    #[inline]
    pub unsafe fn buflet_count(self) -> u16 {
        // SAFETY: as above.
        unsafe { (*self.kmd()).bufs_cnt }
    }

    /// Packet length in bytes.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    #[inline]
    pub unsafe fn len(self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.kmd()).len }
    }

    /// `true` when the packet length is 0.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    #[inline]
    pub unsafe fn is_empty(self) -> bool {
        // SAFETY: as above.
        unsafe { self.len() == 0 }
    }

    /// Process the packet is handed to, if any.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn owner(self) -> Option<u32> {
        // SAFETY: as above.
        let o = unsafe { (*self.kmd()).owner };
        (o != NO_OWNER).then_some(o)
    }

    /// The buflets that hold a buffer, in chain order.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet); the iterator must not outlive the
    /// packet's allocation.
    pub unsafe fn buflets(self) -> BufletIter {
        let kmd = self.kmd();
        // SAFETY: as above; the native buflet is inside the metadata.
        let native = unsafe { ptr::addr_of_mut!((*kmd).buf) };
        // SAFETY: as above.
        let first = if unsafe { (*native).addr.is_null() } {
            // SAFETY: as above.
            unsafe { (*native).next }
        } else {
            native
        };
        BufletIter { cur: first }
    }

    /// The first buflet holding a buffer.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn first_buflet(self) -> Option<Buflet> {
        // SAFETY: forwarded.
        unsafe { self.buflets() }.next()
    }

    /// Address of the first buffer (null when the packet has none).
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn buffer_addr(self) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.first_buflet().map_or(ptr::null_mut(), |b| b.addr()) }
    }

    /// Total capacity of the packet's buffers.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn capacity(self) -> usize {
        // SAFETY: forwarded.
        unsafe { self.buflets() }
            .map(|b| unsafe { b.capacity() })
            .sum()
    }

    /// Asks for the pool's transmit-completion callbacks to run when this
    /// packet is freed (packets only; a quantum ignores the request).
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn request_tx_completion(self) {
        if self.md_type() == MetadataType::Packet {
            // SAFETY: as above.
            unsafe { (*self.kmd()).flags |= MD_TX_COMPL };
        }
    }

    /// Copies `data` into the packet's buffers from the start of each,
    /// setting each buflet's data window and the packet length. Returns the
    /// bytes copied (less than `data.len()` when the buffers are too small).
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn write_payload(self, data: &[u8]) -> usize {
        let mut done = 0;
        // SAFETY: forwarded.
        for b in unsafe { self.buflets() } {
            // SAFETY: the buflet belongs to the packet.
            let cap = unsafe { b.capacity() };
            let n = cap.min(data.len() - done);
            // SAFETY: as above.
            unsafe { b.write(0, &data[done..done + n]) };
            done += n;
        }
        // SAFETY: as above.
        unsafe { (*self.kmd()).len = done as u32 };
        done
    }

    /// Copies the packet's data (each buflet's window, in order) into
    /// `out`; returns the bytes copied.
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn read_payload(self, out: &mut [u8]) -> usize {
        let mut done = 0;
        // SAFETY: forwarded.
        for b in unsafe { self.buflets() } {
            if done == out.len() {
                break;
            }
            // SAFETY: the buflet belongs to the packet.
            done += unsafe { b.read(&mut out[done..]) };
        }
        done
    }

    /// Next packet of a chain (see [`PacketQueue`]).
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet).
    pub unsafe fn next(self) -> Option<Packet> {
        // SAFETY: as above.
        let n = unsafe { (*self.kmd()).next_pkt };
        (!n.is_null()).then(|| Packet::from_kmd(n, self.md_type()))
    }

    /// Links `next` after this packet (builds a chain for
    /// [`PacketPool::free_chain`](crate::PacketPool::free_chain)).
    ///
    /// # Safety
    ///
    /// See the [type docs](Packet); `next` is allocated from the same pool.
    pub unsafe fn set_next(self, next: Option<Packet>) {
        let p = next.map_or(ptr::null_mut(), Packet::kmd);
        // SAFETY: as above.
        unsafe { (*self.kmd()).next_pkt = p };
    }
}

/// Iterator over a packet's buflets.
#[derive(Debug)]
pub struct BufletIter {
    cur: *mut Kbuf,
}

impl Iterator for BufletIter {
    type Item = Buflet;
    fn next(&mut self) -> Option<Buflet> {
        let cur = NonNull::new(self.cur)?;
        // SAFETY: the iterator was made from an allocated packet (the
        // contract of `Packet::buflets`); chain links are kernel pointers.
        self.cur = unsafe { (*cur.as_ptr()).next };
        Some(Buflet(cur))
    }
}

/// A buflet: a buffer and its data window. Either the native buflet of a
/// packet or an external buflet object. `Copy`; accessors follow the
/// contract of [`Packet`]'s (the buflet, or the packet holding it, is
/// allocated and used by one thread at a time).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Buflet(pub(crate) NonNull<Kbuf>);

// SAFETY: as for `Packet`.
unsafe impl Send for Buflet {}
// SAFETY: as for `Packet`.
unsafe impl Sync for Buflet {}

impl core::fmt::Debug for Buflet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Buflet({:p})", self.0)
    }
}

impl Buflet {
    #[inline]
    pub(crate) fn ptr(self) -> *mut Kbuf {
        self.0.as_ptr()
    }

    /// Address of the buffer.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    #[inline]
    pub unsafe fn addr(self) -> *mut u8 {
        // SAFETY: the contract of `Packet`.
        unsafe { (*self.ptr()).addr }
    }

    /// Capacity of the buffer.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    #[inline]
    pub unsafe fn capacity(self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.ptr()).cap as usize }
    }

    /// Index of the buffer in its region.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn buffer_index(self) -> u32 {
        // SAFETY: as above.
        unsafe { (*self.ptr()).buf_idx }
    }

    /// Index of the buflet object in the buflet region (`None` for the
    /// native buflet of a packet).
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn index(self) -> Option<u32> {
        // SAFETY: as above.
        let i = unsafe { (*self.ptr()).bft_idx };
        (i != IDX_NONE).then_some(i)
    }

    /// `true` when the buffer comes from the large buffer cache.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn is_large(self) -> bool {
        // SAFETY: as above.
        unsafe { (*self.ptr()).flags & BUF_LARGE != 0 }
    }

    /// Data offset in the buffer.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn data_offset(self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.ptr()).doff as usize }
    }

    /// Bytes of data.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn data_len(self) -> usize {
        // SAFETY: as above.
        unsafe { (*self.ptr()).dlen as usize }
    }

    /// Sets the data window; refuses one that does not fit the buffer.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn set_data(self, offset: usize, len: usize) -> Result<()> {
        // SAFETY: as above.
        let cap = unsafe { self.capacity() };
        if offset > cap {
            return Err(Error::OutOfRange {
                field: "data_offset",
                value: offset as u64,
                limit: cap as u64 + 1,
            });
        }
        if len > cap - offset {
            return Err(Error::OutOfRange {
                field: "data_len",
                value: len as u64,
                limit: (cap - offset) as u64 + 1,
            });
        }
        // SAFETY: as above.
        unsafe {
            (*self.ptr()).doff = offset as u32;
            (*self.ptr()).dlen = len as u32;
        }
        Ok(())
    }

    /// Copies `data` into the buffer at `offset` and makes it the data
    /// window; copies what fits and returns the count.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn write(self, offset: usize, data: &[u8]) -> usize {
        // SAFETY: as above.
        let (addr, cap) = unsafe { (self.addr(), self.capacity()) };
        if addr.is_null() || offset > cap {
            return 0;
        }
        let n = data.len().min(cap - offset);
        // SAFETY: `addr .. addr + cap` is the buffer this buflet owns (or
        // shares); raw copy, no reference into it.
        unsafe {
            ptr::copy_nonoverlapping(data.as_ptr(), addr.add(offset), n);
            (*self.ptr()).doff = offset as u32;
            (*self.ptr()).dlen = n as u32;
        }
        n
    }

    /// Copies the data window into `out`; returns the bytes copied.
    ///
    /// # Safety
    ///
    /// See [`Packet`].
    pub unsafe fn read(self, out: &mut [u8]) -> usize {
        // SAFETY: as above.
        let (addr, cap, off, len) = unsafe {
            (
                self.addr(),
                self.capacity(),
                self.data_offset(),
                self.data_len(),
            )
        };
        if addr.is_null() || off > cap {
            return 0;
        }
        let n = len.min(cap - off).min(out.len());
        // SAFETY: in bounds of the buffer (checked above); raw copy.
        unsafe { ptr::copy_nonoverlapping(addr.add(off), out.as_mut_ptr(), n) };
        n
    }
}

/// A queue of packets linked through their kernel metadata (the seed's
/// `pktq`): no allocation, O(1) push and pop.
#[derive(Debug, Default)]
pub struct PacketQueue {
    head: Option<Packet>,
    tail: Option<Packet>,
    len: usize,
}

impl PacketQueue {
    /// An empty queue.
    pub const fn new() -> Self {
        PacketQueue {
            head: None,
            tail: None,
            len: 0,
        }
    }

    /// Packets in the queue.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` when the queue holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first packet (the head of the chain).
    pub fn head(&self) -> Option<Packet> {
        self.head
    }

    /// Appends a packet.
    ///
    /// # Safety
    ///
    /// The packet is allocated, not in any queue or chain, and stays
    /// allocated (not freed but through this queue) while it is queued.
    pub unsafe fn push_back(&mut self, p: Packet) {
        // SAFETY: the caller hands the packet to the queue.
        unsafe { (*p.kmd()).next_pkt = ptr::null_mut() };
        match self.tail {
            // SAFETY: `t` is queued, hence allocated (push contract).
            Some(t) => unsafe { (*t.kmd()).next_pkt = p.kmd() },
            None => self.head = Some(p),
        }
        self.tail = Some(p);
        self.len += 1;
    }

    /// Removes the first packet.
    pub fn pop_front(&mut self) -> Option<Packet> {
        let h = self.head?;
        // SAFETY: queued packets are allocated (push contract).
        let next = unsafe { (*h.kmd()).next_pkt };
        // SAFETY: as above.
        unsafe { (*h.kmd()).next_pkt = ptr::null_mut() };
        self.head = (!next.is_null()).then(|| Packet::from_kmd(next, h.md_type()));
        if self.head.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(h)
    }

    /// Takes the whole chain, leaving the queue empty.
    pub(crate) fn take(&mut self) -> Option<Packet> {
        let h = self.head.take();
        self.tail = None;
        self.len = 0;
        h
    }
}
