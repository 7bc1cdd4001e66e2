//! `kafka-backup backup --config FILE`: loads the config, runs the backup until the snapshot is
//! complete (or, in continuous mode, until SIGINT/SIGTERM), prints the run summary.

use anyhow::{bail, Context};
use kafka_backup_core::backup::BackupConfig;
use kafka_backup_core::backup::{run_backup, BackupReport};

use crate::cli::{BackupArgs, Format};

/// Runs the command.
pub async fn run(args: BackupArgs, display: super::Display) -> anyhow::Result<()> {
    let config = BackupConfig::load(&args.config)
        .and_then(|config| config.with_group(args.group_id, args.group_instance_id))
        .with_context(|| format!("in {}", args.config.display()))?;
    super::serve_metrics(config.metrics).await?;
    let shutdown = super::signals::stop_requested("stop requested: flushing open segments…");
    let progress = super::progress::start("backup", display);
    let report = run_backup(&config, shutdown).await;
    drop(progress); // cleared before the summary is printed
    let report = report?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", summary(&report)),
    }
    if report.interrupted {
        bail!("the backup was stopped before its snapshot was complete; run the same command again to continue");
    }
    Ok(())
}

fn summary(report: &BackupReport) -> String {
    let mut out = format!(
        "Backup {} -> {}\n  {} topics, {} partitions: {} records in {} batches, {} segments written\n  \
         read {:.1} MiB of record batches, stored {:.1} MiB (ratio {:.2}x) in {:.1} s ({:.1} MiB/s)\n",
        report.backup_id,
        report.location,
        report.topics,
        report.partitions,
        report.counters.records,
        report.counters.batches,
        report.counters.segments,
        super::mib(report.counters.bytes_in),
        super::mib(report.counters.bytes_stored),
        report.compression_ratio(),
        report.duration.as_secs_f64(),
        super::mib(report.throughput_bytes_per_sec() as u64),
    );
    out.push_str(&format!(
        "  consumer-group offsets: {} snapshots, {} groups with offsets on these topics\n",
        report.group_snapshots, report.groups
    ));
    if let Some(key_id) = &report.encryption_key_id {
        out.push_str(&format!("  encrypted (AES-256-GCM) with the key of id {key_id}\n"));
    }
    if report.counters.dropped_batches > 0 {
        out.push_str(&format!(
            "  left out {} control or aborted-transaction batches\n",
            report.counters.dropped_batches
        ));
    }
    for warning in &report.warnings {
        out.push_str(&format!("  WARNING {warning}\n"));
    }
    for (partition, gap) in &report.gaps {
        out.push_str(&format!(
            "  GAP {partition}: offsets {}..{} were deleted by retention before they could be backed up\n",
            gap.from, gap.to
        ));
    }
    out
}
