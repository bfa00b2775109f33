//! Shared pieces of the example programs: workloads and a plain-text table
//! printer for stats.

pub mod table;
pub mod workload;

/// The repository README, compiled and run as a doctest so that its example
/// cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
