//! mcstore-testkit: the reusable pieces of mcstore's integration suite and fuzz targets — a
//! reference model ([`model`]), operation generators ([`ops`]), the crash-at-every-fence driver
//! ([`crash`]), crash-image deduplication ([`images`]), crashes during recovery ([`nested`]),
//! small test pools ([`pools`]) and the fuzz target bodies ([`fuzz`]), so `cargo test` on stable
//! and cargo-fuzz run the same code.

pub mod crash;
pub mod failpoints;
pub mod fuzz;
pub mod images;
pub mod machine;
pub mod matrix;
pub mod model;
pub mod nested;
pub mod ops;
pub mod pools;
