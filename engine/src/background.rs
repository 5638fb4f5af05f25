//! Background threads: the flusher that makes `Eventual` writes durable every
//! `Options::flush_interval` (and publishes a point table whose growth's copy is done), and the
//! compactor (`compact.rs`) when enabled. They hold the store (`Arc<Inner>`), never a handle,
//! so the last handle's drop can stop and join them before it closes the store.
//!
//! INVARIANT: a background thread never latches the store for its own sake and never panics on
//! an error: it records it (the store's latch already holds persist failures) and goes on.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::db::Inner;

/// Stop signal shared with the threads.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

/// The running background threads of one store.
pub(crate) struct Background {
    stop: Arc<Stop>,
    threads: Vec<JoinHandle<()>>,
}

impl Background {
    /// Start the threads `options` ask for (none unless `background` is on).
    pub(crate) fn start(core: &Arc<Inner>) -> Option<Self> {
        let options = &core.options;
        if !options.background || options.read_only || core.latch.is_tripped() {
            return None;
        }
        let stop = Arc::new(Stop::default());
        let mut threads = Vec::new();
        let flusher = spawn_periodic("mcstore-flusher", core, &stop, options.flush_interval, |c| {
            // An error latched the store already (persist failure) or is the failed state.
            let _ = c.persist_reserved(false);
            c.index.end_finished_growth();
        });
        threads.extend(flusher);
        if let Some(interval) = options.compaction_interval {
            let compactor = spawn_periodic("mcstore-compactor", core, &stop, interval, |c| {
                let _ = c.compact_once();
            });
            threads.extend(compactor);
        }
        Some(Self { stop, threads })
    }

    /// Signal the threads to stop and join them.
    pub(crate) fn stop(mut self) {
        *self.stop.stopped.lock() = true;
        self.stop.wake.notify_all();
        for thread in self.threads.drain(..) {
            // A panicked thread has nothing left to clean up; the store closes anyway.
            let _ = thread.join();
        }
    }
}

fn spawn_periodic(
    name: &str,
    core: &Arc<Inner>,
    stop: &Arc<Stop>,
    interval: Duration,
    work: fn(&Inner),
) -> Option<JoinHandle<()>> {
    let (core, stop) = (Arc::clone(core), Arc::clone(stop));
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            loop {
                {
                    let mut stopped = stop.stopped.lock();
                    if *stopped {
                        return;
                    }
                    stop.wake.wait_for(&mut stopped, interval);
                    if *stopped {
                        return;
                    }
                }
                if core.latch.is_tripped() {
                    continue;
                }
                work(&core);
            }
        })
        .ok()
}
