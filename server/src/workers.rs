//! `Workers`: a fixed pool of threads that run engine calls off the reactor, the alternative to
//! tokio's `spawn_blocking` (`ServerConfig::blocking_workers`; measured in `docs/server.md`).
//!
//! INVARIANT: every job sent runs exactly once, on one worker; the pool's threads end when the
//! last `Workers` handle is dropped (the channel closes) after finishing the queued jobs.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use parking_lot::Mutex;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed pool of worker threads.
#[derive(Clone, Debug)]
pub struct Workers {
    jobs: Sender<Job>,
}

impl Workers {
    /// Start `count` worker threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..count.max(1) {
            let queue = Arc::clone(&queue);
            std::thread::Builder::new()
                .name(format!("mcstore-worker-{index}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Workers { jobs })
    }

    /// Run `job` on a worker; its result, or `None` if the pool is gone or the job panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(job());
        });
        self.jobs.send(job).ok()?;
        result.await.ok()
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only to take one job, never while running it.
        let next = queue.lock().recv();
        match next {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_and_return_their_results() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let workers = Workers::start(2).unwrap();
        let sums = runtime.block_on(async {
            let mut sums = Vec::new();
            for i in 0..10u64 {
                sums.push(workers.run(move || (0..=i).sum::<u64>()).await.unwrap());
            }
            sums
        });
        assert_eq!(sums, vec![0, 1, 3, 6, 10, 15, 21, 28, 36, 45]);
    }
}
