//! The registry of live caches, the global update and reap, and the
//! maintenance thread that runs them on an interval.
//!
//! Every cache created with `register` on (the default) is listed in the
//! process registry ([`skmem_traits::registry`]) by a weak reference, next
//! to regions, packet pools and arenas. The registry is walked without a
//! lock (crossbeam-epoch), so a cache may be dropped, or created, while
//! the global operations run.

use std::sync::Arc;
use std::time::Duration;

use skmem_traits::registry;
use skmem_traits::stats::CacheStats;

/// Runs [`Cache::update`](crate::Cache::update) on every registered cache
/// (the seed's update thread call), and the update of every other object
/// in the process registry ([`skmem_traits::registry`]).
pub fn update_all() {
    registry::update_all();
}

/// Runs [`Cache::reclaim`](crate::Cache::reclaim) on every registered cache
/// (the seed's reap thread call); `lowmem` purges the CPU layers too.
pub fn reap_all(lowmem: bool) {
    registry::reap_all(lowmem);
}

/// Statistics of every registered magazine cache.
pub fn all_stats() -> Vec<CacheStats> {
    registry::stats_of(registry::Kind::Cache)
        .into_iter()
        .filter_map(|s| match s {
            registry::Stats::Cache(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// When the [`Maintenance`] thread runs what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Interval between [`update_all`] runs (the seed uses 11 s).
    pub update_interval: Duration,
    /// Run [`reap_all(false)`](reap_all) after every this many updates
    /// (`None`: never).
    pub reap_every: Option<u32>,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        MaintenanceConfig {
            update_interval: Duration::from_secs(11),
            reap_every: Some(1),
        }
    }
}

/// A background thread that runs [`update_all`] (and, if configured,
/// [`reap_all`]) on an interval. Dropping it stops the thread and joins it.
#[derive(Debug)]
pub struct Maintenance {
    shared: Arc<(std::sync::Mutex<MaintState>, std::sync::Condvar)>,
    handle: Option<std::thread::JoinHandle<()>>,
}

#[derive(Debug, Default)]
struct MaintState {
    stop: bool,
    rounds: u64,
}

impl Maintenance {
    /// Starts the thread.
    pub fn start(config: MaintenanceConfig) -> skmem_traits::Result<Self> {
        if config.update_interval.is_zero() {
            return Err(skmem_traits::Error::invalid_param(
                "update_interval",
                0,
                "must be longer than zero",
            ));
        }
        let shared = Arc::new((
            std::sync::Mutex::new(MaintState::default()),
            std::sync::Condvar::new(),
        ));
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("skmem-maintenance".into())
            .spawn(move || run(&thread_shared, &config))
            .map_err(|e| {
                skmem_traits::Error::os(
                    "spawning the maintenance thread",
                    e.raw_os_error().unwrap_or(0),
                )
            })?;
        Ok(Maintenance {
            shared,
            handle: Some(handle),
        })
    }

    /// Update rounds the thread has completed.
    pub fn rounds(&self) -> u64 {
        self.shared
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .rounds
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.shared.1.notify_all();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("the skmem maintenance thread panicked");
            }
        }
    }
}

fn run(shared: &(std::sync::Mutex<MaintState>, std::sync::Condvar), config: &MaintenanceConfig) {
    let (lock, cv) = shared;
    let mut since_reap = 0u32;
    loop {
        {
            let st = lock.lock().unwrap_or_else(|e| e.into_inner());
            let (st, _) = cv
                .wait_timeout_while(st, config.update_interval, |s| !s.stop)
                .unwrap_or_else(|e| e.into_inner());
            if st.stop {
                return;
            }
        }
        update_all();
        if let Some(every) = config.reap_every {
            since_reap += 1;
            if since_reap >= every.max(1) {
                since_reap = 0;
                reap_all(false);
            }
        }
        lock.lock().unwrap_or_else(|e| e.into_inner()).rounds += 1;
        cv.notify_all();
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
