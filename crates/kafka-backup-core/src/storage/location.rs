//! Where backups live: the storage settings a config section or a `--path` URL resolves to, and the
//! one parser of storage URLs (`s3://`, `az://`, `abfs[s]://`, `gs://`, `file://`, plain directories).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// Where backups are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageConfig {
    /// A local directory (objects written atomically with fsync).
    Filesystem {
        /// Root directory.
        path: PathBuf,
        /// Key prefix below the root.
        prefix: String,
    },
    /// Process memory, for tests: gone when the process exits.
    Memory {
        /// Key prefix.
        prefix: String,
    },
    /// A bucket (or container) of a cloud object store.
    Cloud(Box<CloudConfig>),
}

/// The object store services reached through their own HTTP APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudProvider {
    /// Amazon S3 and S3-compatible stores (MinIO, Ceph, R2, ...).
    S3,
    /// Azure Blob Storage.
    Azure,
    /// Google Cloud Storage.
    Gcs,
}

impl CloudProvider {
    /// The config `backend` value and URL scheme naming this provider.
    pub fn name(self) -> &'static str {
        match self {
            CloudProvider::S3 => "s3",
            CloudProvider::Azure => "azure",
            CloudProvider::Gcs => "gcs",
        }
    }
}

/// S3 server-side encryption of every object written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSideEncryption {
    /// SSE-S3 (`AES256`): keys managed by S3.
    S3Managed,
    /// SSE-KMS (`aws:kms`) with this key, or the account's default `aws/s3` key when `None`.
    Kms {
        /// KMS key id or ARN.
        key_id: Option<String>,
    },
}

/// Explicit credentials; every field left unset falls back to the provider's standard chain
/// (environment, web identity, container and instance metadata, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloudCredentials {
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<Secret>,
    /// S3 session token (temporary credentials).
    pub session_token: Option<Secret>,
    /// Azure storage account key.
    pub account_key: Option<Secret>,
    /// Azure SAS token (the query string, with or without its leading `?`).
    pub sas_token: Option<Secret>,
    /// GCS service-account JSON file.
    pub service_account_path: Option<PathBuf>,
}

/// A bucket (S3, GCS) or container (Azure) and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// The service.
    pub provider: CloudProvider,
    /// Bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// Azure storage account (else from `AZURE_STORAGE_ACCOUNT_NAME`).
    pub account: Option<String>,
    /// Key prefix inside the bucket.
    pub prefix: String,
    /// S3 region (else from `AWS_REGION` / `AWS_DEFAULT_REGION`, then `us-east-1`).
    pub region: Option<String>,
    /// Endpoint URL of an S3-compatible store, an Azure emulator or a private endpoint.
    pub endpoint: Option<String>,
    /// S3 addressing: path style (`endpoint/bucket/key`) when true, virtual-hosted style
    /// (`bucket.endpoint/key`) when false; unset: `object_store`'s default (path style, or
    /// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`).
    pub path_style: Option<bool>,
    /// Plain HTTP endpoints allowed (off: only HTTPS).
    pub allow_http: bool,
    /// Explicit credentials.
    pub credentials: CloudCredentials,
    /// S3 server-side encryption.
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// Storage class of objects written (S3 `x-amz-storage-class`, Azure access tier).
    pub storage_class: Option<String>,
    /// Deadline of one HTTP request.
    pub request_timeout: Duration,
    /// Deadline of one storage call across its retries.
    pub retry_timeout: Duration,
    /// Storage requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Accept a store that ignores conditional writes (see docs/configuration.md, `storage`).
    pub allow_unconditional_writes: bool,
}

impl CloudConfig {
    /// A bucket with every option at its default.
    pub fn new(provider: CloudProvider, bucket: &str, prefix: &str) -> Self {
        Self {
            provider,
            bucket: bucket.to_string(),
            account: None,
            prefix: prefix.trim_matches('/').to_string(),
            region: None,
            endpoint: None,
            path_style: None,
            allow_http: false,
            credentials: CloudCredentials::default(),
            server_side_encryption: None,
            storage_class: None,
            request_timeout: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(180),
            max_concurrent_requests: 16,
            allow_unconditional_writes: false,
        }
    }

    /// `scheme://bucket/prefix`, for messages (never credentials).
    pub fn describe(&self) -> String {
        let account = self.account.as_ref().map(|a| format!("{a}/")).unwrap_or_default();
        let endpoint = self.endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default();
        format!("{}://{account}{}{endpoint}", self.provider.name(), self.bucket)
    }
}

/// A storage URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage URL {url:?}: {reason}")]
pub struct StorageUrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The schemes [`parse_storage_url`] accepts, for messages.
pub const STORAGE_URL_FORMS: &str =
    "s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, abfss://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX, \
     gs://BUCKET/PREFIX, file:///DIR or a local directory";

/// Parses a storage location: a cloud URL or a local directory (plain or `file://`).
pub fn parse_storage_url(url: &str) -> Result<StorageConfig, StorageUrlError> {
    let error = |reason: String| StorageUrlError { url: url.to_string(), reason };
    let Some((scheme, rest)) = url.split_once("://") else {
        if url.is_empty() {
            return Err(error("empty; expected a directory or a URL".into()));
        }
        return Ok(StorageConfig::Filesystem { path: PathBuf::from(url), prefix: String::new() });
    };
    if rest.contains(['?', '#']) {
        return Err(error(
            "query strings and fragments are not used; give credentials and options in the config or the environment"
                .into(),
        ));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "file" => match rest.strip_prefix('/') {
            Some(_) => Ok(StorageConfig::Filesystem { path: PathBuf::from(rest), prefix: String::new() }),
            None => Err(error("file URLs take an absolute path: file:///DIR".into())),
        },
        "s3" | "s3a" => cloud(CloudProvider::S3, rest, None).map_err(error),
        "gs" | "gcs" => cloud(CloudProvider::Gcs, rest, None).map_err(error),
        "az" | "azure" => cloud(CloudProvider::Azure, rest, None).map_err(error),
        "abfs" | "abfss" => {
            let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            match authority.split_once('@') {
                Some((container, host)) => {
                    let account = host.split('.').next().filter(|a| !a.is_empty());
                    let account = account.ok_or_else(|| error("no account after '@'".into()))?;
                    cloud(CloudProvider::Azure, &format!("{container}/{prefix}"), Some(account)).map_err(error)
                }
                None => cloud(CloudProvider::Azure, rest, None).map_err(error),
            }
        }
        other => Err(error(format!("unknown scheme {other:?}; expected one of {STORAGE_URL_FORMS}"))),
    }
}

fn cloud(provider: CloudProvider, rest: &str, account: Option<&str>) -> Result<StorageConfig, String> {
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let what = if provider == CloudProvider::Azure { "container" } else { "bucket" };
    if bucket.is_empty() {
        return Err(format!("no {what} name"));
    }
    if !bucket.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')) {
        return Err(format!("{bucket:?} is not a valid {what} name"));
    }
    let mut config = CloudConfig::new(provider, bucket, prefix);
    config.account = account.map(str::to_string);
    Ok(StorageConfig::Cloud(Box::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cloud_of(url: &str) -> CloudConfig {
        match parse_storage_url(url).unwrap() {
            StorageConfig::Cloud(config) => *config,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn cloud_urls_name_provider_bucket_and_prefix() {
        let s3 = cloud_of("s3://my-bucket/kafka/prod/");
        assert_eq!(
            (s3.provider, s3.bucket.as_str(), s3.prefix.as_str()),
            (CloudProvider::S3, "my-bucket", "kafka/prod")
        );
        assert_eq!(cloud_of("s3a://b").prefix, "");
        let gcs = cloud_of("gs://g.bucket/p");
        assert_eq!((gcs.provider, gcs.bucket.as_str()), (CloudProvider::Gcs, "g.bucket"));
        let az = cloud_of("az://backups/x/y");
        assert_eq!(
            (az.provider, az.bucket.as_str(), az.prefix.as_str(), az.account),
            (CloudProvider::Azure, "backups", "x/y", None)
        );
        let abfs = cloud_of("abfss://backups@acct.dfs.core.windows.net/x");
        assert_eq!(
            (abfs.bucket.as_str(), abfs.account.as_deref(), abfs.prefix.as_str()),
            ("backups", Some("acct"), "x")
        );
        assert_eq!(cloud_of("abfs://c/p").bucket, "c");
    }

    #[test]
    fn directories_plain_or_as_file_urls() {
        let dir = |path: &str| StorageConfig::Filesystem { path: path.into(), prefix: String::new() };
        assert_eq!(parse_storage_url("/var/backups").unwrap(), dir("/var/backups"));
        assert_eq!(parse_storage_url("relative/dir").unwrap(), dir("relative/dir"));
        assert_eq!(parse_storage_url("file:///var/backups").unwrap(), dir("/var/backups"));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let reason = |url: &str| parse_storage_url(url).unwrap_err().reason;
        assert!(reason("ftp://host/dir").contains("unknown scheme \"ftp\""), "{}", reason("ftp://host/dir"));
        assert!(reason("ftp://host/dir").contains("s3://BUCKET/PREFIX"));
        assert_eq!(reason("s3://"), "no bucket name");
        assert_eq!(reason("az:///p"), "no container name");
        assert!(reason("s3://bad bucket/p").contains("not a valid bucket name"));
        assert!(reason("s3://b/p?secret=1").contains("query strings"));
        assert!(reason("file://relative").contains("absolute path"));
        assert!(reason("abfss://c@/p").contains("no account"));
        assert!(reason("").contains("empty"));
    }

    #[test]
    fn descriptions_never_hold_credentials() {
        let mut config = cloud_of("s3://b/p");
        config.credentials.secret_access_key = Some(Secret::new("do-not-show".into()));
        config.endpoint = Some("http://127.0.0.1:9000".into());
        assert_eq!(config.describe(), "s3://b at http://127.0.0.1:9000");
        assert!(!format!("{config:?}").contains("do-not-show"));
    }
}
