//! SimMedium: heap memory modelling a persistence domain, with crash images, simulated poison
//! and failure injection. The test bed of every crash test in mcstore.
//!
//! `medium` is the process's view (the [`crate::Medium`] calls); `harness` the test harness's
//! (crash plans, images, the acknowledged check, poison, failure points). Stores become pending
//! words per line (`lines`); `crash` counts fences and freezes the medium; `images` enumerates or
//! samples what a power loss could leave; `poison` honours cache-line poison in reads. No
//! `unsafe`: it runs under Miri.

mod crash;
mod harness;
mod images;
mod lines;
mod medium;
mod poison;

pub use crate::limits::EXHAUSTIVE_IMAGES_MAX;
pub use crash::{CrashPlan, SimOp};
pub use harness::NotPersisted;
pub use images::{CrashImages, CrashMode};
pub use medium::{REPAIR_SITE, SimMedium};
