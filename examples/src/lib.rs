//! Shared pieces of the example programs: workloads. (Tables print through
//! the stats structs' `Display`, `skmem_traits::stats::table`.)

pub mod workload;
