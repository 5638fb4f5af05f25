//! The sticky failed state. Once tripped (a failed persist, or Engine-domain damage under
//! `Latch`), every later call returns `Error::Failed` until the store is reopened.
//!
//! INVARIANT: never un-tripped; the first reason is kept.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};

/// The failed-state flag of one open store.
#[derive(Debug, Default)]
pub(crate) struct Latch {
    tripped: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl Latch {
    /// `Err(Failed)` once tripped. Inlined: a write checks several times (one load each).
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        if self.tripped.load(Ordering::Acquire) { Err(self.failed()) } else { Ok(()) }
    }

    /// Whether the store has failed.
    pub(crate) fn is_tripped(&self) -> bool {
        self.tripped.load(Ordering::Acquire)
    }

    /// Enter the failed state (keeps the first reason).
    pub(crate) fn trip(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock();
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        self.tripped.store(true, Ordering::Release);
    }

    /// The error every call returns once tripped.
    #[cold]
    pub(crate) fn failed(&self) -> Error {
        let reason = self.reason.lock().clone().unwrap_or_else(|| "unknown".to_string());
        Error::Failed { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trip_is_sticky_and_keeps_the_first_reason() {
        let latch = Latch::default();
        assert!(latch.check().is_ok());
        latch.trip("fence failed");
        latch.trip("second");
        assert!(latch.is_tripped());
        match latch.check() {
            Err(Error::Failed { reason }) => assert_eq!(reason, "fence failed"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }
}
