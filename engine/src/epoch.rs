//! Reader epochs for segment reclamation: a reader enters before its index probe and leaves
//! after its medium read; `synchronize` returns only when every reader that entered before it
//! has left. Reclamation (compaction) unlinks a segment's records from the index, then
//! synchronizes, then clears the segment — so no reader of an older epoch can still be reading
//! it.
//!
//! INVARIANT: a reader's count is in the parity of the epoch it re-checked after counting
//! itself (SeqCst on both sides), so a synchronize that saw the parity drain cannot miss it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Count stripes (threads spread over them to keep the counters uncontended).
const STRIPES: usize = 16;

/// One stripe's counters, padded to its own cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe {
    active: [AtomicU64; 2],
}

/// The reader epochs of one store.
#[derive(Debug, Default)]
pub(crate) struct Epochs {
    epoch: AtomicU64,
    stripes: [Stripe; STRIPES],
}

/// A reader inside an epoch; leaving is the drop.
#[derive(Debug)]
pub(crate) struct ReaderGuard<'a> {
    counter: &'a AtomicU64,
}

impl Drop for ReaderGuard<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Release);
    }
}

fn stripe_of_thread() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|s| *s)
}

impl Epochs {
    /// Enter the current epoch (no lock: two atomic operations on a per-thread stripe).
    pub(crate) fn enter(&self) -> ReaderGuard<'_> {
        let stripe = &self.stripes[stripe_of_thread()];
        loop {
            let epoch = self.epoch.load(Ordering::SeqCst);
            let counter = &stripe.active[(epoch & 1) as usize];
            counter.fetch_add(1, Ordering::SeqCst);
            if self.epoch.load(Ordering::SeqCst) == epoch {
                return ReaderGuard { counter };
            }
            counter.fetch_sub(1, Ordering::Release);
        }
    }

    /// Wait until every reader that entered before this call has left. Callers serialize
    /// (compaction holds its own lock).
    pub(crate) fn synchronize(&self) {
        for _ in 0..2 {
            let old = self.epoch.fetch_add(1, Ordering::SeqCst);
            let parity = (old & 1) as usize;
            while self.stripes.iter().any(|s| s.active[parity].load(Ordering::SeqCst) != 0) {
                std::thread::yield_now();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[test]
    fn synchronize_waits_for_readers_that_entered_before_it() {
        let epochs = Arc::new(Epochs::default());
        epochs.synchronize();
        let left = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = {
            let (epochs, left) = (Arc::clone(&epochs), Arc::clone(&left));
            std::thread::spawn(move || {
                let guard = epochs.enter();
                tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(30));
                left.store(true, Ordering::SeqCst);
                drop(guard);
            })
        };
        rx.recv().unwrap();
        epochs.synchronize();
        assert!(left.load(Ordering::SeqCst), "synchronize returned while a reader was inside");
        reader.join().unwrap();
        // A reader that enters afterwards does not block the next synchronize once it leaves.
        drop(epochs.enter());
        epochs.synchronize();
    }
}
