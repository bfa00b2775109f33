//! A pool of 2 KiB packet buffers in physically addressed hugepages, as a
//! uio / no-IOMMU NIC driver would use (ixy, DPDK `--iova-mode=pa`).
//!
//! It builds a `skmem_slab::Region` on the `Pagemap` source and a slab
//! cache of 2 KiB buffers on it, allocates enough buffers to span two
//! segments, prints each one's virtual and physical address, and checks
//! every physical address (first and last byte of each buffer) against
//! `/proc/self/pagemap` with its own small reader.
//!
//! Run as root with hugepages reserved:
//!
//! ```text
//! echo 8 > /proc/sys/vm/nr_hugepages
//! cargo run -p skmem-backends --example pagemap_pool
//! ```
//!
//! or let the example reserve pages for its run and restore the old count:
//! `cargo run -p skmem-backends --example pagemap_pool -- --reserve 4`.
//! Without root or hugepages it explains what is missing and exits.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("pagemap_pool: physical addresses from /proc/self/pagemap exist only on Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{self, File};
    use std::os::unix::fs::FileExt;
    use std::process::ExitCode;
    use std::ptr::NonNull;

    use skmem_backends::{Pagemap, PagemapConfig};
    use skmem_slab::{Region, RegionParams, SlabCache, SlabConfig};
    use skmem_traits::{AllocFlags, NoCtor, RegionMode, SegmentSource};

    const HUGEPAGE: usize = 2 << 20;
    const BUF_SIZE: usize = 2048;
    const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

    /// The example's own pagemap reader: physical address of `addr`, or
    /// why it cannot be had.
    fn phys_addr(pagemap: &File, addr: usize) -> Result<u64, String> {
        let page = 4096;
        let mut entry = [0u8; 8];
        pagemap
            .read_exact_at(&mut entry, (addr / page * 8) as u64)
            .map_err(|e| format!("read of /proc/self/pagemap: {e}"))?;
        let entry = u64::from_ne_bytes(entry);
        if entry >> 63 == 0 {
            return Err(format!("{addr:#x} is not resident"));
        }
        let pfn = entry & ((1 << 55) - 1);
        if pfn == 0 {
            return Err("frame number hidden (not CAP_SYS_ADMIN)".into());
        }
        Ok(pfn * page as u64 + (addr % page) as u64)
    }

    /// Sets nr_hugepages for the example's run; puts the old value back on
    /// drop.
    struct Reservation(String);

    impl Drop for Reservation {
        fn drop(&mut self) {
            if fs::write(NR_HUGEPAGES, &self.0).is_ok() {
                println!("restored nr_hugepages to {}", self.0.trim());
            }
        }
    }

    fn explain(err: &dyn std::fmt::Display) {
        println!("cannot build a physically addressed pool here: {err}");
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("- physical frame numbers need CAP_SYS_ADMIN: run as root (sudo)");
        }
        let nr = fs::read_to_string(NR_HUGEPAGES).unwrap_or_default();
        if nr.trim() == "0" || nr.is_empty() {
            println!(
                "- no 2 MiB hugepages are reserved: `echo 8 > {NR_HUGEPAGES}` as root, \
                 or rerun with `-- --reserve 4`"
            );
        }
    }

    pub(super) fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let _reservation = match args.iter().position(|a| a == "--reserve") {
            Some(i) => {
                let extra: u64 = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(4);
                let old = fs::read_to_string(NR_HUGEPAGES).unwrap_or_else(|_| "0".into());
                let want = old.trim().parse::<u64>().unwrap_or(0) + extra;
                match fs::write(NR_HUGEPAGES, want.to_string()) {
                    Ok(()) => {
                        println!("reserved hugepages: nr_hugepages {} -> {want}", old.trim());
                        Some(Reservation(old))
                    }
                    Err(e) => {
                        println!("could not write {NR_HUGEPAGES}: {e} (not root?)");
                        None
                    }
                }
            }
            None => None,
        };

        // Two 2 MiB segments of 1024 buffers each.
        let params = RegionParams::new("pkt-bufs", BUF_SIZE, 2 * HUGEPAGE / BUF_SIZE)
            .seg_size(HUGEPAGE)
            .mode(RegionMode::PUREDATA | RegionMode::IODIR_IN | RegionMode::NOMAGAZINES);
        let region = match Region::<Pagemap>::new(params, PagemapConfig::default()) {
            Ok(r) => r,
            Err(e) => {
                explain(&e);
                return ExitCode::SUCCESS;
            }
        };
        let layout = *region.layout();
        println!(
            "region `{}`: {} segments of {} KiB, {} buffers of {} bytes each",
            region.name(),
            layout.seg_count,
            layout.seg_size / 1024,
            layout.objs_per_seg,
            layout.obj_size
        );
        let cache = SlabCache::new(
            region.clone(),
            SlabConfig::new("pkt-bufs", BUF_SIZE),
            NoCtor,
        )
        .expect("slab cache on the region");

        let pagemap = File::open("/proc/self/pagemap").expect("open /proc/self/pagemap");
        let count = layout.objs_per_seg as usize + 8;
        let mut bufs: Vec<NonNull<u8>> = Vec::with_capacity(count);
        for _ in 0..count {
            match cache.alloc_with(AllocFlags::NoSleep) {
                Ok(b) => bufs.push(b),
                Err(e) => {
                    explain(&e);
                    // SAFETY: each buffer came from this cache and is freed once.
                    bufs.into_iter().for_each(|b| unsafe { cache.free(b) });
                    return ExitCode::SUCCESS;
                }
            }
        }

        let source = region.source();
        let mut checked = 0usize;
        let mut failures = 0usize;
        println!(
            "{:>5}  {:>18}  {:>14}  {:>7}",
            "buf", "virtual", "physical", "segment"
        );
        for (n, &buf) in bufs.iter().enumerate() {
            // Touch the buffer through a raw pointer (a device may write it).
            // SAFETY: the buffer is allocated and BUF_SIZE bytes long.
            unsafe { buf.as_ptr().write_volatile(n as u8) };
            let va = buf.as_ptr() as usize;
            let seg = region
                .segment_of(buf.as_ptr())
                .expect("buffer in a live segment");
            for off in [0, BUF_SIZE - 1] {
                let from_source = source.iova(buf.as_ptr().wrapping_add(off));
                let from_reader = phys_addr(&pagemap, va + off);
                checked += 1;
                match (from_source, from_reader) {
                    (Some(a), Ok(b)) if a == b => {}
                    (a, b) => {
                        failures += 1;
                        println!("MISMATCH at {:#x}: source {a:x?}, pagemap {b:?}", va + off);
                    }
                }
            }
            let shown = n < 4
                || (n >= layout.objs_per_seg as usize && n < layout.objs_per_seg as usize + 4);
            if shown {
                let pa = source.iova(buf.as_ptr()).unwrap_or(0);
                println!("{n:>5}  {va:#18x}  {pa:#14x}  {:>7}", seg.index);
            }
        }
        for i in 0..layout.seg_count {
            if let Some(pa) = source.segment_iova(i) {
                println!(
                    "segment {i}: physical base {pa:#x} (2 MiB aligned: {})",
                    pa % HUGEPAGE as u64 == 0
                );
            }
        }
        println!(
            "checked {checked} addresses ({} buffers, first and last byte) against \
             /proc/self/pagemap: {failures} mismatches",
            bufs.len()
        );
        for b in bufs {
            // SAFETY: each buffer came from this cache and is freed once.
            unsafe { cache.free(b) };
        }
        if failures == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
