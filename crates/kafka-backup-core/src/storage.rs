//! Backup storage over `object_store`: one `Arc<dyn ObjectStore>` plus a root prefix, with the
//! few operations the engine needs. Writes are atomic (local: staged file, fsync, rename or hard
//! link) and `put_new` is conditional, so two runs writing the same object fail loudly.

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::config::StorageConfig;

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
    /// The store could not be opened.
    #[error("cannot open storage {store}: {reason}")]
    Open {
        /// Store description.
        store: String,
        /// Why.
        reason: String,
    },
}

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
    store: Arc<dyn ObjectStore>,
    root: Option<Path>,
    description: String,
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
        }
    }

    /// A local directory, created if missing. Writes are fsynced.
    pub fn filesystem(path: &FsPath, prefix: &str) -> Result<Self, StorageError> {
        let description = path.display().to_string();
        let open_error = |reason: String| StorageError::Open { store: description.clone(), reason };
        std::fs::create_dir_all(path).map_err(|e| open_error(e.to_string()))?;
        let local = LocalFileSystem::new_with_prefix(path).map_err(|e| open_error(e.to_string()))?.with_fsync(true);
        Ok(Self::new(Arc::new(local), prefix, description))
    }

    /// An existing local directory (for commands that only read: a typo must not create one).
    pub fn existing_directory(path: &FsPath) -> Result<Self, StorageError> {
        if !path.is_dir() {
            return Err(StorageError::Open { store: path.display().to_string(), reason: "no such directory".into() });
        }
        Self::filesystem(path, "")
    }

    /// Wraps any object store (used by tests with an in-memory store).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str, description: String) -> Self {
        let prefix = prefix.trim_matches('/');
        let root = (!prefix.is_empty()).then(|| Path::from(prefix));
        let description = if prefix.is_empty() { description } else { format!("{description}/{prefix}") };
        Self { store, root, description }
    }

    /// The same storage with `child` appended to the root (e.g. one backup's directory).
    pub fn child(&self, child: &str) -> Self {
        let root = self.path(child);
        Self { store: self.store.clone(), description: format!("{}/{child}", self.description), root: Some(root) }
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

    fn relative(&self, path: &Path) -> String {
        let full = path.to_string();
        match &self.root {
            Some(root) => full.strip_prefix(&format!("{root}/")).unwrap_or(&full).to_string(),
            None => full,
        }
    }

    fn failed(&self, operation: &'static str, key: &str, source: object_store::Error) -> StorageError {
        match source {
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

    /// Writes `key` only if it does not exist yet.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
        self.store
            .put_opts(&self.path(key), PutPayload::from_bytes(data), options)
            .await
            .map(|_| ())
            .map_err(|e| self.failed("write", key, e))
    }

    /// Writes `key`, replacing any previous version atomically.
    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        self.store
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(|e| self.failed("write", key, e))
    }

    /// Reads all of `key`.
    pub async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        let result = self.store.get(&self.path(key)).await.map_err(|e| self.failed("read", key, e))?;
        result.bytes().await.map_err(|e| self.failed("read", key, e))
    }

    /// Size of `key`, `None` if it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.store.head(&self.path(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.failed("stat", key, e)),
        }
    }

    /// Deletes `key` (used only to clear an incomplete object left by a crash).
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.store.delete(&self.path(key)).await.map_err(|e| self.failed("delete", key, e))
    }

    /// Every object under `prefix` (recursively), keys relative to the root, sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, StorageError> {
        let path = self.path(prefix.trim_end_matches('/'));
        let mut objects: Vec<ListedObject> = self
            .store
            .list(Some(&path))
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn conformance(store: BackupStore) {
        store.put_new("a/b/one", Bytes::from_static(b"1")).await.unwrap();
        let again = store.put_new("a/b/one", Bytes::from_static(b"2")).await.unwrap_err();
        assert!(matches!(again, StorageError::AlreadyExists { .. }), "{again}");
        assert_eq!(store.get("a/b/one").await.unwrap(), Bytes::from_static(b"1"));
        store.put("a/b/one", Bytes::from_static(b"22")).await.unwrap();
        assert_eq!(store.size("a/b/one").await.unwrap(), Some(2));
        assert_eq!(store.size("a/b/missing").await.unwrap(), None);
        assert!(matches!(store.get("nope").await, Err(StorageError::NotFound { .. })));
        store.put_new("a/c=1/two", Bytes::from_static(b"xyz")).await.unwrap();
        let listed = store.list("a").await.unwrap();
        assert_eq!(
            listed,
            vec![ListedObject { key: "a/b/one".into(), size: 2 }, ListedObject { key: "a/c=1/two".into(), size: 3 }]
        );
        assert_eq!(store.list_children().await.unwrap(), vec!["a".to_string()]);
        let child = store.child("a");
        assert_eq!(child.get("b/one").await.unwrap(), Bytes::from_static(b"22"));
        child.delete("b/one").await.unwrap();
        assert_eq!(store.size("a/b/one").await.unwrap(), None);
    }

    #[tokio::test]
    async fn memory_store_conforms() {
        conformance(BackupStore::open(&StorageConfig::Memory { prefix: "p".into() }).unwrap()).await;
    }

    #[tokio::test]
    async fn filesystem_store_conforms_and_leaves_no_staging_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::Filesystem { path: dir.path().join("root"), prefix: "pre/fix".into() };
        conformance(BackupStore::open(&config).unwrap()).await;
        let mut files = Vec::new();
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        let names: Vec<_> = files.iter().map(|f| f.strip_prefix(dir.path()).unwrap().display().to_string()).collect();
        assert_eq!(names, vec!["root/pre/fix/a/c=1/two"]);
    }
}
