//! What a layer knows about one object.

use core::ptr::NonNull;

/// The identity of one object inside its region, handed to
/// [`ObjectCtor`](crate::ObjectCtor) callbacks and returned by lookups.
///
/// `addr` is a raw pointer on purpose: the object may be mapped into another
/// process or visible to a device, so no Rust reference to it is formed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectInfo {
    /// Address of the first byte of the object.
    pub addr: NonNull<u8>,
    /// Usable size of the object in bytes (the chunk size).
    pub size: usize,
    /// Index of the object in the whole region:
    /// `segment_index * objects_per_segment + index_in_segment`.
    pub index_in_region: u32,
    /// Index of the segment that holds the object.
    pub segment_index: u32,
    /// Index of the object inside its segment (slab).
    pub index_in_segment: u32,
}

// SAFETY: `ObjectInfo` is a plain description (address and indices); it
// grants no access by itself, and every dereference of `addr` is an unsafe
// operation whose caller must justify it.
unsafe impl Send for ObjectInfo {}
// SAFETY: as above; shared references to the description give no access.
unsafe impl Sync for ObjectInfo {}
