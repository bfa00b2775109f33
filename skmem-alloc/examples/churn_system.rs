//! The churn workloads on the system allocator, or whatever `LD_PRELOAD`
//! substitutes (`LD_PRELOAD=libmimalloc.so.2 cargo run --release -p
//! skmem-alloc --example churn_system`).

#[path = "common/churn_workloads.rs"]
mod churn_workloads;

fn main() {
    let label = std::env::var("CHURN_LABEL").unwrap_or_else(|_| "system".into());
    churn_workloads::main_with(&label);
}
