//! Micro workloads of the device layer: the machine-check-safe copy, a large value's read and
//! checksum, and the persist path.

pub mod copy;
pub mod hashing;
pub mod persist;
