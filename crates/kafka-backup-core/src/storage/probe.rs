//! The check that a store honours conditional writes before runs write to it: some S3-compatible
//! stores ignore `If-None-Match` and would let two runs overwrite each other.

use bytes::Bytes;

use super::{BackupStore, StorageError};

impl BackupStore {
    /// Creates one probe object twice (the second create must fail) and deletes it: an error
    /// naming the store and the opt-in when the store ignores conditional writes.
    pub async fn check_conditional_writes(&self) -> Result<(), StorageError> {
        let key = format!("_probe/conditional-write-{:016x}", fastrand::u64(..));
        self.put_new(&key, Bytes::from_static(b"first")).await?;
        let second = self.put_new(&key, Bytes::from_static(b"second")).await;
        self.delete(&key).await?;
        match second {
            Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(other) => Err(other),
            Ok(()) => Err(StorageError::UnconditionalWrites { store: self.description.clone() }),
        }
    }
}
