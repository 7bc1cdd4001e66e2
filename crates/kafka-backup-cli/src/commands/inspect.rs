//! The read-only backup commands: `list` backups under a path, `find` those holding a topic at a
//! time, `describe` one backup's manifest, and `validate` its integrity (non-zero exit when
//! anything is wrong).

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{bail, Context};
use kafka_backup_core::access_snapshots::AccessSnapshot;
use kafka_backup_core::backup::ProgressBoard;
use kafka_backup_core::backup_location::StoreLocation;
use kafka_backup_core::catalog::{describe as describe_backup, BackupDescription, BackupSummary};
use kafka_backup_core::config::store_of_config_file;
use kafka_backup_core::group_snapshots::GroupOffsetsSnapshot;
use kafka_backup_core::layout::incarnation_of;
use kafka_backup_core::manifest::BackupManifest;
use kafka_backup_core::restore::RestoreWorkerBoard;
use kafka_backup_core::storage::{BackupStore, ENCRYPTION_ALGORITHM};
use kafka_backup_core::validate::{validate_backup, Depth};

use crate::cli::{DescribeArgs, FindArgs, Format, ListArgs, ManifestFormat, StoreArgs, ValidateArgs};

/// The store `--path` or `--config` names, with the keys of the config and the flags.
fn store_location(args: &StoreArgs) -> anyhow::Result<StoreLocation> {
    let location = match (&args.path, &args.config) {
        (Some(path), _) => StoreLocation::parse(path)?,
        (None, Some(config)) => store_of_config_file(config).with_context(|| format!("in {}", config.display()))?,
        (None, None) => bail!("give --path or --config"),
    };
    Ok(location.with_keys(args.keys.given()?)?)
}

/// Opens the storage root given by `--path` or `--config`.
pub(super) fn open(args: &StoreArgs) -> anyhow::Result<BackupStore> {
    Ok(store_location(args)?.open_for_reading()?)
}

/// `ms` since the epoch as RFC 3339.
pub(super) fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `list --path PATH`.
pub async fn list(args: ListArgs) -> anyhow::Result<()> {
    let root = open(&args.store)?;
    let backups = kafka_backup_core::catalog::list(&root).await?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&backups)?);
        return Ok(());
    }
    if backups.is_empty() {
        println!("no backups under {}", root.description());
        return Ok(());
    }
    println!("{:<30}  {:<20}  {:>6}  {:>12}  {:>12}  ENCRYPTION", "BACKUP", "UPDATED", "TOPICS", "RECORDS", "SIZE");
    for backup in &backups {
        match backup {
            BackupSummary::Locked { backup_id, encryption_key_id, .. } => {
                println!("{backup_id:<30}  (encrypted with key {encryption_key_id}: give that key to see it)");
            }
            BackupSummary::Readable {
                backup_id,
                updated_at_ms,
                topics,
                records,
                stored_bytes,
                encryption_key_id,
                ..
            } => println!(
                "{backup_id:<30}  {:<20}  {:>6}  {records:>12}  {:>12}  {}",
                time(*updated_at_ms),
                topics.len(),
                format!("{:.1} MiB", super::mib(*stored_bytes)),
                encryption_key_id.as_deref().map_or("none".to_string(), |id| format!("key {id}")),
            ),
        }
    }
    Ok(())
}

/// `describe --path PATH --backup-id ID`.
pub async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let location = store_location(&args.store)?.backup(&args.backup_id);
    let BackupDescription { manifest, snapshots, encryption_key_id, workers, access, restore_workers } =
        describe_backup(&location).await?;
    // The manifest, with the workers of a shared backup under `workers`, those of shared restores
    // under `restore_workers`, the latest access snapshot under `access` and the latest group
    // snapshot under `group_snapshot`.
    let mut document = serde_json::to_value(&manifest)?;
    if let Some(latest) = snapshots.last() {
        document["group_snapshot"] = serde_json::to_value(latest)?;
    }
    if !workers.is_empty() {
        document["workers"] = serde_json::to_value(&workers)?;
    }
    if !restore_workers.is_empty() {
        document["restore_workers"] = serde_json::to_value(&restore_workers)?;
    }
    if let Some(access) = &access {
        document["access"] = serde_json::to_value(access)?;
    }
    match args.format {
        ManifestFormat::Json => println!("{}", serde_json::to_string_pretty(&document)?),
        ManifestFormat::Yaml => print!("{}", serde_yaml_ng::to_string(&document)?),
        ManifestFormat::Text => {
            print!("{}", describe_text(&manifest, &snapshots, encryption_key_id.as_deref()));
            print!("{}", access_text(access.as_ref()));
            print!("{}", workers_text(&workers));
            print!("{}", restore_workers_text(&restore_workers));
        }
    }
    Ok(())
}

/// What the latest access snapshot holds ("not captured" for a part the cluster would not give).
fn access_text(access: Option<&AccessSnapshot>) -> String {
    let Some(access) = access else { return "  access (ACLs, quotas, SCRAM users): no snapshot\n".to_string() };
    let count = |found: Option<usize>| found.map_or_else(|| "not captured".to_string(), |n| n.to_string());
    format!(
        "  access, the latest snapshot at {}: ACL bindings {}, client quotas {}, SCRAM users {}\n",
        time(access.taken_at_ms),
        count(access.acls.as_ref().map(Vec::len)),
        count(access.quotas.as_ref().map(Vec::len)),
        count(access.scram_users.as_ref().map(Vec::len)),
    )
}

/// Which worker of a shared restore holds (or last held) which target partitions.
fn restore_workers_text(boards: &[RestoreWorkerBoard]) -> String {
    let mut out = String::new();
    for board in boards {
        let worker = &board.worker;
        let _ = writeln!(
            out,
            "\nRestore worker {} of group {} into cluster {} ({}, updated {}): generation {}{}, {}",
            worker.name,
            worker.group,
            board.target_cluster_id,
            if board.running { "running" } else { "ended" },
            time(board.updated_at_ms),
            worker.generation,
            if worker.leader { ", leader" } else { "" },
            held_text(&worker.partitions),
        );
    }
    out
}

/// `topic [0,1] other [3]`, or "no partitions".
fn held_text(partitions: &kafka_backup_core::worker_group::PartitionsByTopic) -> String {
    let held: Vec<String> = partitions
        .iter()
        .map(|(topic, partitions)| {
            let numbers: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic} [{}]", numbers.join(","))
        })
        .collect();
    if held.is_empty() {
        "no partitions".to_string()
    } else {
        held.join(" ")
    }
}

/// Which worker holds which partitions, in which generation.
fn workers_text(boards: &[ProgressBoard]) -> String {
    let mut out = String::new();
    let now = kafka_backup_core::clock::now_ms();
    for board in boards {
        let Some(worker) = &board.worker else { continue };
        let state = if board.run_in_progress(now) { "running" } else { "stopped" };
        let _ = writeln!(
            out,
            "\nWorker {} of group {} ({state}, updated {}): generation {}{}, {}",
            worker.name,
            worker.group,
            time(board.updated_at_ms),
            worker.generation,
            if worker.leader { ", leader" } else { "" },
            held_text(&worker.partitions),
        );
    }
    out
}

fn describe_text(m: &BackupManifest, snapshots: &[GroupOffsetsSnapshot], key_id: Option<&str>) -> String {
    let mut out = String::new();
    let segments: usize = m.topics.iter().flat_map(|t| &t.partitions).map(|p| p.segments.len()).sum();
    let _ =
        writeln!(out, "Backup {} (manifest format {}, kafka-backup {})", m.backup_id, m.format_version, m.tool_version);
    let _ = writeln!(out, "  source cluster: {}", m.source_cluster_id.as_deref().unwrap_or("(unknown)"));
    let _ = writeln!(out, "  created {}, updated {}", time(m.created_at_ms), time(m.updated_at_ms));
    let _ = match key_id {
        None => writeln!(out, "  encryption: none"),
        Some(id) => writeln!(out, "  encryption: {ENCRYPTION_ALGORITHM}, every object, with the key of id {id}"),
    };
    let stored = super::mib(m.stored_bytes());
    let _ = writeln!(out, "  {} records in {segments} segments, {stored:.1} MiB stored", m.record_count());
    match snapshots.last() {
        None => {
            let _ = writeln!(out, "  consumer-group offsets: no snapshot");
        }
        Some(latest) => {
            let _ = writeln!(
                out,
                "  consumer-group offsets: {} snapshots, the latest at {} with {} groups ({})",
                snapshots.len(),
                time(latest.taken_at_ms),
                latest.groups.len(),
                latest.groups.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            if !latest.descriptions.is_empty() {
                let shapes: Vec<String> = latest
                    .descriptions
                    .values()
                    .map(|g| {
                        let assignor = if g.assignor.is_empty() { "no assignor" } else { &g.assignor };
                        format!("{} ({} protocol, {assignor}, {} members)", g.group_id, g.protocol, g.members.len())
                    })
                    .collect();
                let _ = writeln!(out, "  their protocols: {}", shapes.join(", "));
            }
            if !latest.share_groups.is_empty() {
                let _ = writeln!(
                    out,
                    "  share-group start offsets in the latest snapshot: {} groups ({})",
                    latest.share_groups.len(),
                    latest.share_groups.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
    }
    for topic in &m.topics {
        let configs = match &topic.configs {
            None => ", configs not captured".to_string(),
            Some(configs) if configs.is_empty() => String::new(),
            Some(configs) => {
                format!(", configs {}", configs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
            }
        };
        let id = topic.topic_id.as_deref().map(|id| format!(", topic id {id}")).unwrap_or_default();
        let _ = writeln!(
            out,
            "\nTopic {}: {} partitions, replication factor {}{id}{configs}",
            topic.name, topic.partition_count, topic.replication_factor,
        );
        let (kafka_name, incarnation) = incarnation_of(&topic.name);
        if incarnation > 1 {
            let since = topic.since_ms.map_or_else(|| "an unknown time".to_string(), time);
            let _ = writeln!(
                out,
                "  incarnation {incarnation} of topic {kafka_name}: deleted and created again on the source, backed up \
                 from {since} (restore.incarnations: {{{kafka_name}: {incarnation}}})"
            );
        }
        for p in &topic.partitions {
            let (Some(first), Some(last)) = (p.segments.first(), p.segments.last()) else {
                let _ = writeln!(out, "  partition {}: no data", p.partition);
                continue;
            };
            let min_ts = p.segments.iter().map(|s| s.min_timestamp).min().unwrap_or(-1);
            let max_ts = p.segments.iter().map(|s| s.max_timestamp).max().unwrap_or(-1);
            let _ = writeln!(
                out,
                "  partition {}: offsets {}..={} in {} segments, {} records, timestamps {} .. {}",
                p.partition,
                first.start_offset,
                last.end_offset,
                p.segments.len(),
                p.record_count(),
                time(min_ts),
                time(max_ts)
            );
            for gap in &p.gaps {
                let _ =
                    writeln!(out, "    GAP offsets {}..{} were deleted by retention before backup", gap.from, gap.to);
            }
        }
    }
    out
}

/// `validate --path PATH --backup-id ID [--deep]`.
pub async fn validate(args: ValidateArgs) -> anyhow::Result<()> {
    let location = store_location(&args.store)?.backup(&args.backup_id);
    let (report, depth) = validate_backup(&location, args.deep).await?;
    let depth = match depth {
        Depth::Keyless => "keyless (object lengths and committed segments only; give the key for more)",
        Depth::Shallow => "shallow",
        Depth::Deep => "deep",
    };
    if args.format == Format::Json {
        let mut json = serde_json::to_value(&report)?;
        json["backup_id"] = args.backup_id.clone().into();
        json["depth"] = depth.split(' ').next().unwrap_or(depth).into();
        json["ok"] = report.is_ok().into();
        println!("{}", serde_json::to_string_pretty(&json)?);
        if !report.is_ok() {
            bail!("backup {} failed {depth} validation: {} problems", args.backup_id, report.problems.len());
        }
        return Ok(());
    }
    if report.is_ok() {
        let records = if args.deep { format!(", {} records", report.records_checked) } else { String::new() };
        println!(
            "OK: backup {} passed {depth} validation ({} segments{records})",
            args.backup_id, report.segments_checked
        );
        return Ok(());
    }
    for problem in &report.problems {
        println!("PROBLEM {}: {}: {}", problem.partition, problem.key.as_deref().unwrap_or("-"), problem.message);
    }
    bail!(
        "backup {} failed {depth} validation: {} problems in {} segments",
        args.backup_id,
        report.problems.len(),
        report.segments_checked
    )
}

/// `--at`: epoch milliseconds or an RFC 3339 time.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    let at = humantime::parse_rfc3339_weak(text).with_context(|| {
        format!("--at {text:?}: expected epoch milliseconds or an RFC 3339 time (2026-11-26T03:00:00Z)")
    })?;
    Ok(at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64))
}

/// `find --path PATH --topic T --at TIME`.
pub async fn find(args: FindArgs) -> anyhow::Result<()> {
    let root = open(&args.store)?;
    let at = parse_time(&args.at)?;
    let report = kafka_backup_core::catalog::find(&root, &args.topic, at).await?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(out, "Backups under {} holding {} at {} ({at}):", root.description(), args.topic, time(at));
    if report.holding.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for holding in &report.holding {
        let source = holding.source_cluster_id.as_deref().unwrap_or("unknown");
        let incarnation = match holding.incarnation {
            1 => String::new(),
            n => format!(", incarnation {n} of the topic (restore.incarnations)"),
        };
        let updated = time(holding.updated_at_ms);
        let _ = writeln!(out, "  {} (updated {updated}, source cluster {source}{incarnation})", holding.backup_id);
        for p in &holding.partitions {
            let gaps: Vec<String> = p.gaps.iter().map(|g| format!("{}..{}", g.from, g.to)).collect();
            let gaps = if gaps.is_empty() { String::new() } else { format!(", GAPS {}", gaps.join(" ")) };
            let _ = writeln!(
                out,
                "    partition {}: offsets {}..={}, timestamps {} .. {}, {} records ({} up to that time){gaps}",
                p.partition,
                p.first_offset,
                p.last_offset,
                time(p.min_timestamp),
                time(p.max_timestamp),
                p.records,
                p.records_up_to_time
            );
        }
    }
    if !report.not_at_that_time.is_empty() {
        let _ = writeln!(
            out,
            "  also holding {}, but not at that time: {}",
            args.topic,
            report.not_at_that_time.join(", ")
        );
    }
    if !report.locked.is_empty() {
        let _ = writeln!(out, "  encrypted, not searched (give their key): {}", report.locked.join(", "));
    }
    print!("{out}");
    Ok(())
}
