//! The facade's integration suite: one binary, a module per area. Reusable pieces (model,
//! generators, crash driver, fuzz bodies) live in `mcstore-testkit`, so cargo-fuzz runs the same
//! code; this binary holds the tests themselves.

mod concurrency;
mod corruption;
mod crash;
mod crash_members;
mod kills;
mod lifecycle;
mod model;
mod poison;
mod regression;
mod space;
mod support;
