//! SCAN cursors. Clients (redis-cli, client libraries) parse a cursor as an unsigned integer,
//! so a cursor cannot carry the last key returned itself: the server keeps cursor → last key in
//! a bounded table and the next SCAN resumes strictly after that key.
//!
//! INVARIANT: a key present for the whole scan is returned at least once, whatever is written
//! meanwhile (the scan walks the ordered keys past the last one returned). Cursor 0 starts and
//! ends a scan; ids are never reused within a server's life; the oldest cursor is forgotten
//! first when the table is full.

use std::collections::{HashMap, VecDeque};

use crate::limits::SCAN_CURSORS_MAX;

/// The live cursors.
#[derive(Debug)]
pub struct Cursors {
    next: u64,
    last_keys: HashMap<u64, Vec<u8>>,
    order: VecDeque<u64>,
}

impl Default for Cursors {
    fn default() -> Self {
        Self { next: 1, last_keys: HashMap::new(), order: VecDeque::new() }
    }
}

impl Cursors {
    /// A new cursor resuming after `last_key`.
    pub fn save(&mut self, last_key: Vec<u8>) -> u64 {
        while self.order.len() >= SCAN_CURSORS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.last_keys.remove(&old);
            }
        }
        let id = self.next;
        self.next += 1;
        self.last_keys.insert(id, last_key);
        self.order.push_back(id);
        id
    }

    /// The key cursor `id` resumes after; `None` if unknown (never issued, or forgotten).
    pub fn resume(&self, id: u64) -> Option<Vec<u8>> {
        self.last_keys.get(&id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_resume_and_the_oldest_is_forgotten() {
        let mut cursors = Cursors::default();
        let first = cursors.save(b"a".to_vec());
        assert_ne!(first, 0);
        assert_eq!(cursors.resume(first).as_deref(), Some(&b"a"[..]));
        assert_eq!(cursors.resume(first + 1), None);
        for i in 0..SCAN_CURSORS_MAX {
            cursors.save(i.to_string().into_bytes());
        }
        assert_eq!(cursors.resume(first), None);
        assert_eq!(cursors.last_keys.len(), SCAN_CURSORS_MAX);
    }
}
