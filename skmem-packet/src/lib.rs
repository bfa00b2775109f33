//! Packet-buffer pools for skmem: XNU Skywalk's `pbufpool` in user space.
//!
//! # The problem
//!
//! A network driver or stack moves packets in bursts: it wants 32 or 256
//! packet descriptors, each with a buffer attached, *now*, and gives them
//! back in bursts a moment later, often from another thread. Allocating a
//! descriptor and a buffer separately, and initialising both, on every
//! packet costs more than the packet's processing. Skywalk's answer is a
//! pool of **constructed** metadata: descriptors rest in per-CPU magazines
//! with their buffer already attached, so the fast path is a magazine pop
//! and a reset of a few fields.
//!
//! # The layers
//!
//! ```text
//!  PacketPool (this crate)            packets, buflets, user tracking, stats
//!   └─ Cache (skmem-magazine)         per-CPU magazines of constructed objects
//!       └─ SlabCache (skmem-slab)     objects carved from segments, ctor/dtor
//!           └─ Region (skmem-slab)    segments, mirrors (kernel/user pairs)
//!               └─ SegmentSource      heap, memfd, VFIO (skmem-backends)
//! ```
//!
//! A pool holds up to six regions: kernel metadata and its user mirror,
//! kernel buflets and their user mirror (buffers on demand), default and
//! large buffers. [`PacketPoolConfig::plan`] shows how they are derived, as
//! the seed's `pp_regions_params_adjust` does.
//!
//! # Example
//!
//! ```
//! use skmem_backends::Heap;
//! use skmem_packet::{AllocFlags, PacketPoolConfig};
//!
//! let pool = PacketPoolConfig::new("doc").md_count(64).build::<Heap>(Default::default())?;
//! let mut pkts = Vec::new();
//! let n = pool.alloc_batch_vec(1, 32, &mut pkts, AllocFlags::NoSleep)?;
//! assert_eq!(n, 32);
//! for &p in &pkts {
//!     // SAFETY: `p` was just allocated and is used by this thread only.
//!     unsafe { p.write_payload(b"hello") };
//! }
//! // SAFETY: every packet came from `pool` and is not used afterwards.
//! unsafe { pool.free_batch(&pkts) }?;
//! // SAFETY: no other thread uses the pool or its packets during the check.
//! assert!(unsafe { pool.outstanding() }.is_empty());
//! # Ok::<(), skmem_packet::Error>(())
//! ```
//!
//! The pool lives in [`pool`]. Putting a pool, its rings and slot
//! descriptors into an *arena* that another process maps (zero-copy IPC)
//! is the job of the crate above this one, `skmem-arena`, which reaches the
//! pool's regions through [`PacketPool::regions`].

#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod pool;

pub use pool::*;
pub use skmem_traits::{AllocFlags, Error, Result};
