//! `Absent`: the stand-in for a missing member of a set opened degraded.
//!
//! INVARIANT: it is always `Stale` in its set, so the set never writes to it nor reads from it;
//! should anything try, every access fails (no byte is ever invented for a missing member).

use mcstore_pmem::{Domain, Error, ErrorRegister, FenceSite, Medium, MemberId, Result};

/// A member that is not there.
#[derive(Debug)]
pub(crate) struct Absent {
    pub(crate) member: MemberId,
}

impl Absent {
    fn missing(&self, what: &str) -> Error {
        Error::io(
            format!("{what} on missing member {}", self.member.0),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        )
    }
}

impl Medium for Absent {
    fn len(&self) -> u64 {
        0
    }

    fn member(&self) -> MemberId {
        self.member
    }

    fn write(&self, _offset: u64, _data: &[u8]) -> Result<()> {
        Err(self.missing("write"))
    }

    fn store_u64(&self, _offset: u64, _value: u64) -> Result<()> {
        Err(self.missing("store"))
    }

    fn flush(&self, _offset: u64, _len: u64) -> Result<()> {
        Err(self.missing("flush"))
    }

    fn fence(&self, _site: FenceSite) -> Result<()> {
        Err(self.missing("fence"))
    }

    fn read(
        &self,
        _offset: u64,
        _dst: &mut [u8],
        _register: &mut ErrorRegister,
        _domain: Domain,
    ) -> Result<()> {
        Err(self.missing("read"))
    }

    /// Succeeds without doing anything: a set grows its replicas when it is made, and a missing
    /// member is marked stale right after.
    fn grow(&self, _new_len: u64) -> Result<()> {
        Ok(())
    }
}
