//! The background scrubber of a replica set: one thread that opts in to early machine-check
//! notices, drains and heals them every `notice_poll`, persists member states that changed, and
//! runs a full rate-limited scrub every `interval`.
//!
//! INVARIANT: the thread holds only a `Weak` reference to the set, so it never keeps a set
//! alive; stopping (explicitly or when the set is dropped) wakes it at once, interrupts a scrub
//! between reads, and joins it — except from the scrubber thread itself, which only signals.

use std::sync::{Arc, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::scrub::ScrubReport;
use super::set::{ReplicaSet, Result};

/// How the background scrubber runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrubberOptions {
    /// Time between the starts of two full scrubs (zero: back to back).
    pub interval: Duration,
    /// How often asynchronous notices are drained and stale members persisted.
    pub notice_poll: Duration,
    /// Read rate cap of a full scrub, in bytes per second (`None`: as fast as it goes).
    pub bytes_per_sec: Option<u64>,
}

impl Default for ScrubberOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(600),
            notice_poll: Duration::from_millis(100),
            bytes_per_sec: Some(64 << 20),
        }
    }
}

/// What the background scrubber has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubberStatus {
    /// Full scrubs completed.
    pub full_scrubs: u64,
    /// The last full scrub's report.
    pub last: Option<ScrubReport>,
    /// Units healed from notices.
    pub notices_healed: u64,
    /// The last error met (the scrubber carries on).
    pub last_error: Option<String>,
}

/// The stop flag and its wake-up.
#[derive(Default)]
struct Stop {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Stop {
    fn is_set(&self) -> bool {
        *self.stopped.lock()
    }

    /// Sleep up to `timeout`; `true` if stopped.
    fn sleep(&self, timeout: Duration) -> bool {
        let mut stopped = self.stopped.lock();
        if !*stopped {
            let _ = self.wake.wait_for(&mut stopped, timeout);
        }
        *stopped
    }

    fn set(&self) {
        *self.stopped.lock() = true;
        self.wake.notify_all();
    }
}

/// A running scrubber thread.
pub(super) struct Scrubber {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
    thread_id: ThreadId,
}

impl Scrubber {
    /// Signal the thread and join it (unless called on it).
    pub(super) fn stop(mut self) {
        self.stop.set();
        if std::thread::current().id() != self.thread_id
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}

impl ReplicaSet {
    /// Start the background scrubber (a running one is stopped first).
    pub fn start_scrubber(self: &Arc<Self>, options: ScrubberOptions) -> Result<()> {
        self.stop_scrubber();
        let stop = Arc::new(Stop::default());
        let weak = Arc::downgrade(self);
        let status = self.scrubber_status.clone();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("mcstore-scrub".into())
            .spawn(move || run(&weak, &thread_stop, &status, options))
            .map_err(|e| mcstore_pmem::Error::io("spawning the scrubber thread", e))?;
        let thread_id = thread.thread().id();
        *self.scrubber.lock() = Some(Scrubber { stop, thread: Some(thread), thread_id });
        Ok(())
    }

    /// Stop the background scrubber, if one runs, and wait for it.
    pub fn stop_scrubber(&self) {
        let running = self.scrubber.lock().take();
        if let Some(scrubber) = running {
            scrubber.stop();
        }
    }

    /// What the background scrubber has done.
    pub fn scrubber_status(&self) -> ScrubberStatus {
        self.scrubber_status.lock().clone()
    }
}

fn run(
    set: &Weak<ReplicaSet>,
    stop: &Stop,
    status: &Mutex<ScrubberStatus>,
    options: ScrubberOptions,
) {
    let note = |error: String| status.lock().last_error = Some(error);
    if let Err(error) = mcstore_pmem::mcsafe::enable_early_notices() {
        note(error.to_string());
    }
    let mut last_full: Option<Instant> = None;
    while !stop.sleep(options.notice_poll) {
        let Some(set) = set.upgrade() else { return };
        match set.scrub_notices() {
            Ok(report) => status.lock().notices_healed += report.repaired() as u64,
            Err(error) => note(error.to_string()),
        }
        if set.states_changed()
            && let Err(error) = set.persist_states()
        {
            note(error.to_string());
        }
        if last_full.is_none_or(|at| at.elapsed() >= options.interval) {
            last_full = Some(Instant::now());
            let started = Instant::now();
            let throttle = |p: super::scrub::ScrubProgress| {
                if let Some(rate) = options.bytes_per_sec.filter(|&r| r > 0) {
                    let due = Duration::from_secs_f64(p.bytes_done as f64 / rate as f64);
                    if let Some(wait) = due.checked_sub(started.elapsed()) {
                        stop.sleep(wait);
                    }
                }
            };
            match set.scrub_until(&throttle, &|| stop.is_set()) {
                Ok(report) => {
                    let mut status = status.lock();
                    status.full_scrubs += 1;
                    status.last = Some(report);
                }
                Err(error) => note(error.to_string()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replica::OpenSetOptions;
    use crate::replica::set::tests::{dyns, fill, params, sims};

    #[test]
    fn the_scrubber_heals_poison_in_the_background_and_stops() {
        let _ring = crate::replica::scrub::tests::RING_LOCK.lock();
        let sims = sims(2);
        let set = Arc::new(
            ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap(),
        );
        let offsets = fill(&set, 4);
        sims[1].inject_poison(offsets[2], 1).unwrap();
        let options = ScrubberOptions {
            interval: Duration::ZERO,
            notice_poll: Duration::from_millis(1),
            bytes_per_sec: Some(1 << 30),
        };
        set.start_scrubber(options).unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sims[1].poisoned_ranges().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(sims[1].poisoned_ranges().is_empty(), "the scrubber healed the replica");
        set.stop_scrubber();
        let status = set.scrubber_status();
        assert!(status.full_scrubs >= 1 && status.last_error.is_none(), "{status:?}");
        // Stopped: new poison stays until someone scrubs.
        sims[1].inject_poison(offsets[3], 1).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert!(!sims[1].poisoned_ranges().is_empty());
        // Dropping the set with a running scrubber stops and joins it.
        set.start_scrubber(options).unwrap();
        drop(set);
    }
}
