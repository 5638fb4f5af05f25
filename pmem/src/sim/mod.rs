//! SimMedium: heap memory modelling a persistence domain.
//!
//! PLACEHOLDER (helper C replaces it).

/// How a simulated power loss treats pending stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Each line keeps a prefix of its pending stores.
    PerLinePrefix,
    /// Any subset of pending words persists.
    AnySubset,
}

/// A simulated medium.
#[derive(Debug)]
pub struct SimMedium {}
