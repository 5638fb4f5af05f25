//! MappedMedium: a pool file mapped in `Dax`, `Msync` or `ForcedPmem` mode.
//!
//! PLACEHOLDER (helper B replaces it).

/// The mode asked for at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModeRequest {
    /// Dax when MAP_SYNC works, else ForcedPmem where the environment allows, else Msync.
    #[default]
    Auto,
    /// Require MAP_SYNC.
    Dax,
    /// Page cache and msync.
    Msync,
    /// Flush instructions on a non-DAX mapping.
    ForcedPmem,
}

/// The mode a medium runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// MAP_SYNC mapping, cache-line flushes.
    Dax,
    /// Page cache, msync.
    Msync,
    /// Flush instructions on a non-DAX mapping.
    ForcedPmem,
}

/// Options for mapping a pool file.
#[derive(Clone, Debug, Default)]
pub struct MapOptions {}

/// A mapped pool file.
#[derive(Debug)]
pub struct MappedMedium {}
