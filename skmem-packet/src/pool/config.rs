//! Pool configuration and the derivation of its regions (the seed's
//! `pp_regions_params_adjust`).
//!
//! From the metadata type and count, the buffer sizes and count and the
//! flags, [`PacketPoolConfig::plan`] computes the parameters of up to six
//! regions, in the seed's order:
//!
//! 1. **kernel metadata** (`kmd`): one object per packet, private; no
//!    magazine allowance unless metadata magazines are on; persistent on
//!    request;
//! 2. **user metadata** (`umd`, unless kernel-only): the mirror, asked for
//!    exactly the kernel region's computed size, count and segment size so
//!    that the two pair segment for segment; mappable;
//! 3. **default buffers**: at least one per metadata object; never
//!    monolithic unless asked; magazines only for buffers of 256 KiB and
//!    more (they may be detached from their buflet); read-only, physically
//!    contiguous, uncached and persistent on request;
//! 4. **large buffers** (optional): as many, with the default region's
//!    flags and segment size;
//! 5. **kernel buflets** (`kbft`, buffers-on-demand only): one per buffer
//!    of either size, the metadata region's flags;
//! 6. **user buflets** (`ubft`, on-demand and not kernel-only): the mirror.

use skmem_traits::__config_setter as setter;
use std::sync::Arc;

use skmem_magazine::{magazine_max_objs_for, SeedLadder};
use skmem_slab::{RegionLayout, RegionParams};
use skmem_traits::{Error, RegionMode, Result};

use super::hooks::BufferSegmentHooks;
use super::meta::{MetadataType, KBUF_SIZE, KMD_SIZE};

/// Buffers at least this large may be detached from their buflet
/// (striding), so their cache gets magazines (the seed's
/// `KERN_BUF_MIN_STRIDING_SIZE`).
pub const MIN_STRIDING_BUF_SIZE: usize = 256 * 1024;

/// The largest `max_frags` a packet may have.
pub const MAX_FRAGS_LIMIT: u16 = 64;

/// Which way the device moves the buffers' data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum IoDirection {
    /// Receive: the device writes the buffers.
    In,
    /// Transmit: the device reads the buffers.
    Out,
    /// Both.
    #[default]
    Both,
}

/// Everything a [`PacketPool`](crate::PacketPool) is built from. Start from
/// [`PacketPoolConfig::new`] (or `Default`: 2048-byte buffers, 1024
/// packets, one buffer each, mirrored) and chain the setters.
#[derive(Clone)]
pub struct PacketPoolConfig {
    pub(crate) name: String,
    pub(crate) md_type: MetadataType,
    pub(crate) md_count: usize,
    /// `md_count` was set (not the default), so a ceiling below it is an
    /// error rather than the count.
    pub(crate) md_count_set: bool,
    pub(crate) max_capacity: Option<usize>,
    pub(crate) max_frags: u16,
    pub(crate) buf_size: usize,
    pub(crate) buf_count: usize,
    pub(crate) large_buf_size: usize,
    pub(crate) buf_seg_size: usize,
    pub(crate) kernel_only: bool,
    pub(crate) md_persistent: bool,
    pub(crate) buf_persistent: bool,
    pub(crate) on_demand: bool,
    pub(crate) md_magazines: bool,
    pub(crate) io_dir: IoDirection,
    pub(crate) buf_user_readonly: bool,
    pub(crate) buf_kernel_readonly: bool,
    pub(crate) buf_monolithic: bool,
    pub(crate) buf_phys_contig: bool,
    pub(crate) buf_nocache: bool,
    pub(crate) hooks: Option<Arc<dyn BufferSegmentHooks>>,
    pub(crate) redzone_secret: Option<u64>,
    pub(crate) debug: skmem_slab::DebugFlags,
}

impl core::fmt::Debug for PacketPoolConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PacketPoolConfig")
            .field("name", &self.name)
            .field("md_type", &self.md_type)
            .field("md_count", &self.md_count)
            .field("max_capacity", &self.max_capacity)
            .field("max_frags", &self.max_frags)
            .field("buf_size", &self.buf_size)
            .field("buf_count", &self.buf_count)
            .field("large_buf_size", &self.large_buf_size)
            .field("kernel_only", &self.kernel_only)
            .field("on_demand", &self.on_demand)
            .field("md_magazines", &self.md_magazines)
            .field("debug", &self.debug)
            .finish_non_exhaustive()
    }
}

impl Default for PacketPoolConfig {
    fn default() -> Self {
        PacketPoolConfig::new("pool")
    }
}

impl PacketPoolConfig {
    /// A pool named `name`: 1024 packets of one 2048-byte buffer each,
    /// mirrored to user metadata, metadata magazines on.
    pub fn new(name: impl Into<String>) -> Self {
        PacketPoolConfig {
            name: name.into(),
            md_type: MetadataType::Packet,
            md_count: 1024,
            md_count_set: false,
            max_capacity: None,
            max_frags: 1,
            buf_size: 2048,
            buf_count: 0,
            large_buf_size: 0,
            buf_seg_size: 0,
            kernel_only: false,
            md_persistent: false,
            buf_persistent: false,
            on_demand: false,
            md_magazines: true,
            io_dir: IoDirection::Both,
            buf_user_readonly: false,
            buf_kernel_readonly: false,
            buf_monolithic: false,
            buf_phys_contig: false,
            buf_nocache: false,
            hooks: None,
            redzone_secret: None,
            debug: skmem_slab::debug::env_flags(),
        }
    }

    /// Debug checks of every cache of the pool (see `skmem_slab::debug`),
    /// replacing the process-wide `SKMEM_DEBUG` flags. With
    /// [`GUARDS`](skmem_slab::DebugFlags::GUARDS) every region's object
    /// stride grows by [`GUARD_BYTES`](skmem_slab::debug::GUARD_BYTES)
    /// (rounded up to the chunk alignment) to hold the redzone; the
    /// regions' layouts, which user processes read, carry the grown
    /// strides. A buffer's redzone is checked when the buffer leaves its
    /// metadata (reap, purge, drop), since the pair stays built while the
    /// metadata rests in the slab layer.
    pub fn debug(mut self, flags: skmem_slab::DebugFlags) -> Self {
        self.debug = flags;
        self
    }

    setter!(
        /// Metadata type (quantum: one buffer; packet: up to `max_frags`).
        md_type: MetadataType
    );
    /// Number of metadata objects (packets) asked for: a **floor**. The
    /// metadata region adds the magazine allowance (with metadata
    /// magazines) and rounds up to whole segments, so
    /// [`PacketPool::capacity`](crate::PacketPool::capacity) is usually
    /// higher: a pool asked for 8 packets holds 192. For an upper bound,
    /// see [`max_capacity`](Self::max_capacity).
    pub fn md_count(mut self, n: usize) -> Self {
        self.md_count = n;
        self.md_count_set = true;
        self
    }

    /// A **ceiling** on the packets: the pool never holds more than `n`
    /// metadata objects, whatever rests in magazines (the allowance is cut
    /// to fit, and the region rounds *down*: see
    /// [`RegionParams::max_capacity`]; below one page's worth the metadata
    /// is spaced out in one page). Without [`md_count`](Self::md_count),
    /// the pool aims at `n`; with it, `md_count` above `n` is refused
    /// naming `max_capacity`. Buffers (and buflets) follow the packet count
    /// as usual: at least one per packet.
    pub fn max_capacity(mut self, n: usize) -> Self {
        self.max_capacity = Some(n);
        self
    }
    setter!(
        /// Largest number of buflets per packet (more than 1 needs
        /// buffers-on-demand).
        max_frags: u16
    );
    setter!(
        /// Default buffer size in bytes.
        buf_size: usize
    );
    setter!(
        /// Number of default buffers (at least one per packet is always
        /// provided).
        buf_count: usize
    );
    setter!(
        /// Large buffer size (0: no large buffers).
        large_buf_size: usize
    );
    setter!(
        /// Buffer segment size hint (0: default).
        buf_seg_size: usize
    );
    setter!(
        /// No user mirror: metadata is never handed to another process.
        kernel_only: bool
    );
    setter!(
        /// Metadata segments are populated and wired when created.
        md_persistent: bool
    );
    setter!(
        /// Buffer segments are populated and wired when created.
        buf_persistent: bool
    );
    setter!(
        /// Buffers on demand: packets are cached without buffers and a
        /// buflet cache (buflets with buffers attached) supplies them.
        on_demand: bool
    );
    setter!(
        /// Per-CPU magazines on the metadata (and buflet) caches.
        md_magazines: bool
    );
    setter!(
        /// I/O direction of the buffers.
        io_dir: IoDirection
    );
    setter!(
        /// Buffers are read-only in user mappings.
        buf_user_readonly: bool
    );
    setter!(
        /// Buffers are read-only in this process.
        buf_kernel_readonly: bool
    );
    setter!(
        /// The default buffer region is one segment.
        buf_monolithic: bool
    );
    setter!(
        /// Buffer segments must be physically contiguous.
        buf_phys_contig: bool
    );
    setter!(
        /// Buffers are mapped uncached (device memory).
        buf_nocache: bool
    );

    /// Buffers-on-demand (alias of [`on_demand`](Self::on_demand), the
    /// seed's name).
    pub fn buffers_on_demand(self, v: bool) -> Self {
        self.on_demand(v)
    }

    /// Hooks told about buffer segments as they come and go.
    pub fn segment_hooks(mut self, hooks: Arc<dyn BufferSegmentHooks>) -> Self {
        self.hooks = Some(hooks);
        self
    }

    /// Fixes the per-pool redzone secret (otherwise random).
    pub fn redzone_secret(mut self, secret: u64) -> Self {
        self.redzone_secret = Some(secret);
        self
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks every parameter; the error names the first bad one.
    pub fn validate(&self) -> Result<()> {
        if let Some(max) = self.max_capacity {
            if max == 0 {
                return Err(Error::invalid_param(
                    "max_capacity",
                    0,
                    "a pool needs room for at least one packet",
                ));
            }
            if self.md_count_set && self.md_count > max {
                return Err(Error::invalid_param(
                    "max_capacity",
                    max as u64,
                    "smaller than the packets asked for (md_count)",
                ));
            }
        }
        if self.md_count == 0 {
            return Err(Error::invalid_param(
                "md_count",
                0,
                "a pool needs at least one packet",
            ));
        }
        if self.md_count > u32::MAX as usize / 2 {
            return Err(Error::invalid_param(
                "md_count",
                self.md_count as u64,
                "too many packets",
            ));
        }
        if self.max_frags == 0 || self.max_frags > MAX_FRAGS_LIMIT {
            return Err(Error::invalid_param(
                "max_frags",
                self.max_frags as u64,
                "must be 1 to 64",
            ));
        }
        if self.md_type == MetadataType::Quantum && self.max_frags != 1 {
            return Err(Error::invalid_param(
                "max_frags",
                self.max_frags as u64,
                "a quantum has exactly one buffer",
            ));
        }
        if self.md_type == MetadataType::Quantum && self.on_demand {
            return Err(Error::invalid_param(
                "on_demand",
                1,
                "buffers on demand need the packet metadata type",
            ));
        }
        if !self.on_demand && self.max_frags != 1 {
            return Err(Error::invalid_param(
                "max_frags",
                self.max_frags as u64,
                "more than one buflet per packet needs buffers on demand",
            ));
        }
        if self.buf_size == 0 {
            return Err(Error::invalid_param(
                "buf_size",
                0,
                "buffers cannot be empty",
            ));
        }
        if self.buf_size > skmem_slab::region::MAX_SEG_SIZE || self.buf_size > u32::MAX as usize {
            return Err(Error::invalid_param(
                "buf_size",
                self.buf_size as u64,
                "larger than a segment may be",
            ));
        }
        if self.buf_count > u32::MAX as usize / 2 {
            return Err(Error::invalid_param(
                "buf_count",
                self.buf_count as u64,
                "too many buffers",
            ));
        }
        if self.large_buf_size != 0 {
            if self.large_buf_size <= self.buf_size {
                return Err(Error::invalid_param(
                    "large_buf_size",
                    self.large_buf_size as u64,
                    "must be larger than buf_size",
                ));
            }
            if self.large_buf_size > skmem_slab::region::MAX_SEG_SIZE {
                return Err(Error::invalid_param(
                    "large_buf_size",
                    self.large_buf_size as u64,
                    "larger than a segment may be",
                ));
            }
            if !self.on_demand {
                return Err(Error::invalid_param(
                    "large_buf_size",
                    self.large_buf_size as u64,
                    "large buffers come with buflets: they need buffers on demand",
                ));
            }
        }
        if self.buf_seg_size % skmem_traits::MIN_SEG_SIZE != 0 {
            return Err(Error::invalid_param(
                "buf_seg_size",
                self.buf_seg_size as u64,
                "must be a multiple of 4096 (or 0 for the default)",
            ));
        }
        if self.buf_seg_size > skmem_slab::region::MAX_SEG_SIZE {
            return Err(Error::invalid_param(
                "buf_seg_size",
                self.buf_seg_size as u64,
                "larger than a segment may be",
            ));
        }
        if self.buf_user_readonly && self.kernel_only {
            return Err(Error::invalid_param(
                "buf_user_readonly",
                1,
                "a kernel-only pool has no user mapping",
            ));
        }
        if self.buf_kernel_readonly {
            return Err(Error::invalid_param(
                "buf_kernel_readonly",
                1,
                "the pool writes its buffers (payload, clear); use a separate read-only view",
            ));
        }
        Ok(())
    }

    /// Computes every region's parameters and layout, for `slots` magazine
    /// slots (the CPU-locality policy's `slot_hint`). Pure.
    pub fn plan(&self, slots: usize) -> Result<PoolPlan> {
        self.validate()?;
        let n = &self.name;
        let dir = match self.io_dir {
            IoDirection::In => RegionMode::IODIR_IN,
            IoDirection::Out => RegionMode::IODIR_OUT,
            IoDirection::Both => RegionMode::IODIR_IN | RegionMode::IODIR_OUT,
        };
        let prefix = match self.io_dir {
            IoDirection::In => "rx",
            IoDirection::Out => "tx",
            IoDirection::Both => "",
        };

        // 1. kernel metadata
        let mut md_mode = RegionMode::NOMAGAZINES;
        if self.md_persistent {
            md_mode |= RegionMode::PERSISTENT;
        }
        if self.md_magazines {
            md_mode.remove(RegionMode::NOMAGAZINES);
        }
        // With debug guards every region object is grown by a redzone (the
        // slab caches keep their object sizes; the redzone is the rest of
        // the chunk). Strides come from the region layouts everywhere, the
        // user side's view included, so nothing else changes.
        let grown = |size: usize| skmem_slab::debug::region_obj_size(size, self.debug);
        let md_chunk = grown(KMD_SIZE).next_multiple_of(skmem_traits::CACHE_LINE_SIZE);
        let md_count = match self.max_capacity {
            Some(max) if !self.md_count_set => max,
            _ => self.md_count,
        };
        let mut kmd = RegionParams::new(format!("{prefix}kmd.{n}"), grown(KMD_SIZE), md_count)
            .mode(md_mode)
            .magazine_max_objs(if self.md_magazines {
                magazine_max_objs_for::<SeedLadder>(md_chunk, slots)
            } else {
                0
            });
        if let Some(max) = self.max_capacity {
            kmd = kmd.max_capacity(max);
        }
        let kmd_l = kmd.configure()?;

        // 2. user metadata (mirror)
        let umd = if self.kernel_only {
            None
        } else {
            let mut mode = RegionMode::NOMAGAZINES | RegionMode::MMAPOK;
            if self.md_persistent {
                mode |= RegionMode::PERSISTENT;
            }
            let p = RegionParams::new(format!("umd.{n}"), kmd_l.obj_size, kmd_l.obj_count)
                .seg_size(kmd_l.seg_size)
                .mode(mode);
            let l = p.configure()?;
            check_pair("umd", &kmd_l, &l)?;
            Some((p, l))
        };

        // 3. default buffers
        let buf_count = self.buf_count.max(kmd_l.obj_count);
        let mut buf_mode = RegionMode::NOMAGAZINES | RegionMode::PUREDATA | dir;
        if !self.kernel_only {
            buf_mode |= RegionMode::MMAPOK;
        }
        if self.buf_persistent {
            buf_mode |= RegionMode::PERSISTENT;
        }
        let striding = self.buf_size >= MIN_STRIDING_BUF_SIZE;
        if striding {
            buf_mode.remove(RegionMode::NOMAGAZINES);
        }
        if self.buf_user_readonly {
            buf_mode |= RegionMode::UREADONLY;
        }
        if self.buf_monolithic {
            buf_mode |= RegionMode::MONOLITHIC;
        }
        if self.buf_phys_contig {
            buf_mode |= RegionMode::SEGPHYSCONTIG;
        }
        if self.buf_nocache {
            buf_mode |= RegionMode::NOCACHE;
        }
        let buf_chunk = grown(self.buf_size).next_multiple_of(skmem_traits::CACHE_LINE_SIZE);
        let buf = RegionParams::new(
            format!("{prefix}buf_def.{n}"),
            grown(self.buf_size),
            buf_count,
        )
        .seg_size(self.buf_seg_size)
        .mode(buf_mode)
        .magazine_max_objs(if striding {
            magazine_max_objs_for::<SeedLadder>(buf_chunk, slots)
        } else {
            0
        });
        let buf_l = buf.configure().map_err(|e| e.rename_param("buf_size"))?;

        // 4. large buffers
        let lbuf = if self.large_buf_size != 0 {
            let mode = buf_mode - RegionMode::MONOLITHIC;
            let lstriding = self.large_buf_size >= MIN_STRIDING_BUF_SIZE;
            let mode = if lstriding {
                mode - RegionMode::NOMAGAZINES
            } else {
                mode | RegionMode::NOMAGAZINES
            };
            let lchunk = grown(self.large_buf_size).next_multiple_of(skmem_traits::CACHE_LINE_SIZE);
            let p = RegionParams::new(
                format!("{prefix}buf_large.{n}"),
                grown(self.large_buf_size),
                buf_count,
            )
            .seg_size(self.buf_seg_size)
            .mode(mode)
            .magazine_max_objs(if lstriding {
                magazine_max_objs_for::<SeedLadder>(lchunk, slots)
            } else {
                0
            });
            let l = p
                .configure()
                .map_err(|e| e.rename_param("large_buf_size"))?;
            Some((p, l))
        } else {
            None
        };

        // 5. kernel buflets
        let kbft = if self.on_demand {
            let count = buf_l.obj_count + lbuf.as_ref().map_or(0, |(_, l)| l.obj_count);
            let chunk = grown(KBUF_SIZE).next_multiple_of(skmem_traits::CACHE_LINE_SIZE);
            // Two caches (default and large buffers) may share the region.
            let caches = if lbuf.is_some() { 2 } else { 1 };
            let p = RegionParams::new(format!("{prefix}kbft.{n}"), grown(KBUF_SIZE), count)
                .mode(md_mode)
                .magazine_max_objs(if self.md_magazines {
                    caches * magazine_max_objs_for::<SeedLadder>(chunk, slots)
                } else {
                    0
                });
            let l = p.configure()?;
            Some((p, l))
        } else {
            None
        };

        // 6. user buflets (mirror)
        let ubft = match (&kbft, self.kernel_only) {
            (Some((_, kl)), false) => {
                let mut mode = RegionMode::NOMAGAZINES | RegionMode::MMAPOK;
                if self.md_persistent {
                    mode |= RegionMode::PERSISTENT;
                }
                let p = RegionParams::new(format!("ubft.{n}"), kl.obj_size, kl.obj_count)
                    .seg_size(kl.seg_size)
                    .mode(mode);
                let l = p.configure()?;
                check_pair("ubft", kl, &l)?;
                Some((p, l))
            }
            _ => None,
        };

        if kmd_l.obj_count > buf_l.obj_count {
            return Err(Error::invalid_param(
                "buf_count",
                buf_l.obj_count as u64,
                "fewer buffers than metadata objects",
            ));
        }
        Ok(PoolPlan {
            kmd: (kmd, kmd_l),
            umd,
            buf: (buf, buf_l),
            lbuf,
            kbft,
            ubft,
        })
    }
}

fn check_pair(what: &'static str, master: &RegionLayout, shadow: &RegionLayout) -> Result<()> {
    if master.seg_size != shadow.seg_size
        || master.seg_count > shadow.seg_count
        || master.obj_count != shadow.obj_count
    {
        return Err(Error::invalid_param(
            what,
            shadow.seg_size as u64,
            "the mirror region does not pair with its master",
        ));
    }
    Ok(())
}

/// The regions a pool will create: parameters and computed layouts.
#[derive(Debug, Clone)]
pub struct PoolPlan {
    /// Kernel metadata.
    pub kmd: (RegionParams, RegionLayout),
    /// User metadata (mirror of `kmd`), unless kernel-only.
    pub umd: Option<(RegionParams, RegionLayout)>,
    /// Default buffers.
    pub buf: (RegionParams, RegionLayout),
    /// Large buffers, when configured.
    pub lbuf: Option<(RegionParams, RegionLayout)>,
    /// Kernel buflets, with buffers on demand.
    pub kbft: Option<(RegionParams, RegionLayout)>,
    /// User buflets (mirror of `kbft`).
    pub ubft: Option<(RegionParams, RegionLayout)>,
}
