//! The facade's integration suite: one binary, a module per area. Reusable pieces (model,
//! generators, crash driver, fuzz bodies) live in `mcstore-testkit`, so cargo-fuzz runs the same
//! code; this binary holds the tests themselves.

mod concurrency;
mod corruption;
mod crash;
mod crash_members;
mod failpoints;
mod kills;
mod lifecycle;
mod machine;
mod model;
mod poison;
mod poison_matrix;
mod regression;
mod salvage;
mod space;
mod support;
