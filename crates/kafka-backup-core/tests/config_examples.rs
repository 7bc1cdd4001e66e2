//! Every example in `config/` parses, and every key it sets takes effect (none is ignored).

use std::time::Duration;

use kafka_backup_core::config::{BackupConfig, StorageConfig};
use kafka_backup_core::records::Compression;
use kafka_backup_testkit::repo_root;

fn load(name: &str) -> BackupConfig {
    let text = std::fs::read_to_string(repo_root().join("config").join(name)).expect("example exists");
    BackupConfig::from_yaml(&text, |name| (name == "KAFKA_BOOTSTRAP").then(|| "kafka-1:9092".to_string()))
        .unwrap_or_else(|e| panic!("config/{name}: {e}"))
}

#[test]
fn every_example_parses() {
    let mut count = 0;
    for entry in std::fs::read_dir(repo_root().join("config")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yaml") {
            load(&name);
            count += 1;
        }
    }
    assert!(count >= 2, "examples found: {count}");
}

#[test]
fn the_complete_backup_example_sets_every_backup_key() {
    let config = load("backup.yaml");
    assert_eq!(config.backup_id, "orders-nightly");
    assert_eq!(config.source.bootstrap_servers, vec!["kafka-1:9092"]);
    assert_eq!(config.source.client_id, "kafka-backup-nightly");
    assert_eq!(config.source.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.source.request_timeout, Duration::from_secs(30));
    assert_eq!(config.source.bootstrap_timeout, Duration::from_secs(60));
    assert!(config.topics.matches("orders-eu", false));
    assert!(config.topics.matches("payments.us", false));
    assert!(!config.topics.matches("payments.asia", false));
    assert!(!config.topics.matches("orders-eu.dlq", false));
    assert_eq!(config.storage, StorageConfig::Filesystem { path: "/var/backups/kafka".into(), prefix: "prod".into() });
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
