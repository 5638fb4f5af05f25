//! The front end's read-ahead for a long forward scan ([`super::Iter`]): a thread of its own
//! reads the chunks of keys the front end fetches ahead (the warm-up, the lookups, the verified
//! copies and the items), while the iterating thread reads the chunks the thread has no room
//! for, so both cores wait on memory at once. The items come back in key order.
//!
//! INVARIANT: `queue` holds, in key order, every key the front end fetched and has not yet
//! produced: as keys still to read, as items read, or as a chunk the thread is reading (whose
//! keys are kept, so a thread that ends early loses none). The thread answers its chunks in the
//! order they were sent, so the first chunk in flight is the next answer.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};

use bytes::BytesMut;

use super::{Cursor, Item, item, warm};
use crate::db::Db;
use crate::index::IndexKey;
use crate::limits::ITER_CHUNK_KEYS;

/// Chunks the front end keeps fetched ahead of the one it produces.
const CHUNKS_AHEAD: usize = 4;

/// Keys in one chunk of the read-ahead: several fetches from the key order (each under its
/// mutex for at most `ITER_CHUNK_KEYS`), so that a chunk's reads take far longer than waking
/// the other thread (tens of µs on a VM whose idle core must be woken).
const CHUNK_KEYS: usize = 4 * ITER_CHUNK_KEYS;

/// Chunks the read-ahead thread holds at most, waiting or being read.
const THREAD_CHUNKS: usize = 2;

/// A chunk read: its items, and the keys left unread once the items held `CHUNK_BYTES_MAX`.
type Answer = (VecDeque<Item>, Vec<IndexKey>);

/// Bytes of keys and values a chunk's items hold at most (past the item that reaches it, the
/// rest of the chunk is left as keys, read when their turn comes): a scan of large values holds
/// a few MiB ahead, not a chunk of them.
const CHUNK_BYTES_MAX: usize = 1 << 20;

/// One chunk of the front end's fetched keys.
enum Chunk {
    /// Keys this thread reads: a chunk at a time in `pop_front`, a key at a time in
    /// `pop_back`.
    Keys(VecDeque<IndexKey>),
    /// Items read already, in key order.
    Items(VecDeque<Item>),
    /// Keys the read-ahead thread is reading.
    InFlight(Vec<IndexKey>),
}

/// What an end produces next from the read-ahead.
pub(super) enum Next {
    /// An item read ahead.
    Item(Item),
    /// A key to read now (the back end's).
    Key(IndexKey),
}

/// The read-ahead thread and its channels.
struct Reader {
    chunks: Option<SyncSender<Vec<IndexKey>>>,
    items: Receiver<Answer>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    /// Stop the thread (after the chunk it is reading) and wait for it: it holds a handle of
    /// the store, which must not outlive the iterator.
    fn stop(&mut self) {
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

/// The front end's read-ahead state (see the module).
pub(super) struct ReadAhead {
    queue: VecDeque<Chunk>,
    /// `None` once stopped: the queue is then only drained.
    reader: Option<Reader>,
    /// Whether the last chunk fetched was offered to the thread.
    to_thread: bool,
    /// Chunks read here while the thread still had them: its next answers, dropped.
    stolen: usize,
    /// Chunks fetched from now on that are not offered to the thread: set when an answer of
    /// its came too late.
    pause: usize,
}

/// How long `ReadAhead::answer` waits.
#[derive(Clone, Copy)]
enum Wait {
    No,
    For(std::time::Duration),
    Forever,
}

/// How long the iterating thread waits for the thread's answer, with nothing else to read,
/// before it reads the chunk itself: a chunk takes the thread ~0.1 ms, so a longer wait means
/// its core is busy with other work, and waiting on would make the scan slower than alone. The
/// iterator then offers the thread no chunk for the next `PAUSE_CHUNKS` (its core may be
/// taken by other work for a while, or the host may have paused it).
const STEAL_AFTER: std::time::Duration = std::time::Duration::from_micros(500);

/// Chunks not offered to the thread after one of its answers came too late.
const PAUSE_CHUNKS: usize = 32;

impl ReadAhead {
    /// Start the read-ahead thread for `db`; `None` if no thread can be started.
    pub(super) fn start(db: &Db) -> Option<Self> {
        let (chunks, chunk_rx) = std::sync::mpsc::sync_channel::<Vec<IndexKey>>(THREAD_CHUNKS);
        let (item_tx, items) = std::sync::mpsc::channel::<Answer>();
        let db = db.clone();
        let thread = std::thread::Builder::new()
            .name("mcstore-read-ahead".into())
            .spawn(move || {
                let mut buf = Vec::new();
                let mut arena = BytesMut::new();
                for keys in chunk_rx {
                    #[cfg(test)]
                    std::thread::sleep(std::time::Duration::from_micros(
                        tests::THREAD_DELAY_US.load(std::sync::atomic::Ordering::Relaxed),
                    ));
                    let answer = read_chunk(&db, keys, &mut buf, &mut arena);
                    if item_tx.send(answer).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self {
            queue: VecDeque::new(),
            reader: Some(Reader { chunks: Some(chunks), items, thread: Some(thread) }),
            to_thread: false,
            stolen: 0,
            pause: 0,
        })
    }

    /// Fetch chunks from `cursor`'s front until `CHUNKS_AHEAD` are queued (while the thread
    /// runs): each to the thread if it has room, else left to this thread (see `pop_front`).
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
                return;
            }
            // Every other chunk is offered to the thread (none while paused); the rest are
            // read here.
            self.to_thread = !self.to_thread;
            let paused = self.pause > 0;
            self.pause = self.pause.saturating_sub(1);
            if !self.to_thread || paused {
                self.queue.push_back(Chunk::Keys(keys.into()));
                continue;
            }
            let sent = reader.chunks.as_ref().map(|tx| tx.try_send(keys.clone()));
            match sent {
                Some(Ok(())) => self.queue.push_back(Chunk::InFlight(keys)),
                Some(Err(TrySendError::Full(_))) => self.queue.push_back(Chunk::Keys(keys.into())),
                Some(Err(TrySendError::Disconnected(_))) | None => {
                    self.stop();
                    self.queue.push_back(Chunk::Keys(keys.into()));
                }
            }
        }
    }

    /// The first item or key of the queue; `None` when the queue is empty. While the thread's
    /// answer for the first chunk is not there yet, a later chunk left to this thread is read
    /// into items meanwhile (with `buf` and `arena`), so both cores keep reading.
    pub(super) fn pop_front(
        &mut self,
        db: &Db,
        buf: &mut Vec<u8>,
        arena: &mut BytesMut,
    ) -> Option<Next> {
        loop {
            match self.queue.front_mut()? {
                Chunk::Items(items) => match items.pop_front() {
                    Some(item) => return Some(Next::Item(item)),
                    None => drop(self.queue.pop_front()),
                },
                // Read whole, warmed first, when its turn comes.
                Chunk::Keys(_) => drop(self.read_own_chunk(db, buf, arena)),
                Chunk::InFlight(_) => match self.answer(Wait::No) {
                    Some(Some(items)) => self.answer_first(Some(items)),
                    None => self.answer_first(None),
                    Some(None) if self.read_own_chunk(db, buf, arena) => {}
                    Some(None) => {
                        let wait = if self.pause == 0 { Wait::For(STEAL_AFTER) } else { Wait::No };
                        match self.answer(wait) {
                            Some(Some(items)) => self.answer_first(Some(items)),
                            None => self.answer_first(None),
                            Some(None) => {
                                // The thread is late (its core busy with other work): the chunk
                                // is read here, the thread's answer for it dropped when it
                                // comes, and the next chunks are not offered to it.
                                self.stolen += 1;
                                self.pause = PAUSE_CHUNKS;
                                self.answer_first(None);
                            }
                        }
                    }
                },
            }
        }
    }

    /// The last item or key of the queue (for the back end: the read-ahead is settled first);
    /// `None` when the queue is empty.
    pub(super) fn pop_back(&mut self) -> Option<Next> {
        self.settle();
        loop {
            match self.queue.back_mut()? {
                Chunk::Items(items) => match items.pop_back() {
                    Some(item) => return Some(Next::Item(item)),
                    None => drop(self.queue.pop_back()),
                },
                Chunk::Keys(keys) => match keys.pop_back() {
                    Some(key) => return Some(Next::Key(key)),
                    None => drop(self.queue.pop_back()),
                },
                // `settle` leaves none; were one left, its keys are read here.
                Chunk::InFlight(keys) => {
                    let keys = std::mem::take(keys);
                    *self.queue.back_mut()? = Chunk::Keys(keys.into());
                }
            }
        }
    }

    /// Stop the thread once every chunk it holds is answered: the queue then holds only items
    /// and keys, which both ends can take from.
    pub(super) fn settle(&mut self) {
        while self.queue.iter().any(|c| matches!(c, Chunk::InFlight(_))) {
            let answer = self.answer(Wait::Forever).flatten();
            self.answer_first(answer);
        }
        self.stop();
    }

    /// Whether the thread still runs.
    #[cfg(test)]
    pub(super) fn running(&self) -> bool {
        self.reader.is_some()
    }

    /// Chunks read here while the thread had them (its answers still to drop).
    #[cfg(test)]
    pub(super) fn stolen(&self) -> usize {
        self.stolen
    }

    /// Read the first chunk of keys left to this thread into items; `false` if there is none.
    fn read_own_chunk(&mut self, db: &Db, buf: &mut Vec<u8>, arena: &mut BytesMut) -> bool {
        let Some(at) = self.queue.iter().position(|c| matches!(c, Chunk::Keys(_))) else {
            return false;
        };
        let Some(Chunk::Keys(keys)) = self.queue.get_mut(at) else { return false };
        let keys: Vec<IndexKey> = keys.drain(..).collect();
        self.place(at, read_chunk(db, keys, buf, arena));
        true
    }

    /// Put the chunk read, `answer`, at `at` in the queue: its items there, and the keys left
    /// unread right after them.
    fn place(&mut self, at: usize, (items, rest): Answer) {
        if let Some(chunk) = self.queue.get_mut(at) {
            *chunk = Chunk::Items(items);
        }
        if !rest.is_empty() {
            self.queue.insert(at + 1, Chunk::Keys(rest.into()));
        }
    }

    /// The thread's next answer for a chunk still in the queue, waiting as `wait` says
    /// (answers for stolen chunks are dropped): `Some(None)` if none came in time, `None` if
    /// the thread is gone.
    fn answer(&mut self, wait: Wait) -> Option<Option<Answer>> {
        loop {
            let items = &self.reader.as_ref()?.items;
            let got = match wait {
                Wait::No => items.try_recv().map_err(|e| e == TryRecvError::Disconnected),
                Wait::For(time) => {
                    items.recv_timeout(time).map_err(|e| e == RecvTimeoutError::Disconnected)
                }
                Wait::Forever => items.recv().map_err(|_| true),
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

    /// Replace the first chunk in flight by `answer`, the thread's reading of it; `None`: by its
    /// keys, to read here (the thread is gone or late).
    fn answer_first(&mut self, answer: Option<Answer>) {
        let Some(at) = self.queue.iter().position(|c| matches!(c, Chunk::InFlight(_))) else {
            return;
        };
        match answer {
            Some(answer) => self.place(at, answer),
            None => {
                if let Some(Chunk::InFlight(keys)) = self.queue.get_mut(at) {
                    let keys = std::mem::take(keys);
                    self.queue[at] = Chunk::Keys(keys.into());
                }
            }
        }
    }

    fn stop(&mut self) {
        if let Some(mut reader) = self.reader.take() {
            reader.stop();
        }
    }
}

/// The items of `keys` as reads now make them (warmed first; a key removed since it was
/// fetched is skipped, as `Iter` skips it; an error takes its key's place), up to the item that
/// brings their bytes to `CHUNK_BYTES_MAX`; the keys after it are returned unread.
fn read_chunk(db: &Db, mut keys: Vec<IndexKey>, buf: &mut Vec<u8>, arena: &mut BytesMut) -> Answer {
    warm(db, &keys);
    let mut items = VecDeque::with_capacity(keys.len());
    let mut bytes = 0;
    let mut read = 0;
    for key in &keys {
        read += 1;
        match db.inner.read(key, buf, "iterate") {
            Ok(true) => {
                bytes += key.len() + buf.len();
                items.push_back(Ok(item(arena, key, buf)));
            }
            Ok(false) => {}
            Err(error) => items.push_back(Err(error)),
        }
        if bytes >= CHUNK_BYTES_MAX {
            break;
        }
    }
    let rest = keys.split_off(read);
    (items, rest)
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
        THREAD_DELAY_US.store(20_000, std::sync::atomic::Ordering::Relaxed);
        let mut iter = db.iter();
        let mut seen = Vec::new();
        let mut stolen = 0;
        while let Some(item) = iter.next() {
            seen.push(item.unwrap().0.to_vec());
            if let Some(ahead) = &iter.ahead {
                stolen = stolen.max(ahead.stolen());
            }
        }
        THREAD_DELAY_US.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(stolen >= 1, "the late thread was overtaken");
        let expected: Vec<Vec<u8>> = (0..3000).map(|i| format!("key{i:05}").into_bytes()).collect();
        assert!(seen == expected, "every item once, in order");
    }

    /// A chunk of large values is read only up to the item that reaches `CHUNK_BYTES_MAX`;
    /// the keys after it come back unread, in order.
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
        let (items, rest) = read_chunk(&db, keys.clone(), &mut Vec::new(), &mut BytesMut::new());
        let read: Vec<Vec<u8>> = items.into_iter().map(|item| item.unwrap().0.to_vec()).collect();
        let expected = CHUNK_BYTES_MAX.div_ceil(value.len() + 2);
        assert_eq!(read, keys[..expected].iter().map(|k| k.to_vec()).collect::<Vec<_>>());
        assert_eq!(rest, keys[expected..].to_vec());
    }
}
