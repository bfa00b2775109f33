//! The registry lists every kind of object this process builds, their
//! stats round-trip through serde JSON, and what is published reads back
//! equal through the memfd.

use std::time::Duration;

use skmem::stats::{Kind, Reader, Stats};
use skmem::{AllocFlags, Heap, HeapConfig, PacketPoolConfig};
use skmem_traits::registry;
use skmem_traits::stats::{CustomStats, SlabStats};

fn json_round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_string(value).unwrap();
    // Read back from a buffer that is gone once parsed.
    let back: T = serde_json::from_str(&json.clone()).unwrap();
    assert_eq!(&back, value, "{json}");
    back
}

fn find(kind: Kind, name: &str) -> Option<Stats> {
    registry::snapshot()
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| s.kind() == kind && s.name() == name)
}

#[test]
fn every_kind_is_registered_and_round_trips_through_json() {
    let cache = skmem::Cache::builder("rt.cache", 96)
        .capacity(256)
        .build()
        .unwrap();
    let obj = cache.alloc().unwrap();
    let pool = PacketPoolConfig::new("rt.pool")
        .md_count(128)
        .build::<Heap>(HeapConfig::default())
        .unwrap();
    let packet = pool.alloc_owned(1, AllocFlags::NoSleep).unwrap();
    let arena = skmem::ArenaConfig::new("rt.arena")
        .pool(PacketPoolConfig::new("rt.arena").md_count(128))
        .build()
        .unwrap();
    let _view = arena.map_local().unwrap();

    let Some(Stats::Cache(c)) = find(Kind::Cache, "rt.cache") else {
        panic!("rt.cache not registered as a cache")
    };
    assert_eq!(c.slab.objsize, 96);
    assert_eq!(c.objs_in_use(), 1);
    let Some(Stats::Region(r)) = find(Kind::Region, "rt.cache") else {
        panic!("region rt.cache not registered")
    };
    assert_eq!(r.source, "heap");
    let Some(Stats::Pool(p)) = find(Kind::Pool, "rt.pool") else {
        panic!("rt.pool not registered as a pool")
    };
    assert_eq!(p.packets_out, 1);
    let Some(Stats::Arena(a)) = find(Kind::Arena, "rt.arena") else {
        panic!("rt.arena not registered as an arena")
    };
    assert_eq!(a.local_views, 1);

    // Every kind through JSON: the registry's enum and each struct.
    let custom = CustomStats {
        kind: "size-class".into(),
        name: "class-48".into(),
        values: vec![("allocs".into(), 7), ("frees".into(), 5)],
    };
    let slab: SlabStats = c.slab.clone();
    for s in [
        Stats::Cache(c.clone()),
        Stats::Region(r.clone()),
        Stats::Pool(p.clone()),
        Stats::Arena(a.clone()),
        Stats::Slab(slab.clone()),
        Stats::Custom(custom.clone()),
    ] {
        json_round_trip(&s);
    }
    json_round_trip(&c);
    json_round_trip(&r);
    json_round_trip(&p);
    json_round_trip(&slab);
    json_round_trip(&custom);
    json_round_trip(&pool.stats());
    json_round_trip(&arena.stats());

    // Each kind prints as a table naming its object.
    for text in [
        c.to_string(),
        r.to_string(),
        p.to_string(),
        slab.to_string(),
    ] {
        assert!(text.contains("rt."), "{text}");
    }
    let dump = skmem::stats::dump();
    for section in [
        "regions (",
        "magazine caches (",
        "packet pools (",
        "arenas (",
    ] {
        assert!(dump.contains(section), "{section} missing from\n{dump}");
    }

    // Published and read back through /proc/self/fd: equal records.
    skmem::stats::publish(Duration::from_millis(50)).unwrap();
    let reader = Reader::attach(std::process::id()).unwrap();
    let snap = reader.read().unwrap();
    let published = snap
        .caches()
        .find(|x| x.name == "rt.cache")
        .expect("rt.cache published");
    assert_eq!(published.slab.objsize, 96);
    assert_eq!(published.objs_in_use(), 1);
    assert_eq!(published.locality, c.locality);
    let back = json_round_trip(&snap);
    assert_eq!(back.pid, std::process::id());
    // Refreshes go on: a later read sees a later generation.
    let g = snap.generation;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reader.read().unwrap().generation == g {
        assert!(std::time::Instant::now() < deadline, "no refresh in 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    skmem::stats::stop_publishing();

    drop(packet);
    // SAFETY: `obj` came from `cache` and is freed once.
    unsafe { cache.free(obj) };
    drop(cache);
    assert!(
        find(Kind::Cache, "rt.cache").is_none(),
        "a dropped cache leaves the registry"
    );
    assert!(
        find(Kind::Region, "rt.cache").is_none(),
        "and so does its region"
    );
}
