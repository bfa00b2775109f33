//! `skmem-top`: a live slabtop for a process that publishes its skmem
//! statistics.
//!
//! ```text
//! skmem-top PID                 # attach to a process run with SKMEM_STATS=publish
//! skmem-top --demo              # run the demo workload in a child process and attach to it
//! skmem-top --once --json PID   # one snapshot as JSON, for scripts
//! ```
//!
//! The process publishes with [`skmem_stats::publish`] or, in any program
//! that links `skmem-stats`, by running with `SKMEM_STATS=publish` (see
//! [`skmem_stats::init_from_env`]); `skmem-top`
//! finds the `skmem-stats` memfd under `/proc/PID/fd`, maps it read-only
//! and reads it every second. The screen: a sortable table of caches
//! (object size, objects in use and total, memory, magazine size, CPU-layer
//! hit rate, depot full/empty, contention, resizes, allocations and
//! allocations per second), then panels of regions (segments, memory,
//! wired), packet pools (packets, packets and buflets out, memory) and
//! arenas (memory, view size, local and remote views, redirects, state;
//! hidden when there are none), and the sparkline. Keys: `s` cycles the sort column, `r`
//! reverses the order, `/` filters by name (Enter applies, Esc clears),
//! arrows move the selection (its allocation rate is the sparkline), `q`
//! quits.
//!
//! This library holds the pieces the binary and its tests share: the
//! [`demo`] workload and the [`view`] model (rows, rates, sorting,
//! filtering), independent of the terminal.

pub mod demo;
pub mod view;
