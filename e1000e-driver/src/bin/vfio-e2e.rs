//! End-to-end DMA test: packets of an skmem pool on the `Vfio` source sent
//! by one 82574 and received by another, through the IOMMU.
//!
//! Run as root where two e1000e NICs are bound to vfio-pci and wired to
//! each other (`ci/vfio-e2e.sh` builds such a machine in QEMU):
//!
//! ```text
//! vfio-e2e [--frames N] [--tx 0000:00:04.0] [--rx 0000:00:05.0]
//! ```
//!
//! Without `--tx/--rx` it takes the first two Intel devices bound to
//! vfio-pci. It prints `E2E: ...` lines and ends with `E2E-RESULT: PASS`
//! or `E2E-RESULT: FAIL <reason>` (exit status 0 or 1).

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    match e2e::run() {
        Ok(summary) => {
            println!("E2E-RESULT: PASS {summary}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("E2E-RESULT: FAIL {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("vfio-e2e needs Linux (VFIO)");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod e2e {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use skmem_backends::{DmaDomain, Iommu, Vfio, VfioConfig, VfioContainer};
    use skmem_e1000e::frame::{self, MAX_FRAME};
    use skmem_e1000e::nic::fmt_mac;
    use skmem_e1000e::pool::{dma_pool, BUF_SIZE, MAX_FRAGS};
    use skmem_e1000e::{E1000e, NicConfig, RxDone};
    use skmem_packet::{Buflet, Packet, PacketPool};
    use skmem_traits::AllocFlags;

    type Res<T> = Result<T, String>;
    type Nic = E1000e<Packet, Buflet>;

    macro_rules! say {
        ($($t:tt)*) => { println!("E2E: {}", format_args!($($t)*)) };
    }

    fn err<E: std::fmt::Display>(ctx: &str) -> impl FnOnce(E) -> String + '_ {
        move |e| format!("{ctx}: {e}")
    }

    struct Args {
        frames: u32,
        tx: Option<String>,
        rx: Option<String>,
    }

    fn args() -> Res<Args> {
        let mut a = Args {
            frames: 2000,
            tx: None,
            rx: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let mut v = || it.next().ok_or(format!("{k} needs a value"));
            match k.as_str() {
                "--frames" => a.frames = v()?.parse().map_err(err("--frames"))?,
                "--tx" => a.tx = Some(v()?),
                "--rx" => a.rx = Some(v()?),
                _ => return Err(format!("unknown argument {k}")),
            }
        }
        Ok(a)
    }

    /// Intel devices bound to vfio-pci, sorted by address.
    fn vfio_intel_devices() -> Res<Vec<String>> {
        let dir = "/sys/bus/pci/drivers/vfio-pci";
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).map_err(err(dir))? {
            let name = e
                .map_err(err(dir))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if !name.starts_with("0000:") {
                continue;
            }
            let vendor = std::fs::read_to_string(format!("/sys/bus/pci/devices/{name}/vendor"))
                .unwrap_or_default();
            if vendor.trim() == "0x8086" {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    fn group_of(bdf: &str) -> Res<String> {
        let link = format!("/sys/bus/pci/devices/{bdf}/iommu_group");
        let target = std::fs::read_link(&link).map_err(err(&link))?;
        let g = target
            .file_name()
            .ok_or(format!("{link} has no group name"))?
            .to_string_lossy()
            .into_owned();
        Ok(format!("/dev/vfio/{g}"))
    }

    struct Port {
        nic: Nic,
        domain: Arc<DmaDomain>,
        pool: PacketPool<Vfio>,
    }

    fn open_port(role: &str, bdf: &str) -> Res<Port> {
        let group = group_of(bdf)?;
        let container =
            Arc::new(VfioContainer::open(&group).map_err(err(&format!("open {group}")))?);
        let iommu: Arc<dyn Iommu> = container.clone();
        let domain = DmaDomain::new(iommu).map_err(err("DMA domain"))?;
        let nic = Nic::open(
            &container,
            &domain,
            bdf,
            NicConfig {
                rx_buf_size: BUF_SIZE,
                ..NicConfig::default()
            },
        )
        .map_err(err(&format!("bring-up of {bdf}")))?;
        let (t, r) = nic.ring_iovas();
        say!(
            "NIC {role} {bdf} group {group} (type{} IOMMU, page sizes {:#x}): mac {}, link up, \
             status {:#x}, TX ring iova {t:#x}, RX ring iova {r:#x}",
            container.iommu_type(),
            container.page_sizes(),
            fmt_mac(&nic.mac()),
            nic.status()
        );
        let pool = dma_pool(
            &format!("e2e.{role}"),
            512,
            1024,
            VfioConfig::new(Arc::clone(&domain)),
        )
        .map_err(err("packet pool"))?;
        Ok(Port { nic, domain, pool })
    }

    /// Builds frame `seq` in a fresh pool packet and queues it on `a`.
    fn send(a: &mut Port, seq: u32, dst: [u8; 6], scratch: &mut Vec<u8>) -> Res<()> {
        let len = frame::frame_len(seq);
        scratch.resize(len, 0);
        frame::fill(scratch, dst, a.nic.mac(), seq);
        let nbuf = len.div_ceil(BUF_SIZE) as u16;
        let p = a
            .pool
            .alloc_packet(nbuf, AllocFlags::NoSleep)
            .map_err(err("TX packet"))?;
        let mut frags = [(0u64, 0u16); MAX_FRAGS as usize];
        let mut n = 0;
        // SAFETY: `p` was just allocated and is ours until the ring hands
        // it back.
        unsafe {
            if p.write_payload(scratch) != len {
                a.pool.free_packet(p).unwrap();
                return Err(format!("frame {seq} ({len} B) does not fit {nbuf} buffers"));
            }
            for b in p.buflets() {
                let iova = a
                    .pool
                    .buflet_iova(b)
                    .ok_or("a pool buffer has no IOVA".to_string())?;
                frags[n] = (iova, b.data_len() as u16);
                n += 1;
            }
        }
        a.nic.tx_push(&frags[..n], p).map_err(|p| {
            // SAFETY: the ring refused it: still ours.
            unsafe { a.pool.free_packet(p) }.unwrap();
            "TX ring full".to_string()
        })
    }

    /// Posts buflets until the receive ring is full.
    fn refill(b: &mut Port) -> Res<usize> {
        let mut n = 0;
        while b.nic.rx_free() > 0 {
            let bl = b
                .pool
                .alloc_buflet(false, AllocFlags::NoSleep)
                .map_err(err("RX buflet"))?;
            // SAFETY: `bl` is ours until the ring hands it back.
            let iova = unsafe { b.pool.buflet_iova(bl) }.ok_or("RX buflet without IOVA")?;
            if let Err(bl) = b.nic.rx_post(iova, bl) {
                // SAFETY: refused, still ours.
                unsafe { b.pool.free_buflet(bl) };
                break;
            }
            n += 1;
        }
        if n > 0 {
            b.nic.rx_flush();
        }
        Ok(n)
    }

    /// Frames assembled from receive descriptors.
    struct Assembler {
        parts: Vec<Buflet>,
        bytes: usize,
        scratch: Vec<u8>,
    }

    impl Assembler {
        /// Takes one descriptor; at end of frame builds a pool packet of
        /// its buflets, checks every byte, frees it, and returns the
        /// sequence number.
        fn take(&mut self, pool: &PacketPool<Vfio>, d: RxDone<Buflet>) -> Res<Option<u32>> {
            if d.errors != 0 {
                return Err(format!("receive error bits {:#x}", d.errors));
            }
            // SAFETY: the ring handed the buflet back: ours.
            unsafe { d.cookie.set_data(0, usize::from(d.len)) }.map_err(err("RX length"))?;
            self.parts.push(d.cookie);
            self.bytes += usize::from(d.len);
            if !d.eop {
                return Ok(None);
            }
            let p = pool
                .alloc_packet(0, AllocFlags::NoSleep)
                .map_err(err("RX packet"))?;
            for b in self.parts.drain(..) {
                // SAFETY: `p` and `b` are ours; `b` is in no packet.
                unsafe { pool.packet_add_buflet(p, b) }.map_err(err("RX chain"))?;
            }
            self.scratch.resize(self.bytes, 0);
            // SAFETY: `p` is ours; freed right after.
            let got = unsafe { p.read_payload(&mut self.scratch) };
            // SAFETY: as above; every buflet goes back with it.
            unsafe { pool.free_packet(p) }.unwrap();
            let len = std::mem::take(&mut self.bytes);
            if got != len {
                return Err(format!("read {got} of {len} received bytes"));
            }
            Ok(Some(len as u32))
        }
    }

    /// Stops a port's NIC and returns everything its rings held to its
    /// pool.
    fn stop(port: &mut Port) {
        let pool = &port.pool;
        port.nic.stop(
            // SAFETY: `stop` has turned the device's DMA off before handing
            // back cookies; each is a packet of this pool, ours again.
            |p| unsafe { pool.free_packet(p) }.unwrap(),
            // SAFETY: as above, for the posted receive buflets.
            |bl| unsafe { pool.free_buflet(bl) },
        );
    }

    fn pool_line(name: &str, pool: &PacketPool<Vfio>) -> (u64, u64) {
        let s = pool.stats();
        say!(
            "pool {name}: {} of {} packets out, {} of {} buflets out",
            s.packets_out,
            s.md_capacity,
            s.buflets_out,
            pool.buflet_capacity()
        );
        (s.packets_out, s.buflets_out)
    }

    pub(crate) fn run() -> Res<String> {
        let args = args()?;
        let found = vfio_intel_devices()?;
        let tx = args
            .tx
            .clone()
            .or_else(|| found.first().cloned())
            .ok_or("no Intel device bound to vfio-pci")?;
        let rx = args
            .rx
            .clone()
            .or_else(|| found.iter().find(|d| **d != tx).cloned())
            .ok_or("need a second Intel device bound to vfio-pci")?;
        let mut a = open_port("A", &tx)?;
        let mut b = open_port("B", &rx)?;
        let (amac, bmac) = (a.nic.mac(), b.nic.mac());

        // Where the bytes live: virtual addresses, IOVAs, and the guest's
        // RAM size. IOVAs lie above 4 GiB, beyond this machine's RAM: the
        // device can only reach the buffers through the IOMMU.
        let probe = a
            .pool
            .alloc_packet(3, AllocFlags::NoSleep)
            .map_err(err("probe"))?;
        // SAFETY: `probe` is ours until freed.
        unsafe {
            for (i, bl) in probe.buflets().enumerate() {
                say!(
                    "pool A buflet {i}: va {:p} -> iova {:#x}",
                    bl.addr(),
                    a.pool.buflet_iova(bl).unwrap_or(0)
                );
            }
            a.pool.free_packet(probe).unwrap();
        }
        let ram = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| m.lines().next().map(str::to_owned))
            .unwrap_or_default();
        say!(
            "domain A: {} mappings, {} KiB of IOVA; domain B: {} mappings, {} KiB; guest {ram}",
            a.domain.mappings().len(),
            a.domain.allocated_iova_bytes() / 1024,
            b.domain.mappings().len(),
            b.domain.allocated_iova_bytes() / 1024
        );

        refill(&mut b)?;
        let _ = (a.nic.take_counters(), b.nic.take_counters());

        // ---- data path -----------------------------------------------------
        let total = args.frames;
        let mut asm = Assembler {
            parts: Vec::new(),
            bytes: 0,
            scratch: Vec::with_capacity(MAX_FRAME),
        };
        let mut scratch = Vec::with_capacity(MAX_FRAME);
        // Descriptors each frame in flight will take on the receive side.
        let mut in_flight: VecDeque<(u32, usize)> = VecDeque::new();
        let mut in_flight_descs = 0usize;
        let (mut sent, mut received, mut bytes) = (0u32, 0u32, 0u64);
        let (mut tx_done, mut multi) = (0u32, 0u32);
        let mut last_progress = Instant::now();
        let t0 = Instant::now();
        while received < total || a.nic.tx_in_flight() > 0 {
            // Transmit while the receiver has room for everything in flight.
            let mut queued = 0;
            while sent < total {
                let need = frame::frame_len(sent).div_ceil(BUF_SIZE);
                if in_flight_descs + need > b.nic.rx_posted() || a.nic.tx_free() < need {
                    break;
                }
                send(&mut a, sent, bmac, &mut scratch)?;
                in_flight.push_back((sent, need));
                in_flight_descs += need;
                if need > 1 {
                    multi += 1;
                }
                sent += 1;
                queued += 1;
            }
            if queued > 0 {
                a.nic.tx_flush();
            }
            let pool_a = &a.pool;
            a.nic.tx_reclaim(|p| {
                // SAFETY: the device finished with it; ours again.
                unsafe { pool_a.free_packet(p) }.unwrap();
                tx_done += 1;
            });
            let mut done = Vec::new();
            b.nic.rx_poll(|d| done.push(d));
            for d in done {
                let Some(len) = asm.take(&b.pool, d)? else {
                    continue;
                };
                let (seq, need) = in_flight
                    .pop_front()
                    .ok_or("received a frame that was never sent")?;
                in_flight_descs -= need;
                let got = frame::check(&asm.scratch[..len as usize], bmac, amac)
                    .map_err(|m| format!("frame {seq}: payload mismatch {m:?}"))?;
                if got != seq {
                    return Err(format!("expected frame {seq}, got frame {got}"));
                }
                received += 1;
                bytes += u64::from(len);
                last_progress = Instant::now();
            }
            refill(&mut b)?;
            if last_progress.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "stalled: sent {sent}, TX completed {tx_done}, received {received}; \
                     A status {:#x}, B status {:#x}",
                    a.nic.status(),
                    b.nic.status()
                ));
            }
        }
        let dt = t0.elapsed().as_secs_f64();
        let (gptc, _) = a.nic.take_counters();
        let (_, gprc) = b.nic.take_counters();
        say!(
            "sent {sent} frames ({multi} multi-buflet), TX completions {tx_done}, \
             received {received}; every payload byte checked ({bytes} bytes)"
        );
        say!("NIC counters: A GPTC {gptc}, B GPRC {gprc}");
        let fps = f64::from(received) / dt;
        say!(
            "{received} frames in {:.3} s: {:.0} frames/s, {:.1} Mbit/s (TCG-emulated NICs)",
            dt,
            fps,
            bytes as f64 * 8.0 / dt / 1e6
        );
        if gptc != sent || gprc != received {
            return Err(format!(
                "NIC counters disagree: GPTC {gptc} / sent {sent}, GPRC {gprc} / received {received}"
            ));
        }

        // ---- the IOMMU refuses what was never mapped ------------------------
        let fault = iommu_fault_case(&mut a, &mut b, &mut asm, amac, bmac)?;

        // ---- everything back -----------------------------------------------
        say!(
            "before stop: {} RX buffers posted, {} TX descriptors in flight",
            b.nic.rx_posted(),
            a.nic.tx_in_flight()
        );
        stop(&mut a);
        stop(&mut b);
        let out_a = pool_line("A", &a.pool);
        let out_b = pool_line("B", &b.pool);
        // SAFETY: no other thread uses the pool or its packets during the check.
        let (oa, ob) = (unsafe { a.pool.outstanding() }, unsafe {
            b.pool.outstanding()
        });
        if out_a != (0, 0) || out_b != (0, 0) || !oa.is_empty() || !ob.is_empty() {
            return Err(format!(
                "pool not full again: A {out_a:?} {oa:?}, B {out_b:?} {ob:?}"
            ));
        }
        say!("pool-full check: both pools have every packet and buflet back");
        let Port {
            nic,
            domain: da,
            pool,
        } = a;
        drop((nic, pool));
        let Port {
            nic,
            domain: db,
            pool,
        } = b;
        drop((nic, pool));
        say!(
            "after teardown: domain A {} mappings / {} bytes of IOVA, domain B {} / {}",
            da.mappings().len(),
            da.allocated_iova_bytes(),
            db.mappings().len(),
            db.allocated_iova_bytes()
        );
        if !da.mappings().is_empty() || !db.mappings().is_empty() {
            return Err("DMA mappings left after teardown".into());
        }
        Ok(format!(
            "frames={received}/{total} multi_buflet={multi} bytes={bytes} payload=ok \
             pool_full=ok fps={fps:.0} iommu_fault={fault}"
        ))
    }

    /// Sends a frame whose descriptor points at an IOVA nothing maps, then
    /// a good one: the device's read of the first is refused by the IOMMU
    /// (QEMU drops the frame), the second arrives.
    fn iommu_fault_case(
        a: &mut Port,
        b: &mut Port,
        asm: &mut Assembler,
        amac: [u8; 6],
        bmac: [u8; 6],
    ) -> Res<String> {
        let top = a
            .domain
            .mappings()
            .iter()
            .map(|m| m.iova + m.len as u64)
            .max()
            .unwrap_or(1 << 32);
        let bad_iova = (top + (1 << 30)) & !0xfff;
        if a.domain.addr_of_iova(bad_iova).is_some() {
            return Err(format!("{bad_iova:#x} is mapped"));
        }
        say!("fault case: TX descriptor at unmapped IOVA {bad_iova:#x} (highest mapped {top:#x})");
        const BAD: u32 = 0x00FA_0000;
        let mut scratch = Vec::new();
        // The bad frame: a real pool packet, but the descriptor lies.
        let len = frame::frame_len(BAD);
        scratch.resize(len, 0);
        frame::fill(&mut scratch, bmac, amac, BAD);
        let p = a
            .pool
            .alloc_packet(len.div_ceil(BUF_SIZE) as u16, AllocFlags::NoSleep)
            .map_err(err("fault packet"))?;
        // SAFETY: ours.
        unsafe { p.write_payload(&scratch) };
        let frags: Vec<(u64, u16)> = (0..len.div_ceil(BUF_SIZE))
            .map(|i| {
                let l = (len - i * BUF_SIZE).min(BUF_SIZE) as u16;
                (bad_iova + (i * BUF_SIZE) as u64, l)
            })
            .collect();
        a.nic
            .tx_push(&frags, p)
            .map_err(|_| "TX ring full at the fault case".to_string())?;
        send(a, BAD + 1, bmac, &mut scratch)?;
        a.nic.tx_flush();

        let t0 = Instant::now();
        let (mut tx_back, mut got) = (0, Vec::new());
        while t0.elapsed() < Duration::from_secs(2) {
            let pool_a = &a.pool;
            a.nic.tx_reclaim(|p| {
                // SAFETY: finished by the device; ours.
                unsafe { pool_a.free_packet(p) }.unwrap();
                tx_back += 1;
            });
            let mut done = Vec::new();
            b.nic.rx_poll(|d| done.push(d));
            for d in done {
                if let Some(len) = asm.take(&b.pool, d)? {
                    got.push(
                        frame::check(&asm.scratch[..len as usize], bmac, amac)
                            .map_err(|m| format!("fault case: mismatch {m:?}"))?,
                    );
                }
            }
            refill(b)?;
            if tx_back == 2 && !got.is_empty() {
                // Give a late bad frame a moment to show up.
                std::thread::sleep(Duration::from_millis(200));
            }
            if tx_back == 2 && t0.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        let (gptc, _) = a.nic.take_counters();
        let (_, gprc) = b.nic.take_counters();
        say!(
            "fault case: {tx_back}/2 TX descriptors completed, frames received {:?} \
             (bad = {BAD:#x}, good = {:#x}); A GPTC {gptc}, B GPRC {gprc}",
            got.iter().map(|s| format!("{s:#x}")).collect::<Vec<_>>(),
            BAD + 1
        );
        if tx_back != 2 {
            return Err(format!("fault case: only {tx_back}/2 TX completions"));
        }
        if got != [BAD + 1] {
            return Err(format!(
                "fault case: expected only the good frame, got {got:x?}"
            ));
        }
        let s = a.pool.stats();
        if s.packets_out != 0 {
            return Err(format!(
                "fault case: {} TX packets still out",
                s.packets_out
            ));
        }
        say!("fault case: the frame at the unmapped IOVA was not delivered; pool A consistent");
        Ok("dropped".into())
    }
}
