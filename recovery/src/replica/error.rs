//! Why a replica set is refused. Damage inside the log is not here (the scan reports it); these
//! are members that do not belong, are missing, or cannot be read at all.

use mcstore_pmem::MemberId;

use crate::format::Uuid;

/// Errors of creating and opening replica sets.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// A member carries another replica set's uuid.
    #[error("member {}: belongs to replica set {found}, not {expected}", member.0)]
    ForeignMember {
        /// The member slot it was given in.
        member: MemberId,
        /// The set's uuid.
        expected: Uuid,
        /// The member's.
        found: Uuid,
    },
    /// A member of this set given in the wrong position (or another member's copy).
    #[error("member {}: holds member {found_index} (pool {found_pool}) of this set", member.0)]
    MisplacedMember {
        /// The member slot it was given in.
        member: MemberId,
        /// The member index its superblock carries.
        found_index: u32,
        /// Its pool uuid.
        found_pool: Uuid,
    },
    /// A member the set table lists was not given, or cannot be read.
    #[error("member {} is missing: {reason}", member.0)]
    MissingMember {
        /// The member.
        member: MemberId,
        /// Why (not given, unreadable superblock ...).
        reason: String,
    },
    /// More members were given than the set has.
    #[error("the set has {expected} members, {given} were given")]
    TooManyMembers {
        /// Members in the set table.
        expected: usize,
        /// Members given.
        given: usize,
    },
    /// A member's segment geometry differs from the primary's.
    #[error("member {}: segment geometry differs from the primary's", member.0)]
    GeometryMismatch {
        /// The member.
        member: MemberId,
    },
    /// No member holds a readable set-state table (not a replica set, or all copies damaged).
    #[error("no readable set-state table on any member: {reason}")]
    NoSetTable {
        /// What was found instead.
        reason: String,
    },
    /// The recovery layer refused (format, damage, medium).
    #[error(transparent)]
    Recovery(#[from] crate::Error),
    /// The device layer failed.
    #[error("medium: {0}")]
    Pmem(#[from] mcstore_pmem::Error),
}

impl ReplicaError {
    /// The member the error is about, if any.
    pub fn member(&self) -> Option<MemberId> {
        match self {
            ReplicaError::ForeignMember { member, .. }
            | ReplicaError::MisplacedMember { member, .. }
            | ReplicaError::MissingMember { member, .. }
            | ReplicaError::GeometryMismatch { member } => Some(*member),
            _ => None,
        }
    }
}
