//! What a [`super::PoolSet`] is told at construction: how to treat a failing member, and the
//! hook that makes the member-specific prefix (superblocks) differ per member.
//!
//! INVARIANT: a [`MemberRewrite`] returns exactly as many bytes as it was given, so lockstep
//! writes keep every member's layout identical outside what the hook changes.

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::medium::MemberId;

/// What the set does when a replica's write, store, flush, fence or grow fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MemberFailure {
    /// Mark the member stale, stop writing to it, and carry on degraded (reported through
    /// [`super::PoolSet::stale_events`] and the member states).
    #[default]
    MarkStale,
    /// Mark the member stale and fail the operation with the member's error.
    FailWrite,
}

/// Bytes that differ per member (each member's superblock carries its own index, uuid and
/// state). Writes into `[0, private_end())` and repairs of pages there are passed through
/// [`MemberRewrite::rewrite`] for each member instead of being byte-copied.
pub trait MemberRewrite: Send + Sync {
    /// End of the member-specific prefix.
    fn private_end(&self) -> u64;

    /// The bytes `target` must hold for `bytes` destined to `[offset, offset + bytes.len())`,
    /// a range inside the private prefix (bytes written for, or read from, another member). An
    /// `Err` refuses the copy (the bytes do not decode).
    fn rewrite(&self, target: MemberId, offset: u64, bytes: &[u8]) -> Result<Vec<u8>>;
}

/// Options of [`super::PoolSet::new`].
#[derive(Clone, Default)]
pub struct PoolSetOptions {
    /// What a failing replica does to the operation (default: mark stale and carry on).
    pub on_member_failure: MemberFailure,
    /// The member-specific prefix, if the layer above has one.
    pub rewrite: Option<Arc<dyn MemberRewrite>>,
}

impl PoolSetOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Set what a failing replica does (by value).
    pub fn on_member_failure(mut self, failure: MemberFailure) -> Self {
        self.on_member_failure = failure;
        self
    }

    /// Set the member-specific prefix hook (by value).
    pub fn rewrite(mut self, rewrite: Arc<dyn MemberRewrite>) -> Self {
        self.rewrite = Some(rewrite);
        self
    }
}

impl fmt::Debug for PoolSetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolSetOptions")
            .field("on_member_failure", &self.on_member_failure)
            .field("rewrite", &self.rewrite.as_ref().map(|r| r.private_end()))
            .finish()
    }
}
