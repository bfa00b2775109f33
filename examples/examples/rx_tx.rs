//! Two threads: "rx" allocates batches of 32 packets and writes a payload,
//! "tx" verifies and frees them in batches. Prints packets/s and a stats
//! table.
//!
//! ```text
//! cargo run --release -p skmem-examples --example rx_tx -- [seconds] [heap|mmap]
//! ```

use std::time::Duration;

use skmem_examples::rx_tx::{run_rx_tx, RxTxOptions, RxTxReport};
use skmem_packet::PacketPoolConfig;

fn print(r: &RxTxReport) {
    println!(
        "{} packets in {:.2?}: {:.2} Mpps, {} batches ({} partial, {} empty polls), corrupt {}",
        r.packets,
        r.elapsed,
        r.packets_per_sec() / 1e6,
        r.batches,
        r.partial_batches,
        r.empty_batches,
        r.corrupt
    );
    print!("{}", r.stats.table());
}

fn main() -> skmem_packet::Result<()> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let backend = args.next().unwrap_or_else(|| "heap".into());
    let opts = RxTxOptions {
        duration: Duration::from_secs_f64(secs),
        ..Default::default()
    };
    let cfg = PacketPoolConfig::new("rx_tx").md_count(4096);
    let report = match backend.as_str() {
        #[cfg(target_os = "linux")]
        "mmap" => {
            let pool = cfg.build::<skmem_backends::Mmap>(Default::default())?;
            run_rx_tx(&pool, opts)
        }
        _ => {
            let pool = cfg.build::<skmem_backends::Heap>(Default::default())?;
            run_rx_tx(&pool, opts)
        }
    };
    print(&report);
    assert_eq!(report.corrupt, 0, "payload corruption");
    Ok(())
}
