//! The server's error type, and the mapping of engine errors to error replies whose first word
//! a client can parse: `MEDIA`, `CORRUPT`, `FAILED`, `OOM`, `READONLY`, `CONFLICT`, `ERR`.
//!
//! INVARIANT: an engine error becomes a reply on its connection; the server keeps serving.

use mcstore_engine::{Domain, Error};

use crate::reply::Reply;

/// Errors of the server itself (binding, serving, closing the store).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Socket setup or accept failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Closing the store at shutdown failed.
    #[error("closing the store: {0}")]
    Close(#[source] Error),
}

impl ServerError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ServerError::Io { context: context.into(), source }
    }
}

fn domain_name(domain: Domain) -> &'static str {
    match domain {
        Domain::User => "user",
        Domain::Engine => "engine",
    }
}

fn key_text(key: Option<&[u8]>) -> String {
    match key {
        Some(key) => key.escape_ascii().to_string(),
        None => "-".to_string(),
    }
}

impl From<Error> for Reply {
    fn from(error: Error) -> Reply {
        match &error {
            Error::Media { domain, member, offset, len, key } => Reply::error(
                "MEDIA",
                format!(
                    "{} member {} offset {offset} len {len} key {}",
                    domain_name(*domain),
                    member.0,
                    key_text(key.as_deref())
                ),
            ),
            Error::Corrupt { offset, key, reason, .. } => Reply::error(
                "CORRUPT",
                format!("offset {offset} key {}: {reason}", key_text(key.as_deref())),
            ),
            Error::Failed { reason } => Reply::error("FAILED", format!("store latched: {reason}")),
            Error::OutOfSpace { .. } => Reply::error("OOM", error.to_string()),
            Error::ReadOnly => Reply::error("READONLY", error.to_string()),
            Error::Conflict { .. } => Reply::error("CONFLICT", error.to_string()),
            _ => Reply::err(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use mcstore_engine::MemberId;

    use super::*;

    #[test]
    fn media_errors_name_domain_member_range_and_key() {
        let error = Error::Media {
            domain: Domain::User,
            member: MemberId(1),
            offset: 4096,
            len: 64,
            key: Some(b"k\r\n1".to_vec()),
        };
        assert_eq!(
            Reply::from(error),
            Reply::Error("MEDIA user member 1 offset 4096 len 64 key k\\r\\n1".into())
        );
        let failed = Reply::from(Error::Failed { reason: "persist".into() });
        assert_eq!(failed, Reply::Error("FAILED store latched: persist".into()));
        let full = Reply::from(Error::OutOfSpace { needed: 1, pool_bytes: 2, max_bytes: 2 });
        assert!(matches!(full, Reply::Error(text) if text.starts_with("OOM out of space")));
        assert!(
            matches!(Reply::from(Error::ReadOnly), Reply::Error(t) if t.starts_with("READONLY"))
        );
    }
}
