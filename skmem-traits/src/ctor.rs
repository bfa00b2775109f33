//! Object construction and destruction.

use crate::{AllocFlags, ObjectInfo, Result};

/// Builds objects as they move from the slab layer up to a cache and tears
/// them down on their way back, so that objects resting in a cache stay
/// constructed (Bonwick's point: the cost of construction is paid once per
/// slab trip, not once per allocation).
///
/// `obj.addr` points at `obj.size` bytes that the callback owns exclusively
/// for the duration of the call. On mirrored regions `shadow` describes the
/// matching object of the shadow region (same index, same offset).
///
/// Implementations dereference `obj.addr` themselves, in `unsafe` blocks whose
/// justification is this contract.
pub trait ObjectCtor: Send + Sync {
    /// `false` when `construct` and `destruct` do nothing, so the layers can
    /// skip the calls and the bookkeeping around them.
    const ACTIVE: bool = true;

    /// Constructs the object. An error leaves the object unconstructed; the
    /// slab layer takes it back and the allocation fails.
    fn construct(
        &self,
        obj: ObjectInfo,
        shadow: Option<ObjectInfo>,
        flags: AllocFlags,
    ) -> Result<()>;

    /// Destructs an object that `construct` built.
    fn destruct(&self, obj: ObjectInfo, shadow: Option<ObjectInfo>);

    /// Advisory: memory is short, give back whatever the owner can spare
    /// (the seed's reclaim callback).
    fn reclaim(&self) {}
}

/// The zero-sized constructor that does nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoCtor;

impl ObjectCtor for NoCtor {
    const ACTIVE: bool = false;

    #[inline(always)]
    fn construct(&self, _: ObjectInfo, _: Option<ObjectInfo>, _: AllocFlags) -> Result<()> {
        Ok(())
    }

    #[inline(always)]
    fn destruct(&self, _: ObjectInfo, _: Option<ObjectInfo>) {}
}

impl<C: ObjectCtor + ?Sized> ObjectCtor for alloc::sync::Arc<C> {
    const ACTIVE: bool = true;

    fn construct(
        &self,
        obj: ObjectInfo,
        shadow: Option<ObjectInfo>,
        flags: AllocFlags,
    ) -> Result<()> {
        (**self).construct(obj, shadow, flags)
    }

    fn destruct(&self, obj: ObjectInfo, shadow: Option<ObjectInfo>) {
        (**self).destruct(obj, shadow)
    }

    fn reclaim(&self) {
        (**self).reclaim()
    }
}
