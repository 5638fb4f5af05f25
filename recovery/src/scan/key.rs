//! `EntryKey`: a key as recovery's entries and the engine's key order hold it — up to
//! [`EntryKey::INLINE_BYTES`] in place (no allocation), longer ones shared — and its 8-byte
//! order prefix.
//!
//! INVARIANT: an inline key's bytes past its length are zero, so its prefix is read straight
//! from its first 8 bytes; a key is inline exactly when it is short enough (equal keys have
//! equal representations, whichever constructor made them).

use std::cmp::Ordering;
use std::sync::Arc;

/// A key: a short one in place (no allocation per record from the walk through the engine's
/// bulk index build, nor per key in the engine's key order, and a copy of it reads no other
/// memory), a longer one shared.
#[derive(Clone)]
pub struct EntryKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, bytes: [u8; EntryKey::INLINE_BYTES] },
    Shared(Arc<[u8]>),
}

// The inline length is the most that fits beside the length byte and the variant tag in the
// 24 bytes the shared pointer needs anyway: a longer one would grow every entry and tree key.
const _: () = assert!(std::mem::size_of::<EntryKey>() == 24);
const _: () = assert!(EntryKey::INLINE_BYTES >= 8 && EntryKey::INLINE_BYTES <= u8::MAX as usize);

impl EntryKey {
    /// Keys up to this many bytes are held in place.
    pub const INLINE_BYTES: usize = 22;

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            KeyRepr::Shared(key) => key,
        }
    }

    /// The key's first 8 bytes, big-endian, zero-padded: ordered like the keys wherever the
    /// prefixes differ, so comparing these first saves reading the keys' bytes for most pairs.
    pub fn prefix(&self) -> u64 {
        match &self.0 {
            // INVARIANT (file header): zero past the length, as `prefix` pads.
            KeyRepr::Inline { bytes, .. } => prefix(bytes),
            KeyRepr::Shared(key) => prefix(key),
        }
    }
}

/// The first 8 bytes of `key`, big-endian, zero-padded ([`EntryKey::prefix`]).
fn prefix(key: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    let n = key.len().min(8);
    word[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(word)
}

impl From<&[u8]> for EntryKey {
    fn from(key: &[u8]) -> Self {
        if key.len() > Self::INLINE_BYTES {
            return EntryKey(KeyRepr::Shared(key.into()));
        }
        let mut bytes = [0u8; Self::INLINE_BYTES];
        bytes[..key.len()].copy_from_slice(key);
        EntryKey(KeyRepr::Inline { len: key.len() as u8, bytes })
    }
}

impl From<Arc<[u8]>> for EntryKey {
    /// Keeps the allocation of a long key; a short one is copied in place.
    fn from(key: Arc<[u8]>) -> Self {
        if key.len() > Self::INLINE_BYTES { EntryKey(KeyRepr::Shared(key)) } else { (&*key).into() }
    }
}

impl std::ops::Deref for EntryKey {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for EntryKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for EntryKey {}

impl PartialOrd for EntryKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EntryKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl std::fmt::Debug for EntryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_slice().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_order_agrees_with_byte_order() {
        let keys: [&[u8]; 8] =
            [b"", b"\0", b"a", b"a\0", b"a\0\x01", b"ab", b"abcdefgh", b"abcdefgh\0"];
        for a in keys {
            for b in keys {
                if prefix(a) != prefix(b) {
                    assert_eq!(prefix(a).cmp(&prefix(b)), a.cmp(b), "{a:?} {b:?}");
                }
            }
        }
    }

    /// Every length across the inline bound, from bytes and from a shared key: the same bytes,
    /// prefix, order and equality whichever way the key was made.
    #[test]
    fn inline_and_shared_keys_agree() {
        let long: Vec<u8> = (1..=40u8).map(|i| i.wrapping_mul(37)).collect();
        let mut last: Option<EntryKey> = None;
        for n in 0..=long.len() {
            let bytes = &long[..n];
            let key = EntryKey::from(bytes);
            let shared = EntryKey::from(Arc::<[u8]>::from(bytes));
            assert_eq!(key.as_slice(), bytes);
            assert_eq!(&shared[..], bytes);
            assert_eq!(key, shared);
            assert_eq!(key.prefix(), prefix(bytes), "length {n}");
            assert_eq!(shared.prefix(), prefix(bytes), "length {n}");
            assert_eq!(matches!(key.0, KeyRepr::Inline { .. }), n <= EntryKey::INLINE_BYTES);
            assert_eq!(matches!(shared.0, KeyRepr::Inline { .. }), n <= EntryKey::INLINE_BYTES);
            if let Some(last) = last {
                assert!(last < key, "a proper prefix orders first (length {n})");
            }
            last = Some(key);
        }
        assert!(EntryKey::from(&b"b"[..]) > EntryKey::from(&long[..]));
        assert_eq!(format!("{:?}", EntryKey::from(&b"ab"[..])), "[97, 98]");
    }
}
