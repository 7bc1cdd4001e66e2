//! `config migrate --from oso`: a config of osodevops/kafka-backup (same commands, other keys)
//! rewritten as ours, `${VAR}`s kept as written, with every key that cannot be carried over named
//! with the reason (a setting we do not have, or one that means something else here).

use serde_yaml_ng::{Mapping, Value};

use super::ConfigError;

/// A migrated config and what was left behind.
#[derive(Debug)]
pub struct Migration {
    /// Our config, as YAML (the keys left behind listed in a comment at its top).
    pub yaml: String,
    /// The keys that were not carried over.
    pub not_carried: Vec<NotCarried>,
}

/// A key of the old config that has no place in ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotCarried {
    /// Its dotted path in the old config.
    pub key: String,
    /// Why, and what to do instead.
    pub reason: String,
}

const NO_OFFSET_DATABASE: &str =
    "progress is committed with each segment in the backup itself: there is no offset database to keep or sync";
const NO_KERBEROS: &str = "SASL GSSAPI (Kerberos) is not supported";

/// Rewrites the osodevops/kafka-backup config `text` as ours.
pub fn from_oso(text: &str) -> Result<Migration, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid { path: ".".into(), message };
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| invalid(format!("not YAML: {e}")))?;
    let Value::Mapping(mut root) = root else { return Err(invalid("expected a mapping of keys".into())) };
    let mode = match take(&mut root, "mode") {
        Some(Value::String(mode)) if mode == "backup" || mode == "restore" => mode,
        _ => return Err(invalid("`mode` must be backup or restore".into())),
    };
    let mut migrator = Migrator::default();
    let mut out = Mapping::new();
    out.insert("mode".into(), mode.clone().into());
    if let Some(id) = take(&mut root, "backup_id") {
        out.insert("backup_id".into(), id);
    }
    let backup = mode == "backup";
    let (cluster, unused) = if backup { ("source", "target") } else { ("target", "source") };
    if let Some(section) = take_mapping(&mut root, cluster) {
        let (endpoint, topics) = migrator.endpoint(cluster, section);
        out.insert(cluster.into(), Value::Mapping(endpoint));
        // The topic selection is `source.topics` in both modes here (a restore's: which backed-up
        // topics to restore).
        if let Some(topics) = topics {
            match out.get_mut("source").and_then(Value::as_mapping_mut) {
                Some(source) => drop(source.insert("topics".into(), topics)),
                None => {
                    drop(out.insert("source".into(), Value::Mapping(Mapping::from_iter([("topics".into(), topics)]))))
                }
            }
        }
    }
    if take(&mut root, unused).is_some() {
        migrator.drop(unused, &format!("a {mode} config has no `{unused}` cluster"));
    }
    if let Some(storage) = take_mapping(&mut root, "storage") {
        out.insert("storage".into(), Value::Mapping(migrator.storage(storage)));
    }
    let options = if backup { "backup" } else { "restore" };
    if let Some(section) = take_mapping(&mut root, options) {
        let migrated = if backup { migrator.backup(section, &mut out) } else { migrator.restore(section) };
        if !migrated.is_empty() {
            out.insert(options.into(), Value::Mapping(migrated));
        }
    }
    if take(&mut root, if backup { "restore" } else { "backup" }).is_some() {
        migrator.drop(if backup { "restore" } else { "backup" }, &format!("not used by a {mode} config"));
    }
    if take(&mut root, "offset_storage").is_some() {
        migrator.drop("offset_storage", NO_OFFSET_DATABASE);
    }
    if let Some(metrics) = take_mapping(&mut root, "metrics") {
        if let Some(migrated) = migrator.metrics(metrics) {
            out.insert("metrics".into(), Value::Mapping(migrated));
        }
    }
    migrator.unknown("", root);
    let mut yaml = String::from(
        "# Migrated from an osodevops/kafka-backup config by `kafka-backup config migrate --from oso`;\n\
         # check it with `kafka-backup config check --config FILE` (docs/configuration.md).\n",
    );
    for NotCarried { key, reason } in &migrator.not_carried {
        yaml.push_str(&format!("# not carried over: {key}: {reason}\n"));
    }
    yaml.push_str(&serde_yaml_ng::to_string(&Value::Mapping(out)).map_err(|e| invalid(e.to_string()))?);
    Ok(Migration { yaml, not_carried: migrator.not_carried })
}

fn take(map: &mut Mapping, key: &str) -> Option<Value> {
    map.remove(key)
}

fn take_mapping(map: &mut Mapping, key: &str) -> Option<Mapping> {
    match take(map, key) {
        Some(Value::Mapping(section)) => Some(section),
        _ => None,
    }
}

#[derive(Default)]
struct Migrator {
    not_carried: Vec<NotCarried>,
}

impl Migrator {
    fn drop(&mut self, key: &str, reason: &str) {
        self.not_carried.push(NotCarried { key: key.to_string(), reason: reason.to_string() });
    }

    /// Copies the keys of `names` that `from` holds into `to`, each under its new name.
    fn carry(from: &mut Mapping, to: &mut Mapping, names: &[(&str, &str)]) {
        for (old, new) in names {
            if let Some(value) = take(from, old) {
                to.insert((*new).into(), value);
            }
        }
    }

    /// Drops each key of `from` in `names`, for `reason`.
    fn drop_all(&mut self, prefix: &str, from: &mut Mapping, names: &[&str], reason: &str) {
        for name in names {
            if take(from, name).is_some() {
                self.drop(&format!("{prefix}.{name}"), reason);
            }
        }
    }

    /// Names every key left in `rest` as unknown.
    fn unknown(&mut self, prefix: &str, rest: Mapping) {
        for (key, _) in rest {
            let key = key.as_str().map_or_else(|| format!("{key:?}"), str::to_string);
            let path = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
            self.drop(&path, "not a key of osodevops/kafka-backup this migration knows; add its equivalent by hand");
        }
    }

    /// A cluster section: the connection keys (their `security` block flattened), and the topic
    /// selection apart.
    fn endpoint(&mut self, name: &str, mut section: Mapping) -> (Mapping, Option<Value>) {
        let mut out = Mapping::new();
        Self::carry(&mut section, &mut out, &[("bootstrap_servers", "bootstrap_servers")]);
        if let Some(mut security) = take_mapping(&mut section, "security") {
            let prefix = format!("{name}.security");
            if security.get("sasl_mechanism").and_then(Value::as_str).is_some_and(|m| m.eq_ignore_ascii_case("GSSAPI"))
            {
                take(&mut security, "sasl_mechanism");
                self.drop(&format!("{prefix}.sasl_mechanism"), NO_KERBEROS);
            }
            let same = [
                "security_protocol",
                "sasl_mechanism",
                "sasl_username",
                "sasl_password",
                "ssl_ca_location",
                "ssl_certificate_location",
                "ssl_key_location",
            ];
            Self::carry(&mut security, &mut out, &same.map(|key| (key, key)));
            let kerberos = ["sasl_kerberos_service_name", "sasl_keytab_path", "sasl_krb5_config_path"];
            self.drop_all(&prefix, &mut security, &kerberos, NO_KERBEROS);
            self.unknown(&prefix, security);
        }
        if take(&mut section, "connection").is_some() {
            self.drop(
                &format!("{name}.connection"),
                "connections are managed by the client: no keepalive, nodelay or per-broker connection count settings",
            );
        }
        let topics = take(&mut section, "topics");
        self.unknown(name, section);
        (out, topics)
    }

    fn storage(&mut self, mut section: Mapping) -> Mapping {
        let mut out = Mapping::new();
        let backend = take(&mut section, "backend");
        let renames: &[(&str, &str)] = match backend.as_ref().and_then(Value::as_str) {
            Some("s3") => &[
                ("bucket", "bucket"),
                ("region", "region"),
                ("endpoint", "endpoint"),
                ("access_key", "access_key_id"),
                ("secret_key", "secret_access_key"),
                ("session_token", "session_token"),
                ("prefix", "prefix"),
                ("path_style", "path_style"),
                ("allow_http", "allow_http"),
            ],
            Some("azure") => &[
                ("account_name", "account"),
                ("container_name", "container"),
                ("account_key", "account_key"),
                ("sas_token", "sas_token"),
                ("prefix", "prefix"),
                ("endpoint", "endpoint"),
            ],
            Some("gcs") => {
                &[("bucket", "bucket"), ("service_account_path", "service_account_path"), ("prefix", "prefix")]
            }
            Some("filesystem") => &[("path", "path"), ("prefix", "prefix")],
            _ => &[],
        };
        if let Some(backend) = backend {
            out.insert("backend".into(), backend);
        }
        Self::carry(&mut section, &mut out, renames);
        let identity = ["use_workload_identity", "client_id", "tenant_id", "client_secret"];
        self.drop_all(
            "storage",
            &mut section,
            &identity,
            "Azure identities come from the environment (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_CLIENT_SECRET or AZURE_FEDERATED_TOKEN_FILE for workload identity)",
        );
        self.unknown("storage", section);
        out
    }

    fn backup(&mut self, mut section: Mapping, out: &mut Mapping) -> Mapping {
        let mut backup = Mapping::new();
        let same = [
            "compression",
            "compression_level",
            "segment_max_bytes",
            "segment_max_interval_ms",
            "checkpoint_interval_secs",
            "max_concurrent_partitions",
            "continuous",
        ];
        Self::carry(&mut section, &mut backup, &same.map(|key| (key, key)));
        match take(&mut section, "start_offset") {
            None => {}
            Some(Value::String(earliest)) if earliest == "earliest" => {}
            Some(_) => self.drop(
                "backup.start_offset",
                "a backup always starts at each partition's log start (or where the last run stopped)",
            ),
        }
        // Internal topics are selected here by their exact names in source.topics.include.
        let internal = take(&mut section, "internal_topics");
        let include_internal = take(&mut section, "include_internal_topics");
        if let (Some(Value::Sequence(names)), Some(Value::Bool(true))) = (internal, include_internal) {
            let include = out
                .get_mut("source")
                .and_then(Value::as_mapping_mut)
                .and_then(|source| source.get_mut("topics"))
                .and_then(Value::as_mapping_mut)
                .and_then(|topics| topics.get_mut("include"))
                .and_then(Value::as_sequence_mut);
            match include {
                Some(include) => include.extend(names),
                None => self.drop("backup.internal_topics", "add them to source.topics.include by their exact names"),
            }
        }
        self.drop_all("backup", &mut section, &["sync_interval_secs"], NO_OFFSET_DATABASE);
        self.drop_all(
            "backup",
            &mut section,
            &["include_offset_headers", "source_cluster_id"],
            "a backup keeps records unchanged; restore.include_original_offset_header adds the source offset at restore time",
        );
        self.drop_all(
            "backup",
            &mut section,
            &["stop_at_current_offsets"],
            "a snapshot (continuous: false) always stops at the offsets it found at its start",
        );
        self.drop_all(
            "backup",
            &mut section,
            &["poll_interval_ms"],
            "fetches long-poll the brokers: there is no poll interval",
        );
        if take(&mut section, "consumer_group_snapshot").is_some() {
            self.drop(
                "backup.consumer_group_snapshot",
                "group offsets are always snapshotted with the backup; source.groups selects which groups",
            );
        }
        self.unknown("backup", section);
        backup
    }

    fn restore(&mut self, mut section: Mapping) -> Mapping {
        let mut restore = Mapping::new();
        let same = [
            "time_window_start",
            "time_window_end",
            "topic_mapping",
            "create_topics",
            "dry_run",
            "include_original_offset_header",
            "rate_limit_records_per_sec",
            "rate_limit_bytes_per_sec",
            "max_concurrent_partitions",
            "consumer_group_strategy",
        ];
        Self::carry(&mut section, &mut restore, &same.map(|key| (key, key)));
        Self::carry(&mut section, &mut restore, &[("purge_topics", "purge_before_restore")]);
        if restore.get("topic_mapping").and_then(Value::as_mapping).is_some_and(Mapping::is_empty) {
            restore.remove("topic_mapping");
        }
        if let Some(Value::Sequence(groups)) = take(&mut section, "consumer_groups") {
            if !groups.is_empty() {
                restore.insert(
                    "consumer_groups".into(),
                    Value::Mapping(Mapping::from_iter([("include".into(), groups.into())])),
                );
            }
        }
        if let Some(Value::Mapping(mapping)) = take(&mut section, "partition_mapping") {
            if !mapping.is_empty() {
                self.drop(
                    "restore.partition_mapping",
                    "partition mappings are per topic here: restore.partition_mapping.TOPIC.SOURCE: TARGET",
                );
            }
        }
        if let Some(Value::Mapping(topics)) = take(&mut section, "repartitioning") {
            let by_key =
                topics.values().all(|t| t.get("strategy").and_then(Value::as_str).is_none_or(|s| s == "murmur2"));
            if by_key && !topics.is_empty() {
                restore.insert("repartition".into(), true.into());
                self.drop(
                    "restore.repartitioning",
                    "carried as repartition: true (by key, Kafka's murmur2) into each target topic's own partition count; create the target topics with the counts you want",
                );
            } else if !topics.is_empty() {
                self.drop(
                    "restore.repartitioning",
                    "round-robin (automatic) repartitioning is not supported: records keep their key's partition",
                );
            }
        }
        self.drop_all(
            "restore",
            &mut section,
            &["source_partitions"],
            "restoring some partitions only is not supported yet",
        );
        self.drop_all(
            "restore",
            &mut section,
            &["produce_acks", "produce_timeout_ms", "produce_batch_size"],
            "a restore produces the backed-up batches as they are, idempotently, with acks=all",
        );
        self.drop_all(
            "restore",
            &mut section,
            &["checkpoint_state", "checkpoint_interval_secs"],
            "restore progress is committed with each segment in the backup's store; a killed restore resumes exactly",
        );
        self.drop_all(
            "restore",
            &mut section,
            &["offset_report"],
            "the plan and report are printed (--format json) by restore and offset-reset plan",
        );
        self.drop_all(
            "restore",
            &mut section,
            &["reset_consumer_offsets", "auto_consumer_groups"],
            "run `kafka-backup three-phase-restore` (data, then translated group offsets) instead of restore",
        );
        self.drop_all(
            "restore",
            &mut section,
            &["default_replication_factor"],
            "created topics take the original replication factor, capped at the target's broker count",
        );
        self.unknown("restore", section);
        restore
    }

    fn metrics(&mut self, mut section: Mapping) -> Option<Mapping> {
        let mut out = Mapping::new();
        Self::carry(&mut section, &mut out, &[("enabled", "enabled")]);
        let port = take(&mut section, "port").and_then(|p| p.as_u64()).unwrap_or(8080);
        let address = take(&mut section, "bind_address");
        let address = address.as_ref().and_then(Value::as_str).unwrap_or("0.0.0.0");
        out.insert("listen".into(), format!("{address}:{port}").into());
        if take(&mut section, "path").is_some_and(|path| path.as_str() != Some("/metrics")) {
            self.drop("metrics.path", "metrics are served on /metrics (with /health and /ready beside)");
        }
        self.drop_all(
            "metrics",
            &mut section,
            &["update_interval_ms", "max_partition_labels"],
            "metrics are updated as the work happens, with a label per topic and partition",
        );
        self.unknown("metrics", section);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(migration: &Migration) -> Vec<&str> {
        migration.not_carried.iter().map(|n| n.key.as_str()).collect()
    }

    fn migrated(migration: &Migration) -> Value {
        serde_yaml_ng::from_str(&migration.yaml).unwrap()
    }

    #[test]
    fn a_backup_config_keeps_its_cluster_storage_and_settings_under_our_names() {
        let old = "mode: backup\nbackup_id: b1\nsource:\n  bootstrap_servers: [k1:9092]\n  security:\n    \
                   security_protocol: SASL_SSL\n    sasl_mechanism: SCRAM-SHA-512\n    sasl_username: u\n    \
                   sasl_password: ${PASS}\n  topics:\n    include: [orders]\n  connection:\n    tcp_keepalive: true\n\
                   storage:\n  backend: s3\n  bucket: bk\n  access_key: ${AK}\n  secret_key: ${SK}\n  prefix: p\n\
                   backup:\n  compression: zstd\n  continuous: true\n  include_internal_topics: true\n  \
                   internal_topics: [__consumer_offsets]\n  poll_interval_ms: 100\n\
                   offset_storage:\n  backend: sqlite\nmetrics:\n  port: 9090\n";
        let migration = from_oso(old).unwrap();
        let new = migrated(&migration);
        assert_eq!(new["source"]["sasl_mechanism"], "SCRAM-SHA-512");
        assert_eq!(new["source"]["sasl_password"], "${PASS}", "variables are kept as written");
        assert_eq!(
            new["source"]["topics"]["include"],
            serde_yaml_ng::from_str::<Value>("[orders, __consumer_offsets]").unwrap()
        );
        assert_eq!(
            (&new["storage"]["access_key_id"], &new["storage"]["secret_access_key"]),
            (&"${AK}".into(), &"${SK}".into())
        );
        assert_eq!(new["backup"]["continuous"], true);
        assert_eq!(new["metrics"]["listen"], "0.0.0.0:9090");
        assert_eq!(keys(&migration), ["source.connection", "backup.poll_interval_ms", "offset_storage"]);
        assert!(migration.yaml.contains("# not carried over: offset_storage: "), "{}", migration.yaml);
    }

    #[test]
    fn a_restore_config_moves_its_topic_choice_and_names_what_has_no_equivalent() {
        let old = "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: [k2:9092]\n  topics:\n    include: [orders]\n\
                   storage:\n  backend: azure\n  account_name: acct\n  container_name: c\n  use_workload_identity: true\n\
                   restore:\n  topic_mapping:\n    orders: orders-copy\n  consumer_group_strategy: header-based\n  \
                   consumer_groups: [billing]\n  reset_consumer_offsets: true\n  source_partitions: [0]\n  produce_acks: 1\n  \
                   partition_mapping:\n    0: 1\n  magic: 3\n";
        let migration = from_oso(old).unwrap();
        let new = migrated(&migration);
        assert_eq!(new["source"]["topics"]["include"][0], "orders");
        assert!(new["target"].get("topics").is_none());
        assert_eq!((&new["storage"]["account"], &new["storage"]["container"]), (&"acct".into(), &"c".into()));
        assert_eq!(new["restore"]["consumer_groups"]["include"][0], "billing");
        assert_eq!(new["restore"]["topic_mapping"]["orders"], "orders-copy");
        assert_eq!(
            keys(&migration),
            [
                "storage.use_workload_identity",
                "restore.partition_mapping",
                "restore.source_partitions",
                "restore.produce_acks",
                "restore.reset_consumer_offsets",
                "restore.magic"
            ]
        );
    }

    #[test]
    fn kerberos_is_named_and_a_config_without_a_mode_refused() {
        let old = "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [k:1]\n  security:\n    sasl_mechanism: GSSAPI\n    \
                   sasl_keytab_path: /k\nstorage:\n  backend: memory\n";
        let migration = from_oso(old).unwrap();
        assert_eq!(keys(&migration), ["source.security.sasl_mechanism", "source.security.sasl_keytab_path"]);
        assert!(from_oso("backup_id: b\n").unwrap_err().to_string().contains("mode"));
        assert!(from_oso("[1, 2]").is_err());
    }
}
