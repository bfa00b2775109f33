//! The churn workloads with skmem-alloc as the global allocator
//! (`cargo run --release -p skmem-alloc --example churn_skmem`).

#[global_allocator]
static GLOBAL: skmem_alloc::SkmemAlloc = skmem_alloc::SkmemAlloc::new();

#[path = "common/churn_workloads.rs"]
mod churn_workloads;

fn main() {
    churn_workloads::main_with("skmem");
    if std::env::var_os("SKMEM_SHOW_STATS").is_some() {
        skmem_alloc::print_summary();
    }
}
