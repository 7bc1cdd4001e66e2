//! What a storage call can fail with (`StorageError`, naming the operation, the object and the
//! store), and which `object_store` failures the retry policy may retry (`InterruptedCall`).

use object_store::client::{HttpError, HttpErrorKind};

use crate::retry::Retriable;

/// A storage call that failed, naming the operation and the object.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{key} does not exist in {store}")]
    NotFound {
        /// Object key.
        key: String,
        /// Store description.
        store: String,
    },
    /// A conditional write found the object already there.
    #[error("{key} already exists in {store}")]
    AlreadyExists {
        /// Object key.
        key: String,
        /// Store description.
        store: String,
    },
    /// Any other failure.
    #[error("storage {operation} of {key} in {store} failed: {source}")]
    Failed {
        /// What was attempted.
        operation: &'static str,
        /// Object key.
        key: String,
        /// Store description.
        store: String,
        /// Underlying error (boxed: object_store errors are large).
        source: Box<object_store::Error>,
    },
    /// An object of an encrypted backup does not open: altered, truncated, moved, or not sealed.
    #[error("cannot decrypt {key} in {store}: {reason}")]
    Unreadable {
        /// Object key.
        key: String,
        /// Store description.
        store: String,
        /// Why.
        reason: String,
    },
    /// A backup is encrypted with a key that was not given.
    #[error(
        "backup {backup} in {store} is encrypted with the key of id {key_id}, and {given}: give that key \
         (storage.encryption key_file/key_env, or additional_keys for an older key; \
         --encryption-key-file/--encryption-key-env on the command line)"
    )]
    Locked {
        /// Backup id.
        backup: String,
        /// Store description.
        store: String,
        /// Id of the key the backup needs.
        key_id: String,
        /// Which keys were given.
        given: String,
    },
    /// A cloud store could not be set up from its settings.
    #[error("cannot open storage {store}: {reason}")]
    Open {
        /// Store description.
        store: String,
        /// Why (the backend's own words).
        reason: String,
    },
    /// A command that only reads was pointed at a local directory that does not exist.
    #[error("cannot open storage {store}: no such directory")]
    NoDirectory {
        /// The directory.
        store: String,
    },
    /// A local directory could not be created or used.
    #[error("cannot use the directory {store}: {source}")]
    Directory {
        /// The directory.
        store: String,
        /// What the filesystem said.
        source: std::io::Error,
    },
    /// A write found no bucket or container.
    #[error("writing {key} to {store} found no bucket or container: create it first ({source})")]
    NoBucket {
        /// Object key.
        key: String,
        /// Store description.
        store: String,
        /// Underlying error.
        source: Box<object_store::Error>,
    },
    /// The store overwrote an object a conditional create should have refused.
    #[error(
        "storage {store} ignores conditional writes (If-None-Match): two runs with one backup_id could overwrite \
         each other's data; use a store that honours them, or set storage.allow_unconditional_writes: true to \
         accept that risk"
    )]
    UnconditionalWrites {
        /// Store description.
        store: String,
    },
    /// What an interrupted run left behind could not be cleaned up.
    #[error("cleaning up {what} left by an interrupted run in {store} failed: {reason}")]
    Cleanup {
        /// Store description.
        store: String,
        /// What was being cleaned.
        what: String,
        /// Why.
        reason: String,
    },
    /// A backup's encryption cannot be set up as asked.
    #[error("backup directory {store}: {reason}")]
    Encryption {
        /// Store description.
        store: String,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// An `object_store` error as the retry policy sees it: retriable when the request was sent and
/// its answer never came (timeout, interrupted or refused connection).
pub(crate) struct InterruptedCall(pub(crate) object_store::Error);

impl std::fmt::Display for InterruptedCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Retriable for InterruptedCall {
    fn is_retriable(&self) -> bool {
        let mut source = std::error::Error::source(&self.0);
        while let Some(error) = source {
            if let Some(http) = error.downcast_ref::<HttpError>() {
                return matches!(
                    http.kind(),
                    HttpErrorKind::Timeout
                        | HttpErrorKind::Interrupted
                        | HttpErrorKind::Connect
                        | HttpErrorKind::Request
                );
            }
            source = error.source();
        }
        false
    }

    fn gave_up(self, _attempts: u32, _elapsed: std::time::Duration) -> Self {
        self
    }
}
