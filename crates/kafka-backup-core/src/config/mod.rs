//! The YAML configuration of `backup` and `restore`, on top of the engine: the raw schema
//! (`raw.rs`), `${VAR}` substitution (`env.rs`), then resolution with range checks into the
//! settings each layer owns (`backup::BackupConfig`, `restore::RestoreConfig`, `three_phase::RestoreJob`,
//! `storage::StorageConfig` in `storage_section.rs`, the cluster connection in `endpoint.rs`).
//! Errors name the key's path.

mod endpoint;
mod env;
mod oso;
mod raw;
mod storage_section;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use endpoint::{client_config, selector_or_all, topic_selector};
use env::read_config;
pub use env::substitute_env;
pub use oso::{from_oso, Migration, NotCarried};
use raw::{RawBackup, RawConfig, RawEndpoint, RawMetrics, RawRestore, RawRetention};
use storage_section::store_location;

use crate::backup::{BackupConfig, BackupSettings};
use crate::backup_location::StoreLocation;
use crate::kafka::ClientConfig;
use crate::offset_reset::{GroupSelection, GroupStrategy};
use crate::records::Compression;
use crate::restore::{RestoreConfig, RestoreSettings, RestoredAccess, StartOffset};
use crate::retention::RetentionPolicy;
use crate::storage::StorageConfig;
use crate::three_phase::{GroupRecovery, RestoreJob};
use crate::time_window::TimeWindow;
use crate::worker_group::WorkerGroup;

/// A configuration that cannot be used, with the key path and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// `${VAR}` names a variable that is not set.
    #[error("config line {line}: environment variable {name} is not set (write $${{...}} for a literal ${{...}})")]
    MissingVariable {
        /// Variable name.
        name: String,
        /// 1-based line.
        line: usize,
    },
    /// YAML syntax, unknown key or wrong type.
    #[error("config key `{path}`: {message}")]
    Invalid {
        /// Dotted key path (`.` for the document root).
        path: String,
        /// What is wrong.
        message: String,
    },
}

fn invalid(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { path: path.to_string(), message: message.into() }
}

/// What the config asks the tool to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Back up topics.
    Backup,
    /// Restore a backup.
    Restore,
}

fn retention_policy(raw: Option<RawRetention>) -> Result<Option<RetentionPolicy>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    let duration = |key: &str, text: Option<String>| {
        text.map(|text| {
            humantime::parse_duration(&text).map_err(|e| {
                invalid(&format!("retention.{key}"), format!("{text:?} is not a duration like 7d or 12h: {e}"))
            })
        })
        .transpose()
    };
    let policy = RetentionPolicy {
        keep_last: raw.keep_last,
        keep_within: duration("keep_within", raw.keep_within)?,
        keep_daily: raw.keep_daily,
        keep_weekly: raw.keep_weekly,
        keep_monthly: raw.keep_monthly,
        segment_retention: duration("segment_retention", raw.segment_retention)?,
    };
    if !policy.selects_backups() && policy.segment_retention.is_none() {
        return Err(invalid(
            "retention",
            "set at least one of keep_last, keep_within, keep_daily, keep_weekly, keep_monthly, segment_retention",
        ));
    }
    Ok(Some(policy))
}

/// Where `/metrics`, `/health` and `/ready` are served when the endpoint is on.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The endpoint's address: on when the section is present (unless `enabled: false`).
fn metrics_listen(raw: Option<RawMetrics>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    let Some(raw) = raw else { return Ok(None) };
    if raw.enabled == Some(false) {
        return Ok(None);
    }
    let listen = raw.listen.as_deref().unwrap_or(DEFAULT_METRICS_LISTEN);
    listen.parse().map(Some).map_err(|_| {
        invalid(
            "metrics.listen",
            format!("{listen:?} is not IP:PORT (e.g. {DEFAULT_METRICS_LISTEN}, or 0.0.0.0:9464 for every interface)"),
        )
    })
}

const MIB: u64 = 1024 * 1024;

/// Substitutes variables and parses the raw document, with key paths in errors.
fn parse_raw(text: &str, lookup: impl Fn(&str) -> Option<String>, expected: Mode) -> Result<RawConfig, ConfigError> {
    let text = substitute_env(text, lookup)?;
    let deserializer = serde_yaml_ng::Deserializer::from_str(&text);
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        invalid(&path, e.into_inner().to_string())
    })?;
    if raw.mode != expected {
        let (wanted, other) = match expected {
            Mode::Backup => ("backup", "restore"),
            Mode::Restore => ("restore", "backup"),
        };
        return Err(invalid(
            "mode",
            format!("this command needs mode: {wanted}; use `kafka-backup {other}` for this file"),
        ));
    }
    check_backup_id(&raw.backup_id)?;
    let (unused, section) = match expected {
        Mode::Backup => {
            ([("target", raw.target.is_some()), ("restore", raw.restore.is_some()), ("retention", false)], "backup")
        }
        Mode::Restore => {
            ([("backup", raw.backup.is_some()), ("retention", raw.retention.is_some()), ("target", false)], "restore")
        }
    };
    if let Some((key, _)) = unused.iter().find(|(_, present)| *present) {
        return Err(invalid(key, format!("not used in mode {section}")));
    }
    Ok(raw)
}

/// The cluster a config file talks to, with its connection settings: `source` of a backup config,
/// `target` of a restore config (for commands such as `cluster-info --config`).
pub fn cluster_of_config_file(path: &std::path::Path) -> Result<ClientConfig, ConfigError> {
    Ok(match load_either(path)? {
        Either::Backup(config) => config.source,
        Either::Restore(config) => config.target,
    })
}

/// What a config file that passed every check asks for (`config check`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CheckedConfig {
    /// `backup` or `restore`.
    pub mode: &'static str,
    /// The backup written or restored.
    pub backup_id: String,
    /// The brokers of the source (backup) or target (restore) cluster.
    pub bootstrap_servers: Vec<String>,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: &'static str,
    /// Where the backup is stored.
    pub storage: String,
    /// Whether the backup is encrypted (a key is configured).
    pub encrypted: bool,
}

/// Checks a config file without connecting to anything: its YAML, every key and value, the
/// `${VAR}`s it names, and the files it names (TLS certificates and keys, encryption keys, token
/// files). The first problem is the error, naming the key.
pub fn check_config_file(path: &std::path::Path) -> Result<CheckedConfig, ConfigError> {
    let (mode, location, cluster) = match load_either(path)? {
        Either::Backup(config) => ("backup", config.location, config.source),
        Either::Restore(config) => ("restore", config.location, config.target),
    };
    let storage = match &location.store.storage {
        StorageConfig::Filesystem { path, prefix } if prefix.is_empty() => path.display().to_string(),
        StorageConfig::Filesystem { path, prefix } => format!("{}/{prefix}", path.display()),
        StorageConfig::Memory { .. } => "memory".to_string(),
        StorageConfig::Cloud(cloud) => cloud.describe(),
    };
    Ok(CheckedConfig {
        mode,
        backup_id: location.backup_id,
        bootstrap_servers: cluster.bootstrap_servers,
        security_protocol: cluster.security_protocol.name(),
        storage,
        encrypted: location.store.keyring.is_some(),
    })
}

/// The retention policy `prune` applies: `flags` when they set any rule, else the `retention`
/// section of the backup config at `path`.
pub fn prune_policy(flags: RetentionPolicy, path: Option<&std::path::Path>) -> Result<RetentionPolicy, ConfigError> {
    if flags != RetentionPolicy::default() {
        return Ok(flags);
    }
    let Some(path) = path else {
        return Err(invalid(
            "retention",
            "give a policy: --keep-last, --keep-within, --keep-daily, --keep-weekly, --keep-monthly or \
             --segment-retention (or --config with a retention section)",
        ));
    };
    BackupConfig::load(path)?.retention.ok_or_else(|| {
        invalid("retention", format!("{} has no retention section; give the policy as flags", path.display()))
    })
}

/// The store a config file of either mode names, with its encryption keys (for the commands
/// that read backups).
pub fn store_of_config_file(path: &std::path::Path) -> Result<StoreLocation, ConfigError> {
    Ok(match load_either(path)? {
        Either::Backup(config) => config.location.store,
        Either::Restore(config) => config.location.store,
    })
}

enum Either {
    Backup(BackupConfig),
    Restore(RestoreConfig),
}

fn load_either(path: &std::path::Path) -> Result<Either, ConfigError> {
    #[derive(Deserialize)]
    struct ModeOnly {
        mode: Mode,
    }
    let text = read_config(path)?;
    let mode = serde_yaml_ng::from_str::<ModeOnly>(&text).map_err(|e| invalid("mode", e.to_string()))?.mode;
    let lookup = |name: &str| std::env::var(name).ok();
    match mode {
        Mode::Backup => Ok(Either::Backup(BackupConfig::from_yaml(&text, lookup)?)),
        Mode::Restore => Ok(Either::Restore(RestoreJob::from_yaml(&text, lookup)?.restore)),
    }
}

impl BackupConfig {
    /// Reads, substitutes, parses and checks a backup config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::from_yaml(&read_config(path)?, |name| std::env::var(name).ok())
    }

    /// Parses config text, taking `${VAR}` values from `lookup`.
    pub fn from_yaml(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let raw = parse_raw(text, lookup, Mode::Backup)?;
        let source = raw.source.as_ref().ok_or_else(|| invalid("source", "missing: the cluster to back up"))?;
        let location = store_location(raw.storage)?.backup(&raw.backup_id);
        Ok(Self {
            location,
            source: client_config(source, "source")?,
            topics: topic_selector(source, "source")?,
            groups: selector_or_all(source.groups.as_ref(), "source.groups")?,
            progress_group: progress_group(source)?,
            settings: backup_settings(raw.backup.unwrap_or_default())?,
            metrics: metrics_listen(raw.metrics)?,
            retention: retention_policy(raw.retention)?,
        })
    }
}

impl RestoreJob {
    /// Reads, substitutes, parses and checks a restore config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        Self::from_yaml(&read_config(path)?, |name| std::env::var(name).ok())
    }

    /// Parses config text, taking `${VAR}` values from `lookup`.
    pub fn from_yaml(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut raw = parse_raw(text, lookup, Mode::Restore)?;
        let target = raw.target.as_ref().ok_or_else(|| invalid("target", "missing: the cluster to restore into"))?;
        if target.groups.is_some() {
            return Err(invalid("target.groups", "not used in mode restore"));
        }
        if target.topics.is_some() {
            return Err(invalid(
                "target.topics",
                "not used: choose topics with source.topics and restore.topic_mapping",
            ));
        }
        let topics = match &raw.source {
            None => selector_or_all(None, "source.topics")?,
            Some(source) => {
                if source.bootstrap_servers.is_some() {
                    return Err(invalid(
                        "source.bootstrap_servers",
                        "not used in mode restore (the data comes from storage)",
                    ));
                }
                if source.groups.is_some() {
                    return Err(invalid("source.groups", "not used in mode restore"));
                }
                topic_selector(source, "source")?
            }
        };
        let section = raw.restore.take().unwrap_or_default();
        let groups = group_recovery(&section)?;
        let location = store_location(raw.storage)?.backup(&raw.backup_id);
        let restore = RestoreConfig {
            location,
            target: client_config(target, "target").and_then(|config| match target.progress_group {
                Some(_) => Err(invalid("target.progress_group", "applies to a backup's source only: remove it")),
                None => Ok(config),
            })?,
            topics,
            settings: restore_settings(section)?,
            metrics: metrics_listen(raw.metrics)?,
        };
        Ok(Self { restore, groups })
    }
}

/// `restore.consumer_group_strategy` and `restore.consumer_groups`.
fn group_recovery(raw: &RawRestore) -> Result<GroupRecovery, ConfigError> {
    let include_original_offset_header = raw.include_original_offset_header.unwrap_or(false);
    let strategy = match raw.consumer_group_strategy.as_deref() {
        None => None,
        Some(name) => {
            let strategy: GroupStrategy = name.parse().map_err(|e| invalid("restore.consumer_group_strategy", e))?;
            if strategy.reads_offset_headers() && !include_original_offset_header {
                return Err(invalid(
                    "restore.consumer_group_strategy",
                    format!("{strategy} reads the x-original-offset headers: set restore.include_original_offset_header: true"),
                ));
            }
            Some(strategy)
        }
    };
    let groups = match &raw.consumer_groups {
        None => None,
        Some(patterns) => Some(GroupSelection::patterns(selector_or_all(Some(patterns), "restore.consumer_groups")?)),
    };
    Ok(GroupRecovery { strategy, groups })
}

fn restore_settings(raw: RawRestore) -> Result<RestoreSettings, ConfigError> {
    let window = TimeWindow { start: raw.time_window_start, end: raw.time_window_end };
    if let (Some(start), Some(end)) = (window.start, window.end) {
        if start > end {
            return Err(invalid("restore.time_window_start", format!("{start} is after time_window_end {end}")));
        }
    }
    let repartition = raw.repartition.unwrap_or(false);
    let partition_mapping = raw.partition_mapping.unwrap_or_default();
    for (topic, mapping) in &partition_mapping {
        let path = format!("restore.partition_mapping.{topic}");
        if repartition {
            return Err(invalid(&path, "cannot be combined with restore.repartition (records are routed by key)"));
        }
        let mut targets = std::collections::BTreeSet::new();
        for (&source, &target) in mapping {
            if source < 0 || target < 0 {
                return Err(invalid(&path, format!("partitions are never negative ({source} -> {target})")));
            }
            if !targets.insert(target) {
                return Err(invalid(&path, format!("two source partitions map to target partition {target}")));
            }
        }
    }
    let mut source_partitions = BTreeMap::new();
    for (topic, partitions) in raw.source_partitions.unwrap_or_default() {
        let path = format!("restore.source_partitions.{topic}");
        if partitions.is_empty() {
            return Err(invalid(&path, "name at least one partition (leave the topic out to restore all of them)"));
        }
        if let Some(negative) = partitions.iter().find(|&&p| p < 0) {
            return Err(invalid(&path, format!("partitions are never negative ({negative})")));
        }
        source_partitions.insert(topic, partitions.into_iter().collect());
    }
    let incarnations = raw.incarnations.unwrap_or_default();
    if let Some((topic, _)) = incarnations.iter().find(|(_, &n)| n == 0) {
        return Err(invalid(
            &format!("restore.incarnations.{topic}"),
            "incarnations count from 1 (the topic as first backed up)",
        ));
    }
    let produce_compression = raw
        .produce_compression
        .as_deref()
        .map(|name| Compression::from_name(name).map_err(|e| invalid("restore.produce_compression", e)))
        .transpose()?;
    let positive = |key: &str, value: Option<u64>| match value {
        Some(0) => Err(invalid(key, "must be positive (remove the key for no limit)")),
        other => Ok(other),
    };
    let workers = restore_group(
        worker_group(GroupKeys {
            section: "restore",
            group_id: raw.group_id.as_deref(),
            instance_id: raw.group_instance_id.as_deref(),
            session_timeout_ms: raw.group_session_timeout_ms,
            rebalance_timeout_ms: raw.group_rebalance_timeout_ms,
        })?,
        repartition,
    )?;
    let defaults = RestoreSettings::default();
    Ok(RestoreSettings {
        workers,
        metadata: restored_metadata(raw.metadata.unwrap_or_default())?,
        window,
        topic_mapping: raw.topic_mapping.unwrap_or_default(),
        partition_mapping,
        source_partitions,
        incarnations,
        start_offset: start_offset(raw.start_offset)?,
        purge_before_restore: raw.purge_before_restore.unwrap_or(defaults.purge_before_restore),
        switch_to_create_time: raw.switch_to_create_time.unwrap_or(defaults.switch_to_create_time),
        create_topics: raw.create_topics.unwrap_or(defaults.create_topics),
        repartition,
        dry_run: raw.dry_run.unwrap_or(defaults.dry_run),
        max_concurrent_partitions: in_range(
            "restore.max_concurrent_partitions",
            raw.max_concurrent_partitions.unwrap_or(defaults.max_concurrent_partitions),
            1,
            1024,
        )?,
        rate_limit_bytes_per_sec: positive("restore.rate_limit_bytes_per_sec", raw.rate_limit_bytes_per_sec)?,
        rate_limit_records_per_sec: positive("restore.rate_limit_records_per_sec", raw.rate_limit_records_per_sec)?,
        produce_compression,
        include_original_offset_header: raw
            .include_original_offset_header
            .unwrap_or(defaults.include_original_offset_header),
    })
}

fn check_backup_id(id: &str) -> Result<(), ConfigError> {
    let valid = !id.is_empty()
        && id.len() <= 200
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && !id.starts_with('.');
    if valid {
        Ok(())
    } else {
        Err(invalid("backup_id", format!("{id:?} must be 1-200 characters of A-Z a-z 0-9 . _ - (not starting with .)")))
    }
}

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(key: &str, value: T, min: T, max: T) -> Result<T, ConfigError> {
    if value < min || value > max {
        return Err(invalid(key, format!("{value} is out of range {min}..={max}")));
    }
    Ok(value)
}

fn backup_settings(raw: RawBackup) -> Result<BackupSettings, ConfigError> {
    let compression = match raw.compression.as_deref() {
        None => Compression::Zstd,
        Some(name) => Compression::from_name(name).map_err(|e| invalid("backup.compression", e))?,
    };
    let compression_level = match (raw.compression_level, compression.level_range()) {
        (None, _) => None,
        (Some(level), Some((min, max))) => Some(in_range("backup.compression_level", level, min, max)?),
        (Some(_), None) => {
            return Err(invalid(
                "backup.compression_level",
                format!("{} has no levels; remove the key", compression.name()),
            ))
        }
    };
    Ok(BackupSettings {
        compression,
        compression_level,
        segment_max_bytes: in_range(
            "backup.segment_max_bytes",
            raw.segment_max_bytes.unwrap_or(128 * MIB),
            1024,
            2048 * MIB,
        )?,
        segment_max_interval: Duration::from_millis(in_range(
            "backup.segment_max_interval_ms",
            raw.segment_max_interval_ms.unwrap_or(600_000),
            100,
            7 * 24 * 3_600_000,
        )?),
        checkpoint_interval: Duration::from_secs(in_range(
            "backup.checkpoint_interval_secs",
            raw.checkpoint_interval_secs.unwrap_or(5),
            1,
            3600,
        )?),
        max_concurrent_partitions: in_range(
            "backup.max_concurrent_partitions",
            raw.max_concurrent_partitions.unwrap_or(4),
            1,
            1024,
        )?,
        continuous: raw.continuous.unwrap_or(false),
        cluster_acls: raw.cluster_acls.unwrap_or(false),
        workers: backup_group(
            worker_group(GroupKeys {
                section: "backup",
                group_id: raw.group_id.as_deref(),
                instance_id: raw.group_instance_id.as_deref(),
                session_timeout_ms: raw.group_session_timeout_ms,
                rebalance_timeout_ms: raw.group_rebalance_timeout_ms,
            })?,
            raw.continuous.unwrap_or(false),
        )?,
    })
}

/// `source.progress_group`: a consumer group the backup commits its durable positions to.
fn progress_group(source: &RawEndpoint) -> Result<Option<String>, ConfigError> {
    match source.progress_group.as_deref() {
        Some(name) if name.trim().is_empty() || name.len() > 249 => {
            Err(invalid("source.progress_group", format!("{name:?} must be 1-249 characters")))
        }
        name => Ok(name.map(str::to_string)),
    }
}

/// `restore.start_offset`: `earliest`, one source offset for every partition, or offsets by topic
/// and partition.
fn start_offset(value: Option<serde_yaml_ng::Value>) -> Result<StartOffset, ConfigError> {
    use serde_yaml_ng::Value;
    const KEY: &str = "restore.start_offset";
    let offset = |path: &str, value: &Value| match value.as_i64() {
        Some(offset) if offset >= 0 => Ok(offset),
        _ => Err(invalid(path, format!("expected a source offset (0 or more), found {value:?}"))),
    };
    Ok(match value {
        None => StartOffset::Earliest,
        Some(Value::String(name)) if name == "earliest" => StartOffset::Earliest,
        Some(Value::String(name)) if name == "latest" => {
            return Err(invalid(
                KEY,
                "latest would restore nothing (a restore reads what the backup holds, up to its last record); to \
                 restore only recent records set time_window_start, or give the source offset to start from",
            ))
        }
        Some(Value::Mapping(topics)) => {
            let mut offsets = BTreeMap::new();
            for (topic, partitions) in &topics {
                let topic = topic.as_str().ok_or_else(|| invalid(KEY, "topics are named by strings"))?;
                let path = format!("{KEY}.{topic}");
                let Value::Mapping(partitions) = partitions else {
                    return Err(invalid(&path, "expected {partition: source offset, ...}"));
                };
                let mut by_partition = BTreeMap::new();
                for (partition, start) in partitions {
                    let partition = partition
                        .as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .filter(|p| *p >= 0)
                        .ok_or_else(|| invalid(&path, format!("{partition:?} is not a partition")))?;
                    by_partition.insert(partition, offset(&format!("{path}.{partition}"), start)?);
                }
                offsets.insert(topic.to_string(), by_partition);
            }
            StartOffset::PerPartition(offsets)
        }
        Some(other) => StartOffset::Every(offset(KEY, &other).map_err(|_| {
            invalid(
                KEY,
                format!("expected earliest, a source offset or {{topic: {{partition: offset}}}}, found {other:?}"),
            )
        })?),
    })
}

/// `restore.metadata`: the access metadata a restore recreates besides the records (the kinds not
/// implemented are refused, never ignored).
fn restored_metadata(kinds: Vec<String>) -> Result<RestoredAccess, ConfigError> {
    let mut restored = RestoredAccess::default();
    for kind in kinds {
        match kind.as_str() {
            "acls" => restored.acls = true,
            "quotas" => restored.quotas = true,
            "users" => restored.users = true,
            "share_groups" => restored.share_groups = true,
            "schemas" => {
                return Err(invalid(
                    "restore.metadata",
                    "schemas cannot be restored yet: not implemented (acls, quotas, users and share_groups are); \
                     back up the registry's _schemas topic instead (see docs/configuration.md)",
                ))
            }
            other => {
                return Err(invalid(
                    "restore.metadata",
                    format!("{other:?} is not a kind of metadata: acls, quotas, users, share_groups"),
                ))
            }
        }
    }
    Ok(restored)
}

/// The `group_*` keys of the `backup` or `restore` section.
struct GroupKeys<'a> {
    section: &'static str,
    group_id: Option<&'a str>,
    instance_id: Option<&'a str>,
    session_timeout_ms: Option<u64>,
    rebalance_timeout_ms: Option<u64>,
}

/// `{section}.group_id` and its companions: workers sharing a backup or a restore.
fn worker_group(keys: GroupKeys) -> Result<Option<WorkerGroup>, ConfigError> {
    let section = keys.section;
    let Some(group_id) = keys.group_id else {
        if keys.instance_id.is_some() || keys.session_timeout_ms.is_some() || keys.rebalance_timeout_ms.is_some() {
            return Err(invalid(
                &format!("{section}.group_id"),
                "is missing: group_instance_id and the group timeouts only apply to workers of a group".to_string(),
            ));
        }
        return Ok(None);
    };
    let timeout = |key: &str, value: Option<u64>, default: u64| {
        in_range(&format!("{section}.{key}"), value.unwrap_or(default), 1_000, 1_800_000).map(Duration::from_millis)
    };
    let group = WorkerGroup {
        group_id: group_id.to_string(),
        instance_id: keys.instance_id.map(str::to_string),
        session_timeout: timeout("group_session_timeout_ms", keys.session_timeout_ms, 30_000)?,
        rebalance_timeout: timeout("group_rebalance_timeout_ms", keys.rebalance_timeout_ms, 60_000)?,
    };
    checked_group(section, group).map(Some)
}

/// `group` if its names are valid.
fn checked_group(section: &str, group: WorkerGroup) -> Result<WorkerGroup, ConfigError> {
    let name_ok = |name: &str| {
        !name.is_empty() && name.len() <= 249 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    };
    if !name_ok(&group.group_id) {
        let problem = format!("{:?} must be 1-249 characters of A-Z a-z 0-9 . _ -", group.group_id);
        return Err(invalid(&format!("{section}.group_id"), problem));
    }
    if let Some(instance) = group.instance_id.as_deref().filter(|id| !name_ok(id)) {
        let problem = format!("{instance:?} must be 1-249 characters of A-Z a-z 0-9 . _ -");
        return Err(invalid(&format!("{section}.group_instance_id"), problem));
    }
    Ok(group)
}

/// Workers share a continuous backup only.
fn backup_group(group: Option<WorkerGroup>, continuous: bool) -> Result<Option<WorkerGroup>, ConfigError> {
    if group.is_some() && !continuous {
        return Err(invalid(
            "backup.group_id",
            "workers share a continuous backup: set backup.continuous: true (a snapshot ends at the offsets one \
             process reads at its start: run it as one process)"
                .to_string(),
        ));
    }
    Ok(group)
}

/// Workers cannot share a restore that routes records by key.
fn restore_group(group: Option<WorkerGroup>, repartition: bool) -> Result<Option<WorkerGroup>, ConfigError> {
    if group.is_some() && repartition {
        return Err(invalid(
            "restore.group_id",
            "cannot be combined with restore.repartition: records routed by key are restored in source order by one \
             process, which is what lets an interrupted run resume exactly; run that restore without a group"
                .to_string(),
        ));
    }
    Ok(group)
}

/// `existing` with `--group-id` / `--group-instance-id` from the command line applied over the
/// config's `{section}.group_id` / `{section}.group_instance_id` (the group timeouts stay the config's).
fn overridden_group(
    section: &'static str,
    existing: Option<WorkerGroup>,
    group_id: Option<String>,
    instance_id: Option<String>,
) -> Result<Option<WorkerGroup>, ConfigError> {
    if group_id.is_none() && instance_id.is_none() {
        return Ok(existing);
    }
    let mut group = existing.unwrap_or(WorkerGroup {
        group_id: String::new(),
        instance_id: None,
        session_timeout: Duration::from_millis(30_000),
        rebalance_timeout: Duration::from_millis(60_000),
    });
    if let Some(group_id) = group_id {
        group.group_id = group_id;
    }
    if instance_id.is_some() {
        group.instance_id = instance_id;
    }
    if group.group_id.is_empty() {
        return Err(invalid(
            &format!("{section}.group_id"),
            "is missing: --group-instance-id needs --group-id".to_string(),
        ));
    }
    checked_group(section, group).map(Some)
}

impl BackupConfig {
    /// The config with `--group-id` / `--group-instance-id` from the command line applied over
    /// `backup.group_id` / `backup.group_instance_id` (the group timeouts stay the config's).
    pub fn with_group(mut self, group_id: Option<String>, instance_id: Option<String>) -> Result<Self, ConfigError> {
        let group = overridden_group("backup", self.settings.workers.take(), group_id, instance_id)?;
        self.settings.workers = backup_group(group, self.settings.continuous)?;
        Ok(self)
    }
}

impl RestoreConfig {
    /// The config with `--group-id` / `--group-instance-id` from the command line applied over
    /// `restore.group_id` / `restore.group_instance_id` (the group timeouts stay the config's).
    pub fn with_group(mut self, group_id: Option<String>, instance_id: Option<String>) -> Result<Self, ConfigError> {
        let group = overridden_group("restore", self.settings.workers.take(), group_id, instance_id)?;
        self.settings.workers = restore_group(group, self.settings.repartition)?;
        Ok(self)
    }
}

#[cfg(test)]
mod tests;
