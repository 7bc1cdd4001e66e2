//! Which backups of a store are encrypted, and with which data key: a backup's `encryption.json` is
//! read once per process; every other object of an encrypted backup is sealed on write and opened on read.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use super::keys::{DataKeyRecord, KeyBytes, Keyring};
use super::sealed::{self, SealError};
use super::{BackupStore, StorageError};
use crate::layout::DATA_KEY_OBJECT;

/// What is known of one backup's encryption.
#[derive(Clone)]
pub(crate) enum BackupKey {
    /// Not encrypted.
    Plain,
    /// Encrypted, and its data key is unwrapped.
    Sealed { key_id: String, data_key: Arc<KeyBytes> },
    /// Encrypted with a key the process was not given.
    Locked { key_id: String },
}

/// The keys a store was opened with, and the backups' keys found so far.
#[derive(Default)]
pub(crate) struct Encryption {
    keyring: Option<Keyring>,
    backups: tokio::sync::Mutex<HashMap<String, BackupKey>>,
}

/// How an object is stored: as is, or sealed with its backup's data key, bound to its key in the backup.
pub(crate) struct Sealing {
    pub(crate) data_key: Arc<KeyBytes>,
    pub(crate) bound_to: String,
}

impl BackupStore {
    /// The same store, reading and writing with these keys: new backups are encrypted with the
    /// primary key, existing ones open with whichever key wrapped their data key.
    pub fn with_encryption(mut self, keyring: Option<Keyring>) -> Self {
        self.encryption = Arc::new(Encryption { keyring, ..Encryption::default() });
        self
    }

    /// The backup an object belongs to and its key inside it; `None` for the objects that are never
    /// sealed (the data key record, the conditional-write probe, anything outside a backup).
    fn placement(&self, key: &str) -> Option<(String, String)> {
        let full = self.path(key).to_string();
        let relative = match &self.base {
            Some(base) => full.strip_prefix(&format!("{base}/"))?.to_string(),
            None => full,
        };
        let (backup, inside) = relative.split_once('/')?;
        (backup != "_probe" && inside != DATA_KEY_OBJECT).then(|| (backup.to_string(), inside.to_string()))
    }

    /// The backup this store's root is (a store opened on one backup's directory).
    fn own_backup(&self) -> Result<String, StorageError> {
        self.placement("x").map(|(backup, _)| backup).ok_or_else(|| StorageError::Encryption {
            store: self.description.clone(),
            reason: "encryption is set up per backup: open the backup's directory".into(),
        })
    }

    async fn backup_key(&self, backup: &str) -> Result<BackupKey, StorageError> {
        let mut known = self.encryption.backups.lock().await;
        if let Some(found) = known.get(backup) {
            return Ok(found.clone());
        }
        let record_key = format!("{backup}/{DATA_KEY_OBJECT}");
        let found = match self.get_at(&self.base_path(&record_key), &record_key).await {
            Err(StorageError::NotFound { .. }) => BackupKey::Plain,
            Err(error) => return Err(error),
            Ok(bytes) => {
                let unreadable = |reason: String| StorageError::Unreadable {
                    key: record_key.clone(),
                    store: self.description.clone(),
                    reason,
                };
                let record: DataKeyRecord = serde_json::from_slice(&bytes)
                    .map_err(|error| unreadable(format!("not a valid data key record: {error}")))?;
                match &self.encryption.keyring {
                    None => BackupKey::Locked { key_id: record.key_id },
                    Some(keyring) => match record.unwrap_with(keyring).map_err(unreadable)? {
                        None => BackupKey::Locked { key_id: record.key_id },
                        Some(data_key) => BackupKey::Sealed { key_id: record.key_id, data_key: Arc::new(data_key) },
                    },
                }
            }
        };
        known.insert(backup.to_string(), found.clone());
        Ok(found)
    }

    fn locked(&self, backup: &str, key_id: &str) -> StorageError {
        let given = match &self.encryption.keyring {
            None => "no key was given".to_string(),
            Some(keyring) => format!("the keys given have the ids {}", keyring.ids().join(", ")),
        };
        StorageError::Locked {
            backup: backup.to_string(),
            store: self.description.clone(),
            key_id: key_id.to_string(),
            given,
        }
    }

    /// How `key` is stored: `None` as is, else sealed. An object of a backup whose key was not
    /// given is an error naming the key id.
    pub(crate) async fn sealing(&self, key: &str) -> Result<Option<Sealing>, StorageError> {
        let Some((backup, bound_to)) = self.placement(key) else { return Ok(None) };
        match self.backup_key(&backup).await? {
            BackupKey::Plain => Ok(None),
            BackupKey::Sealed { data_key, .. } => Ok(Some(Sealing { data_key, bound_to })),
            BackupKey::Locked { key_id } => Err(self.locked(&backup, &key_id)),
        }
    }

    /// Whether `key` lies in an encrypted backup (with or without its key): its stored size is a sealed size.
    pub(crate) async fn is_sealed(&self, key: &str) -> Result<bool, StorageError> {
        let Some((backup, _)) = self.placement(key) else { return Ok(false) };
        Ok(!matches!(self.backup_key(&backup).await?, BackupKey::Plain))
    }

    pub(crate) fn seal(&self, sealing: Option<Sealing>, data: Bytes) -> Bytes {
        match sealing {
            None => data,
            Some(s) => Bytes::from(sealed::seal(&s.data_key.0, &s.bound_to, &data)),
        }
    }

    pub(crate) fn unreadable(&self, key: &str, error: SealError) -> StorageError {
        StorageError::Unreadable { key: key.to_string(), store: self.description.clone(), reason: error.to_string() }
    }

    /// Readies this backup's directory for a backup run. With keys: a new backup gets a random data
    /// key wrapped by the primary key; one already encrypted must open with the keys given; one
    /// holding unencrypted data is refused (encryption applies to new backups). Without keys, an
    /// encrypted backup is refused. Returns the id of the key the backup is encrypted with.
    pub async fn set_up_encryption(&self, now_ms: i64) -> Result<Option<String>, StorageError> {
        let backup = self.own_backup()?;
        match (self.backup_key(&backup).await?, &self.encryption.keyring) {
            (BackupKey::Locked { key_id }, _) => Err(self.locked(&backup, &key_id)),
            (BackupKey::Sealed { key_id, .. }, _) => Ok(Some(key_id)),
            (BackupKey::Plain, None) => Ok(None),
            (BackupKey::Plain, Some(keyring)) => {
                if !self.list_at(&self.root_path(), "").await?.is_empty() {
                    return Err(StorageError::Encryption {
                        store: self.description.clone(),
                        reason: format!(
                            "backup {backup} holds data written without encryption, and encryption applies to new \
                             backups only: choose a new backup_id, or remove storage.encryption to continue this \
                             backup unencrypted"
                        ),
                    });
                }
                let (record, _) = DataKeyRecord::generate(keyring, now_ms);
                match self
                    .put_new_bytes(
                        DATA_KEY_OBJECT,
                        Bytes::from(serde_json::to_vec_pretty(&record).expect("a record serializes")),
                    )
                    .await
                {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(error) => return Err(error),
                }
                // Another run may have created it first: what is stored is what counts.
                self.encryption.backups.lock().await.remove(&backup);
                match self.backup_key(&backup).await? {
                    BackupKey::Sealed { key_id, .. } => Ok(Some(key_id)),
                    BackupKey::Locked { key_id } => Err(self.locked(&backup, &key_id)),
                    BackupKey::Plain => unreachable!("the data key record was just written"),
                }
            }
        }
    }

    /// The id of the key this backup is encrypted with, `None` if it is not encrypted (needs no key).
    pub async fn encryption_key_id(&self) -> Result<Option<String>, StorageError> {
        let backup = self.own_backup()?;
        Ok(match self.backup_key(&backup).await? {
            BackupKey::Plain => None,
            BackupKey::Sealed { key_id, .. } | BackupKey::Locked { key_id } => Some(key_id),
        })
    }

    /// Whether this backup is encrypted with a key that was not given.
    pub async fn is_locked(&self) -> Result<bool, StorageError> {
        let backup = self.own_backup()?;
        Ok(matches!(self.backup_key(&backup).await?, BackupKey::Locked { .. }))
    }
}
