//! The byte decoder the fuzz bodies share: an arbitrary input read as small integers, keys and
//! values. Reading past the end yields zeros, so every input (the empty one too) decodes.
//!
//! INVARIANT: keys are 0–3 bytes over `{a, b, 0xFF}` (like `ops::key`, so operations collide)
//! and values at most [`VALUE_BYTES_MAX`] bytes, so scenarios stay small and fast.

use crate::model::Bytes;

/// The longest value a fuzz input decodes to.
pub const VALUE_BYTES_MAX: usize = 3000;

/// A cursor over a fuzz input.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A key: a length byte (`% 4`), then one byte per symbol.
    pub fn key(&mut self) -> Bytes {
        let len = self.byte() % 4;
        (0..len).map(|_| [b'a', b'b', 0xFF][usize::from(self.byte() % 3)]).collect()
    }

    /// A value: mostly under 64 bytes, sometimes up to [`VALUE_BYTES_MAX`]; its bytes count up
    /// from a seed byte (so distinct values rarely coincide).
    pub fn value(&mut self) -> Bytes {
        let selector = self.byte();
        let len = if selector < 224 {
            usize::from(selector % 64)
        } else {
            usize::from(self.u16()) % (VALUE_BYTES_MAX + 1)
        };
        counting_value(len, self.byte())
    }
}

/// A value of `len` bytes counting up from `seed` (so distinct values rarely coincide).
pub fn counting_value(len: usize, seed: u8) -> Bytes {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_past_the_end_gives_zeros_and_keys_stay_small() {
        let mut input = Input::new(&[3, 0, 1, 2, 250, 0xFF, 0xFF, 9]);
        assert_eq!(input.key(), vec![b'a', b'b', 0xFF]);
        let value = input.value();
        assert_eq!(value.len(), 0xFFFF % (VALUE_BYTES_MAX + 1));
        assert_eq!(&value[..2], &[9, 10]);
        assert!(input.is_empty());
        assert_eq!((input.u64(), input.key(), input.value()), (0, vec![], vec![]));
    }
}
