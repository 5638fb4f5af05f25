//! MappedMedium: a pool file mapped in `Dax`, `Msync` or `ForcedPmem` mode, with emulated
//! poison and the bad-block lists (the `.badblocks` sidecar; the kernel's list on fs-dax).
//!
//! Files: `options` (MapOptions), `mode` (the mode rule), `file` (open/create checks), `lock`
//! (flock), `reserve` (the reserved address range and every mmap), `open` (create and open),
//! `medium` (the handle and the checks before every access), `access` (the `Medium`
//! implementation), `poison` (injection, clearing, repair), `ranges` (coalesced range sets),
//! `badblocks` (the sidecar), `fiemap` (kernel bad blocks to file offsets), `glue` (the calls
//! into `mcsafe`).

mod access;
mod badblocks;
mod fiemap;
mod file;
mod glue;
mod lock;
mod medium;
mod mode;
mod open;
mod options;
mod poison;
mod ranges;
mod reserve;

pub use badblocks::BadBlocks;
pub use fiemap::{Extent, fiemap, sysfs_badblocks};
pub use medium::MappedMedium;
pub use mode::{Mode, ModeRequest};
pub use options::MapOptions;
pub use poison::POISON_PATTERN;
