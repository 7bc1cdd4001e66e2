//! Backup storage over `object_store`: one `Arc<dyn ObjectStore>` plus a root prefix, with the
//! few operations the engine needs. Writes are atomic (local: staged file, fsync, rename or hard
//! link; cloud: one PUT) and `put_new` is conditional, so two runs writing the same object fail
//! loudly. The objects of an encrypted backup are sealed and opened here (see `encryption`).

mod cloud;
mod encryption;
mod error;
mod keys;
mod leftovers;
mod location;
mod probe;
mod s3_uploads;
mod sealed;
mod writer;

pub use keys::{DataKeyRecord, EncryptionKey, Keyring, ALGORITHM as ENCRYPTION_ALGORITHM};

use encryption::{BackupKeys, EncryptionFailure};

pub(crate) use error::InterruptedCall;
pub use error::StorageError;
pub use location::{
    parse_storage_url, CloudConfig, CloudCredentials, CloudProvider, ServerSideEncryption, StorageConfig,
    StorageUrlError, STORAGE_URL_FORMS,
};
pub use writer::ObjectWriter;

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::metrics::{metrics, Timer};
use crate::retry::RetryPolicy;

/// An object found by [`BackupStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Key relative to the store root.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// A storage location holding backups.
#[derive(Clone)]
pub struct BackupStore {
    /// The store every call goes through: `raw` behind the encryption wrapper.
    store: Arc<dyn ObjectStore>,
    /// The store as it is.
    raw: Arc<dyn ObjectStore>,
    root: Option<Path>,
    /// The root the store was opened at (backups are the folders below it).
    base: Option<Path>,
    description: String,
    /// Keys of encrypted backups (shared by the clones and children of one opened store).
    keys: Arc<BackupKeys>,
    /// Attributes of every object written (a cloud storage class).
    attributes: Attributes,
    /// A cloud store retries a failed conditional PUT itself; the retry of a write that had in
    /// fact succeeded reports "already exists", so such a report is checked against the content.
    confirm_existing_writes: bool,
    /// The user accepted a store without conditional writes.
    allow_unconditional_writes: bool,
    /// Retries of a conditional write whose answer was lost (cloud stores only, see [`put_new`]).
    create_retries: Option<RetryPolicy>,
    /// The directory the root maps to, for a local store.
    local_root: Option<std::path::PathBuf>,
    /// An S3 bucket's unfinished multipart uploads.
    s3_uploads: Option<Arc<s3_uploads::S3Uploads>>,
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl BackupStore {
    /// Opens the store a config names; a filesystem root is created if missing.
    pub fn open(config: &StorageConfig) -> Result<Self, StorageError> {
        match config {
            StorageConfig::Filesystem { path, prefix } => Self::filesystem(path, prefix),
            StorageConfig::Memory { prefix } => Ok(Self::new(Arc::new(InMemory::new()), prefix, "memory".into())),
            StorageConfig::Cloud(cloud) => {
                let description = cloud.describe();
                let (store, uploads) =
                    cloud::open(cloud).map_err(|reason| StorageError::Open { store: description.clone(), reason })?;
                let mut opened = Self::new(store, &cloud.prefix, description);
                opened.s3_uploads = uploads.map(Arc::new);
                opened.attributes = cloud::put_attributes(cloud);
                opened.confirm_existing_writes = true;
                opened.allow_unconditional_writes = cloud.allow_unconditional_writes;
                opened.create_retries = Some(RetryPolicy { deadline: cloud.retry_timeout, ..RetryPolicy::default() });
                Ok(opened)
            }
        }
    }

    /// Opens a store for reading only: a local directory must exist (a typo must not create one).
    pub fn open_existing(config: &StorageConfig) -> Result<Self, StorageError> {
        match config {
            StorageConfig::Filesystem { path, .. } if !path.is_dir() => {
                Err(StorageError::NoDirectory { store: path.display().to_string() })
            }
            config => Self::open(config),
        }
    }

    /// Opens a store that runs will write to, and checks that it honours conditional writes:
    /// some S3-compatible stores ignore `If-None-Match` and would let two runs overwrite each other.
    pub async fn open_for_writing(config: &StorageConfig) -> Result<Self, StorageError> {
        let store = Self::open(config)?;
        if store.confirm_existing_writes && !store.allow_unconditional_writes {
            store.check_conditional_writes().await?;
        }
        Ok(store)
    }

    /// A local directory, created if missing. Writes are fsynced.
    pub fn filesystem(path: &FsPath, prefix: &str) -> Result<Self, StorageError> {
        let description = path.display().to_string();
        let unusable = |source: std::io::Error| StorageError::Directory { store: description.clone(), source };
        std::fs::create_dir_all(path).map_err(unusable)?;
        let local = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| unusable(std::io::Error::other(e.to_string())))?
            .with_fsync(true);
        let mut store = Self::new(Arc::new(local), prefix, description);
        store.local_root = Some(path.join(prefix.trim_matches('/')));
        // Wrapped again: a local directory's upload parts are smaller.
        Ok(store.with_encryption(None))
    }

    /// An existing local directory (for commands that only read: a typo must not create one).
    pub fn existing_directory(path: &FsPath) -> Result<Self, StorageError> {
        Self::open_existing(&StorageConfig::Filesystem { path: path.to_path_buf(), prefix: String::new() })
    }

    /// Wraps any object store (used by tests with an in-memory store).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, description: String) -> Self {
        let prefix = prefix.trim_matches('/');
        let root = (!prefix.is_empty()).then(|| Path::from(prefix));
        let description = if prefix.is_empty() { description } else { format!("{description}/{prefix}") };
        let keys = Arc::new(BackupKeys::new(store.clone(), root.clone(), None));
        let opened = Self {
            store: store.clone(),
            raw: store,
            base: root.clone(),
            root,
            description,
            keys,
            attributes: Attributes::new(),
            confirm_existing_writes: false,
            allow_unconditional_writes: false,
            create_retries: None,
            local_root: None,
            s3_uploads: None,
        };
        opened.with_encryption(None)
    }

    /// The same storage with `child` appended to the root (e.g. one backup's directory).
    pub fn child(&self, child: &str) -> Self {
        let root = self.path(child);
        Self {
            description: format!("{}/{child}", self.description),
            root: Some(root),
            local_root: self.local_root.as_ref().map(|dir| dir.join(child)),
            ..self.clone()
        }
    }

    /// Human-readable location, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    fn path(&self, key: &str) -> Path {
        match &self.root {
            Some(root) => Path::from(format!("{root}/{key}")),
            None => Path::from(key),
        }
    }

    fn root_path(&self) -> Path {
        self.root.clone().unwrap_or_default()
    }

    fn relative(&self, path: &Path) -> String {
        let full = path.to_string();
        match &self.root {
            Some(root) => full.strip_prefix(&format!("{root}/")).unwrap_or(&full).to_string(),
            None => full,
        }
    }

    /// Runs one storage call, timed; a failure other than a missing or existing object is counted.
    async fn observed<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, StorageError>>,
    ) -> Result<T, StorageError> {
        let timer = Timer::start();
        let result = call.await;
        timer.observe(&metrics().storage_seconds, operation);
        let kind = match &result {
            Err(StorageError::Failed { .. }) => "request",
            Err(StorageError::Unreadable { .. }) => "unreadable",
            Err(StorageError::Locked { .. }) => "locked",
            Err(
                StorageError::Open { .. }
                | StorageError::NoDirectory { .. }
                | StorageError::Directory { .. }
                | StorageError::NoBucket { .. }
                | StorageError::UnconditionalWrites { .. }
                | StorageError::Cleanup { .. }
                | StorageError::Encryption { .. },
            ) => "open",
            _ => return result,
        };
        metrics().storage_errors.with_label_values(&[operation, kind]).inc();
        result
    }

    fn failed(&self, operation: &'static str, key: &str, source: object_store::Error) -> StorageError {
        if let object_store::Error::Generic { source: inner, .. } = &source {
            match inner.downcast_ref::<EncryptionFailure>() {
                Some(EncryptionFailure::Locked { backup, key_id, given }) => {
                    return StorageError::Locked {
                        backup: backup.clone(),
                        store: self.description.clone(),
                        key_id: key_id.clone(),
                        given: given.clone(),
                    }
                }
                Some(EncryptionFailure::KeyRecord { record, reason }) => {
                    return StorageError::Unreadable {
                        key: record.clone(),
                        store: self.description.clone(),
                        reason: reason.clone(),
                    }
                }
                Some(EncryptionFailure::Unreadable(error)) => {
                    return StorageError::Unreadable {
                        key: key.to_string(),
                        store: self.description.clone(),
                        reason: error.to_string(),
                    }
                }
                None => {}
            }
        }
        match source {
            // A write finds no object to be missing; the bucket or container is.
            object_store::Error::NotFound { .. } if operation == "write" => StorageError::NoBucket {
                key: key.to_string(),
                store: self.description.clone(),
                source: Box::new(source),
            },
            object_store::Error::NotFound { .. } => {
                StorageError::NotFound { key: key.to_string(), store: self.description.clone() }
            }
            object_store::Error::AlreadyExists { .. } => {
                StorageError::AlreadyExists { key: key.to_string(), store: self.description.clone() }
            }
            source => StorageError::Failed {
                operation,
                key: key.to_string(),
                store: self.description.clone(),
                source: Box::new(source),
            },
        }
    }

    /// Writes `key` only if it does not exist yet. `object_store` retries throttling, server
    /// errors and failed connections itself, but not a conditional PUT whose answer timed out
    /// (it is not idempotent): that one is retried here, within the store's retry deadline, and
    /// an "already exists" is then checked against the content, since it may be our own write.
    /// An object of an encrypted backup is sealed on its way (each attempt anew; "already exists"
    /// is checked against the plaintext).
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.observed("write", self.put_new_unobserved(key, data)).await
    }

    /// [`BackupStore::put_new`] without its metrics (for the streaming writer, which has its own).
    async fn put_new_unobserved(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let path = self.path(key);
        let attempt = || {
            let options =
                PutOptions { mode: PutMode::Create, attributes: self.attributes.clone(), ..PutOptions::default() };
            let payload = PutPayload::from_bytes(data.clone());
            async { self.store.put_opts(&path, payload, options).await.map_err(InterruptedCall) }
        };
        let written = match &self.create_retries {
            Some(policy) => policy.run(&format!("writing {key}"), attempt).await,
            None => attempt().await,
        };
        match written.map_err(|InterruptedCall(error)| error) {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) if self.confirm_existing_writes => {
                // Our own write, retried after a lost answer, or somebody else's object?
                match self.get_at(&path, key).await {
                    Ok(existing) if existing == data => Ok(()),
                    Ok(_) => Err(StorageError::AlreadyExists { key: key.to_string(), store: self.description.clone() }),
                    Err(error) => Err(error),
                }
            }
            Err(error) => Err(self.failed("write", key, error)),
        }
    }

    /// Writes `key`, replacing any previous version atomically.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.observed("write", async {
            let options = PutOptions { attributes: self.attributes.clone(), ..PutOptions::default() };
            self.store
                .put_opts(&self.path(key), PutPayload::from_bytes(data), options)
                .await
                .map(|_| ())
                .map_err(|e| self.failed("write", key, e))
        })
        .await
    }

    /// Reads all of `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.observed("read", self.get_at(&self.path(key), key)).await
    }

    async fn get_at(&self, path: &Path, key: &str) -> Result<Bytes, StorageError> {
        let result = self.store.get(path).await.map_err(|e| self.failed("read", key, e))?;
        result.bytes().await.map_err(|e| self.failed("read", key, e))
    }

    /// Reads the bytes `range` of `key`. Of a sealed object only the chunks covering the range are
    /// read (with its header, in parallel).
    pub async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes, StorageError> {
        self.observed("read", async {
            self.store.get_range(&self.path(key), range).await.map_err(|e| self.failed("read", key, e))
        })
        .await
    }

    /// Size of `key`, `None` if it does not exist. Of a sealed object: the size of its plaintext
    /// (known from the sealed size alone, so no key is needed).
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        self.observed("stat", async {
            match self.store.head(&self.path(key)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(self.failed("stat", key, e)),
            }
        })
        .await
    }

    /// Deletes `key` (used only to clear an incomplete object left by a crash).
    /// Deleting what is not there succeeds. A delete whose answer was lost is retried, as in
    /// [`BackupStore::put_new`] (`object_store` does not retry it: it is not a "safe" method).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.observed("delete", async {
            let path = self.path(key);
            let attempt = || async { self.store.delete(&path).await.map_err(InterruptedCall) };
            let deleted = match &self.create_retries {
                Some(policy) => policy.run(&format!("deleting {key}"), attempt).await,
                None => attempt().await,
            };
            match deleted.map_err(|InterruptedCall(error)| error) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(error) => Err(self.failed("delete", key, error)),
            }
        })
        .await
    }

    /// Every object under `prefix` (recursively), keys relative to the root, sorted. The size of
    /// a sealed object is that of its plaintext (the stored size when it is not a sealed size).
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        self.observed("list", self.list_at(&self.path(prefix.trim_end_matches('/')), prefix)).await
    }

    async fn list_at(&self, path: &Path, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        let mut objects: Vec<ListedObject> = self
            .store
            .list(Some(path))
            .map_ok(|meta| ListedObject { key: self.relative(&meta.location), size: meta.size })
            .try_collect()
            .await
            .map_err(|e| self.failed("list", prefix, e))?;
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    /// The names of the "directories" directly under the root.
    pub async fn list_children(&self) -> Result<Vec<String>, StorageError> {
        let listing =
            self.store.list_with_delimiter(self.root.as_ref()).await.map_err(|e| self.failed("list", "", e))?;
        Ok(listing.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect())
    }
}
