//! The front end's read-ahead for a long forward scan ([`super::Iter`]): a thread of its own
//! reads every other chunk of keys the front end fetches (the warm-up, the lookups, the
//! verified copies), while the iterating thread reads the chunks between, so both cores wait on
//! memory at once. The items come back in key order.
//!
//! What is read ahead is only a cache of clean reads: a read that is not clean (poison,
//! damage, a latched store) is not made ahead, and runs no policy there; its key and the rest
//! of its chunk are read by the iterating thread in their turn, through the barrier as any read.
//! An item read ahead is handed out only if its key still holds the version read (one lookup);
//! otherwise the key is read again, or skipped if removed. So the iterator's guarantees are
//! those of one without read-ahead.
//!
//! INVARIANT: `queue` holds, in key order, every key the front end fetched and has not yet
//! produced: as keys still to read, as items read, or as a chunk the thread is reading (whose
//! keys are kept, so a thread that stops early loses none). The thread answers its chunks in
//! the order they were sent, so the first chunk in flight is the next answer, once the answers
//! for stolen chunks (`stolen`, always the earliest sent) are dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};

use bytes::BytesMut;

use super::{Cursor, item, warm};
use crate::db::Db;
use crate::index::{IndexKey, Location};
use crate::limits::ITER_CHUNK_KEYS;
use crate::value::Value;

/// Chunks the front end keeps fetched ahead of the one it produces.
const CHUNKS_AHEAD: usize = 4;

/// Keys in one chunk of the read-ahead: several fetches from the key order (each under its
/// mutex for at most `ITER_CHUNK_KEYS`), so that a chunk's reads take far longer than waking
/// the other thread (tens of µs on a VM whose idle core must be woken).
const CHUNK_KEYS: usize = 4 * ITER_CHUNK_KEYS;

/// Chunks the read-ahead thread holds at most, waiting to be read.
const THREAD_CHUNKS: usize = 2;

/// Record bytes a chunk's items hold at most: a read ahead stops before the record that would
/// pass it (a record larger than this is never read ahead), and the keys from there on are read
/// in their turn.
const CHUNK_BYTES_MAX: u64 = 1 << 20;

/// Record bytes the iterating thread holds read ahead at most before it reads one of its own
/// chunks early, while it waits for the thread.
const HELD_BYTES_MAX: u64 = 2 * CHUNK_BYTES_MAX;

/// How long the iterating thread waits for the thread's answer, with nothing else to read,
/// before it reads the chunk itself: a chunk takes the thread ~0.1 ms, so a longer wait means
/// its core is busy with other work (or the host paused it), and waiting on would make the scan
/// slower than alone. The iterator then offers the thread no chunk for the next `PAUSE_CHUNKS`.
const STEAL_AFTER: std::time::Duration = std::time::Duration::from_micros(500);

/// Chunks not offered to the thread after one of its answers came too late.
const PAUSE_CHUNKS: usize = 32;

/// An item read ahead: the key and value, the LSN of the record read, the record's bytes.
struct Ahead {
    key: Value,
    value: Value,
    lsn: u64,
    bytes: u64,
}

/// A chunk read: its items, and the keys left unread (from the first that could not be read
/// cleanly or would pass `CHUNK_BYTES_MAX`).
struct Answer {
    items: VecDeque<Ahead>,
    rest: Vec<IndexKey>,
}

/// One chunk of the front end's fetched keys.
enum Chunk {
    /// Keys this thread reads one by one in their turn (warmed once they reach the front).
    Keys { keys: VecDeque<IndexKey>, warmed: bool },
    /// Items read ahead, in key order.
    Items(VecDeque<Ahead>),
    /// Keys the read-ahead thread is reading.
    InFlight(Vec<IndexKey>),
}

/// What an end produces next from the read-ahead.
pub(super) enum Next {
    /// An item read ahead whose key still holds the version read.
    Item((Value, Value)),
    /// A key to read now.
    Key(IndexKey),
}

/// The read-ahead thread and its channels.
struct Reader {
    chunks: Option<SyncSender<Vec<IndexKey>>>,
    /// Behind a mutex only so that the iterator stays `Sync` (a receiver is not); one thread
    /// takes it at a time.
    answers: parking_lot::Mutex<Receiver<Answer>>,
    /// Set to make the thread stop before its next chunk.
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    /// Stop the thread (after the chunk it is reading, if any) and wait for it: it holds a
    /// handle of the store, which must not outlive the iterator.
    fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        drop(self.chunks.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How long `ReadAhead::answer` waits.
#[derive(Clone, Copy)]
enum Wait {
    No,
    For(std::time::Duration),
}

/// The front end's read-ahead state (see the module).
pub(super) struct ReadAhead {
    queue: VecDeque<Chunk>,
    /// `None` once stopped: the queue is then only drained.
    reader: Option<Reader>,
    /// Whether the last chunk fetched was offered to the thread.
    to_thread: bool,
    /// Chunks read here while the thread still had them: its next answers, dropped.
    stolen: usize,
    /// Chunks fetched from now on that are not offered to the thread (after a late answer).
    pause: usize,
}

impl ReadAhead {
    /// Start the read-ahead thread for `db`; `None` if no thread can be started.
    pub(super) fn start(db: &Db) -> Option<Self> {
        let (chunks, chunk_rx) = std::sync::mpsc::sync_channel::<Vec<IndexKey>>(THREAD_CHUNKS);
        let (answer_tx, answers) = std::sync::mpsc::channel::<Answer>();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let db = db.clone();
        let thread = std::thread::Builder::new()
            .name("mcstore-read-ahead".into())
            .spawn(move || {
                let mut buf = Vec::new();
                let mut arena = BytesMut::new();
                for keys in chunk_rx {
                    #[cfg(test)]
                    std::thread::sleep(std::time::Duration::from_micros(
                        tests::THREAD_DELAY_US.load(Ordering::Relaxed),
                    ));
                    if stopped.load(Ordering::Acquire) {
                        return;
                    }
                    let answer = read_chunk(&db, keys, &mut buf, &mut arena);
                    if answer_tx.send(answer).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self {
            queue: VecDeque::new(),
            reader: Some(Reader {
                chunks: Some(chunks),
                answers: parking_lot::Mutex::new(answers),
                stop,
                thread: Some(thread),
            }),
            to_thread: false,
            stolen: 0,
            pause: 0,
        })
    }

    /// Fetch chunks from `cursor`'s front until `CHUNKS_AHEAD` are queued, while the thread
    /// runs: every other one is offered to it (none while paused). Once the cursor has nothing
    /// more and no chunk is in flight, the thread is stopped.
    pub(super) fn fill(&mut self, db: &Db, cursor: &mut Cursor) {
        while self.queue.len() < CHUNKS_AHEAD {
            let Some(reader) = &self.reader else { return };
            let mut keys = Vec::with_capacity(CHUNK_KEYS);
            while keys.len() < CHUNK_KEYS {
                let fetched = cursor.fetch(db, false, ITER_CHUNK_KEYS);
                if fetched.is_empty() {
                    break;
                }
                keys.extend(fetched);
            }
            if keys.is_empty() {
                if !self.queue.iter().any(|c| matches!(c, Chunk::InFlight(_))) {
                    self.stop();
                }
                return;
            }
            self.to_thread = !self.to_thread;
            let paused = self.pause > 0;
            self.pause = self.pause.saturating_sub(1);
            let offered = if self.to_thread && !paused {
                reader.chunks.as_ref().map(|tx| tx.try_send(keys.clone()))
            } else {
                Some(Err(TrySendError::Full(Vec::new())))
            };
            match offered {
                Some(Ok(())) => self.queue.push_back(Chunk::InFlight(keys)),
                // Not offered, or the thread has no room: read here in its turn.
                Some(Err(TrySendError::Full(_))) => {
                    self.queue.push_back(Chunk::Keys { keys: keys.into(), warmed: false });
                }
                Some(Err(TrySendError::Disconnected(_))) | None => {
                    self.stop();
                    self.queue.push_back(Chunk::Keys { keys: keys.into(), warmed: false });
                }
            }
        }
    }

    /// The next item or key from the front of the queue; `None` when the queue is empty. While
    /// the thread's answer for the first chunk is not there yet, the first chunk left to this
    /// thread is read early (within `HELD_BYTES_MAX`), so both cores keep reading.
    pub(super) fn pop_front(
        &mut self,
        db: &Db,
        buf: &mut Vec<u8>,
        arena: &mut BytesMut,
    ) -> Option<Next> {
        loop {
            match self.queue.front_mut()? {
                Chunk::Items(items) => match items.pop_front() {
                    Some(ahead) => {
                        if let Some(next) = still_current(db, ahead) {
                            return Some(next);
                        }
                    }
                    None => drop(self.queue.pop_front()),
                },
                Chunk::Keys { keys, warmed } => {
                    if !*warmed {
                        *warmed = true;
                        warm(db, keys.make_contiguous());
                    }
                    match keys.pop_front() {
                        Some(key) => return Some(Next::Key(key)),
                        None => drop(self.queue.pop_front()),
                    }
                }
                Chunk::InFlight(_) => match self.answer(Wait::No) {
                    Some(Some(answer)) => self.answer_first(db, answer),
                    None => self.read_here_first(),
                    Some(None) if self.read_own_chunk(db, buf, arena) => {}
                    Some(None) => {
                        let wait = if self.pause == 0 { Wait::For(STEAL_AFTER) } else { Wait::No };
                        match self.answer(wait) {
                            Some(Some(answer)) => self.answer_first(db, answer),
                            None => self.read_here_first(),
                            Some(None) => {
                                // The thread is late: the chunk is read here, the thread's
                                // answer for it dropped when it comes, and the next chunks are
                                // not offered to it.
                                self.stolen += 1;
                                self.pause = PAUSE_CHUNKS;
                                self.read_here_first();
                            }
                        }
                    }
                },
            }
        }
    }

    /// The next item or key from the back of the queue, for the back end (which settles the
    /// read-ahead first); `None` when the queue is empty.
    pub(super) fn pop_back(&mut self, db: &Db) -> Option<Next> {
        self.settle();
        loop {
            match self.queue.back_mut()? {
                Chunk::Items(items) => match items.pop_back() {
                    Some(ahead) => {
                        if let Some(next) = still_current(db, ahead) {
                            return Some(next);
                        }
                    }
                    None => drop(self.queue.pop_back()),
                },
                Chunk::Keys { keys, .. } => match keys.pop_back() {
                    Some(key) => return Some(Next::Key(key)),
                    None => drop(self.queue.pop_back()),
                },
                // `settle` leaves none.
                Chunk::InFlight(_) => self.read_here_first(),
            }
        }
    }

    /// Stop the thread (waiting at most for the chunk it is reading) and leave the chunks it
    /// had to be read here: the queue then holds only items and keys, which both ends take from.
    pub(super) fn settle(&mut self) {
        self.stop();
        while self.queue.iter().any(|c| matches!(c, Chunk::InFlight(_))) {
            self.read_here_first();
        }
    }

    /// Whether the thread still runs.
    pub(super) fn running(&self) -> bool {
        self.reader.is_some()
    }

    /// Chunks read here while the thread had them (its answers still to drop).
    #[cfg(test)]
    pub(super) fn stolen(&self) -> usize {
        self.stolen
    }

    /// Read the first chunk of keys left to this thread into items, if the items already held
    /// ahead are under `HELD_BYTES_MAX`; `false` if it did not.
    fn read_own_chunk(&mut self, db: &Db, buf: &mut Vec<u8>, arena: &mut BytesMut) -> bool {
        let held: u64 = self
            .queue
            .iter()
            .map(|c| match c {
                Chunk::Items(items) => items.iter().map(|a| a.bytes).sum(),
                _ => 0,
            })
            .sum();
        if held >= HELD_BYTES_MAX {
            return false;
        }
        let Some(at) = self.queue.iter().position(|c| matches!(c, Chunk::Keys { .. })) else {
            return false;
        };
        let Some(Chunk::Keys { keys, .. }) = self.queue.get_mut(at) else { return false };
        let keys: Vec<IndexKey> = keys.drain(..).collect();
        let answer = read_chunk(db, keys, buf, arena);
        let progress = !answer.items.is_empty();
        self.place(db, at, answer);
        progress
    }

    /// Put the chunk read, `answer`, at `at` in the queue: its items there, and the keys left
    /// unread right after them.
    fn place(&mut self, db: &Db, at: usize, Answer { items, rest }: Answer) {
        // Each item's slot is looked up again when it is handed out (`still_current`): start
        // loading them now, as a chunk's warm-up does.
        for ahead in &items {
            db.inner.index.prefetch(&ahead.key);
        }
        if let Some(chunk) = self.queue.get_mut(at) {
            *chunk = Chunk::Items(items);
        }
        if !rest.is_empty() {
            self.queue.insert(at + 1, Chunk::Keys { keys: rest.into(), warmed: false });
        }
    }

    /// The thread's next answer for a chunk still in the queue, waiting as `wait` says (answers
    /// for stolen chunks are dropped): `Some(None)` if none came in time, `None` if the thread is
    /// gone (it is then stopped).
    fn answer(&mut self, wait: Wait) -> Option<Option<Answer>> {
        loop {
            let got = {
                let answers = self.reader.as_ref()?.answers.lock();
                match wait {
                    Wait::No => answers.try_recv().map_err(|e| e == TryRecvError::Disconnected),
                    Wait::For(time) => {
                        answers.recv_timeout(time).map_err(|e| e == RecvTimeoutError::Disconnected)
                    }
                }
            };
            match got {
                Ok(_) if self.stolen > 0 => self.stolen -= 1,
                Ok(answer) => return Some(Some(answer)),
                Err(false) => return Some(None),
                Err(true) => {
                    self.stop();
                    return None;
                }
            }
        }
    }

    /// Replace the first chunk in flight by `answer`, the thread's reading of it.
    fn answer_first(&mut self, db: &Db, answer: Answer) {
        if let Some(at) = self.queue.iter().position(|c| matches!(c, Chunk::InFlight(_))) {
            self.place(db, at, answer);
        }
    }

    /// Replace the first chunk in flight by its keys, to read here (the thread is gone, late or
    /// stopped).
    fn read_here_first(&mut self) {
        let Some(at) = self.queue.iter().position(|c| matches!(c, Chunk::InFlight(_))) else {
            return;
        };
        if let Some(Chunk::InFlight(keys)) = self.queue.get_mut(at) {
            let keys = std::mem::take(keys);
            self.queue[at] = Chunk::Keys { keys: keys.into(), warmed: false };
        }
    }

    fn stop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.stop();
        }
    }
}

/// `ahead` to hand out if its key still holds the version read; else the key to read again
/// (overwritten since), or `None` (removed since: skipped).
fn still_current(db: &Db, ahead: Ahead) -> Option<Next> {
    match db.inner.index.get(&ahead.key) {
        Some(Location { lsn, .. }) if lsn == ahead.lsn => {
            Some(Next::Item((ahead.key, ahead.value)))
        }
        Some(_) => Some(Next::Key(IndexKey::from(&ahead.key[..]))),
        None => None,
    }
}

/// The items of `keys` as clean reads now make them (warmed first; a key removed since it was
/// fetched is skipped), up to the first key whose read is not clean or whose record would bring
/// the items past `CHUNK_BYTES_MAX`: that key and the ones after it are returned unread.
fn read_chunk(db: &Db, mut keys: Vec<IndexKey>, buf: &mut Vec<u8>, arena: &mut BytesMut) -> Answer {
    warm(db, &keys);
    let mut items = VecDeque::with_capacity(keys.len());
    let mut bytes = 0;
    let mut read = 0;
    for key in &keys {
        match db.inner.read_if_clean(key, buf, CHUNK_BYTES_MAX - bytes) {
            Some(Some((lsn, len))) => {
                let (key, value) = item(arena, key, buf);
                items.push_back(Ahead { key, value, lsn, bytes: len });
                bytes += len;
            }
            // Removed since the chunk was fetched: skipped, as `Iter` skips it.
            Some(None) => {}
            None => break,
        }
        read += 1;
    }
    let rest = keys.split_off(read);
    Answer { items, rest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{sim_db, small_options};

    /// A delay the read-ahead thread sleeps before each chunk (tests of a late thread).
    pub(super) static THREAD_DELAY_US: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0);

    /// A thread far slower than the iterating one (each chunk late by 20 ms): the iterating
    /// thread reads the chunks it waits for itself, drops the thread's late answers, and still
    /// yields every item once, in order.
    #[test]
    fn a_late_thread_is_overtaken_and_its_answers_dropped() {
        let (_sim, db) = sim_db(16 << 20, small_options().background(true));
        for i in 0..3000u32 {
            db.put(format!("key{i:05}"), i.to_be_bytes()).unwrap();
        }
        THREAD_DELAY_US.store(20_000, Ordering::Relaxed);
        let mut iter = db.iter();
        let mut seen = Vec::new();
        let mut stolen = 0;
        while let Some(item) = iter.next() {
            seen.push(item.unwrap().0.to_vec());
            if let Some(ahead) = &iter.ahead {
                stolen = stolen.max(ahead.stolen());
            }
        }
        THREAD_DELAY_US.store(0, Ordering::Relaxed);
        assert!(stolen >= 1, "the late thread was overtaken");
        let expected: Vec<Vec<u8>> = (0..3000).map(|i| format!("key{i:05}").into_bytes()).collect();
        assert!(seen == expected, "every item once, in order");
    }

    /// A chunk of large records is read only up to the record that would pass
    /// `CHUNK_BYTES_MAX`; the keys from it on come back unread, in order.
    #[test]
    fn a_chunk_of_large_values_stops_at_its_byte_bound() {
        let (_sim, db) = sim_db(16 << 20, small_options());
        let value = vec![7u8; 40 << 10];
        let keys: Vec<IndexKey> = (0..40u8)
            .map(|i| {
                db.put([b'k', i], &value).unwrap();
                IndexKey::from(&[b'k', i][..])
            })
            .collect();
        let record = u64::from(db.inner.index.get(&keys[0]).unwrap().len);
        let answer = read_chunk(&db, keys.clone(), &mut Vec::new(), &mut BytesMut::new());
        let read: Vec<Vec<u8>> = answer.items.iter().map(|a| a.key.to_vec()).collect();
        let fit = usize::try_from(CHUNK_BYTES_MAX / record).unwrap();
        assert_eq!(read, keys[..fit].iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        assert_eq!(answer.rest, keys[fit..].to_vec());
        assert!(answer.items.iter().map(|a| a.bytes).sum::<u64>() <= CHUNK_BYTES_MAX);
    }

    /// A read ahead meets a poisoned record: it stops there, runs no policy (here `Halt`, whose
    /// hook panics) and counts no fault; that key and the ones after it are left to be read in
    /// their turn.
    #[test]
    fn a_read_ahead_stops_at_a_record_that_does_not_read_cleanly() {
        let policy = crate::Policy::default()
            .user(false, crate::UserFallback::Halt)
            .on_halt(|_| panic!("the read-ahead ran the policy"));
        let (sim, db) = sim_db(1 << 20, small_options().policy(policy));
        let keys: Vec<IndexKey> = (0..10u8)
            .map(|i| {
                db.put([b'k', i], [i; 100]).unwrap();
                IndexKey::from(&[b'k', i][..])
            })
            .collect();
        let location = db.inner.index.get(&keys[4]).unwrap();
        sim.inject_poison((location.offset + 63) & !63, 64).unwrap();
        let faults = db.stats().read_faults;
        let answer = read_chunk(&db, keys.clone(), &mut Vec::new(), &mut BytesMut::new());
        let read: Vec<Vec<u8>> = answer.items.iter().map(|a| a.key.to_vec()).collect();
        assert_eq!(read, keys[..4].iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        assert_eq!(answer.rest, keys[4..].to_vec());
        assert_eq!(db.stats().read_faults, faults, "no fault counted");
    }
}
