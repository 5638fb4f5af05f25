//! mcstore-pmem: the device. Bytes, persistence and poison; nothing about records.
//!
//! A [`Medium`] is a byte range with failure-atomic 8-byte stores, explicit flush and fence, and a
//! machine-check-safe [`Medium::read`] that records poisoned units in the caller's
//! [`ErrorRegister`] instead of killing the process. Two media: [`MappedMedium`] (a file mapped in
//! `Dax`, `Msync` or `ForcedPmem` mode) and [`SimMedium`] (heap memory that models a persistence
//! domain and yields crash images). A [`PoolSet`] writes a primary and replicas in lockstep and
//! heals one member from another. No method hands out a reference into mapped memory.

pub mod error;
pub mod figures;
pub mod hint;
pub mod limits;
pub mod mapped;
pub mod mcsafe;
pub mod medium;
pub mod poolset;
pub mod raw;
pub mod register;
pub mod sim;
pub mod xxh3;

pub use error::{Error, Result};
pub use mapped::{BadBlocks, MapOptions, MappedMedium, Mode, ModeRequest};
pub use medium::{FenceSite, Medium, MemberId, read_u64};
pub use poolset::{PoolSet, PoolSetOptions, RetryOutcome};
pub use register::{Domain, ErrorRegister, Fault, FaultCode, Mask, RegisterScope};
pub use sim::{CrashImages, CrashMode, CrashPlan, NotPersisted, SimMedium, SimOp};
