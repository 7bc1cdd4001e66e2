//! The `storage:` section: its YAML keys, checked per backend (a key the backend does not use is
//! an error), resolved into the storage layer's [`StorageConfig`], from `backend` + keys or a `url`,
//! and its `encryption:` keys into the storage layer's [`Keyring`].

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{in_range, invalid, ConfigError};
use crate::backup_location::StoreLocation;
use crate::secret::Secret;
use crate::storage::{
    parse_storage_url, CloudConfig, CloudProvider, EncryptionKey, Keyring, ServerSideEncryption, StorageConfig,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStorage {
    backend: Option<String>,
    url: Option<String>,
    path: Option<PathBuf>,
    prefix: Option<String>,
    bucket: Option<String>,
    container: Option<String>,
    account: Option<String>,
    region: Option<String>,
    endpoint: Option<String>,
    path_style: Option<bool>,
    allow_http: Option<bool>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    account_key: Option<String>,
    sas_token: Option<String>,
    service_account_path: Option<PathBuf>,
    server_side_encryption: Option<String>,
    sse_kms_key_id: Option<String>,
    storage_class: Option<String>,
    request_timeout_secs: Option<u64>,
    retry_timeout_secs: Option<u64>,
    max_concurrent_requests: Option<usize>,
    allow_unconditional_writes: Option<bool>,
    encryption: Option<RawEncryption>,
}

/// `storage.encryption`: the key-encryption key, and older ones still needed to read old backups.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    key_id: Option<String>,
    #[serde(default)]
    additional_keys: Vec<RawKey>,
}

/// One of `storage.encryption.additional_keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    key_id: Option<String>,
}

/// The key `key_file` or `key_env` names (exactly one of them).
fn encryption_key(
    path: &str,
    key_file: Option<PathBuf>,
    key_env: Option<String>,
    key_id: Option<String>,
) -> Result<EncryptionKey, ConfigError> {
    match (key_file, key_env) {
        (Some(file), None) => EncryptionKey::from_file(&file, key_id),
        (None, Some(variable)) => EncryptionKey::from_env(&variable, key_id),
        _ => Err("set exactly one of key_file and key_env".to_string()),
    }
    .map_err(|message| invalid(path, message))
}

/// Resolves `storage.encryption` (reading the key files and variables it names).
fn keyring(raw: &mut RawStorage) -> Result<Option<Keyring>, ConfigError> {
    let Some(raw) = raw.encryption.take() else { return Ok(None) };
    let primary = encryption_key("storage.encryption", raw.key_file, raw.key_env, raw.key_id)?;
    let additional = raw
        .additional_keys
        .into_iter()
        .enumerate()
        .map(|(at, key)| {
            encryption_key(&format!("storage.encryption.additional_keys[{at}]"), key.key_file, key.key_env, key.key_id)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Keyring::new(primary, additional).map(Some).map_err(|message| invalid("storage.encryption", message))
}

impl RawStorage {
    /// The keys that are set, by name, for the "not used by this backend" check.
    fn set_keys(&self) -> Vec<&'static str> {
        let set = [
            ("path", self.path.is_some()),
            ("bucket", self.bucket.is_some()),
            ("container", self.container.is_some()),
            ("account", self.account.is_some()),
            ("region", self.region.is_some()),
            ("endpoint", self.endpoint.is_some()),
            ("path_style", self.path_style.is_some()),
            ("allow_http", self.allow_http.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            ("session_token", self.session_token.is_some()),
            ("account_key", self.account_key.is_some()),
            ("sas_token", self.sas_token.is_some()),
            ("service_account_path", self.service_account_path.is_some()),
            ("server_side_encryption", self.server_side_encryption.is_some()),
            ("sse_kms_key_id", self.sse_kms_key_id.is_some()),
            ("storage_class", self.storage_class.is_some()),
            ("request_timeout_secs", self.request_timeout_secs.is_some()),
            ("retry_timeout_secs", self.retry_timeout_secs.is_some()),
            ("max_concurrent_requests", self.max_concurrent_requests.is_some()),
            ("allow_unconditional_writes", self.allow_unconditional_writes.is_some()),
        ];
        set.into_iter().filter(|(_, is_set)| *is_set).map(|(key, _)| key).collect()
    }
}

/// Whether `backend` reads `key` (every key but `backend`, `url` and `prefix`).
fn used_by(backend: &str, key: &str) -> bool {
    match key {
        "path" => backend == "filesystem",
        "bucket" => matches!(backend, "s3" | "gcs"),
        "container" | "account" | "account_key" | "sas_token" => backend == "azure",
        "region"
        | "path_style"
        | "access_key_id"
        | "secret_access_key"
        | "session_token"
        | "server_side_encryption"
        | "sse_kms_key_id" => backend == "s3",
        "service_account_path" => backend == "gcs",
        _ => matches!(backend, "s3" | "azure" | "gcs"),
    }
}

/// Resolves the `storage:` section.
/// The `storage:` section: the store, and the keys of its encrypted backups.
pub(super) fn store_location(mut raw: RawStorage) -> Result<StoreLocation, ConfigError> {
    let keyring = keyring(&mut raw)?;
    Ok(StoreLocation::new(storage_config(raw)?, keyring))
}

fn storage_config(raw: RawStorage) -> Result<StorageConfig, ConfigError> {
    let mut location = match (&raw.url, &raw.backend) {
        (Some(url), backend) => {
            for key in ["path", "bucket", "container"] {
                if raw.set_keys().contains(&key) {
                    return Err(invalid(&format!("storage.{key}"), "not used with storage.url (the URL names it)"));
                }
            }
            if raw.prefix.is_some() {
                return Err(invalid("storage.prefix", "not used with storage.url (the URL's path is the prefix)"));
            }
            let location = parse_storage_url(url).map_err(|e| invalid("storage.url", e.to_string()))?;
            if let Some(backend) = backend {
                if backend != backend_of(&location) {
                    return Err(invalid(
                        "storage.backend",
                        format!("{backend} does not match storage.url, which names {}", backend_of(&location)),
                    ));
                }
            }
            location
        }
        (None, Some(backend)) => location_of(backend, &raw)?,
        (None, None) => return Err(invalid("storage", "set storage.backend (with its keys) or storage.url")),
    };
    let backend = backend_of(&location);
    if let Some(key) = raw.set_keys().into_iter().find(|key| !used_by(backend, key)) {
        return Err(invalid(&format!("storage.{key}"), format!("not used by backend {backend}")));
    }
    if let StorageConfig::Cloud(cloud) = &mut location {
        apply_cloud_keys(cloud, raw)?;
    }
    Ok(location)
}

fn backend_of(location: &StorageConfig) -> &'static str {
    match location {
        StorageConfig::Filesystem { .. } => "filesystem",
        StorageConfig::Memory { .. } => "memory",
        StorageConfig::Cloud(cloud) => cloud.provider.name(),
    }
}

fn location_of(backend: &str, raw: &RawStorage) -> Result<StorageConfig, ConfigError> {
    let prefix = raw.prefix.clone().unwrap_or_default().trim_matches('/').to_string();
    let named = |key: &str, value: &Option<String>| {
        value
            .clone()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| invalid(&format!("storage.{key}"), format!("backend {backend} needs one")))
    };
    let provider = match backend {
        "memory" => return Ok(StorageConfig::Memory { prefix }),
        "filesystem" => {
            let path =
                raw.path.clone().ok_or_else(|| invalid("storage.path", "backend filesystem needs a directory"))?;
            return Ok(StorageConfig::Filesystem { path, prefix });
        }
        "s3" => CloudProvider::S3,
        "gcs" => CloudProvider::Gcs,
        "azure" => CloudProvider::Azure,
        other => {
            return Err(invalid(
                "storage.backend",
                format!("unknown backend {other:?}; expected filesystem, memory, s3, azure or gcs"),
            ))
        }
    };
    let bucket = match provider {
        CloudProvider::Azure => named("container", &raw.container)?,
        _ => named("bucket", &raw.bucket)?,
    };
    Ok(StorageConfig::Cloud(Box::new(CloudConfig::new(provider, &bucket, &prefix))))
}

fn apply_cloud_keys(cloud: &mut CloudConfig, raw: RawStorage) -> Result<(), ConfigError> {
    let secret = |value: Option<String>| value.map(Secret::new);
    if raw.account.is_some() {
        cloud.account = raw.account;
    }
    cloud.region = raw.region;
    cloud.endpoint = raw.endpoint;
    cloud.path_style = raw.path_style;
    cloud.allow_http = raw.allow_http.unwrap_or(false);
    if let Some(endpoint) = &cloud.endpoint {
        if endpoint.starts_with("http://") && !cloud.allow_http {
            return Err(invalid(
                "storage.endpoint",
                format!("{endpoint} is plain HTTP; set storage.allow_http: true to allow it"),
            ));
        }
    }
    cloud.credentials.access_key_id = raw.access_key_id;
    cloud.credentials.secret_access_key = secret(raw.secret_access_key);
    cloud.credentials.session_token = secret(raw.session_token);
    cloud.credentials.account_key = secret(raw.account_key);
    cloud.credentials.sas_token = secret(raw.sas_token);
    cloud.credentials.service_account_path = raw.service_account_path;
    if cloud.credentials.access_key_id.is_some() != cloud.credentials.secret_access_key.is_some() {
        return Err(invalid("storage.access_key_id", "set both access_key_id and secret_access_key, or neither"));
    }
    cloud.server_side_encryption = match (raw.server_side_encryption.as_deref(), raw.sse_kms_key_id) {
        (None, None) => None,
        (Some("AES256" | "aes256"), None) => Some(ServerSideEncryption::S3Managed),
        (Some("aws:kms"), key_id) => Some(ServerSideEncryption::Kms { key_id }),
        (Some("AES256" | "aes256") | None, Some(_)) => {
            return Err(invalid("storage.sse_kms_key_id", "only used with server_side_encryption: aws:kms"))
        }
        (Some(other), _) => {
            return Err(invalid(
                "storage.server_side_encryption",
                format!("unknown value {other:?}; expected AES256 or aws:kms"),
            ))
        }
    };
    cloud.storage_class = raw.storage_class;
    if let Some(secs) = raw.request_timeout_secs {
        cloud.request_timeout = Duration::from_secs(in_range("storage.request_timeout_secs", secs, 1, 3600)?);
    }
    if let Some(secs) = raw.retry_timeout_secs {
        cloud.retry_timeout = Duration::from_secs(in_range("storage.retry_timeout_secs", secs, 1, 3600)?);
    }
    if let Some(requests) = raw.max_concurrent_requests {
        cloud.max_concurrent_requests = in_range("storage.max_concurrent_requests", requests, 1, 1024)?;
    }
    cloud.allow_unconditional_writes = raw.allow_unconditional_writes.unwrap_or(false);
    Ok(())
}
