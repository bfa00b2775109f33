//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use skmem_traits::{AllocFlags, ObjectCtor, ObjectInfo, Result};

/// The word a constructed object starts with.
pub const MAGIC: u64 = 0x5eed_cafe_f00d_0001;

/// A constructor that stamps `MAGIC` into each object, checks it on the way
/// out, and counts both.
#[derive(Debug, Default)]
pub struct Stamp {
    pub ctors: AtomicU64,
    pub dtors: AtomicU64,
    pub reclaims: AtomicU64,
}

impl Stamp {
    pub fn ctors(&self) -> u64 {
        self.ctors.load(Ordering::Relaxed)
    }
    pub fn dtors(&self) -> u64 {
        self.dtors.load(Ordering::Relaxed)
    }
}

impl ObjectCtor for Stamp {
    fn construct(&self, obj: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        assert!(obj.size >= 8);
        // SAFETY: the constructor owns `obj.size >= 8` bytes at `obj.addr`,
        // aligned to at least 8 in every test.
        unsafe { obj.addr.cast::<u64>().as_ptr().write(MAGIC) };
        self.ctors.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn destruct(&self, obj: ObjectInfo, _: Option<ObjectInfo>) {
        // SAFETY: as in `construct`; the object was constructed by it.
        let word = unsafe { obj.addr.cast::<u64>().as_ptr().read() };
        assert_eq!(word, MAGIC, "destructing an object that is not constructed");
        // SAFETY: as above.
        unsafe { obj.addr.cast::<u64>().as_ptr().write(0) };
        self.dtors.fetch_add(1, Ordering::Relaxed);
    }

    fn reclaim(&self) {
        self.reclaims.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads the first word of an object handed out by a cache.
pub fn word(obj: std::ptr::NonNull<u8>) -> u64 {
    // SAFETY: test objects are at least 8 bytes, 8-aligned, and owned by the
    // caller while out.
    unsafe { obj.cast::<u64>().as_ptr().read() }
}

/// Writes the first word of an object.
pub fn set_word(obj: std::ptr::NonNull<u8>, v: u64) {
    // SAFETY: as in `word`.
    unsafe { obj.cast::<u64>().as_ptr().write(v) }
}

pub type SharedStamp = Arc<Stamp>;
