//! Streaming writes of large objects: bytes are buffered up to one part; an object that ends
//! within its first part is stored with one conditional PUT, a larger one as a multipart upload
//! whose parts go out while later bytes are still being produced (memory: about three parts, and
//! parts are small on a local disk). The object of an encrypted backup is sealed on its way out by
//! the store's encryption wrapper.

use bytes::Bytes;
use object_store::{PutMultipartOptions, WriteMultipart};

use super::{BackupStore, StorageError};

/// Bytes per part: S3's minimum part size (its parts must be 5 MiB to 5 GiB, at most 10,000 of them:
/// objects up to 48 GiB, far above the 2 GiB segment ceiling).
const PART_BYTES: usize = 5 * 1024 * 1024;
/// Bytes per part on a local directory, which has no minimum: less memory per object being written.
const LOCAL_PART_BYTES: usize = 1024 * 1024;
/// Parts uploading at once per object.
const PARTS_IN_FLIGHT: usize = 2;

/// An object being written; nothing is visible under its key until [`ObjectWriter::finish`].
pub struct ObjectWriter {
    store: BackupStore,
    key: String,
    buffer: Vec<u8>,
    upload: Option<WriteMultipart>,
}

/// Bytes per part of a multipart upload to a local directory or to a cloud store.
pub(super) fn part_bytes(local: bool) -> usize {
    if local {
        LOCAL_PART_BYTES
    } else {
        PART_BYTES
    }
}

impl BackupStore {
    /// Starts writing `key` as a stream. Write large objects under keys no other run uses: a
    /// multipart upload has no create-only mode and replaces what is there.
    pub fn writer(&self, key: &str) -> ObjectWriter {
        ObjectWriter { store: self.clone(), key: key.to_string(), buffer: Vec::new(), upload: None }
    }
}

impl ObjectWriter {
    fn part_bytes(&self) -> usize {
        part_bytes(self.store.local_root.is_some())
    }

    /// Appends `bytes`; waits while the parts in flight are at their limit.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        if let Some(upload) = &mut self.upload {
            upload.put(bytes);
        } else {
            self.buffer.extend_from_slice(&bytes);
            if self.buffer.len() < self.part_bytes() {
                return Ok(());
            }
            let path = self.store.path(&self.key);
            let options = PutMultipartOptions { attributes: self.store.attributes.clone(), ..Default::default() };
            let upload = self
                .store
                .store
                .put_multipart_opts(&path, options)
                .await
                .map_err(|e| self.store.failed("write", &self.key, e))?;
            let mut upload = WriteMultipart::new_with_chunk_size(upload, self.part_bytes());
            upload.put(Bytes::from(std::mem::take(&mut self.buffer)));
            self.upload = Some(upload);
        }
        let upload = self.upload.as_mut().expect("the upload was started above");
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| self.store.failed("write", &self.key, e))
    }

    /// Completes the object: one create-only PUT when it fits in a part, else the last parts and
    /// the multipart completion.
    pub async fn finish(self) -> Result<(), StorageError> {
        match self.upload {
            None => self.store.put_new_unobserved(&self.key, Bytes::from(self.buffer)).await,
            Some(upload) => upload.finish().await.map(|_| ()).map_err(|e| self.store.failed("write", &self.key, e)),
        }
    }

    /// Gives the object up: an upload in progress is aborted so that the store drops its parts.
    pub async fn abort(self) {
        if let Some(upload) = self.upload {
            if let Err(error) = upload.abort().await {
                tracing::warn!(key = %self.key, %error, "aborting an unfinished upload failed; its parts stay until the bucket's lifecycle rule removes them");
            }
        }
    }
}
