//! Micro workloads of the device layer: the machine-check-safe copy and the persist path.

pub mod copy;
pub mod persist;
