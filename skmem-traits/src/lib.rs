//! The shared vocabulary of skmem.
//!
//! skmem stacks allocator layers at compile time: a **segment source**
//! (backend) supplies fixed-size segments of memory, a **region** hands those
//! segments out whole, a **slab cache** carves each segment into equally sized
//! objects, and a **magazine cache** keeps constructed objects close to each
//! CPU. Each layer is generic over the traits in this crate, so a stack built
//! from zero-sized policies ([`NoCtor`], [`NoMirror`]) compiles to the code a
//! person would have written by hand.
//!
//! | trait | what it decides | default |
//! |---|---|---|
//! | [`SegmentSource`] | where segment memory comes from (heap, memfd, DMA) | — |
//! | [`ObjectCtor`] | how objects are built on their way up from the slab layer and torn down on their way back | [`NoCtor`] |
//! | [`Mirror`] | whether a region drives a shadow region segment for segment | [`NoMirror`] |
//! | [`CpuLocal`] | where the magazine layer keeps per-CPU state | — |
//!
//! # What lives here, and why not with its layer
//!
//! Each layer crate owns its mechanisms: the `CpuLocal` *policies*
//! (`PerCpu`, `PerThread`, `Global`) live in `skmem-magazine`, the slab
//! and region code in `skmem-slab`. Two things every layer shares stay
//! here on purpose:
//!
//! * the four traits, as the design fixes them: a backend crate, a test
//!   double or a user's own policy implements one without depending on the
//!   layers that consume it (a `CpuLocal` written for another runtime
//!   needs nothing of the magazine layer but this contract);
//! * the stats records ([`stats`]) and the [`registry`] that lists them:
//!   the registry holds every kind side by side, and the readers of
//!   published stats (`skmem-stats`, `skmem-top`) decode all of them from
//!   another process's memory without linking the slab, magazine, packet
//!   or arena code that produced them.
//!
//! The crate is `no_std` (with `alloc`); the `std` feature (on by default)
//! only adds `std::error::Error` through `thiserror`, and the `serde` feature
//! makes every stats struct serialisable.

#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

/// A builder setter, `pub fn $name(mut self, v: $ty) -> Self`, storing `v`
/// in the field of the same name: the configuration builders of the layer
/// crates (packet pool, arena) are written with it. Not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! __config_setter {
    ($(#[$m:meta])* $name:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.$name = v;
            self
        }
    };
}

mod ctor;
mod error;
mod flags;
mod info;
mod local;
mod mirror;
#[cfg(feature = "std")]
pub mod registry;
mod source;
pub mod stats;

pub use ctor::{NoCtor, ObjectCtor};
pub use error::{Error, Result};
pub use flags::{AllocFlags, RegionMode};
pub use info::ObjectInfo;
pub use local::{CpuLocal, ExitHook, ExitJob, FastPath, SlotHooks, SlotInit};
pub use mirror::{Mirror, NoMirror};
pub use source::{Capabilities, Protection, SegmentGeometry, SegmentSource, SharedBacking};

/// The CPU cache line size every object is aligned to (x86-64 and most
/// aarch64 parts; the adjacent-line prefetcher makes 128 a tempting choice,
/// but the seed and every consumer here use 64).
pub const CACHE_LINE_SIZE: usize = 64;

/// The granule in which segment sizes are computed (the seed's
/// `SKMEM_MIN_SEG_SIZE`): one small page.
pub const MIN_SEG_SIZE: usize = 4096;
