//! Shared pieces of the example programs: workloads. (Tables print through
//! the stats structs' `Display`, `skmem_traits::stats::table`.)
//!
//! * [`workload`]: the mixed object-cache workload.
//! * [`rx_tx`]: the two-thread packet workload over a `PacketPool`.

pub mod rx_tx;
pub mod workload;
