//! The raw YAML schema of a config file, as serde reads it: every section and key with its type,
//! unknown keys refused. `mod.rs` resolves it into the settings types of the layers below.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::storage_section::RawStorage;
use super::Mode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) mode: Mode,
    pub(super) backup_id: String,
    pub(super) source: Option<RawEndpoint>,
    pub(super) target: Option<RawEndpoint>,
    pub(super) storage: RawStorage,
    pub(super) backup: Option<RawBackup>,
    pub(super) restore: Option<RawRestore>,
    pub(super) metrics: Option<RawMetrics>,
    pub(super) retention: Option<RawRetention>,
}

/// `retention` (backup configs): what `prune --config` keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    pub(super) keep_last: Option<usize>,
    pub(super) keep_within: Option<String>,
    pub(super) keep_daily: Option<usize>,
    pub(super) keep_weekly: Option<usize>,
    pub(super) keep_monthly: Option<usize>,
    pub(super) segment_retention: Option<String>,
}

/// `metrics`: the Prometheus endpoint.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub(super) enabled: Option<bool>,
    pub(super) listen: Option<String>,
}

/// `source` or `target`: a cluster and/or a topic selection, checked per mode.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub(super) bootstrap_servers: Option<Vec<String>>,
    pub(super) topics: Option<RawTopics>,
    pub(super) groups: Option<RawTopics>,
    pub(super) security_protocol: Option<String>,
    pub(super) ssl_ca_location: Option<PathBuf>,
    pub(super) ssl_certificate_location: Option<PathBuf>,
    pub(super) ssl_key_location: Option<PathBuf>,
    pub(super) ssl_key_password: Option<String>,
    pub(super) ssl_endpoint_identification_algorithm: Option<String>,
    pub(super) sasl_mechanism: Option<String>,
    pub(super) sasl_username: Option<String>,
    pub(super) sasl_password: Option<String>,
    pub(super) sasl_password_file: Option<PathBuf>,
    pub(super) sasl_oauthbearer_token: Option<String>,
    pub(super) sasl_oauthbearer_token_file: Option<PathBuf>,
    pub(super) sasl_oauthbearer_token_endpoint_url: Option<String>,
    pub(super) sasl_oauthbearer_client_id: Option<String>,
    pub(super) sasl_oauthbearer_client_secret: Option<String>,
    pub(super) sasl_oauthbearer_scope: Option<String>,
    pub(super) sasl_aws_region: Option<String>,
    pub(super) client_id: Option<String>,
    pub(super) client_rack: Option<String>,
    pub(super) progress_group: Option<String>,
    pub(super) connect_timeout_secs: Option<u64>,
    pub(super) request_timeout_secs: Option<u64>,
    pub(super) bootstrap_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTopics {
    pub(super) include: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRestore {
    pub(super) time_window_start: Option<i64>,
    pub(super) time_window_end: Option<i64>,
    pub(super) topic_mapping: Option<BTreeMap<String, String>>,
    pub(super) partition_mapping: Option<BTreeMap<String, BTreeMap<i32, i32>>>,
    pub(super) source_partitions: Option<BTreeMap<String, Vec<i32>>>,
    pub(super) incarnations: Option<BTreeMap<String, u32>>,
    pub(super) start_offset: Option<serde_yaml_ng::Value>,
    pub(super) purge_before_restore: Option<bool>,
    pub(super) switch_to_create_time: Option<bool>,
    pub(super) create_topics: Option<bool>,
    pub(super) repartition: Option<bool>,
    pub(super) dry_run: Option<bool>,
    pub(super) max_concurrent_partitions: Option<usize>,
    pub(super) rate_limit_bytes_per_sec: Option<u64>,
    pub(super) rate_limit_records_per_sec: Option<u64>,
    pub(super) produce_compression: Option<String>,
    pub(super) include_original_offset_header: Option<bool>,
    pub(super) consumer_group_strategy: Option<String>,
    pub(super) consumer_groups: Option<RawTopics>,
    pub(super) metadata: Option<Vec<String>>,
    pub(super) group_id: Option<String>,
    pub(super) group_instance_id: Option<String>,
    pub(super) group_session_timeout_ms: Option<u64>,
    pub(super) group_rebalance_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackup {
    pub(super) compression: Option<String>,
    pub(super) compression_level: Option<i32>,
    pub(super) segment_max_bytes: Option<u64>,
    pub(super) segment_max_interval_ms: Option<u64>,
    pub(super) checkpoint_interval_secs: Option<u64>,
    pub(super) max_concurrent_partitions: Option<usize>,
    pub(super) continuous: Option<bool>,
    pub(super) cluster_acls: Option<bool>,
    pub(super) group_id: Option<String>,
    pub(super) group_instance_id: Option<String>,
    pub(super) group_session_timeout_ms: Option<u64>,
    pub(super) group_rebalance_timeout_ms: Option<u64>,
}
