//! SimMedium: heap memory modelling a persistence domain, with crash images, simulated poison
//! and failure injection. The test bed of every crash test in mcstore.
//!
//! Stores are split into aligned 8-byte words queued in order per 64-byte line (`lines`);
//! `flush` marks, `fence` persists. A crash plan freezes the medium at a chosen fence
//! (`crash`); `images` enumerates or samples what a power loss could leave; `poison` is
//! cache-line poison honoured by reads through the caller's error register. No `unsafe`: it runs
//! under Miri.

mod crash;
mod images;
mod lines;
mod medium;
mod poison;

pub use crash::{CrashPlan, SimOp};
pub use images::{CrashImages, CrashMode, EXHAUSTIVE_IMAGES_MAX};
pub use medium::{NotPersisted, SimMedium};
