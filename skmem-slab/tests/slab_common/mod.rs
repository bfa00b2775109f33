//! Helpers shared by the slab tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use skmem_backends::{Heap, HeapConfig};
use skmem_slab::{Region, RegionParams};
use skmem_traits::{AllocFlags, Error, ObjectCtor, ObjectInfo, RegionMode, Result};

/// Byte the test constructor writes over every object it builds.
pub const CTOR_PATTERN: u8 = 0xC5;

/// A heap region of `count` objects of `size` bytes in 4 KiB segments, with
/// no magazine allowance (so the counts are exact).
pub fn heap_region(name: &str, size: usize, count: usize) -> Arc<Region<Heap>> {
    heap_region_mode(name, size, count, RegionMode::empty())
}

/// As [`heap_region`] with extra mode flags.
pub fn heap_region_mode(
    name: &str,
    size: usize,
    count: usize,
    mode: RegionMode,
) -> Arc<Region<Heap>> {
    let params = RegionParams::new(name, size, count)
        .seg_size(4096)
        .mode(mode | RegionMode::NOMAGAZINES);
    Region::new(params, HeapConfig::default()).expect("heap region")
}

/// A constructor that checks it is never asked to build a built object or
/// tear down an unbuilt one, writes a pattern over what it builds, and can be
/// told to fail.
#[derive(Default)]
pub struct CheckingCtor {
    /// Addresses currently constructed → index in region.
    pub live: Mutex<HashMap<usize, ObjectInfo>>,
    /// When non-zero: `n - 1` more constructions succeed, the next one
    /// fails, and the countdown stops (0).
    pub fail_after: AtomicU64,
    /// Fail every construction while set.
    pub fail_all: AtomicBool,
    /// Constructions refused.
    pub refused: AtomicU64,
}

impl CheckingCtor {
    pub fn live_count(&self) -> usize {
        self.live().len()
    }

    /// The constructed set (a std mutex: contended `parking_lot` is not
    /// strict-provenance clean under Miri).
    pub fn live(&self) -> MutexGuard<'_, HashMap<usize, ObjectInfo>> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ObjectCtor for CheckingCtor {
    fn construct(&self, obj: ObjectInfo, shadow: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        let fail = self.fail_all.load(Ordering::Relaxed)
            || self
                .fail_after
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                == Ok(1);
        // Scribble before deciding, so a failed construction leaves garbage
        // that clear-on-free must remove.
        // SAFETY: the slab layer hands the constructor `obj.size` bytes it
        // owns exclusively for the call.
        unsafe { std::ptr::write_bytes(obj.addr.as_ptr(), CTOR_PATTERN, obj.size) };
        if let Some(shadow) = shadow {
            assert_eq!(shadow.index_in_region, obj.index_in_region);
        }
        if fail {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::CtorFailed {
                name: "checking".into(),
            });
        }
        let old = self.live().insert(obj.addr.as_ptr() as usize, obj);
        assert!(old.is_none(), "constructed {:p} twice", obj.addr);
        Ok(())
    }

    fn destruct(&self, obj: ObjectInfo, _: Option<ObjectInfo>) {
        let old = self.live().remove(&(obj.addr.as_ptr() as usize));
        assert_eq!(
            old,
            Some(obj),
            "destructed {:p}, which was not constructed",
            obj.addr
        );
    }
}

/// Reads `len` bytes at `ptr`.
///
/// # Safety
///
/// `ptr` is valid for `len` bytes of reads and nobody writes them meanwhile.
pub unsafe fn bytes(ptr: NonNull<u8>, len: usize) -> Vec<u8> {
    // SAFETY: forwarded.
    unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) }.to_vec()
}

/// The panic message of a caught panic.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast::<&'static str>()
            .map(|s| s.to_string())
            .unwrap_or_default(),
    }
}
