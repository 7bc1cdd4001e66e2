//! Cleaning up after a killed run: the staging files of a local directory and the unfinished
//! multipart uploads of an S3 bucket.

use super::{BackupStore, StorageError};

impl BackupStore {
    /// Deletes the staging files (`NAME#DIGITS`) a killed run left under `folder` of a local root,
    /// except in its subfolders `skip` (those another kind of run owns, and may be writing): the
    /// filesystem backend writes each object to one and renames it into place, so a kill between
    /// the two leaves it behind. Listing never shows them; this reclaims their space. Cloud stores
    /// write with single PUTs and leave nothing behind. Returns how many were deleted.
    pub fn remove_staging_leftovers(&self, folder: &str, skip: &[&str]) -> Result<usize, StorageError> {
        let Some(root) = &self.local_root else { return Ok(0) };
        let failed = |error: std::io::Error| StorageError::Cleanup {
            store: self.description.clone(),
            what: "staging files".into(),
            reason: error.to_string(),
        };
        let start = root.join(folder);
        let skipped: Vec<std::path::PathBuf> = skip.iter().map(|s| start.join(s)).collect();
        let mut removed = 0;
        let mut folders = vec![start];
        while let Some(folder) = folders.pop() {
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(failed(error)),
            };
            for entry in entries {
                let path = entry.map_err(failed)?.path();
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                let staged = name
                    .rsplit_once('#')
                    .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()));
                if path.is_dir() {
                    if !skipped.contains(&path) {
                        folders.push(path);
                    }
                } else if staged {
                    std::fs::remove_file(&path).map_err(failed)?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Aborts the multipart uploads a killed run left unfinished under `prefix` (S3; on other
    /// stores there is nothing to do: Azure drops uncommitted blocks itself within a week, a
    /// local upload is a staging file). Returns how many were aborted.
    pub async fn abort_unfinished_uploads(&self, prefix: &str) -> Result<usize, StorageError> {
        let Some(uploads) = &self.s3_uploads else { return Ok(0) };
        let full = format!("{}/", self.path(prefix.trim_end_matches('/')));
        uploads.abort_under(&full).await.map_err(|reason| StorageError::Cleanup {
            store: self.description.clone(),
            what: format!("unfinished uploads under {prefix}"),
            reason,
        })
    }
}
