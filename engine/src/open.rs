//! Opening a store, in steps: the ways in — create or open a pool file, or a caller's medium
//! (`entry`); recovery, the Engine policy applied to what it found, the index bulk-loaded and
//! the store built (`medium`); the log resumed and the pool marked in use (`resume`); a salvage
//! open's clean-up (`salvage`). Closing is `close.rs`.
//!
//! INVARIANT: a writable open marks the pool in use (clean-shutdown flag cleared) before any write
//! is accepted, so a crash from then on is seen as an unclean shutdown.

mod entry;
mod medium;
mod resume;
mod salvage;

pub(crate) use medium::open_medium;
