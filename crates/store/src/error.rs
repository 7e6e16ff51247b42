//! What can go wrong, kept apart by what the caller does about it: retry later
//! (`Unavailable`), re-list (`Compacted`), or tell the user (the rest).

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached; the operation did not happen or its outcome is
    /// unknown (etcd: the client retries other endpoints first).
    #[error("the store at {endpoints} cannot be reached: {source}; check that etcd runs there and that this host can reach it")]
    Unavailable {
        endpoints: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// History before `compact_revision` is gone: read the current state again.
    #[error("revision {requested} is compacted (the store keeps history from {compact_revision} on): list again")]
    Compacted {
        requested: i64,
        compact_revision: i64,
    },
    #[error("lease {0:x} does not exist (it expired or was revoked)")]
    LeaseNotFound(i64),
    /// The backend refused the request (a bug of ours, or limits such as etcd's request size).
    #[error("the store refused the request: {0}")]
    Rejected(String),
}
