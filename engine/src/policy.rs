//! The commit barrier's policy: what an operation does when its deferred error register is not
//! clean (or a record does not verify), per domain. The table read site → domain → fallback is
//! in `docs/policy.md`.
//!
//! INVARIANT: `Latch` exists only for the Engine domain (the types forbid it for User data).

use std::fmt;
use std::sync::Arc;

use mcstore_pmem::{Domain, MemberId};

/// What happens to an operation that read bad bytes of a caller's data (the User domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UserFallback {
    /// The operation returns `Error::Media` (or `Error::Corrupt`) naming the key; nothing is
    /// committed; the store carries on.
    #[default]
    Fail,
    /// Call the policy's halt hook with a report, then `std::process::abort()`.
    Halt,
}

/// What happens when the store's own bytes (superblocks, segment headers, the log at recovery)
/// are bad (the Engine domain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EngineFallback {
    /// The operation (or `open`) returns the error; the store carries on.
    Fail,
    /// Call the halt hook, then `abort()`; during `open`, return `Err` with the report instead.
    Halt,
    /// Enter the sticky failed state: every later call returns `Error::Failed` until reopened.
    #[default]
    Latch,
}

/// The policy of one domain: retry from a replica first, then the fallback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainPolicy<F> {
    /// Retry the read from a replica (and repair the primary) before falling back. No replicas
    /// exist yet, so today this finds nothing to retry from and goes straight to the fallback.
    pub retry_replica: bool,
    /// What to do when no good copy was found.
    pub fallback: F,
}

impl<F: Default> Default for DomainPolicy<F> {
    fn default() -> Self {
        Self { retry_replica: true, fallback: F::default() }
    }
}

/// What the halt hook is told before the process aborts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HaltReport {
    /// Whose bytes were bad.
    pub domain: Domain,
    /// Which member of the pool set.
    pub member: MemberId,
    /// Start of the bad range, in bytes from the start of the member.
    pub offset: u64,
    /// Length of the bad range.
    pub len: u64,
    /// The key of the operation, if it had one.
    pub key: Option<Vec<u8>>,
    /// What was being done (the read site, see `docs/policy.md`).
    pub site: &'static str,
}

impl fmt::Display for HaltReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mcstore halting: bad {:?}-domain bytes at member {} offset {} (+{}) during {}",
            self.domain, self.member.0, self.offset, self.len, self.site
        )?;
        if let Some(key) = &self.key {
            write!(f, " (key {})", key.escape_ascii())?;
        }
        Ok(())
    }
}

/// The hook `Halt` calls before aborting.
pub type HaltHook = Arc<dyn Fn(&HaltReport) + Send + Sync>;

/// Per-domain policy of the commit barrier. Defaults: User → retry, then `Fail`; Engine →
/// retry, then `Latch`. A library must not kill its host by default.
#[derive(Clone, Default)]
pub struct Policy {
    /// Bytes read for a caller's operation.
    pub user: DomainPolicy<UserFallback>,
    /// Bytes the store depends on.
    pub engine: DomainPolicy<EngineFallback>,
    /// Called by `Halt` before `abort()`; when unset, the report goes to standard error.
    pub on_halt: Option<HaltHook>,
}

impl Policy {
    /// Set the User domain's policy (by-value builder).
    #[must_use]
    pub fn user(mut self, retry_replica: bool, fallback: UserFallback) -> Self {
        self.user = DomainPolicy { retry_replica, fallback };
        self
    }

    /// Set the Engine domain's policy (by-value builder).
    #[must_use]
    pub fn engine(mut self, retry_replica: bool, fallback: EngineFallback) -> Self {
        self.engine = DomainPolicy { retry_replica, fallback };
        self
    }

    /// Set the hook `Halt` calls before aborting.
    #[must_use]
    pub fn on_halt(mut self, hook: impl Fn(&HaltReport) + Send + Sync + 'static) -> Self {
        self.on_halt = Some(Arc::new(hook));
        self
    }

    /// Run the halt hook (or print the report) and abort the process. Never returns.
    pub(crate) fn halt(&self, report: &HaltReport) -> ! {
        match &self.on_halt {
            Some(hook) => hook(report),
            None => eprintln!("{report}"),
        }
        std::process::abort()
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("user", &self.user)
            .field("engine", &self.engine)
            .field("on_halt", &self.on_halt.as_ref().map(|_| "Fn(&HaltReport)"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_retry_then_fail_and_retry_then_latch() {
        let policy = Policy::default();
        assert_eq!(policy.user, DomainPolicy { retry_replica: true, fallback: UserFallback::Fail });
        assert_eq!(
            policy.engine,
            DomainPolicy { retry_replica: true, fallback: EngineFallback::Latch }
        );
        assert!(policy.on_halt.is_none());
    }

    #[test]
    fn builder_sets_each_domain() {
        let policy = Policy::default()
            .user(false, UserFallback::Halt)
            .engine(false, EngineFallback::Fail)
            .on_halt(|_| {});
        assert_eq!(policy.user.fallback, UserFallback::Halt);
        assert!(!policy.engine.retry_replica);
        assert_eq!(policy.engine.fallback, EngineFallback::Fail);
        assert!(format!("{policy:?}").contains("Fn(&HaltReport)"));
    }

    #[test]
    fn halt_report_names_the_key() {
        let report = HaltReport {
            domain: Domain::User,
            member: MemberId(0),
            offset: 4096,
            len: 64,
            key: Some(b"k\x01".to_vec()),
            site: "get",
        };
        let text = report.to_string();
        assert!(text.contains("offset 4096"), "{text}");
        assert!(text.contains("key k\\x01"), "{text}");
    }
}
