//! The machine-check-safe copy, the flush loop and the SIGBUS handler that makes them safe.
//!
//! Every load or flush that may meet poison runs in hand-written routines inside one text range
//! (`asm`, called through `call`). The process-wide handler (`handler`, decisions in `chain`)
//! claims a `BUS_ADRERR` or `BUS_MCEERR_AR` only when the saved RIP lies in that range, and
//! resumes at a landing pad that returns the fault to [`read_safe`] or [`flush_range`].
//! `BUS_MCEERR_AO` notices go to a lock-free ring (`ring`), translated through the table of
//! mapped ranges (`mappings`) when drained (`notices`). Everything else is chained to the
//! previous disposition.

mod asm;
mod call;
mod chain;
mod copy;
mod cpu;
mod dispatch;
mod flush;
mod handler;
mod mappings;
mod notices;
mod ring;
mod stream;
#[cfg(test)]
mod testutil;

pub use crate::limits::MAPPING_TABLE_CAPACITY;
pub use copy::{copy_from_slice_checked, read_safe, read_safe_hashing};
pub use cpu::{CpuFeatures, FlushInsn, cpu_features};
pub use dispatch::{CopyVariant, copy_variant, set_copy_variant};
pub use flush::{FaultAt, flush_range, sfence};
pub use handler::{ensure_handler, verify_handler};
pub use mappings::{MappingId, register_mapping, unregister_mapping};
pub use notices::{AsyncNotice, async_overflow_count, drain_async_notices, enable_early_notices};
pub use stream::{STREAM_LINE_BYTES, copy_lines_nt};
