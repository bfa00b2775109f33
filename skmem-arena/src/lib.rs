//! Arenas for skmem: a named set of regions and caches that can be mapped
//! into other address spaces (the seed's `skmem_arena.c`, nexus flavour),
//! built on `skmem-packet`'s pools and `skmem-backends`' memfd regions.
//!
//! # The problem
//!
//! Zero-copy IPC (netmap, AF_XDP, Skywalk channels) puts packet memory in
//! pages that the producer and the consumer both map: packets move by
//! passing small indices, never by copying payloads. That needs three
//! things a plain pool does not give: the memory must be *mappable
//! elsewhere* (memfd-backed [`Mmap`](skmem_backends::Mmap) regions), the other side must see a
//! *stable layout* (every region at a fixed offset of one span), and the
//! owner must be able to *take the memory back* from a peer that misbehaves
//! or dies (redirect, defunct).
//!
//! # The pieces
//!
//! ```text
//!  Arena                                   view (another process, or this one)
//!  ├─ guard_head   GUARD                   ┌──────────────┐ 0
//!  ├─ schema       UREADONLY NOREDIRECT    │ ---  guard   │
//!  ├─ ring         (ring cache)            │ r--  schema  │
//!  ├─ buf_def ┐                            │ rw-  ring    │
//!  ├─ buf_large│ packet pool (own or       │ rw-  buffers │
//!  ├─ umd      │ external, Arc-shared)     │ rw-  umd     │
//!  ├─ ubft    ┘                            │ r--  usd     │
//!  ├─ txa/rxf usd  UREADONLY (mirrors)     │ rw-  ustats  │
//!  ├─ ustats       one object              │ r--  flowadv │
//!  ├─ flowadv      one object, UREADONLY   │ ---  guard   │
//!  ├─ guard_tail   GUARD                   └──────────────┘ total_len
//!  └─ kmd, kbft, txa/rxf ksd   private: never in a view
//! ```
//!
//! Each region is checked at creation against the seed's rules (which must
//! be read-only, mappable, shareable, redirectable — [`RegionId`]); a
//! mismatch is an [`Error::Invalid`] naming the region and the flag.
//! The regions of the packet pool are adopted by reference: the arena
//! holds an `Arc` on each of them and on the pool, whether it built the
//! pool ([`ArenaConfig::build`]) or was given one
//! ([`ArenaConfig::build_with_pool`], an *external* pool).
//!
//! # Views
//!
//! A view ([`UserView`]) maps every mappable region at its offset of one
//! contiguous span: guards inaccessible, `UREADONLY` regions read-only
//! (from a descriptor opened read-only, so the peer cannot `mprotect` its
//! way to writing), the rest read-write. See the [`view`] module for how
//! it is built and what a view of not-yet-created segments contains.
//!
//! * [`Arena::map_local`] creates a view in this process. Local views are
//!   tracked exactly: dropping one unregisters it.
//! * [`Arena::send_view`] sends the layout descriptor and the memfds over a
//!   `SOCK_SEQPACKET` Unix socket ([`socketpair`]) with `SCM_RIGHTS`;
//!   [`UserView::receive`] maps them on the other side. A remote view is
//!   counted from the moment it is sent, and released when the peer says
//!   it unmapped it, when its socket reaches end-of-file (the peer exited:
//!   its mappings are gone with it) — both seen by [`Arena::poll_peers`] —
//!   or when the owner says so ([`Arena::release_remote`]).
//!
//! # Redirect, and peers that do not cooperate
//!
//! [`Arena::redirect`] cuts one view off: its redirectable regions become
//! zero-filled private pages with the same protection; the peer keeps
//! running, reads zeros, and its writes reach nothing. For a **local** view
//! the arena does it itself (`MAP_FIXED` over the view). For a **remote**
//! view it cannot: no system call lets one process replace another's
//! mappings, so the arena sends a redirect message and the peer's library
//! obeys it in [`UserView::poll`]. That is *cooperative*; the view counts
//! as redirected from the moment the message is sent (as in the seed, where
//! the mapper is marked at once), and [`Arena::poll_peers`] records the
//! peer's acknowledgement ([`ArenaStats::redirects_acked`]).
//!
//! A hostile peer ignores the message and keeps the pages mapped. What the
//! owner can honestly guarantee is that **no data flows any more**: after
//! [`Arena::defunct`] the arena has released its redirectable regions, so
//! once nobody else holds them (an external pool shared with other users
//! keeps its regions alive) their memfds are files only the peer still
//! maps; the owner never reads them again and every freed segment was
//! punched out of the file. Stronger guarantees need the operating system:
//! kill the peer, or give each peer its own pool. The seed's kernel has the
//! mapper; user space does not.
//!
//! Peers get the memfds themselves, and a descriptor can be re-opened
//! through `/proc/<pid>/fd/N` with any access the file allows, so the
//! arena has the kernel enforce what a peer may do, with seals put on every
//! mappable memfd at creation ([`Mmap::seal_for_peers`](skmem_backends::Mmap::seal_for_peers)):
//!
//! * `F_SEAL_SHRINK | F_SEAL_GROW`: a peer cannot resize a file under the
//!   owner (a shrink would turn the owner's accesses into `SIGBUS`);
//! * `F_SEAL_SEAL`: a peer cannot add seals (say `F_SEAL_FUTURE_WRITE` on a
//!   ring, which would stop the owner's hole punches and its later views);
//! * `F_SEAL_FUTURE_WRITE` on `UREADONLY` regions (schema, slot descriptor
//!   mirrors, flow advisories), once the owner's own writable span exists:
//!   no one can map them writable or `write()` them any more, whatever
//!   descriptor they hold. The owner keeps writing through its span; the
//!   kernel refuses hole punches on such files, so their discarded segments
//!   are zeroed rather than returned to the system until the region drops.
//!
//! [`ArenaRegionStats::sealed`] says the seals are on. A memfd that cannot
//! carry them makes [`ArenaConfig::build`] fail with an error naming the
//! region.
//!
//! When every view is redirected the arena becomes *inactive* and refuses
//! new views ([`Error::Busy`]). If some views are redirected and the last
//! un-redirected one goes away, the arena turns inactive then (the seed's
//! deferred defunct). [`Arena::redirect_all`] redirects every view and
//! deactivates the arena even when it has none.
//!
//! # Defunct
//!
//! [`Arena::defunct`] purges the caches and tears down every redirectable
//! region (pool, rings, slot descriptors, stats, flow advisories), keeping
//! the guards and the schema, so that an abandoned arena holds as little
//! memory as possible. It is refused with [`Error::Busy`] while the arena
//! is active ("views are not all redirected", the seed's `EBUSY`), and a
//! second call returns [`Error::Busy`] with reason "already defunct" (the
//! seed's `EALREADY`), changing nothing: callers that only want the arena
//! defunct treat that as success.
//!
//! # Safety and correctness
//!
//! * All mutable state (regions, caches, views, flags) sits behind one
//!   mutex; mappings of local views are changed only with it held.
//! * Regions are reference counted (`Arc`): views, caches and the pool
//!   keep what they use alive; the arena's own references are dropped at
//!   defunct and at drop.
//! * The singleton objects (stats, flow advisories) are whole segments of
//!   monolithic regions, freed before their regions are released.
//! * Shared memory is only touched through raw pointers (volatile integer
//!   accesses, byte copies); descriptors received from a socket are
//!   validated field by field before anything is mapped.
//!
//! Linux only: memfds, `MAP_FIXED` and `SCM_RIGHTS` (on other systems the
//! crate is empty).
//!
//! # Modules
//!
//! The modules depend on each other in one direction only (each line uses
//! only what is above it):
//!
//! ```text
//!  id        RegionId (the regions and the rules each must follow), ViewId
//!  layout    ArenaLayout, ViewRegion, PoolInfo: where regions sit in a view
//!  sys       mmap/munmap of views, errno conversion
//!  wire      the control protocol (encodes and decodes a layout)
//!  region    ArenaRegion: one interface over the regions' types
//!  adopt     a packet pool's regions, its locality erased
//!  config    ArenaConfig and the plan of the arena's own regions
//!  stats     ArenaStats and friends (plain data)
//!  owner     the arena's non-generic core: state, regions, views table
//!  view      UserView (a local view holds the owner's core)
//!  arena     Arena<L>: creation, views, redirect, defunct
//! ```
//!
//! # Example
//!
//! ```
//! use skmem_arena::{ArenaConfig, RegionId};
//! use skmem_packet::{AllocFlags, PacketPoolConfig};
//!
//! let arena = ArenaConfig::new("doc")
//!     .pool(PacketPoolConfig::new("doc").md_count(64))
//!     .build()?;
//! let pool = arena.pool().unwrap();
//! // A second view of the arena's memory (another process would use
//! // `send_view` / `UserView::receive`).
//! let view = arena.map_local()?;
//! assert_eq!(view.layout().offset_of(RegionId::Schema), arena.region_offset(RegionId::Schema));
//!
//! let p = pool.alloc_packet(1, AllocFlags::NoSleep)?;
//! // SAFETY: `p` is ours until it is handed to the user.
//! let md = unsafe {
//!     p.write_payload(b"hello");
//!     pool.upp_insert(1, p)?
//! };
//! let mut buf = [0u8; 5];
//! view.read_packet(md, &mut buf)?;
//! assert_eq!(&buf, b"hello");
//! view.write_packet(md, b"world")?;
//! let p = pool.upp_remove(1, md)?;
//! // SAFETY: handed back and validated; freed once.
//! unsafe {
//!     assert_eq!(p.read_payload(&mut buf), 5);
//!     pool.free_packet(p)?;
//! }
//! assert_eq!(&buf, b"world");
//! # Ok::<(), skmem_packet::Error>(())
//! ```

#![cfg_attr(docsrs, feature(doc_auto_cfg))]
#![cfg(target_os = "linux")]

mod adopt;
mod arena;
mod config;
mod id;
pub mod layout;
mod owner;
mod region;
mod stats;
mod sys;
pub mod view;
mod wire;

pub use arena::{all_stats, Arena, SlotDir};
pub use config::ArenaConfig;
pub use id::{RegionId, ViewId};
pub use layout::{ArenaLayout, PoolInfo, ViewRegion};
pub use owner::{ArenaCache, SlotDescCache};
pub use stats::{ArenaRegionStats, ArenaStats, ViewCounts};
pub use view::{ControlEvent, UserView};
pub use wire::socketpair;

pub use skmem_traits::{Error, Result};
