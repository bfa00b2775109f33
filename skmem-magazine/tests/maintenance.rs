//! The global registry operations and the maintenance thread.

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::Stamp;
use skmem_magazine::{
    all_stats, reap_all, update_all, Cache, CacheConfig, Global, Maintenance, MaintenanceConfig,
    TinyLadder,
};
use skmem_testkit::HeapObjects;

type Layer = HeapObjects<Arc<Stamp>>;

/// The registry is process-wide: a global low-memory reap in one test would
/// empty the depot another test is waiting for the maintenance thread to
/// reap. Tests that touch the registry hold this lock.
static REGISTRY: Mutex<()> = Mutex::new(());

fn registry_lock() -> MutexGuard<'static, ()> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn filled(name: &str) -> (Cache<Layer, Global, TinyLadder>, Arc<Stamp>) {
    let stamp = Arc::new(Stamp::default());
    let cache: Cache<_, Global, TinyLadder> = Cache::new(
        HeapObjects::with_ctor(name, 64, 8, stamp.clone()).unwrap(),
        CacheConfig::default(),
    )
    .unwrap();
    let objs: Vec<_> = (0..10).map(|_| cache.alloc().unwrap()).collect();
    for o in objs {
        // SAFETY: from `cache`.
        unsafe { cache.free(o) };
    }
    assert_eq!(cache.stats().depot_full, 8);
    (cache, stamp)
}

#[test]
fn maintenance_thread_reaps_an_idle_depot_and_stops_on_drop() {
    let _serial = registry_lock();
    let (cache, stamp) = filled("maint-idle");
    let m = Maintenance::start(MaintenanceConfig {
        update_interval: Duration::from_millis(2),
        reap_every: Some(1),
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while cache.stats().depot_full != 0 {
        assert!(
            Instant::now() < deadline,
            "the maintenance thread never reaped: {:?}",
            cache.stats()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        m.rounds() >= 1,
        "a working set needs one full interval before a reap can take anything"
    );
    let s = cache.stats();
    assert!(s.cpu_mag_reap >= 1);
    assert_eq!(stamp.dtors(), 8, "the depot's objects were destructed");
    assert!(
        stamp.reclaims.load(std::sync::atomic::Ordering::Relaxed) >= 1,
        "the owner's reclaim ran"
    );
    drop(m); // joins
    assert_eq!(
        cache.stats().cached_objs,
        2,
        "the slot's magazines are in use, not reaped"
    );
}

#[test]
fn zero_interval_is_refused() {
    let err = Maintenance::start(MaintenanceConfig {
        update_interval: Duration::ZERO,
        reap_every: None,
    })
    .unwrap_err();
    assert!(err.to_string().contains("update_interval"));
}

#[test]
fn global_reap_with_lowmem_purges_registered_caches() {
    let _serial = registry_lock();
    let (cache, stamp) = filled("global-lowmem");
    update_all();
    reap_all(true);
    let s = cache.stats();
    assert_eq!(s.cached_objs, 0, "{s:?}");
    assert_eq!(stamp.ctors(), stamp.dtors());
    assert!(all_stats().iter().any(|s| s.name == "global-lowmem"));
}
