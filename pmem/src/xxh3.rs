//! XXH3-64 (default secret, seed 0) of bytes fed in parts, for the layers above, which hold no
//! `unsafe` (the stripe loop uses AVX2 intrinsics). Written for the long inputs a large record's
//! checksum covers (`mcstore_recovery::format::checksum`): the read path hashes a value in 16 KiB chunks as it copies
//! them, and `twox-hash`'s streaming hasher runs its stripes one at a time through memory, about
//! 1.5× slower than its one-shot on such parts (docs/performance.md, "Large values"). This one
//! runs the stripes of each part in one loop with the accumulators in registers (AVX2 when the
//! CPU has it). Inputs of at most 240 bytes, which XXH3 hashes by another algorithm, go to
//! `twox-hash`'s one-shot whole. The value is the specified XXH3-64: the tests of `checksum.rs`
//! compare it with the reference `xxhash-rust` for every split of short inputs and for large ones.

#![allow(unsafe_code)]

/// Bytes per stripe.
const STRIPE: usize = 64;
/// Bytes of the default secret.
const SECRET_BYTES: usize = 192;
/// Stripes per block: after each block the accumulators are scrambled.
pub(crate) const STRIPES_PER_BLOCK: usize = (SECRET_BYTES - STRIPE) / 8;
/// Where the secret's scramble key starts.
pub(crate) const SCRAMBLE_KEY_AT: usize = SECRET_BYTES - STRIPE;
/// Where the secret's key for the last stripe starts.
const LAST_STRIPE_KEY_AT: usize = SECRET_BYTES - STRIPE - 7;
/// Where the secret's key for merging the accumulators starts.
const MERGE_KEY_AT: usize = 11;
/// Inputs up to this long are hashed by XXH3's short-input algorithm.
const SHORT_MAX: usize = 240;
/// Bytes held before they are accumulated: a short input whole, then the last stripe's bytes.
const BUFFER_BYTES: usize = 256;

pub(crate) const PRIME32_1: u64 = 0x9E37_79B1;
const PRIME32_2: u64 = 0x85EB_CA77;
const PRIME32_3: u64 = 0xC2B2_AE3D;
const PRIME64_1: u64 = 0x9E37_79B1_85EB_CA87;
const PRIME64_2: u64 = 0xC2B2_AE3D_27D4_EB4F;
const PRIME64_3: u64 = 0x1656_67B1_9E37_79F9;
const PRIME64_4: u64 = 0x85EB_CA77_C2B2_AE63;
const PRIME64_5: u64 = 0x27D4_EB2F_1656_67C5;

/// The accumulators a long input starts from.
const INITIAL: [u64; 8] =
    [PRIME32_3, PRIME64_1, PRIME64_2, PRIME64_3, PRIME64_4, PRIME32_2, PRIME64_5, PRIME32_1];

/// XXH3's default secret (the specification's, as `twox-hash` holds it).
fn secret() -> &'static [u8; SECRET_BYTES] {
    use twox_hash::xxhash3_64::SecretBuffer;
    static SECRET: std::sync::OnceLock<&'static [u8; SECRET_BYTES]> = std::sync::OnceLock::new();
    SECRET.get_or_init(|| SecretBuffer::<&'static [u8; SECRET_BYTES]>::default().into_secret())
}

fn read64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The XXH3-64 state of a stream.
#[derive(Clone)]
pub struct Xxh3Stream {
    acc: [u64; 8],
    /// Stripes accumulated in the current block.
    stripe: usize,
    /// Bytes fed so far.
    total: u64,
    /// Bytes fed but not accumulated: the whole input while it may be short (up to 256 bytes
    /// right after it is known to be long); then the 1 to 64 bytes of the input's last stripe
    /// so far (a stripe is accumulated only once a byte follows it, as XXH3 treats the last
    /// one apart).
    buffer: [u8; BUFFER_BYTES],
    buffered: usize,
    /// Whether the input is known to be longer than `SHORT_MAX`.
    long: bool,
    /// The stripe accumulated last: the bytes just before `buffer`'s.
    last: [u8; STRIPE],
}

impl Xxh3Stream {
    /// A stream that has seen no bytes.
    pub fn new() -> Self {
        Self {
            acc: INITIAL,
            stripe: 0,
            total: 0,
            buffer: [0; BUFFER_BYTES],
            buffered: 0,
            long: false,
            last: [0; STRIPE],
        }
    }

    /// Feed the next bytes.
    pub fn update(&mut self, mut input: &[u8]) {
        self.total += input.len() as u64;
        if !self.long {
            let n = (BUFFER_BYTES - self.buffered).min(input.len());
            self.buffer[self.buffered..self.buffered + n].copy_from_slice(&input[..n]);
            self.buffered += n;
            input = &input[n..];
            if self.buffered <= SHORT_MAX {
                return;
            }
            self.long = true;
        }
        if input.is_empty() {
            return;
        }
        // Complete the buffer's last stripe; once more bytes follow, accumulate it all.
        let partial = self.buffered % STRIPE;
        if partial != 0 {
            let n = (STRIPE - partial).min(input.len());
            self.buffer[self.buffered..self.buffered + n].copy_from_slice(&input[..n]);
            self.buffered += n;
            input = &input[n..];
            if input.is_empty() {
                return;
            }
        }
        self.accumulate_held();
        // The input's stripes but the last (1 to 64 bytes), which waits in the buffer.
        let keep = (input.len() - 1) % STRIPE + 1;
        let (body, rest) = input.split_at(input.len() - keep);
        if !body.is_empty() {
            stripes(&mut self.acc, &mut self.stripe, body);
            self.last.copy_from_slice(&body[body.len() - STRIPE..]);
        }
        self.buffer[..keep].copy_from_slice(rest);
        self.buffered = keep;
    }

    /// Accumulate the held bytes, whole stripes (a byte is known to follow them).
    fn accumulate_held(&mut self) {
        let held = &self.buffer[..self.buffered];
        if held.is_empty() {
            return;
        }
        debug_assert!(self.long && held.len().is_multiple_of(STRIPE));
        stripes(&mut self.acc, &mut self.stripe, held);
        self.last.copy_from_slice(&held[held.len() - STRIPE..]);
        self.buffered = 0;
    }

    /// Feed the `dst.len()` bytes a copy writes into `dst`, the copy and the hash made in one
    /// pass where the stream allows. `copy(part, at)` copies `dst[at..]`'s `part`; `fused(part,
    /// at, state)` copies it likewise while accumulating its whole stripes into `state`. Each
    /// returns whether it finished; at the first that did not (a fault), the stream is put back
    /// as it was and `false` returned, for the caller to copy `dst` again and hash it itself.
    /// On `true` the stream is as if `update(dst)` had run.
    pub(crate) fn update_copying(
        &mut self,
        dst: &mut [u8],
        mut copy: impl FnMut(&mut [u8], usize) -> bool,
        fused: impl FnOnce(&mut [u8], usize, &mut FusedState) -> bool,
    ) -> bool {
        // The bytes to feed first, so that the stream is long and its position a stripe
        // boundary (every held byte is then a whole stripe).
        let lead = if self.long {
            (STRIPE - (self.total % STRIPE as u64) as usize) % STRIPE
        } else {
            BUFFER_BYTES - self.buffered
        };
        // The stripes in the middle; the last 1 to 64 bytes are held, as `update` holds them.
        let body = dst.len().saturating_sub(lead + 1) / STRIPE * STRIPE;
        if body == 0 {
            if !copy(dst, 0) {
                return false;
            }
            self.update(dst);
            return true;
        }
        let before = self.clone();
        let (head, rest) = dst.split_at_mut(lead);
        let (middle, tail) = rest.split_at_mut(body);
        if !copy(head, 0) {
            return false;
        }
        self.update(head);
        self.accumulate_held();
        let mut state =
            FusedState { acc: self.acc, secret: secret().as_ptr(), stripe: self.stripe };
        if !fused(middle, lead, &mut state) || !copy(tail, lead + body) {
            *self = before;
            return false;
        }
        self.acc = state.acc;
        self.stripe = state.stripe;
        self.total += body as u64;
        self.last.copy_from_slice(&middle[body - STRIPE..]);
        self.update(tail);
        true
    }

    /// XXH3-64 of every byte fed so far.
    pub fn digest(&self) -> u64 {
        let held = &self.buffer[..self.buffered];
        if !self.long {
            return twox_hash::XxHash3_64::oneshot(held);
        }
        let (mut acc, mut stripe) = (self.acc, self.stripe);
        let whole = (held.len() - 1) / STRIPE * STRIPE;
        stripes(&mut acc, &mut stripe, &held[..whole]);
        // The last stripe is the input's last 64 bytes, accumulated with a key of its own.
        let mut last = [0u8; STRIPE];
        if held.len() >= STRIPE {
            last.copy_from_slice(&held[held.len() - STRIPE..]);
        } else {
            let from_before = STRIPE - held.len();
            last[..from_before].copy_from_slice(&self.last[held.len()..]);
            last[from_before..].copy_from_slice(held);
        }
        accumulate(&mut acc, &last, &secret()[LAST_STRIPE_KEY_AT..]);
        merge(&acc, self.total)
    }
}

impl Default for Xxh3Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// What the copy-and-hash routine reads and updates (`mcsafe_copy_xxh3`, whose offsets assume
/// this layout): the accumulators, the secret, and the stripe within the current block.
#[repr(C)]
pub(crate) struct FusedState {
    pub(crate) acc: [u64; 8],
    pub(crate) secret: *const u8,
    pub(crate) stripe: usize,
}

const _: () = assert!(
    std::mem::offset_of!(FusedState, secret) == 64
        && std::mem::offset_of!(FusedState, stripe) == 72,
    "mcsafe_copy_xxh3 reads the state at these offsets"
);

#[cfg(test)]
impl FusedState {
    /// A state at `acc` and `stripe` over the default secret.
    pub(crate) fn new_for_test(acc: [u64; 8], stripe: usize) -> Self {
        FusedState { acc, secret: secret().as_ptr(), stripe }
    }

    /// The accumulators and stripe the scalar loop leaves after accumulating `data` from this
    /// state.
    pub(crate) fn scalar_after(&self, data: &[u8]) -> ([u64; 8], usize) {
        let (mut acc, mut stripe) = (self.acc, self.stripe);
        stripes_scalar(&mut acc, &mut stripe, data, secret());
        (acc, stripe)
    }
}

/// Accumulate `data` (whole stripes), `*stripe` of the current block already done.
fn stripes(acc: &mut [u64; 8], stripe: &mut usize, data: &[u8]) {
    debug_assert!(data.len().is_multiple_of(STRIPE));
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !scalar_only() {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { avx2::stripes(acc, stripe, data, secret()) };
        return;
    }
    stripes_scalar(acc, stripe, data, secret());
}

/// Whether this thread takes the scalar loop even where AVX2 is present (a test's choice).
fn scalar_only() -> bool {
    #[cfg(test)]
    return tests::scalar_only();
    #[cfg(not(test))]
    false
}

fn stripes_scalar(
    acc: &mut [u64; 8],
    stripe: &mut usize,
    data: &[u8],
    secret: &[u8; SECRET_BYTES],
) {
    for bytes in data.chunks_exact(STRIPE) {
        accumulate(acc, bytes, &secret[*stripe * 8..]);
        *stripe += 1;
        if *stripe == STRIPES_PER_BLOCK {
            scramble(acc, &secret[SCRAMBLE_KEY_AT..]);
            *stripe = 0;
        }
    }
}

/// One stripe into the accumulators, with the key at `key`.
fn accumulate(acc: &mut [u64; 8], bytes: &[u8], key: &[u8]) {
    for i in 0..8 {
        let value = read64(bytes, 8 * i);
        let keyed = value ^ read64(key, 8 * i);
        acc[i ^ 1] = acc[i ^ 1].wrapping_add(value);
        acc[i] = acc[i].wrapping_add((keyed & 0xFFFF_FFFF) * (keyed >> 32));
    }
}

fn scramble(acc: &mut [u64; 8], key: &[u8]) {
    for (i, a) in acc.iter_mut().enumerate() {
        let mixed = (*a ^ (*a >> 47)) ^ read64(key, 8 * i);
        *a = mixed.wrapping_mul(PRIME32_1);
    }
}

fn merge(acc: &[u64; 8], total: u64) -> u64 {
    let key = &secret()[MERGE_KEY_AT..];
    let mut result = total.wrapping_mul(PRIME64_1);
    for i in 0..4 {
        let a = acc[2 * i] ^ read64(key, 16 * i);
        let b = acc[2 * i + 1] ^ read64(key, 16 * i + 8);
        let product = u128::from(a) * u128::from(b);
        result = result.wrapping_add((product as u64) ^ ((product >> 64) as u64));
    }
    result ^= result >> 37;
    result = result.wrapping_mul(0x1656_6791_9E37_79F9);
    result ^ (result >> 32)
}

#[cfg(target_arch = "x86_64")]
mod avx2 {

    use std::arch::x86_64::{
        __m256i, _mm256_add_epi64, _mm256_loadu_si256, _mm256_mul_epu32, _mm256_set1_epi64x,
        _mm256_shuffle_epi32, _mm256_slli_epi64, _mm256_srli_epi64, _mm256_storeu_si256,
        _mm256_xor_si256,
    };

    use super::{PRIME32_1, SCRAMBLE_KEY_AT, SECRET_BYTES, STRIPE, STRIPES_PER_BLOCK};

    /// 32 bytes of `bytes` from `at`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn load(bytes: &[u8], at: usize) -> __m256i {
        let part = &bytes[at..at + 32];
        // SAFETY: `part` is 32 readable bytes; the load has no alignment requirement.
        unsafe { _mm256_loadu_si256(part.as_ptr().cast()) }
    }

    /// `stripes_scalar`, the eight accumulators in two registers; whole blocks in a loop whose
    /// secret offsets are constants.
    #[target_feature(enable = "avx2")]
    pub(super) fn stripes(
        acc: &mut [u64; 8],
        stripe: &mut usize,
        data: &[u8],
        secret: &[u8; SECRET_BYTES],
    ) {
        let (acc_lo, acc_hi) = acc.split_at_mut(4);
        let mut a = [load_words(acc_lo), load_words(acc_hi)];
        let (stripes, _) = data.as_chunks::<STRIPE>();
        let mut s = *stripe;
        // Up to the end of the current block, one stripe at a time.
        let lead = if s == 0 { 0 } else { (STRIPES_PER_BLOCK - s).min(stripes.len()) };
        let (first, rest) = stripes.split_at(lead);
        for bytes in first {
            accumulate(&mut a, bytes, secret, s * 8);
            s += 1;
        }
        if s == STRIPES_PER_BLOCK {
            scramble(&mut a, secret);
            s = 0;
        }
        // Whole blocks.
        let (blocks, tail) = rest.as_chunks::<STRIPES_PER_BLOCK>();
        for block in blocks {
            for (i, bytes) in block.iter().enumerate() {
                accumulate(&mut a, bytes, secret, i * 8);
            }
            scramble(&mut a, secret);
        }
        // The start of the next block.
        for bytes in tail {
            accumulate(&mut a, bytes, secret, s * 8);
            s += 1;
        }
        *stripe = s;
        store_words(acc_lo, a[0]);
        store_words(acc_hi, a[1]);
    }

    /// One stripe into the accumulators, keyed by the secret from `key_at`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn accumulate(
        a: &mut [__m256i; 2],
        bytes: &[u8; STRIPE],
        secret: &[u8; SECRET_BYTES],
        key_at: usize,
    ) {
        for (half, a) in a.iter_mut().enumerate() {
            let value = load(bytes, 32 * half);
            let keyed = _mm256_xor_si256(value, load(secret, key_at + 32 * half));
            // Each 64-bit lane: its low half times its high half; plus the value of the
            // neighbouring lane.
            let product = _mm256_mul_epu32(keyed, _mm256_shuffle_epi32::<0x31>(keyed));
            let swapped = _mm256_shuffle_epi32::<0x4E>(value);
            *a = _mm256_add_epi64(*a, _mm256_add_epi64(product, swapped));
        }
    }

    /// The end of a block: mix each accumulator, key it, multiply it by `PRIME32_1`.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn scramble(a: &mut [__m256i; 2], secret: &[u8; SECRET_BYTES]) {
        let prime = _mm256_set1_epi64x(PRIME32_1 as i64);
        for (half, a) in a.iter_mut().enumerate() {
            let mixed = _mm256_xor_si256(*a, _mm256_srli_epi64::<47>(*a));
            let keyed = _mm256_xor_si256(mixed, load(secret, SCRAMBLE_KEY_AT + 32 * half));
            // keyed * PRIME32_1 in 64 bits: the low half times the prime, plus the high half
            // times the prime shifted up.
            let low = _mm256_mul_epu32(keyed, prime);
            let high = _mm256_mul_epu32(_mm256_srli_epi64::<32>(keyed), prime);
            *a = _mm256_add_epi64(low, _mm256_slli_epi64::<32>(high));
        }
    }

    #[target_feature(enable = "avx2")]
    fn load_words(words: &[u64]) -> __m256i {
        let words = &words[..4];
        // SAFETY: `words` is 32 readable bytes; the load has no alignment requirement.
        unsafe { _mm256_loadu_si256(words.as_ptr().cast()) }
    }

    #[target_feature(enable = "avx2")]
    fn store_words(words: &mut [u64], value: __m256i) {
        let words = &mut words[..4];
        // SAFETY: `words` is 32 writable bytes; the store has no alignment requirement.
        unsafe { _mm256_storeu_si256(words.as_mut_ptr().cast(), value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Whether this test thread's streams take the scalar loop even where AVX2 is present.
        static SCALAR_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    pub(super) fn scalar_only() -> bool {
        SCALAR_ONLY.with(std::cell::Cell::get)
    }

    /// The stream on the scalar loop, fed in parts of every size from 1 to 300 bytes and one
    /// whole, hashes as `twox-hash`'s one-shot (an independent implementation) for lengths
    /// around every stripe and block boundary.
    #[test]
    fn the_scalar_stream_equals_the_one_shot() {
        SCALAR_ONLY.with(|s| s.set(true));
        let input: Vec<u8> =
            (0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 1, 64, 240, 241, 255, 256, 257, 1023, 1024, 1025, 1088, 2048, 2049, 5000] {
            let expected = twox_hash::XxHash3_64::oneshot(&input[..len]);
            for piece in [1, 7, 64, 65, 300, len.max(1)] {
                let mut stream = Xxh3Stream::new();
                for part in input[..len].chunks(piece) {
                    stream.update(part);
                }
                assert_eq!(stream.digest(), expected, "{len} bytes in parts of {piece}");
            }
        }
        SCALAR_ONLY.with(|s| s.set(false));
    }

    /// The AVX2 loop and the scalar one leave the same accumulators and block position, from
    /// any position within a block.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_loop_matches_the_scalar_one() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let data: Vec<u8> = (0..STRIPE * 40).map(|i| (i * 131 + 7) as u8).collect();
        for start in 0..STRIPES_PER_BLOCK {
            for stripes_fed in [1, 15, 16, 17, 40] {
                let bytes = &data[..stripes_fed * STRIPE];
                let (mut scalar, mut scalar_at) = (INITIAL, start);
                stripes_scalar(&mut scalar, &mut scalar_at, bytes, secret());
                let (mut vector, mut vector_at) = (INITIAL, start);
                // SAFETY: the CPU has AVX2 (checked above).
                unsafe { avx2::stripes(&mut vector, &mut vector_at, bytes, secret()) };
                assert_eq!(scalar, vector, "from stripe {start}, {stripes_fed} stripes");
                assert_eq!(scalar_at, vector_at);
            }
        }
    }
}
