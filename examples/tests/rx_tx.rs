//! The rx/tx workload of the demo and `examples/rx_tx.rs`
//! (`skmem_examples::rx_tx`) on a heap pool: every payload verifies and
//! every packet comes back.

use std::time::Duration;

use skmem_backends::Heap;
use skmem_examples::rx_tx::{run_rx_tx, RxTxOptions};
use skmem_packet::PacketPoolConfig;

#[test]
fn demo_workload_runs_clean() {
    let pool = PacketPoolConfig::new("demo")
        .md_count(1024)
        .build::<Heap>(Default::default())
        .unwrap();
    let r = run_rx_tx(
        &pool,
        RxTxOptions {
            duration: Duration::from_millis(200),
            ..Default::default()
        },
    );
    assert!(r.packets > 0);
    assert_eq!(r.corrupt, 0);
    assert_eq!(r.stats.packets_out, 0);
    // SAFETY: no other thread uses the pool or its packets during the check.
    assert!(unsafe { pool.outstanding() }.is_empty());
}
