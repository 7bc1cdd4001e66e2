//! Opens a cloud bucket through `object_store`'s own backends (S3, Azure Blob, GCS): each starts
//! from its cloud's standard environment and credential chain, then the config's explicit settings.

use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::limit::LimitStore;
use object_store::{Attribute, Attributes, BackoffConfig, ClientConfigKey, ObjectStore, RetryConfig};

use super::location::{CloudConfig, CloudProvider, ServerSideEncryption};
use super::s3_uploads::S3Uploads;
use crate::process_tls::install_tls_provider;

/// Builds the store a cloud config names, bounded to its number of concurrent requests, and (S3)
/// the handle on its unfinished uploads; the error is `object_store`'s own message (it names the
/// missing or malformed setting).
pub(super) fn open(config: &CloudConfig) -> Result<(Arc<dyn ObjectStore>, Option<S3Uploads>), String> {
    install_tls_provider();
    // Client settings go in one by one: replacing the builder's options would drop the
    // environment's (`AWS_ALLOW_HTTP`, `AZURE_ALLOW_HTTP`, ...).
    let timeout = (ClientConfigKey::Timeout, format!("{}ms", config.request_timeout.as_millis()));
    let retry = RetryConfig { backoff: BackoffConfig::default(), max_retries: 10, retry_timeout: config.retry_timeout };
    let credentials = &config.credentials;
    let limit = config.max_concurrent_requests;
    let store: Arc<dyn ObjectStore> = match config.provider {
        CloudProvider::S3 => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&config.bucket)
                .with_config(AmazonS3ConfigKey::Client(timeout.0), &timeout.1)
                .with_retry(retry);
            if let Some(path_style) = config.path_style {
                builder = builder.with_virtual_hosted_style_request(!path_style);
            }
            if config.allow_http {
                builder = builder.with_allow_http(true);
            }
            if let Some(region) = &config.region {
                builder = builder.with_region(region);
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint);
            }
            if let Some(key_id) = &credentials.access_key_id {
                builder = builder.with_access_key_id(key_id);
            }
            if let Some(secret) = &credentials.secret_access_key {
                builder = builder.with_secret_access_key(secret.expose());
            }
            if let Some(token) = &credentials.session_token {
                builder = builder.with_token(token.expose());
            }
            // The encryption config keys are not exported; their documented names parse to them.
            let encryption: AmazonS3ConfigKey =
                "aws_server_side_encryption".parse().expect("object_store names this key");
            builder = match &config.server_side_encryption {
                None => builder,
                Some(ServerSideEncryption::S3Managed) => builder.with_config(encryption, "AES256"),
                Some(ServerSideEncryption::Kms { key_id: Some(key_id) }) => builder.with_sse_kms_encryption(key_id),
                Some(ServerSideEncryption::Kms { key_id: None }) => builder.with_config(encryption, "aws:kms"),
            };
            let s3 = Arc::new(builder.clone().build().map_err(|e| e.to_string())?);
            let uploads = S3Uploads::new(&builder, s3, config.retry_timeout)?;
            let store = Arc::new(LimitStore::new(builder.build().map_err(|e| e.to_string())?, limit));
            return Ok((store, Some(uploads)));
        }
        CloudProvider::Azure => {
            let mut builder = MicrosoftAzureBuilder::from_env()
                .with_container_name(&config.bucket)
                .with_config(AzureConfigKey::Client(timeout.0), &timeout.1)
                .with_retry(retry);
            if config.allow_http {
                builder = builder.with_allow_http(true);
            }
            if let Some(account) = &config.account {
                builder = builder.with_account(account);
            }
            if let Some(endpoint) = &config.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(key) = &credentials.account_key {
                builder = builder.with_access_key(key.expose());
            }
            if let Some(sas) = &credentials.sas_token {
                builder = builder.with_config(AzureConfigKey::SasKey, sas.expose());
            }
            Arc::new(LimitStore::new(builder.build().map_err(|e| e.to_string())?, limit))
        }
        CloudProvider::Gcs => {
            let mut builder = GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&config.bucket)
                .with_config(GoogleConfigKey::Client(timeout.0), &timeout.1)
                .with_retry(retry);
            if config.allow_http {
                builder = builder.with_config(GoogleConfigKey::Client(ClientConfigKey::AllowHttp), "true");
            }
            if let Some(path) = &credentials.service_account_path {
                builder = builder.with_service_account_path(path.display().to_string());
            }
            Arc::new(LimitStore::new(builder.build().map_err(|e| e.to_string())?, limit))
        }
    };
    Ok((store, None))
}

/// The attributes every object written to this bucket carries (its storage class).
pub(super) fn put_attributes(config: &CloudConfig) -> Attributes {
    let mut attributes = Attributes::new();
    if let Some(class) = &config.storage_class {
        attributes.insert(Attribute::StorageClass, class.clone().into());
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{BackupStore, StorageConfig};

    /// GCS has no emulator here that speaks the XML API `object_store` uses (GUIDE.md section 3):
    /// its configuration and credential resolution are what is tested.
    #[test]
    fn gcs_credentials_resolve_from_a_service_account_file_and_fail_clearly_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sa.json");
        let mut config = CloudConfig::new(CloudProvider::Gcs, "bucket", "p");
        config.credentials.service_account_path = Some(dir.path().join("missing.json"));
        let error = BackupStore::open(&StorageConfig::Cloud(Box::new(config.clone()))).unwrap_err().to_string();
        assert!(error.contains("gcs://bucket") && error.contains("missing.json"), "{error}");
        // A well-formed service-account file with a fresh key (openssl, as the test CA is made)
        // is accepted: the key is parsed when the store is opened.
        let pem = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .expect("openssl is needed for this test (scripts/install-test-infra.sh needs it too)");
        let account = serde_json::json!({
            "type": "service_account",
            "project_id": "kafka-backup-test",
            "private_key_id": "0",
            "private_key": String::from_utf8(pem.stdout).unwrap(),
            "client_email": "backup@kafka-backup-test.iam.gserviceaccount.com",
            "client_id": "0",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token"
        });
        std::fs::write(&key, account.to_string()).unwrap();
        config.credentials.service_account_path = Some(key);
        BackupStore::open(&StorageConfig::Cloud(Box::new(config))).unwrap();
    }
}
