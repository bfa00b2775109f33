//! Shared pieces of the example programs: workloads and a plain-text table
//! printer for stats.

pub mod table;
pub mod workload;
