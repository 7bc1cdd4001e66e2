//! Where backups are: a store's settings with the keys that open its encrypted backups
//! (`StoreLocation`) and one backup in it (`BackupLocation`), opened for reading or for writing.
//! The one place where keys from a config and keys given on the command line meet.

use crate::error::EngineError;
use crate::manifest::BackupManifest;
use crate::storage::{parse_storage_url, BackupStore, EncryptionKey, Keyring, StorageConfig, StorageError};

/// A store holding backups, and the keys its encrypted backups open with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
    /// The store.
    pub storage: StorageConfig,
    /// The keys new backups are encrypted with (the first) and old ones opened with; `None`: no keys.
    pub keyring: Option<Keyring>,
}

impl StoreLocation {
    /// A store with these keys.
    pub fn new(storage: StorageConfig, keyring: Option<Keyring>) -> Self {
        Self { storage, keyring }
    }

    /// The store a storage URL or directory names (`--path`), without keys.
    pub fn parse(path: &str) -> Result<Self, EngineError> {
        let storage = parse_storage_url(path).map_err(|error| EngineError::Location { detail: error.to_string() })?;
        Ok(Self::new(storage, None))
    }

    /// These keys as well, after the ones it has (the first key stays the one new backups use).
    pub fn with_keys(self, given: Vec<EncryptionKey>) -> Result<Self, EngineError> {
        let mut keys = self.keyring.map(Keyring::into_keys).unwrap_or_default();
        keys.extend(given);
        if keys.is_empty() {
            return Ok(Self { keyring: None, ..self });
        }
        let primary = keys.remove(0);
        let keyring = Keyring::new(primary, keys).map_err(|detail| EngineError::Location { detail })?;
        Ok(Self { keyring: Some(keyring), ..self })
    }

    /// Opens the store to read (and add records beside the backups): a local directory must
    /// exist, so that a typo is an error rather than an empty store.
    pub fn open_for_reading(&self) -> Result<BackupStore, StorageError> {
        Ok(BackupStore::open_existing(&self.storage)?.with_encryption(self.keyring.clone()))
    }

    /// Opens the store that runs write backups to (created if it is a local directory), refusing
    /// one that ignores conditional writes.
    pub async fn open_for_writing(&self) -> Result<BackupStore, StorageError> {
        Ok(BackupStore::open_for_writing(&self.storage).await?.with_encryption(self.keyring.clone()))
    }

    /// Backup `backup_id` in this store.
    pub fn backup(&self, backup_id: &str) -> BackupLocation {
        BackupLocation { store: self.clone(), backup_id: backup_id.to_string() }
    }
}

/// One backup: its store, keys and id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLocation {
    /// The store holding it, with its keys.
    pub store: StoreLocation,
    /// The backup's id: its directory under the store's root.
    pub backup_id: String,
}

impl BackupLocation {
    /// Opens the backup's directory to read it (see [`StoreLocation::open_for_reading`]).
    pub fn open_for_reading(&self) -> Result<BackupStore, StorageError> {
        Ok(self.store.open_for_reading()?.child(&self.backup_id))
    }

    /// Opens the backup's directory to write to it (see [`StoreLocation::open_for_writing`]).
    pub async fn open_for_writing(&self) -> Result<BackupStore, StorageError> {
        Ok(self.store.open_for_writing().await?.child(&self.backup_id))
    }

    /// Opens the backup to read it, with its manifest; an error saying there is no such backup
    /// when it has none.
    pub async fn open_existing(&self) -> Result<(BackupStore, BackupManifest), EngineError> {
        let store = self.open_for_reading()?;
        let manifest = self.manifest(&store).await?;
        Ok((store, manifest))
    }

    /// The manifest of this backup, opened as `store`; an error saying there is no such backup
    /// when it has none.
    pub async fn manifest(&self, store: &BackupStore) -> Result<BackupManifest, EngineError> {
        load_manifest(store, &self.backup_id).await
    }
}

/// The manifest of backup `backup_id`, whose directory `store` is opened on; an error saying there
/// is no such backup when it has none.
pub async fn load_manifest(store: &BackupStore, backup_id: &str) -> Result<BackupManifest, EngineError> {
    BackupManifest::load(store).await?.ok_or_else(|| EngineError::NoBackup {
        backup_id: backup_id.to_string(),
        location: store.description().trim_end_matches(&format!("/{backup_id}")).to_string(),
    })
}
