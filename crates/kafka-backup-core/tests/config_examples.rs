//! Every example in `config/` parses, and every key it sets reaches the resolved settings with its
//! value (none is dropped on the way). What each setting then does is shown by the end-to-end
//! tests of the CLI crate.

use std::time::Duration;

use kafka_backup_core::backup::BackupConfig;
use kafka_backup_core::kafka::{SaslCredentials, SaslMechanism, Secret, SecurityProtocol};
use kafka_backup_core::offset_reset::GroupStrategy;
use kafka_backup_core::records::Compression;
use kafka_backup_core::storage::{CloudProvider, EncryptionKey, ServerSideEncryption, StorageConfig};
use kafka_backup_core::three_phase::RestoreJob;
use kafka_backup_core::time_window::TimeWindow;
use kafka_backup_testkit::repo_root;

fn read(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("config").join(name)).expect("example exists")
}

fn environment(name: &str) -> Option<String> {
    match name {
        "KAFKA_BOOTSTRAP" => Some("kafka-1:9092".into()),
        "KAFKA_DR_BOOTSTRAP" => Some("kafka-dr-1:9092".into()),
        "KAFKA_SASL_PASSWORD" => Some("sasl-secret".into()),
        "AZURE_STORAGE_ACCOUNT_KEY" => Some("YXp1cmUta2V5".into()),
        "KAFKA_OIDC_CLIENT_SECRET" => Some("oidc-secret".into()),
        _ => None,
    }
}

/// The encryption key the S3 example reads from the environment (32 bytes, base64).
const ENCRYPTION_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn load(name: &str) -> BackupConfig {
    std::env::set_var("KAFKA_BACKUP_ENCRYPTION_KEY", ENCRYPTION_KEY);
    BackupConfig::from_yaml(&read(name), environment).unwrap_or_else(|e| panic!("config/{name}: {e}"))
}

#[test]
fn every_example_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            let text = read(&name);
            if text.contains("mode: restore") {
                RestoreJob::from_yaml(&text, environment).unwrap_or_else(|e| panic!("config/{name}: {e}"));
            } else {
                load(&name);
            }
            count += 1;
        }
    }
    assert!(count >= 3, "examples found: {count}");
}

#[test]
fn the_complete_backup_example_sets_every_backup_key() {
    let config = load("backup.yaml");
    assert_eq!(config.location.backup_id, "orders-nightly");
    assert_eq!(config.source.bootstrap_servers, vec!["kafka-1:9092"]);
    assert_eq!(config.source.client_id, "kafka-backup-nightly");
    assert_eq!(config.source.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.source.request_timeout, Duration::from_secs(30));
    assert_eq!(config.source.bootstrap_timeout, Duration::from_secs(60));
    assert!(config.topics.matches("orders-eu", false));
    assert!(config.topics.matches("payments.us", false));
    assert!(!config.topics.matches("payments.asia", false));
    assert!(!config.topics.matches("orders-eu.dlq", false));
    assert!(config.groups.matches("billing", false) && !config.groups.matches("tmp-debug", false));
    assert_eq!(
        config.location.store.storage,
        StorageConfig::Filesystem { path: "/var/backups/kafka".into(), prefix: "prod".into() }
    );
    let settings = &config.settings;
    assert_eq!(settings.compression, Compression::Zstd);
    assert_eq!(settings.compression_level, Some(3));
    assert_eq!(settings.segment_max_bytes, 134_217_728);
    assert_eq!(settings.segment_max_interval, Duration::from_millis(600_000));
    assert_eq!(settings.checkpoint_interval, Duration::from_secs(5));
    assert_eq!(settings.max_concurrent_partitions, 4);
    assert!(!settings.continuous);
}

#[test]
fn the_continuous_example_is_continuous() {
    let config = load("backup-continuous.yaml");
    assert!(config.settings.continuous);
    assert_eq!(config.settings.compression, Compression::Lz4);
    assert_eq!(config.settings.segment_max_interval, Duration::from_secs(60));
}

#[test]
fn the_s3_example_names_its_bucket_and_encryption() {
    let config = load("backup-s3.yaml");
    let StorageConfig::Cloud(s3) = &config.location.store.storage else {
        panic!("not a cloud store: {:?}", config.location.store.storage)
    };
    assert_eq!(
        (s3.provider, s3.bucket.as_str(), s3.prefix.as_str()),
        (CloudProvider::S3, "company-kafka-backups", "prod/eu-west-1")
    );
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        s3.server_side_encryption,
        Some(ServerSideEncryption::Kms { key_id: Some("alias/kafka-backups".into()) })
    );
    assert_eq!(s3.storage_class.as_deref(), Some("STANDARD_IA"));
    assert_eq!(s3.credentials, Default::default(), "credentials come from the AWS chain");
    let keys = config.location.store.keyring.expect("client-side encryption is on");
    assert_eq!(keys.primary(), &EncryptionKey::from_base64(ENCRYPTION_KEY, Some("2026-11".into()), "the key").unwrap());
}

#[test]
fn the_azure_example_logs_in_with_scram_and_keeps_a_retention_policy() {
    let config = load("backup-azure.yaml");
    assert_eq!(config.source.security_protocol, SecurityProtocol::SaslSsl);
    let sasl = config.source.sasl.as_ref().expect("SASL");
    assert_eq!(sasl.mechanism, SaslMechanism::ScramSha512);
    let SaslCredentials::Password { username, password } = &sasl.credentials else { panic!("{sasl:?}") };
    assert_eq!((username.as_str(), password), ("kafka-backup", &Secret::new("sasl-secret".into())));
    let StorageConfig::Cloud(azure) = &config.location.store.storage else { panic!("not a cloud store") };
    assert_eq!(
        (azure.provider, azure.account.as_deref(), azure.bucket.as_str(), azure.prefix.as_str()),
        (CloudProvider::Azure, Some("companykafkabackups"), "kafka-backups", "prod/westeurope")
    );
    assert_eq!(azure.credentials.account_key, Some(Secret::new("YXp1cmUta2V5".into())));
    assert_eq!(azure.storage_class.as_deref(), Some("Cool"));
    let retention = config.retention.expect("a retention section");
    assert_eq!((retention.keep_last, retention.keep_daily, retention.keep_weekly), (Some(7), Some(30), Some(12)));
    assert_eq!(retention.segment_retention, Some(Duration::from_secs(90 * 86400)));
}

#[test]
fn the_gcs_example_fetches_in_its_zone_with_oidc_tokens_and_serves_metrics() {
    let config = load("backup-gcs.yaml");
    let sasl = config.source.sasl.as_ref().expect("SASL");
    assert_eq!(sasl.mechanism, SaslMechanism::OauthBearer);
    assert!(matches!(sasl.credentials, SaslCredentials::Oidc(_)), "{sasl:?}");
    assert_eq!(config.source.rack(), "europe-west1-b");
    let StorageConfig::Cloud(gcs) = &config.location.store.storage else { panic!("not a cloud store") };
    assert_eq!(
        (gcs.provider, gcs.bucket.as_str(), gcs.prefix.as_str()),
        (CloudProvider::Gcs, "company-kafka-backups", "estate")
    );
    assert!(config.settings.continuous);
    assert_eq!(config.metrics, Some("0.0.0.0:9464".parse().unwrap()));
}

#[test]
fn the_complete_restore_example_sets_every_restore_key() {
    let job = RestoreJob::from_yaml(&read("restore.yaml"), environment).unwrap();
    let config = &job.restore;
    assert_eq!(config.location.backup_id, "orders-nightly");
    assert!(config.topics.matches("orders-eu", false) && !config.topics.matches("orders-test", false));
    assert_eq!(config.target.bootstrap_servers, vec!["kafka-dr-1:9092"]);
    assert_eq!(config.target.client_id, "kafka-backup-restore");
    assert_eq!(config.target.bootstrap_timeout, Duration::from_secs(60));
    assert_eq!(
        config.location.store.storage,
        StorageConfig::Filesystem { path: "/var/backups/kafka".into(), prefix: "prod".into() }
    );
    let s = &config.settings;
    assert_eq!(s.window, TimeWindow { start: Some(1_736_899_200_000), end: Some(1_736_985_600_000) });
    assert_eq!(s.topic_mapping["orders-eu"], "orders-eu-recovered");
    assert_eq!(s.partition_mapping["orders-us"][&0], 1);
    assert!(s.create_topics && !s.repartition && !s.dry_run && s.include_original_offset_header);
    assert_eq!(job.groups.strategy, Some(GroupStrategy::HeaderBased));
    let groups = job.groups.groups.as_ref().expect("consumer_groups set");
    assert!(groups.includes("billing-eu") && groups.includes("shipping") && !groups.includes("billing-test"));
    assert_eq!(s.max_concurrent_partitions, 4);
    assert_eq!((s.rate_limit_bytes_per_sec, s.rate_limit_records_per_sec), (Some(52_428_800), Some(100_000)));
    assert_eq!(s.produce_compression, Some(Compression::Lz4));
}
