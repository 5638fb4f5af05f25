//! `Value`: an owned, immutable byte string that is cheap to clone, and `CasError`.
//!
//! A `Value` is a `bytes::Bytes`: cloning it is a reference-count increment, never a copy, and it
//! takes over a `Vec` or an `Arc<[u8]>` without copying (a `get` copies the record's value once,
//! into its own buffer; an iterator copies small items into shared 16 KiB blocks, so a value
//! kept from an iteration keeps its block alive). Values handed out by the store are copies of
//! verified record bytes; they never alias the medium.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

/// An owned byte string returned by the store (keys from iterators, values from reads).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Value(Bytes);

impl Value {
    /// A value holding a copy of `bytes`.
    pub fn copy_from_slice(bytes: &[u8]) -> Self {
        Value(Bytes::copy_from_slice(bytes))
    }

    /// A value over `bytes` (no copy).
    pub(crate) fn from_bytes(bytes: Bytes) -> Self {
        Value(bytes)
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as a new `Vec`.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }
}

impl Deref for Value {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::borrow::Borrow<[u8]> for Value {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value::copy_from_slice(bytes)
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value(Bytes::from(bytes))
    }
}

impl From<&str> for Value {
    fn from(text: &str) -> Self {
        Value::copy_from_slice(text.as_bytes())
    }
}

impl From<Arc<[u8]>> for Value {
    fn from(bytes: Arc<[u8]>) -> Self {
        Value(Bytes::from_owner(bytes))
    }
}

impl PartialEq<[u8]> for Value {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[u8]> for Value {
    fn eq(&self, other: &&[u8]) -> bool {
        *self.0 == **other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Value {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == other[..]
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Value {
    fn eq(&self, other: &[u8; N]) -> bool {
        *self.0 == other[..]
    }
}

impl PartialEq<Vec<u8>> for Value {
    fn eq(&self, other: &Vec<u8>) -> bool {
        *self.0 == other[..]
    }
}

impl fmt::Debug for Value {
    /// Printable ASCII as text, anything else as `\xNN`, in a `b"…"` literal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Why a compare-and-swap did not apply: the value actually current (`None`: absent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasError {
    /// The current value of the key when the swap was refused.
    pub current: Option<Value>,
}

impl fmt::Display for CasError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.current {
            Some(value) => write!(f, "compare-and-swap refused: current value is {value:?}"),
            None => write!(f, "compare-and-swap refused: the key is absent"),
        }
    }
}

impl std::error::Error for CasError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vec_or_a_shared_key_becomes_a_value_without_a_copy() {
        let bytes = vec![7u8; 100];
        let at = bytes.as_ptr();
        assert_eq!(Value::from(bytes).as_ptr(), at);
        let key: Arc<[u8]> = Arc::from(&b"user:1"[..]);
        let value = Value::from(Arc::clone(&key));
        assert_eq!(value.as_ptr(), key.as_ptr());
        assert_eq!(value, b"user:1"[..]);
    }

    #[test]
    fn clone_shares_bytes_and_compares_by_content() {
        let a = Value::from(b"abc".to_vec());
        let b = a.clone();
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_eq!(a, Value::from("abc"));
        assert_eq!(a, &b"abc"[..]);
        assert_eq!(a, b"abc");
        assert_ne!(a, Value::from("abd"));
        assert!(Value::from("a") < Value::from("b"));
    }

    #[test]
    fn debug_escapes_non_printable_bytes() {
        assert_eq!(format!("{:?}", Value::from(&[b'k', 0, 0xff][..])), "b\"k\\x00\\xff\"");
    }
}
