//! Streaming writes of large objects: bytes are buffered up to one part; an object that ends
//! within its first part is stored with one conditional PUT, a larger one as a multipart upload
//! whose parts go out while later bytes are still being produced (memory: about three parts, and
//! parts are small on a local disk). The object of an encrypted backup is sealed chunk by chunk on
//! its way out.

use bytes::Bytes;
use object_store::{PutMultipartOptions, WriteMultipart};

use super::sealed::Sealer;
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
    /// `None` until the first write finds out whether the object is sealed.
    sealer: Option<Option<Sealer>>,
}

impl BackupStore {
    /// Starts writing `key` as a stream. Write large objects under keys no other run uses: a
    /// multipart upload has no create-only mode and replaces what is there.
    pub fn writer(&self, key: &str) -> ObjectWriter {
        ObjectWriter { store: self.clone(), key: key.to_string(), buffer: Vec::new(), upload: None, sealer: None }
    }
}

impl ObjectWriter {
    /// The sealer of an object of an encrypted backup, started (its header buffered) on first use.
    async fn sealer(&mut self) -> Result<Option<&mut Sealer>, StorageError> {
        if self.sealer.is_none() {
            let sealer = self.store.sealing(&self.key).await?.map(|s| {
                let (sealer, header) = Sealer::start(&s.data_key.0, &s.bound_to);
                self.buffer.extend_from_slice(&header);
                sealer
            });
            self.sealer = Some(sealer);
        }
        Ok(self.sealer.as_mut().and_then(Option::as_mut))
    }

    fn part_bytes(&self) -> usize {
        if self.store.local_root.is_some() {
            LOCAL_PART_BYTES
        } else {
            PART_BYTES
        }
    }

    /// Appends `bytes`; waits while the parts in flight are at their limit.
    pub async fn write(&mut self, bytes: Bytes) -> Result<(), StorageError> {
        let bytes = match self.sealer().await? {
            Some(sealer) => Bytes::from(sealer.push(&bytes)),
            None => bytes,
        };
        self.write_stored(bytes).await
    }

    async fn write_stored(&mut self, bytes: Bytes) -> Result<(), StorageError> {
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
    pub async fn finish(mut self) -> Result<(), StorageError> {
        self.sealer().await?;
        if let Some(Some(sealer)) = self.sealer.take() {
            self.write_stored(Bytes::from(sealer.finish())).await?;
        }
        match self.upload {
            None => self.store.put_new_bytes(&self.key, Bytes::from(self.buffer)).await,
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
