//! Limits of the device layer, in one place.

/// Granularity of page mappings, poison emulation and repair writes.
pub const PAGE_SIZE: u64 = 4096;
/// A CPU cache line: the unit of flushes and of SimMedium poison.
pub const CACHE_LINE: u64 = 64;
/// Entries an [`crate::ErrorRegister`] holds before it sets its overflow bit.
pub const REGISTER_CAPACITY: usize = 16;
/// Smallest file a [`crate::MappedMedium`] accepts.
pub const MIN_MEDIUM_BYTES: u64 = 64 * 1024;
/// Capacity of the global ring of asynchronous (`BUS_MCEERR_AO`) notices.
pub const AO_RING_CAPACITY: usize = 256;
/// How many mappings the global address → (medium, offset) table tracks at once.
pub const MAPPING_TABLE_CAPACITY: usize = 64;
/// Default limit up to which SimMedium crash images are enumerated exhaustively (DESIGN.md).
pub const EXHAUSTIVE_IMAGES_MAX: usize = 4096;
