//! Feature flags beside `FORMAT_VERSION`, ext4-style.
//!
//! `compat`: unknown bits are ignored. `ro_compat`: unknown bits allow opening read-only only.
//! `incompat`: unknown bits refuse the pool (`UnsupportedFormat`). A new bit is added here with its
//! meaning and the class it belongs to (`docs/format.md` lists them).

/// The three feature words of a superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Features {
    /// Features an older reader may ignore.
    pub compat: u64,
    /// Features an older reader may read but must not write.
    pub ro_compat: u64,
    /// Features an older reader must not touch.
    pub incompat: u64,
}

impl Features {
    /// Compat bit 0: the superblock's `unsafe_shutdown_count` field (offset 208) holds the
    /// device's unsafe-shutdown count recorded at the last clean shutdown. Compat: a reader that
    /// ignores it only loses the check (it decides on the clean flag alone, as before).
    pub const COMPAT_SHUTDOWN_COUNT: u64 = 1;
    /// Compat bits this build knows.
    pub const KNOWN_COMPAT: u64 = Self::COMPAT_SHUTDOWN_COUNT;
    /// Read-only-compat bits this build knows.
    pub const KNOWN_RO_COMPAT: u64 = 0;
    /// Incompat bits this build knows.
    pub const KNOWN_INCOMPAT: u64 = 0;

    /// Incompat bits this build does not know (nonzero: refuse the pool).
    pub fn unknown_incompat(&self) -> u64 {
        self.incompat & !Self::KNOWN_INCOMPAT
    }

    /// Read-only-compat bits this build does not know (nonzero: open read-only).
    pub fn unknown_ro_compat(&self) -> u64 {
        self.ro_compat & !Self::KNOWN_RO_COMPAT
    }
}
