//! Client-side encryption as a store wrapper, the way `object_store`'s `PrefixStore` wraps one:
//! `EncryptingStore` seals every object of an encrypted backup on its way in (whole, or part by
//! part for a multipart upload) and opens it on its way out (whole, or only the chunks a range
//! covers), and reports plaintext sizes; `BackupKeys` knows which backups are encrypted (their
//! `encryption.json`, read once per process) and with which data key.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};

use super::keys::{DataKeyRecord, KeyBytes, Keyring};
use super::sealed::{self, SealError, Sealer};
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

/// Why the wrapper refused a call; carried inside `object_store::Error::Generic` and turned back
/// into a [`StorageError`] by [`BackupStore`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncryptionFailure {
    /// The backup is encrypted with a key that was not given.
    #[error("backup {backup} is encrypted with the key of id {key_id}, and {given}")]
    Locked { backup: String, key_id: String, given: String },
    /// An object does not open (altered, cut, moved, or not sealed).
    #[error("{0}")]
    Unreadable(SealError),
    /// A backup's data key record is not readable.
    #[error("{record}: {reason}")]
    KeyRecord { record: String, reason: String },
}

fn refused(failure: EncryptionFailure) -> object_store::Error {
    object_store::Error::Generic { store: "encryption", source: Box::new(failure) }
}

/// The keys given, and each backup's encryption as found (shared by every clone and child of one
/// opened store).
pub(crate) struct BackupKeys {
    /// The store as it is, for the data key records (never sealed).
    raw: Arc<dyn ObjectStore>,
    /// The root the store was opened at: backups are its folders.
    base: Option<Path>,
    keyring: Option<Keyring>,
    backups: tokio::sync::Mutex<HashMap<String, BackupKey>>,
}

/// How an object is stored: sealed with its backup's data key, bound to its key in the backup.
pub(crate) struct Sealing {
    data_key: Arc<KeyBytes>,
    bound_to: String,
}

impl BackupKeys {
    pub(crate) fn new(raw: Arc<dyn ObjectStore>, base: Option<Path>, keyring: Option<Keyring>) -> Self {
        Self { raw, base, keyring, backups: tokio::sync::Mutex::default() }
    }

    /// The backup `path` belongs to and its key inside it; `None` for the objects that are never
    /// sealed (the data key record, the conditional-write probe, anything outside a backup).
    pub(crate) fn placement(&self, path: &Path) -> Option<(String, String)> {
        let full = path.to_string();
        let relative = match &self.base {
            Some(base) => full.strip_prefix(&format!("{base}/"))?.to_string(),
            None => full,
        };
        let (backup, inside) = relative.split_once('/')?;
        (backup != "_probe" && inside != DATA_KEY_OBJECT).then(|| (backup.to_string(), inside.to_string()))
    }

    /// What `backup`'s `encryption.json` says, read once.
    pub(crate) async fn backup_key(&self, backup: &str) -> Result<BackupKey, object_store::Error> {
        let mut known = self.backups.lock().await;
        if let Some(found) = known.get(backup) {
            return Ok(found.clone());
        }
        let record_key = format!("{backup}/{DATA_KEY_OBJECT}");
        let record_path = match &self.base {
            Some(base) => Path::from(format!("{base}/{record_key}")),
            None => Path::from(record_key.as_str()),
        };
        let found = match self.raw.get_opts(&record_path, GetOptions::default()).await {
            Err(object_store::Error::NotFound { .. }) => BackupKey::Plain,
            Err(error) => return Err(error),
            Ok(result) => {
                let bytes = result.bytes().await?;
                let unreadable =
                    |reason: String| refused(EncryptionFailure::KeyRecord { record: record_key.clone(), reason });
                let record: DataKeyRecord = serde_json::from_slice(&bytes)
                    .map_err(|error| unreadable(format!("not a valid data key record: {error}")))?;
                match &self.keyring {
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

    /// Forgets what is known of `backup` (its data key record was just written).
    pub(crate) async fn forget(&self, backup: &str) {
        self.backups.lock().await.remove(backup);
    }

    pub(crate) fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// The refusal for a backup encrypted with a key that was not given.
    pub(crate) fn locked(&self, backup: &str, key_id: &str) -> EncryptionFailure {
        let given = match &self.keyring {
            None => "no key was given".to_string(),
            Some(keyring) => format!("the keys given have the ids {}", keyring.ids().join(", ")),
        };
        EncryptionFailure::Locked { backup: backup.to_string(), key_id: key_id.to_string(), given }
    }

    /// How the object at `path` is stored: `None` as is, else sealed; an object of a backup whose
    /// key was not given is refused.
    async fn sealing(&self, path: &Path) -> Result<Option<Sealing>, object_store::Error> {
        let Some((backup, bound_to)) = self.placement(path) else { return Ok(None) };
        match self.backup_key(&backup).await? {
            BackupKey::Plain => Ok(None),
            BackupKey::Sealed { data_key, .. } => Ok(Some(Sealing { data_key, bound_to })),
            BackupKey::Locked { key_id } => Err(refused(self.locked(&backup, &key_id))),
        }
    }

    /// `meta` with the plaintext size when it lies in an encrypted backup (with or without its
    /// key: the plaintext size follows from the sealed one); `strict` refuses a size no sealed
    /// object can have.
    async fn plain_meta(&self, mut meta: ObjectMeta, strict: bool) -> Result<ObjectMeta, object_store::Error> {
        let Some((backup, _)) = self.placement(&meta.location) else { return Ok(meta) };
        if matches!(self.backup_key(&backup).await?, BackupKey::Plain) {
            return Ok(meta);
        }
        match sealed::plain_len(meta.size) {
            Some(plain) => meta.size = plain,
            None if strict => {
                return Err(refused(EncryptionFailure::Unreadable(SealError::Format(
                    "its length is not a sealed length",
                ))))
            }
            None => {}
        }
        Ok(meta)
    }
}

/// A store whose encrypted backups' objects are sealed and opened on the way through.
pub(crate) struct EncryptingStore {
    inner: Arc<dyn ObjectStore>,
    keys: Arc<BackupKeys>,
    /// The least bytes of a multipart upload's parts but the last (the store's minimum).
    min_part_bytes: usize,
}

impl EncryptingStore {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, keys: Arc<BackupKeys>, min_part_bytes: usize) -> Self {
        Self { inner, keys, min_part_bytes }
    }

    /// The plaintext `range` of a sealed object: its header and the chunks covering the range,
    /// fetched in parallel.
    async fn get_sealed_range(
        &self,
        location: &Path,
        sealing: &Sealing,
        range: Range<u64>,
        options: GetOptions,
    ) -> Result<GetResult, object_store::Error> {
        let chunks = async {
            let options = GetOptions { range: Some(GetRange::Bounded(sealed::sealed_range(&range))), ..options };
            let result = self.inner.get_opts(location, options).await?;
            let (meta, attributes, extensions) =
                (result.meta.clone(), result.attributes.clone(), result.extensions.clone());
            Ok::<_, object_store::Error>((meta, attributes, extensions, result.bytes().await?))
        };
        let header = self.inner.get_range(location, 0..sealed::HEADER_LEN);
        let (chunks, header) = tokio::join!(chunks, header);
        let ((mut meta, attributes, extensions, chunks), header) = (chunks?, header?);
        let plain =
            sealed::open_range(&sealing.data_key.0, &sealing.bound_to, &header, meta.size, range.clone(), &chunks)
                .map_err(|error| refused(EncryptionFailure::Unreadable(error)))?;
        meta.size = sealed::plain_len(meta.size).unwrap_or(meta.size);
        Ok(GetResult { payload: single(plain), meta, range, attributes, extensions })
    }
}

/// A payload of one buffer.
fn single(bytes: Bytes) -> GetResultPayload {
    GetResultPayload::Stream(stream::once(async move { Ok(bytes) }).boxed())
}

impl std::fmt::Display for EncryptingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encrypting({})", self.inner)
    }
}

impl std::fmt::Debug for EncryptingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Encrypting({:?})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for EncryptingStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        options: PutOptions,
    ) -> Result<PutResult, object_store::Error> {
        let payload = match self.keys.sealing(location).await? {
            None => payload,
            Some(s) => PutPayload::from(sealed::seal(&s.data_key.0, &s.bound_to, &Bytes::from(payload))),
        };
        self.inner.put_opts(location, payload, options).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        options: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>, object_store::Error> {
        let sealing = self.keys.sealing(location).await?;
        let upload = self.inner.put_multipart_opts(location, options).await?;
        let Some(s) = sealing else { return Ok(upload) };
        let (sealer, header) = Sealer::start(&s.data_key.0, &s.bound_to);
        Ok(Box::new(SealingUpload {
            inner: upload,
            sealer: Some(sealer),
            buffer: header,
            min_part_bytes: self.min_part_bytes,
        }))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult, object_store::Error> {
        if options.head {
            // The plaintext size follows from the sealed one: no key needed.
            let mut result = self.inner.get_opts(location, options).await?;
            result.meta = self.keys.plain_meta(result.meta, true).await?;
            return Ok(result);
        }
        let Some(sealing) = self.keys.sealing(location).await? else {
            return self.inner.get_opts(location, options).await;
        };
        match options.range.clone() {
            None => {
                let result = self.inner.get_opts(location, GetOptions { range: None, ..options }).await?;
                let (mut meta, attributes, extensions) =
                    (result.meta.clone(), result.attributes.clone(), result.extensions.clone());
                let plain = sealed::open(&sealing.data_key.0, &sealing.bound_to, &result.bytes().await?)
                    .map_err(|error| refused(EncryptionFailure::Unreadable(error)))?;
                meta.size = plain.len() as u64;
                let range = 0..meta.size;
                Ok(GetResult { payload: single(plain), meta, range, attributes, extensions })
            }
            Some(GetRange::Bounded(range)) => self.get_sealed_range(location, &sealing, range, options).await,
            Some(other) => {
                let head = GetOptions { head: true, range: None, ..options.clone() };
                let meta = self.keys.plain_meta(self.inner.get_opts(location, head).await?.meta, true).await?;
                let range = other
                    .as_range(meta.size)
                    .map_err(|error| object_store::Error::Generic { store: "encryption", source: Box::new(error) })?;
                self.get_sealed_range(location, &sealing, range, options).await
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path, object_store::Error>>,
    ) -> BoxStream<'static, Result<Path, object_store::Error>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta, object_store::Error>> {
        let keys = self.keys.clone();
        self.inner
            .list(prefix)
            .then(move |meta| {
                let keys = keys.clone();
                async move { keys.plain_meta(meta?, false).await }
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult, object_store::Error> {
        let mut listing = self.inner.list_with_delimiter(prefix).await?;
        let mut objects = Vec::with_capacity(listing.objects.len());
        for meta in listing.objects {
            objects.push(self.keys.plain_meta(meta, false).await?);
        }
        listing.objects = objects;
        Ok(listing)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<(), object_store::Error> {
        // A sealed object is bound to its key: a copy under another key would not open.
        if self.keys.sealing(from).await?.is_some() || self.keys.sealing(to).await?.is_some() {
            return Err(object_store::Error::NotSupported {
                source: "copying an object of an encrypted backup (it is bound to its key)".into(),
            });
        }
        self.inner.copy_opts(from, to, options).await
    }
}

/// A multipart upload sealed chunk by chunk: parts go out once they hold at least the store's
/// minimum part size (sealing holds back up to one chunk, so parts do not map one to one).
struct SealingUpload {
    inner: Box<dyn MultipartUpload>,
    /// `None` once completed.
    sealer: Option<Sealer>,
    /// Sealed bytes not sent yet (the header first).
    buffer: Vec<u8>,
    min_part_bytes: usize,
}

impl std::fmt::Debug for SealingUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingUpload").field("inner", &self.inner).field("buffered", &self.buffer.len()).finish()
    }
}

#[async_trait]
impl MultipartUpload for SealingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let Some(sealer) = self.sealer.as_mut() else {
            return Box::pin(async {
                Err(object_store::Error::Generic { store: "encryption", source: "the upload is complete".into() })
            });
        };
        self.buffer.extend(sealer.push(&Bytes::from(data)));
        if self.buffer.len() < self.min_part_bytes {
            return Box::pin(async { Ok(()) });
        }
        self.inner.put_part(PutPayload::from(std::mem::take(&mut self.buffer)))
    }

    async fn complete(&mut self) -> Result<PutResult, object_store::Error> {
        if let Some(sealer) = self.sealer.take() {
            self.buffer.extend(sealer.finish());
        }
        if !self.buffer.is_empty() {
            self.inner.put_part(PutPayload::from(std::mem::take(&mut self.buffer))).await?;
        }
        self.inner.complete().await
    }

    async fn abort(&mut self) -> Result<(), object_store::Error> {
        self.inner.abort().await
    }
}

impl BackupStore {
    /// The same store, reading and writing with these keys: new backups are encrypted with the
    /// primary key, existing ones open with whichever key wrapped their data key.
    pub fn with_encryption(mut self, keyring: Option<Keyring>) -> Self {
        self.keys = Arc::new(BackupKeys::new(self.raw.clone(), self.base.clone(), keyring));
        let min_part = super::writer::part_bytes(self.local_root.is_some());
        self.store = Arc::new(EncryptingStore::new(self.raw.clone(), self.keys.clone(), min_part));
        self
    }

    /// The backup this store's root is (a store opened on one backup's directory).
    fn own_backup(&self) -> Result<String, StorageError> {
        self.keys.placement(&self.path("x")).map(|(backup, _)| backup).ok_or_else(|| StorageError::Encryption {
            store: self.description.clone(),
            reason: "encryption is set up per backup: open the backup's directory".into(),
        })
    }

    async fn own_backup_key(&self) -> Result<(String, BackupKey), StorageError> {
        let backup = self.own_backup()?;
        let key = self.keys.backup_key(&backup).await.map_err(|e| self.failed("read", DATA_KEY_OBJECT, e))?;
        Ok((backup, key))
    }

    /// Readies this backup's directory for a backup run. With keys: a new backup gets a random data
    /// key wrapped by the primary key; one already encrypted must open with the keys given; one
    /// holding unencrypted data is refused (encryption applies to new backups). Without keys, an
    /// encrypted backup is refused. Returns the id of the key the backup is encrypted with.
    pub async fn set_up_encryption(&self, now_ms: i64) -> Result<Option<String>, StorageError> {
        let (backup, found) = self.own_backup_key().await?;
        let locked = |key_id: &str| self.failed("read", DATA_KEY_OBJECT, refused(self.keys.locked(&backup, key_id)));
        match (found, self.keys.keyring()) {
            (BackupKey::Locked { key_id }, _) => Err(locked(&key_id)),
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
                let body = Bytes::from(serde_json::to_vec_pretty(&record).expect("a record serializes"));
                match self.put_new(DATA_KEY_OBJECT, body).await {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(error) => return Err(error),
                }
                // Another run may have created it first: what is stored is what counts.
                self.keys.forget(&backup).await;
                match self.own_backup_key().await?.1 {
                    BackupKey::Sealed { key_id, .. } => Ok(Some(key_id)),
                    BackupKey::Locked { key_id } => Err(locked(&key_id)),
                    BackupKey::Plain => unreachable!("the data key record was just written"),
                }
            }
        }
    }

    /// The id of the key this backup is encrypted with, `None` if it is not encrypted (needs no key).
    pub async fn encryption_key_id(&self) -> Result<Option<String>, StorageError> {
        Ok(match self.own_backup_key().await?.1 {
            BackupKey::Plain => None,
            BackupKey::Sealed { key_id, .. } | BackupKey::Locked { key_id } => Some(key_id),
        })
    }

    /// Whether this backup is encrypted with a key that was not given.
    pub async fn is_locked(&self) -> Result<bool, StorageError> {
        Ok(matches!(self.own_backup_key().await?.1, BackupKey::Locked { .. }))
    }
}
