//! [`SimMedium`]: heap memory modelling a persistence domain, the test bed of every crash test.
//!
//! Two layers: the *visible* bytes (every store lands at once; reads see them) and the
//! *persistent* bytes (what survives a power loss for sure). PERSIST: a store is queued as
//! pending words of its lines; `flush` marks the words issued before it; `fence` applies the
//! marked ones to the persistent bytes in order. INVARIANT: visible = persistent + every pending
//! word applied in order (poison overwrites both layers and drops the lines' pending words).
//! Everything sits behind one mutex: deterministic, `Send + Sync`, no `unsafe`.

use std::fmt;

use parking_lot::Mutex;

use super::crash::{Control, SimOp};
use super::lines::{Pending, line_of};
use super::poison::{PoisonSet, read_through};
use crate::error::{Error, Result};
use crate::limits::CACHE_LINE;
use crate::medium::{FenceSite, Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

/// Everything a [`SimMedium`] holds, behind its one mutex.
#[derive(Debug)]
pub(super) struct State {
    /// What reads see: every store, at once.
    pub(super) visible: Vec<u8>,
    /// What survives for sure: fenced stores only.
    pub(super) persistent: Vec<u8>,
    pub(super) pending: Pending,
    pub(super) poison: PoisonSet,
    pub(super) control: Control,
}

impl State {
    pub(super) fn len(&self) -> u64 {
        self.visible.len() as u64
    }

    /// `[offset, offset + len)` must lie inside the medium.
    pub(super) fn check_bounds(&self, offset: u64, len: u64) -> Result<()> {
        let medium_len = self.len();
        match offset.checked_add(len) {
            Some(end) if end <= medium_len => Ok(()),
            _ => Err(Error::OutOfBounds { offset, len, medium_len }),
        }
    }

    /// A store or flush into a poisoned line faults on real pmem: refuse it, touching nothing.
    fn check_unpoisoned(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        match self.poison.first_in(line_of(offset), line_of(offset + len - 1)) {
            Some(line) => Err(Error::Poisoned { offset: line * CACHE_LINE, len: CACHE_LINE }),
            None => Ok(()),
        }
    }

    fn store(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.control.begin(SimOp::Write)?;
        self.check_bounds(offset, data.len() as u64)?;
        self.check_unpoisoned(offset, data.len() as u64)?;
        let start = offset as usize;
        self.visible[start..start + data.len()].copy_from_slice(data);
        self.pending.push_write(offset, data);
        Ok(())
    }
}

/// Heap memory modelling a persistence domain; see the module docs and DESIGN.md ("SimMedium").
pub struct SimMedium {
    member: MemberId,
    max_len: Option<u64>,
    pub(super) state: Mutex<State>,
}

impl fmt::Debug for SimMedium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("SimMedium")
            .field("member", &self.member)
            .field("len", &state.len())
            .field("pending_words", &state.pending.word_count())
            .field("poisoned", &state.poison.ranges())
            .field("control", &state.control)
            .finish()
    }
}

impl SimMedium {
    /// A zeroed medium of `len` bytes, member 0.
    pub fn new(len: u64) -> Self {
        Self::with_member(len, MemberId(0))
    }

    /// A zeroed medium of `len` bytes that reports `member` in its faults.
    pub fn with_member(len: u64, member: MemberId) -> Self {
        Self::from_image(vec![0; len as usize], member)
    }

    /// Reopen a crash image (or any bytes): both layers hold `image`, nothing is pending.
    pub fn from_image(image: Vec<u8>, member: MemberId) -> Self {
        let state = State {
            visible: image.clone(),
            persistent: image,
            pending: Pending::default(),
            poison: PoisonSet::default(),
            control: Control::default(),
        };
        Self { member, max_len: None, state: Mutex::new(state) }
    }

    /// Cap `grow` at `max_len` bytes (beyond: [`Error::BeyondMax`]). Panics if already longer.
    pub fn with_max_len(mut self, max_len: u64) -> Self {
        assert!(self.len() <= max_len, "medium already longer than its maximum");
        self.max_len = Some(max_len);
        self
    }
}

impl Medium for SimMedium {
    fn len(&self) -> u64 {
        self.state.lock().len()
    }

    fn member(&self) -> MemberId {
        self.member
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.state.lock().store(offset, data)
    }

    fn store_u64(&self, offset: u64, value: u64) -> Result<()> {
        assert!(offset.is_multiple_of(8), "store_u64 at unaligned offset {offset}");
        // One aligned word: a single pending entry, so every crash image has all or none of it.
        self.state.lock().store(offset, &value.to_le_bytes())
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        let mut state = self.state.lock();
        state.control.begin(SimOp::Flush)?;
        state.check_bounds(offset, len)?;
        state.check_unpoisoned(offset, len)?;
        if len > 0 {
            state.pending.flush(line_of(offset), line_of(offset + len - 1));
        }
        Ok(())
    }

    /// The default `write_through` (stores, then the write-back of their lines) is exactly what
    /// the model needs: a fence by any thread then persists them. Reported as cheaper, so the
    /// layers above take their write-through path on this medium too and the crash harness
    /// covers it.
    fn writes_through(&self) -> bool {
        true
    }

    fn fence(&self, site: FenceSite) -> Result<()> {
        let mut state = self.state.lock();
        state.control.begin(SimOp::Fence)?;
        state.control.reach_fence(site)?;
        let State { pending, persistent, .. } = &mut *state;
        pending.fence(persistent);
        Ok(())
    }

    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()> {
        let state = self.state.lock();
        state.control.alive()?;
        state.check_bounds(offset, dst.len() as u64)?;
        if dst.is_empty() {
            return Ok(());
        }
        if state.poison.is_empty() {
            let start = offset as usize;
            dst.copy_from_slice(&state.visible[start..start + dst.len()]);
        } else {
            read_through(
                &state.visible,
                &state.poison,
                offset,
                dst,
                register,
                (self.member, domain),
            );
        }
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        let mut state = self.state.lock();
        state.control.begin(SimOp::Grow)?;
        if new_len <= state.len() {
            return Ok(());
        }
        if let Some(max) = self.max_len
            && new_len > max
        {
            return Err(Error::BeyondMax { requested: new_len, max });
        }
        state.visible.resize(new_len as usize, 0);
        state.persistent.resize(new_len as usize, 0);
        Ok(())
    }

    /// Clear the poison of the lines covered, store `data`, flush and fence it
    /// ([`REPAIR_SITE`]): the bytes are persistent when this returns.
    fn repair(&self, offset: u64, data: &[u8]) -> Result<()> {
        let len = data.len() as u64;
        self.state.lock().check_bounds(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.clear_poison(offset, len)?;
        self.write(offset, data)?;
        self.flush(offset, len)?;
        // PERSIST: the repaired bytes are durable at REPAIR_SITE before the caller re-reads them.
        self.fence(REPAIR_SITE)
    }
}

/// The fence a [`SimMedium`] repair ends with.
pub const REPAIR_SITE: FenceSite = FenceSite("pmem.repair");

#[cfg(test)]
pub(super) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::sim::{CrashMode, NotPersisted};

    const SITE: FenceSite = FenceSite("test.site");

    /// The clean bytes of `[offset, +len)` (asserts the read met no poison).
    pub(in crate::sim) fn read_all(medium: &SimMedium, offset: u64, len: usize) -> Vec<u8> {
        let mut dst = vec![0xEE; len];
        let mut register = ErrorRegister::deferred();
        medium.read(offset, &mut dst, &mut register, Domain::User).unwrap();
        assert!(register.is_clean());
        dst
    }

    #[test]
    fn fenced_stores_survive_every_image_and_unfenced_ones_may_not() {
        let medium = SimMedium::new(256);
        medium.write(0, &[1; 16]).unwrap();
        medium.flush(0, 16).unwrap();
        medium.fence(SITE).unwrap();
        medium.write(64, &[2; 8]).unwrap();
        medium.store_u64(128, 0x0303_0303_0303_0303).unwrap();
        medium.flush(128, 8).unwrap();
        for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
            let images: Vec<Vec<u8>> = medium.crash_images(mode, 4096, 1).collect();
            assert_eq!(images.len(), 4);
            assert!(images.iter().all(|image| image[..16] == [1; 16]));
            assert!(images.iter().any(|image| image[64..72] == [0; 8]));
            assert!(images.iter().any(|image| image[64..72] == [2; 8]));
            // Flushed but not fenced is still pending: some image lacks it.
            assert!(images.iter().any(|image| image[128..136] == [0; 8]));
        }
        assert!(medium.is_persisted(0, 16));
        assert_eq!(
            medium.assert_persisted(100, 40),
            Err(NotPersisted { offset: 100, len: 40, first_pending: 128, pending_words: 1 })
        );
        assert_eq!(&medium.persistent_image()[..17], &[[1; 16].as_slice(), &[0]].concat()[..]);
        assert_eq!(read_all(&medium, 64, 8), vec![2; 8]);
    }

    #[test]
    fn a_flush_issued_before_a_store_does_not_cover_it() {
        let medium = SimMedium::new(128);
        medium.write(0, &[1; 8]).unwrap();
        medium.flush(0, 64).unwrap();
        medium.write(8, &[2; 8]).unwrap();
        medium.fence(SITE).unwrap();
        assert_eq!(&medium.persistent_image()[..16], &[[1; 8], [0; 8]].concat()[..]);
        assert_eq!(medium.pending_words(), 1);
        assert!(medium.assert_persisted(0, 8).is_ok());
        assert!(medium.assert_persisted(8, 8).is_err());
        medium.flush(0, 64).unwrap();
        medium.fence(SITE).unwrap();
        assert_eq!(medium.persistent_image(), medium.visible_image());
        assert_eq!(medium.pending_words(), 0);
    }

    #[test]
    fn store_u64_is_atomic_in_every_image_of_both_modes() {
        let medium = SimMedium::new(128);
        medium.store_u64(0, u64::MAX).unwrap();
        medium.flush(0, 8).unwrap();
        medium.fence(SITE).unwrap();
        medium.store_u64(0, 0x1122_3344_5566_7788).unwrap();
        medium.store_u64(0, 0x0102_0304_0506_0708).unwrap();
        medium.store_u64(64, 0xAABB_CCDD_EEFF_0011).unwrap();
        for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
            let exhaustive = medium.crash_images(mode, 4096, 0);
            let sampled = medium.crash_images(mode, 3, 9);
            assert!(!sampled.is_exhaustive());
            for image in exhaustive.chain(sampled) {
                let word = u64::from_le_bytes(image[..8].try_into().unwrap());
                assert!([u64::MAX, 0x1122_3344_5566_7788, 0x0102_0304_0506_0708].contains(&word));
                let other = u64::from_le_bytes(image[64..72].try_into().unwrap());
                assert!([0, 0xAABB_CCDD_EEFF_0011].contains(&other));
            }
        }
    }

    #[test]
    fn partial_word_writes_merge_with_the_visible_bytes() {
        let medium = SimMedium::new(64);
        medium.store_u64(0, 0x0807_0605_0403_0201).unwrap();
        medium.write(3, &[0xAA, 0xBB]).unwrap();
        assert_eq!(read_all(&medium, 0, 8), vec![1, 2, 3, 0xAA, 0xBB, 6, 7, 8]);
        medium.flush(0, 8).unwrap();
        medium.fence(SITE).unwrap();
        assert_eq!(&medium.persistent_image()[..8], &[1, 2, 3, 0xAA, 0xBB, 6, 7, 8]);
        // Subset images: the partial store alone lands only its own bytes.
        let medium = SimMedium::new(64);
        medium.store_u64(0, 0x0807_0605_0403_0201).unwrap();
        medium.write(3, &[0xAA, 0xBB]).unwrap();
        let images: Vec<Vec<u8>> = medium.crash_images(CrashMode::AnySubset, 16, 0).collect();
        assert!(images.iter().any(|image| image[..8] == [0, 0, 0, 0xAA, 0xBB, 0, 0, 0]));
        let prefixes: Vec<Vec<u8>> = medium.crash_images(CrashMode::PerLinePrefix, 16, 0).collect();
        assert!(prefixes.iter().all(|image| image[..8] != [0, 0, 0, 0xAA, 0xBB, 0, 0, 0]));
    }

    #[test]
    fn out_of_bounds_and_grow() {
        let medium = SimMedium::new(128).with_max_len(256);
        let mut register = ErrorRegister::deferred();
        assert!(matches!(medium.write(120, &[0; 9]), Err(Error::OutOfBounds { .. })));
        assert!(matches!(medium.flush(u64::MAX, 2), Err(Error::OutOfBounds { .. })));
        assert!(matches!(
            medium.read(128, &mut [0; 1], &mut register, Domain::User),
            Err(Error::OutOfBounds { offset: 128, len: 1, medium_len: 128 })
        ));
        assert!(matches!(medium.inject_poison(100, 100), Err(Error::OutOfBounds { .. })));
        medium.grow(200).unwrap();
        medium.grow(100).unwrap();
        assert_eq!(medium.len(), 200);
        assert!(matches!(medium.grow(257), Err(Error::BeyondMax { requested: 257, max: 256 })));
        medium.write(196, &[5; 4]).unwrap();
        assert_eq!(read_all(&medium, 128, 72), [vec![0; 68], vec![5; 4]].concat());
        assert_eq!(medium.persistent_image().len(), 200);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Write(u64, Vec<u8>),
        Store(u64, u64),
        Flush(u64, u64),
        Fence,
    }

    const MODEL_LEN: u64 = 512;

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..MODEL_LEN, proptest::collection::vec(any::<u8>(), 1..80)).prop_map(
                |(off, data)| {
                    let off = off.min(MODEL_LEN - data.len() as u64);
                    Op::Write(off, data)
                }
            ),
            (0..MODEL_LEN / 8, any::<u64>()).prop_map(|(word, value)| Op::Store(word * 8, value)),
            (0..MODEL_LEN, 0..200u64)
                .prop_map(|(off, len)| Op::Flush(off, len.min(MODEL_LEN - off))),
            Just(Op::Fence),
        ]
    }

    /// The reference: byte stores in issue order, each flushed or not.
    #[derive(Default)]
    struct Model {
        fenced: Vec<u8>,
        visible: Vec<u8>,
        pending: Vec<(u64, u8, bool)>,
    }

    impl Model {
        fn store(&mut self, offset: u64, data: &[u8]) {
            for (i, byte) in data.iter().enumerate() {
                let at = offset + i as u64;
                self.visible[at as usize] = *byte;
                self.pending.push((at, *byte, false));
            }
        }

        fn flush(&mut self, offset: u64, len: u64) {
            if len == 0 {
                return;
            }
            let lines = offset / 64..=(offset + len - 1) / 64;
            for (at, _, flushed) in &mut self.pending {
                *flushed |= lines.contains(&(*at / 64));
            }
        }

        fn fence(&mut self) {
            for (at, byte, _) in self.pending.iter().filter(|p| p.2) {
                self.fenced[*at as usize] = *byte;
            }
            self.pending.retain(|p| !p.2);
        }
    }

    /// Proptest settings; under Miri few cases and no failure file (isolation forbids getcwd).
    pub(in crate::sim) fn config(cases: u32) -> ProptestConfig {
        if cfg!(miri) {
            ProptestConfig { cases: 2, failure_persistence: None, ..ProptestConfig::default() }
        } else {
            ProptestConfig { cases, ..ProptestConfig::default() }
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        #[test]
        fn persistent_image_matches_a_byte_level_reference(ops in proptest::collection::vec(op(), 1..60)) {
            let medium = SimMedium::new(MODEL_LEN);
            let mut model = Model {
                fenced: vec![0; MODEL_LEN as usize],
                visible: vec![0; MODEL_LEN as usize],
                pending: Vec::new(),
            };
            for op in ops {
                match op {
                    Op::Write(off, data) => {
                        medium.write(off, &data).unwrap();
                        model.store(off, &data);
                    }
                    Op::Store(off, value) => {
                        medium.store_u64(off, value).unwrap();
                        model.store(off, &value.to_le_bytes());
                    }
                    Op::Flush(off, len) => {
                        medium.flush(off, len).unwrap();
                        model.flush(off, len);
                    }
                    Op::Fence => {
                        medium.fence(SITE).unwrap();
                        model.fence();
                        prop_assert_eq!(medium.persistent_image(), model.fenced.clone());
                    }
                }
                prop_assert_eq!(medium.visible_image(), model.visible.clone());
                for line in 0..MODEL_LEN / 64 {
                    let model_pending = model.pending.iter().any(|p| p.0 / 64 == line);
                    prop_assert_eq!(medium.is_persisted(line * 64, 64), !model_pending);
                }
            }
            // Everything persisted = the visible bytes; nothing persisted = the fenced state.
            let mut images = medium.crash_images(CrashMode::AnySubset, 2, 0);
            if images.is_exhaustive() {
                prop_assert!(medium.pending_words() <= 1);
            } else {
                prop_assert_eq!(images.next().unwrap(), model.fenced.clone());
                prop_assert_eq!(images.next().unwrap(), model.visible.clone());
            }
        }
    }
}
