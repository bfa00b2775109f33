//! Arenas in one process: layout and offsets, local views, protections,
//! redirect, defunct, creation checks, external pools, stats.

#![cfg(target_os = "linux")]
#![allow(missing_docs)]
// Every pointer cast here is to an object base: segment, slab chunk
// or page aligned.
#![allow(clippy::cast_ptr_alignment)]

use std::io;

use skmem_arena::{ArenaConfig, RegionId, SlotDir, UserView, ViewId};
use skmem_backends::{Mmap, MmapConfig};
use skmem_packet::{AllocFlags, Error, PacketPoolConfig};
use skmem_traits::RegionMode;

fn small(name: &str) -> ArenaConfig {
    ArenaConfig::new(name).pool(PacketPoolConfig::new(name).md_count(128))
}

fn page() -> usize {
    rustix::param::page_size()
}

/// Permissions `/proc/self/maps` reports over `[start, start + len)`,
/// deduplicated, in address order.
fn perms(start: usize, len: usize) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let end = start + len;
    let mut out: Vec<String> = Vec::new();
    let mut covered = start;
    for line in maps.lines() {
        let mut it = line.split_whitespace();
        let range = it.next().unwrap();
        let p = it.next().unwrap().to_owned();
        let (a, b) = range.split_once('-').unwrap();
        let (a, b) = (
            usize::from_str_radix(a, 16).unwrap(),
            usize::from_str_radix(b, 16).unwrap(),
        );
        if b <= start || a >= end {
            continue;
        }
        assert!(a <= covered, "hole in the view at {covered:#x}");
        covered = b;
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    assert!(covered >= end, "view not fully mapped");
    out
}

fn region_perms(view: &UserView, id: RegionId) -> Vec<String> {
    let (r, p) = view.region(id).unwrap();
    perms(p.as_ptr() as usize, r.len)
}

#[test]
fn layout_is_contiguous_in_id_order_without_private_regions() {
    let arena = small("layout").build().unwrap();
    let layout = arena.layout();
    let mut at = 0;
    let mut last = None;
    for r in &layout.regions {
        assert_eq!(
            r.offset, at,
            "region {} starts where the previous ended",
            r.id
        );
        assert_eq!(r.offset % page(), 0);
        assert!(!r.id.is_kernel_only());
        assert!(last < Some(r.id), "id order");
        assert_eq!(arena.region_offset(r.id), Some(r.offset));
        assert_eq!(r.obj_count, r.objs_per_seg as usize * (r.len / r.seg_size));
        last = Some(r.id);
        at += r.len;
    }
    assert_eq!(at, layout.total_len);
    let ids: Vec<RegionId> = layout.regions.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            RegionId::GuardHead,
            RegionId::Schema,
            RegionId::Ring,
            RegionId::BufDef,
            RegionId::Umd,
            RegionId::TxaUsd,
            RegionId::RxfUsd,
            RegionId::UStats,
            RegionId::FlowAdv,
            RegionId::GuardTail,
        ]
    );
    for id in [RegionId::Kmd, RegionId::TxaKsd, RegionId::RxfKsd] {
        assert!(arena.has_region(id), "{id} exists");
        assert_eq!(arena.region_offset(id), None, "{id} is private");
    }
    assert!(!arena.has_region(RegionId::Kbft), "no buffers on demand");
    assert_eq!(layout.offset_of(RegionId::GuardHead), Some(0));
    assert_eq!(layout.region(RegionId::GuardHead).unwrap().len, page());

    // Optional regions disappear and the offsets close up.
    let bare = small("bare")
        .guard_size(0)
        .ring_count(0)
        .slot_count(0)
        .stats_size(0)
        .flowadv_size(0)
        .build()
        .unwrap();
    let ids: Vec<RegionId> = bare.layout().regions.iter().map(|r| r.id).collect();
    assert_eq!(ids, [RegionId::Schema, RegionId::BufDef, RegionId::Umd]);
    assert_eq!(bare.region_offset(RegionId::Schema), Some(0));
    assert!(bare.stats_object().is_none() && bare.ring_cache().is_none());
}

#[test]
fn local_view_protections_match_the_region_modes() {
    let arena = small("prot").build().unwrap();
    let view = arena.map_local().unwrap();
    assert!(view.is_local());
    assert_eq!(view.len(), arena.layout().total_len);
    assert!(perms(view.base().as_ptr() as usize, view.len()).len() > 1);
    for (id, want) in [
        (RegionId::GuardHead, "---p"),
        (RegionId::Schema, "r--s"),
        (RegionId::Ring, "rw-s"),
        (RegionId::BufDef, "rw-s"),
        (RegionId::Umd, "rw-s"),
        (RegionId::TxaUsd, "r--s"),
        (RegionId::RxfUsd, "r--s"),
        (RegionId::UStats, "rw-s"),
        (RegionId::FlowAdv, "r--s"),
        (RegionId::GuardTail, "---p"),
    ] {
        assert_eq!(region_perms(&view, id), [want], "{id}");
    }

    // Read-only regions come from a read-only descriptor: the view cannot
    // be made writable.
    for id in [RegionId::Schema, RegionId::FlowAdv, RegionId::TxaUsd] {
        let (r, p) = view.region(id).unwrap();
        // SAFETY: an mprotect of our own view's range, expected to fail.
        let rc =
            unsafe { libc::mprotect(p.as_ptr().cast(), r.len, libc::PROT_READ | libc::PROT_WRITE) };
        assert_eq!(rc, -1, "{id}");
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EACCES)
        );
    }
    // The accessors refuse what the mapping refuses.
    let e = view.write(RegionId::Schema, 0, b"x").unwrap_err();
    assert!(e.to_string().contains("read-only"), "{e}");
    let e = view
        .read(RegionId::GuardTail, 0, &mut [0u8; 1])
        .unwrap_err();
    assert!(e.to_string().contains("guard"), "{e}");
    let (ring, _) = view.region(RegionId::Ring).unwrap();
    let e = view
        .read(RegionId::Ring, ring.len - 2, &mut [0u8; 4])
        .unwrap_err();
    assert!(matches!(e, Error::OutOfRange { .. }), "{e}");
    assert!(view.read(RegionId::Kmd, 0, &mut [0u8; 1]).is_err());

    drop(view);
    assert_eq!(arena.views().local, 0);
}

#[test]
fn owner_and_local_view_share_packets_rings_stats_and_slot_descriptors() {
    let arena = small("share").build().unwrap();
    let pool = arena.pool().unwrap();
    let view = arena.map_local().unwrap();
    assert_eq!(*view.pool_info(), arena.pool_info());
    assert_eq!(view.read_schema().unwrap(), *arena.layout());

    // Packets: owner writes, the view reads; the view writes, the owner
    // reads after validating the hand-back.
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    // SAFETY: ours until handed to the user.
    let md = unsafe {
        p.write_payload(b"owner to view");
        pool.upp_insert(1, p).unwrap()
    };
    let mut buf = [0u8; 64];
    let n = view.read_packet(md, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"owner to view");
    view.write_packet(md, b"view to owner, longer").unwrap();
    let q = pool.upp_remove(1, md).unwrap();
    // SAFETY: back and validated.
    let n = unsafe { q.read_payload(&mut buf) };
    assert_eq!(&buf[..n], b"view to owner, longer");
    // The owner's buffer address maps to the view's offset.
    // SAFETY: ours.
    let addr = unsafe { q.buffer_addr() };
    let (id, off) = arena.view_offset_of(addr).unwrap();
    assert_eq!(id, RegionId::BufDef);
    let mut same = [0u8; 21];
    view.read(
        RegionId::BufDef,
        off - arena.region_offset(id).unwrap(),
        &mut same,
    )
    .unwrap();
    assert_eq!(&same, b"view to owner, longer");
    // SAFETY: ours, freed once.
    unsafe { pool.free_packet(q) }.unwrap();
    assert!(
        view.read_packet(md, &mut buf).is_ok(),
        "stale index reads stale bytes, never faults"
    );
    assert!(view.read_packet(u32::MAX, &mut buf).is_err());

    // A ring object.
    let rings = arena.ring_cache().unwrap();
    let ring = rings.alloc_with(AllocFlags::NoSleep).unwrap();
    // SAFETY: a freshly allocated ring object of 256 bytes.
    unsafe { ring.as_ptr().cast::<u32>().write_volatile(0xabcd_0123) };
    let (rid, roff) = arena.view_offset_of(ring.as_ptr()).unwrap();
    assert_eq!(rid, RegionId::Ring);
    let ring_view = roff - arena.region_offset(RegionId::Ring).unwrap();
    assert_eq!(
        view.read_u32(RegionId::Ring, ring_view).unwrap(),
        0xabcd_0123
    );
    view.write_u32(RegionId::Ring, ring_view + 4, 77).unwrap();
    assert_eq!(
        // SAFETY: as above.
        unsafe { ring.as_ptr().add(4).cast::<u32>().read_volatile() },
        77
    );
    // SAFETY: allocated from this cache, freed once.
    unsafe { rings.free(ring) };

    // The stats object.
    let (stats, len) = arena.stats_object().unwrap();
    assert_eq!(len, 4096);
    // SAFETY: live while the arena is; segment bases are page-aligned.
    unsafe { stats.as_ptr().cast::<u32>().add(3).write_volatile(42) };
    assert_eq!(view.read_u32(RegionId::UStats, 12).unwrap(), 42);

    // A slot descriptor: the owner fills the user mirror, the view sees it
    // at the same index of the read-only usd region.
    let sd = arena.slot_desc_cache(SlotDir::Tx).unwrap();
    let k = sd.alloc_with(AllocFlags::NoSleep).unwrap();
    let (info, shadow) = sd.object_info_with_shadow(k.as_ptr()).unwrap();
    let shadow = shadow.unwrap();
    // SAFETY: the mirror object of a live slot descriptor (owner-writable).
    unsafe { shadow.addr.as_ptr().cast::<u32>().write_volatile(0x5105) };
    let (usd, _) = view.region(RegionId::TxaUsd).unwrap();
    let off = usd.object_offset(info.index_in_region).unwrap();
    assert_eq!(view.read_u32(RegionId::TxaUsd, off).unwrap(), 0x5105);
    assert!(view.write_u32(RegionId::TxaUsd, off, 1).is_err());
    // SAFETY: allocated here, freed once.
    unsafe { sd.free(k) };
}

#[test]
fn redirect_local_view_zero_pages_and_writes_stay_private() {
    let arena = small("redirect").build().unwrap();
    let pool = arena.pool().unwrap();
    let view = arena.map_local().unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    // SAFETY: ours until handed over.
    let md = unsafe {
        p.write_payload(b"secret payload");
        pool.upp_insert(1, p).unwrap()
    };
    let (id, off) = arena
        // SAFETY: a tracked packet's buffer address (no access).
        .view_offset_of(unsafe { p.buffer_addr() })
        .unwrap();
    let boff = off - arena.region_offset(id).unwrap();
    let mut buf = [0u8; 14];
    view.read(RegionId::BufDef, boff, &mut buf).unwrap();
    assert_eq!(&buf, b"secret payload");

    assert!(
        arena.redirect(view.id()).unwrap(),
        "the only view: now inactive"
    );
    assert!(view.is_redirected());
    assert!(!arena.is_active());
    // Zeros where the payload was, same protections, guards untouched.
    view.read(RegionId::BufDef, boff, &mut buf).unwrap();
    assert_eq!(buf, [0u8; 14]);
    assert_eq!(region_perms(&view, RegionId::BufDef), ["rw-p"]);
    assert_eq!(region_perms(&view, RegionId::FlowAdv), ["r--p"]);
    assert_eq!(
        region_perms(&view, RegionId::Schema),
        ["r--s"],
        "no-redirect stays shared"
    );
    assert_eq!(region_perms(&view, RegionId::GuardHead), ["---p"]);
    assert_eq!(view.read_schema().unwrap(), *arena.layout());
    // Writes land in private pages: the pool never sees them.
    view.write(RegionId::BufDef, boff, b"XXXXXXXXXXXXXX")
        .unwrap();
    view.write(RegionId::Umd, 0, &[0xff; 128]).unwrap();
    let q = pool.upp_remove(1, md).unwrap();
    let mut out = [0u8; 32];
    // SAFETY: back and validated.
    let n = unsafe { q.read_payload(&mut out) };
    assert_eq!(&out[..n], b"secret payload");
    // SAFETY: ours, freed once.
    unsafe { pool.free_packet(q) }.unwrap();

    // Inactive: no new views; errors for unknown or repeated redirects.
    assert!(matches!(arena.map_local(), Err(Error::Busy { .. })));
    let (a, _b) = skmem_arena::socketpair().unwrap();
    let e = arena.send_view(&a).unwrap_err();
    assert!(e.to_string().contains("inactive"), "{e}");
    let e = arena.redirect(view.id()).unwrap_err();
    assert!(
        matches!(e, Error::Busy { reason, .. } if reason.contains("already")),
        "{e}"
    );
    let e = arena.redirect(ViewId(999)).unwrap_err();
    assert!(matches!(e, Error::Invalid { field: "view", .. }), "{e}");
    assert_eq!(arena.stats().redirects, 1);
}

#[test]
fn arena_turns_inactive_when_the_last_unredirected_view_goes() {
    let arena = small("deferred").build().unwrap();
    let a = arena.map_local().unwrap();
    let b = arena.map_local().unwrap();
    assert_ne!(a.base(), b.base());
    assert_eq!(arena.views().local, 2);
    assert!(!arena.redirect(a.id()).unwrap(), "b still maps the arena");
    assert!(arena.is_active());
    let c = arena.map_local().unwrap();
    assert!(!arena.redirect(c.id()).unwrap());
    drop(c);
    assert!(
        arena.is_active(),
        "dropping a redirected view changes nothing"
    );
    drop(b);
    assert!(!arena.is_active(), "every remaining view is redirected");
    let v = arena.views();
    assert_eq!((v.local, v.redirected), (1, 1));
    drop(a);
    assert_eq!(arena.views().local, 0);
    assert_eq!(arena.stats().local_views_created, 3);
}

#[test]
fn defunct_is_refused_while_active_then_releases_redirectable_regions() {
    let arena = small("defunct").build().unwrap();
    let view = arena.map_local().unwrap();
    let pool = arena.pool().unwrap();
    let mut pkts = Vec::new();
    pool.alloc_batch_vec(1, 16, &mut pkts, AllocFlags::NoSleep)
        .unwrap();
    // SAFETY: ours, freed once; they rest in the magazines afterwards.
    unsafe { pool.free_batch(&pkts) }.unwrap();
    drop(pool);
    let (total, inuse) = arena.mem_stats();
    assert!(inuse > 0 && total > inuse);

    let e = arena.defunct().unwrap_err();
    assert!(
        matches!(e, Error::Busy { reason, .. } if reason.contains("active")),
        "{e}"
    );
    assert!(!arena.is_defunct());

    assert_eq!(arena.redirect_all().unwrap(), 1);
    arena.defunct().unwrap();
    assert!(arena.is_defunct());
    for id in RegionId::ALL {
        let kept = matches!(
            id,
            RegionId::GuardHead | RegionId::Schema | RegionId::GuardTail
        );
        assert_eq!(arena.has_region(id), kept, "{id}");
    }
    assert!(arena.pool().is_none() && arena.ring_cache().is_none());
    assert!(arena.stats_object().is_none() && arena.slot_desc_cache(SlotDir::Rx).is_none());
    let (total2, inuse2) = arena.mem_stats();
    assert!(total2 < total && inuse2 < inuse, "{total2} {inuse2}");
    let s = arena.stats();
    assert!(s.defunct && !s.active);
    assert_eq!(s.regions.len(), 3);

    // Repeated defunct changes nothing (the seed's EALREADY).
    let e = arena.defunct().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Busy {
                reason: "already defunct",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(arena.stats(), s);
    // The view survives: the schema is still there, the rest reads zero.
    assert_eq!(view.read_schema().unwrap(), *arena.layout());
    assert_eq!(view.read_u32(RegionId::UStats, 0).unwrap(), 0);
    let e = arena.map_local().unwrap_err();
    assert!(e.to_string().contains("defunct"), "{e}");
}

#[test]
fn redirect_all_without_views_deactivates() {
    let arena = small("empty").build().unwrap();
    assert!(arena.defunct().is_err());
    assert_eq!(arena.redirect_all().unwrap(), 0);
    assert!(!arena.is_active());
    arena.defunct().unwrap();
}

#[test]
fn creation_checks_name_the_region() {
    let refused = |id, mode| small("bad").region_mode(id, mode).build().unwrap_err();
    let e = refused(
        RegionId::Schema,
        RegionMode::MMAPOK | RegionMode::NOREDIRECT,
    );
    assert!(
        matches!(&e, Error::Invalid { field: "schema", reason } if reason.contains("UREADONLY")),
        "{e}"
    );
    let e = refused(
        RegionId::FlowAdv,
        RegionMode::MMAPOK | RegionMode::MONOLITHIC,
    );
    assert!(
        matches!(
            &e,
            Error::Invalid {
                field: "flowadv",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(RegionId::Ring, RegionMode::MMAPOK | RegionMode::NOREDIRECT);
    assert!(e.to_string().contains("must not be NOREDIRECT"), "{e}");
    let e = refused(RegionId::GuardHead, RegionMode::GUARD | RegionMode::MMAPOK);
    assert!(
        matches!(
            &e,
            Error::Invalid {
                field: "guard_head",
                ..
            }
        ),
        "{e}"
    );
    let e = refused(RegionId::TxaKsd, RegionMode::MMAPOK);
    assert!(e.to_string().contains("must not be MMAPOK"), "{e}");
    let e = refused(RegionId::Umd, RegionMode::MMAPOK);
    assert!(e.to_string().contains("packet pool"), "{e}");
    // Writable user slot descriptors only with a user packet pool.
    let e = refused(
        RegionId::TxaUsd,
        RegionMode::MMAPOK | RegionMode::NOMAGAZINES,
    );
    assert!(
        matches!(
            &e,
            Error::Invalid {
                field: "txa_usd",
                ..
            }
        ),
        "{e}"
    );
    let upp = small("upp").user_packet_pool(true).build().unwrap();
    let v = upp.map_local().unwrap();
    assert_eq!(region_perms(&v, RegionId::TxaUsd), ["rw-s"]);
    v.write_u32(RegionId::RxfUsd, 0, 5).unwrap();

    let e = small("bad").guard_size(100).build().unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidParam {
                param: "guard_size",
                ..
            }
        ),
        "{e}"
    );
    let e = small("bad").schema_size(64).build().unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidParam {
                param: "schema_size",
                ..
            }
        ),
        "{e}"
    );

    // A kernel-only pool has nothing to map.
    let ko = PacketPoolConfig::new("ko")
        .md_count(64)
        .kernel_only(true)
        .build::<Mmap>(MmapConfig::default())
        .unwrap();
    let e = small("bad").build_with_pool(&ko).unwrap_err();
    assert!(e.to_string().contains("kernel-only"), "{e}");
}

#[test]
fn external_pool_is_shared_by_reference() {
    let pool = PacketPoolConfig::new("ext")
        .md_count(64)
        .on_demand(true)
        .max_frags(4)
        .large_buf_size(8192)
        .build::<Mmap>(MmapConfig::default().with_name("ext"))
        .unwrap();
    assert_eq!(pool.refcount(), 1);
    let a = small("ext-a").build_with_pool(&pool).unwrap();
    let b = small("ext-b").build_with_pool(&pool).unwrap();
    assert!(a.is_external_pool());
    assert_eq!(pool.refcount(), 3);
    for id in [
        RegionId::BufDef,
        RegionId::BufLarge,
        RegionId::Umd,
        RegionId::Ubft,
        RegionId::Kmd,
        RegionId::Kbft,
    ] {
        assert!(a.has_region(id), "{id}");
    }
    assert!(a.region_offset(RegionId::Ubft).is_some());
    assert_eq!(a.region_offset(RegionId::Kbft), None);
    // Both arenas map the same buffers.
    let va = a.map_local().unwrap();
    let vb = b.map_local().unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    // SAFETY: ours; one buflet with a buffer.
    let addr = unsafe {
        p.write_payload(b"both arenas");
        p.buffer_addr()
    };
    let (_, oa) = a.view_offset_of(addr).unwrap();
    let (_, ob) = b.view_offset_of(addr).unwrap();
    let mut x = [0u8; 11];
    let mut y = [0u8; 11];
    va.read(
        RegionId::BufDef,
        oa - a.region_offset(RegionId::BufDef).unwrap(),
        &mut x,
    )
    .unwrap();
    vb.read(
        RegionId::BufDef,
        ob - b.region_offset(RegionId::BufDef).unwrap(),
        &mut y,
    )
    .unwrap();
    assert_eq!((&x, &y), (b"both arenas", b"both arenas"));
    // SAFETY: ours, freed once.
    unsafe { pool.free_packet(p) }.unwrap();

    // Defunct of one arena drops its references only.
    a.redirect_all().unwrap();
    a.defunct().unwrap();
    assert_eq!(pool.refcount(), 2);
    assert!(pool.alloc_packet(1, AllocFlags::NoSleep).is_ok_and(|p| {
        // SAFETY: ours, freed at once.
        unsafe { pool.free_packet(p) }.unwrap();
        true
    }));
    drop((va, vb, b));
    assert_eq!(pool.refcount(), 1);
}

#[test]
fn stats_and_registry() {
    let arena = small("stats-arena").build().unwrap();
    let s = arena.stats();
    assert_eq!(s.name, "stats-arena");
    assert!(s.active && !s.defunct && !s.external_pool);
    assert_eq!(s.map_size, 0, "no view yet");
    let (t, u) = arena.mem_stats();
    assert_eq!((s.mem_total, s.mem_inuse), (t, u));
    assert_eq!(
        s.mem_total,
        s.regions.iter().map(|r| r.region.memtotal).sum::<u64>()
    );
    // Schema object, stats and flow advisory singletons are created.
    let created: Vec<RegionId> = s
        .regions
        .iter()
        .filter(|r| r.region.seginuse > 0)
        .map(|r| r.id)
        .collect();
    for id in [RegionId::Schema, RegionId::UStats, RegionId::FlowAdv] {
        assert!(created.contains(&id), "{id} has a live segment");
    }
    let guard = s
        .regions
        .iter()
        .find(|r| r.id == RegionId::GuardHead)
        .unwrap();
    assert_eq!((guard.region.meminuse, guard.view_offset), (0, Some(0)));
    let kmd = s.regions.iter().find(|r| r.id == RegionId::Kmd).unwrap();
    assert_eq!(kmd.view_offset, None);

    let v = arena.map_local().unwrap();
    let s = arena.stats();
    assert_eq!(s.map_size, arena.layout().total_len as u64);
    assert_eq!(s.views.local, 1);
    assert!(skmem_arena::all_stats()
        .iter()
        .any(|a| a.name == "stats-arena" && a.views.local == 1));
    drop(v);
    drop(arena);
    assert!(!skmem_arena::all_stats()
        .iter()
        .any(|a| a.name == "stats-arena"));
}

#[cfg(feature = "serde")]
#[test]
fn stats_round_trip_through_json() {
    let arena = small("serde").build().unwrap();
    let _view = arena.map_local().unwrap();
    let s = arena.stats();
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"name\":\"serde\""), "{json}");
    assert!(json.contains("\"mem_total\""));
    // Read back from a buffer that does not outlive the call.
    let back: skmem_arena::ArenaStats = serde_json::from_str(&json.clone()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.views.local, 1);
    assert!(back.regions.iter().all(|r| r.region.source == "mmap"));
}

#[test]
fn remote_view_in_this_process_and_peer_loss() {
    // A "remote" view received over a socketpair inside one process: the
    // protocol end to end, without a child.
    let arena = small("loop").build().unwrap();
    let (owner, peer) = skmem_arena::socketpair().unwrap();
    let id = arena.send_view(&owner).unwrap();
    let view = UserView::receive(&peer).unwrap();
    assert_eq!(view.id(), id);
    assert_eq!(view.arena_name(), "loop");
    assert_eq!(view.layout(), arena.layout());
    assert_eq!(region_perms(&view, RegionId::Schema), ["r--s"]);
    assert_eq!(view.poll().unwrap(), None);
    assert!(arena.redirect(id).unwrap(), "the only view");
    assert_eq!(
        view.poll().unwrap(),
        Some(skmem_arena::ControlEvent::Redirected)
    );
    assert_eq!(region_perms(&view, RegionId::Umd), ["rw-p"]);
    arena.poll_peers().unwrap();
    assert_eq!(arena.stats().redirects_acked, 1);
    // The peer "dies": its end closes without a goodbye.
    std::mem::forget(view);
    drop(peer);
    // The forgotten view still holds a duplicate of the socket, so the
    // owner cannot see end-of-file: it is told instead.
    assert_eq!(arena.poll_peers().unwrap(), 0);
    arena.release_remote(id).unwrap();
    assert_eq!(arena.views().remote, 0);
    assert!(arena.release_remote(id).is_err());

    // A socket that is not SOCK_SEQPACKET is refused.
    let (s, _t) = std::os::unix::net::UnixStream::pair().unwrap();
    let arena = small("loop2").build().unwrap();
    let e = arena.send_view(&s).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Invalid {
                field: "socket",
                ..
            }
        ),
        "{e}"
    );
    // Closing the peer end releases the view at the next poll.
    let (owner, peer) = skmem_arena::socketpair().unwrap();
    arena.send_view(&owner).unwrap();
    drop(peer);
    assert_eq!(arena.poll_peers().unwrap(), 1);
    assert_eq!(arena.stats().remote_lost, 1);
}

#[test]
fn views_come_and_go_on_many_threads() {
    let arena = small("threads").build().unwrap();
    let layout = arena.layout().clone();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    let v = arena.map_local().unwrap();
                    assert_eq!(v.read_schema().unwrap(), layout);
                    drop(v);
                }
            });
        }
    });
    let st = arena.stats();
    assert_eq!((st.views.local, st.local_views_created), (0, 200));
    assert!(arena.is_active());
}

#[test]
fn a_reader_keeps_running_through_a_redirect() {
    let arena = small("reader").build().unwrap();
    let pool = arena.pool().unwrap();
    let view = arena.map_local().unwrap();
    let p = pool.alloc_packet(1, AllocFlags::NoSleep).unwrap();
    // SAFETY: ours; one buffer.
    let addr = unsafe {
        p.write_payload(&0x1234_5678u32.to_ne_bytes());
        p.buffer_addr()
    };
    let (_, off) = arena.view_offset_of(addr).unwrap();
    let off = off - arena.region_offset(RegionId::BufDef).unwrap();
    let seen = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut reads = 0u64;
            loop {
                let v = view.read_u32(RegionId::BufDef, off).unwrap();
                reads += 1;
                if v == 0 {
                    return reads;
                }
                assert_eq!(v, 0x1234_5678);
                seen.store(v, std::sync::atomic::Ordering::Release);
            }
        });
        while seen.load(std::sync::atomic::Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
        arena.redirect(view.id()).unwrap();
        assert!(reader.join().unwrap() > 0);
    });
    // The owner's copy is intact.
    let mut b = [0u8; 4];
    // SAFETY: ours.
    unsafe { p.read_payload(&mut b) };
    assert_eq!(u32::from_ne_bytes(b), 0x1234_5678);
    // SAFETY: ours, freed once.
    unsafe { pool.free_packet(p) }.unwrap();
}
