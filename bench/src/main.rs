//! mcstore-bench: workloads against mcstore and its peers.
fn main() {}
