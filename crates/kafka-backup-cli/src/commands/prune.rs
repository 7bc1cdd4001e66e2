//! `kafka-backup prune`: applies a retention policy (from the flags, or the `retention` section of
//! a backup config) to the backups under a path, prints each decision with its reasons and what
//! was deleted; `--dry-run` deletes nothing.

use std::fmt::Write;

use kafka_backup_core::config::prune_policy;
use kafka_backup_core::prune::{prune, PruneReport};
use kafka_backup_core::retention::RetentionPolicy;

use super::inspect::{open, time};
use crate::cli::{Format, PruneArgs};

/// Runs the command.
pub async fn run(args: PruneArgs) -> anyhow::Result<()> {
    let policy = policy(&args)?;
    let root = open(&args.store)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let report = prune(&root, &policy, now, args.dry_run).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report, root.description())),
    }
    Ok(())
}

/// The flags' policy when any is given, else the config's `retention` section.
fn policy(args: &PruneArgs) -> anyhow::Result<RetentionPolicy> {
    let flags = RetentionPolicy {
        keep_last: args.keep_last,
        keep_within: args.keep_within,
        keep_daily: args.keep_daily,
        keep_weekly: args.keep_weekly,
        keep_monthly: args.keep_monthly,
        segment_retention: args.segment_retention,
    };
    Ok(prune_policy(flags, args.store.config.as_deref())?)
}

fn render(report: &PruneReport, location: &str) -> String {
    let verb = if report.dry_run { "would delete" } else { "deleted" };
    let mut out =
        format!("Prune of {location} at {}{}\n", time(report.now_ms), if report.dry_run { " (dry run)" } else { "" });
    for backup in &report.backups {
        let updated = backup.updated_at_ms.map_or("-".to_string(), time);
        let action = if backup.keep { "keep" } else { verb };
        let _ =
            writeln!(out, "  {action:<12} {:<30} updated {updated}: {}", backup.backup_id, backup.reasons.join("; "));
    }
    for segments in &report.segments {
        let _ = writeln!(
            out,
            "  {verb} {} segments ({} records, {:.1} MiB) of {} in {}: offsets below {}",
            segments.segments,
            segments.records,
            super::mib(segments.stored_bytes),
            segments.partition,
            segments.backup_id,
            segments.before_offset
        );
    }
    if !report.dry_run {
        let _ = writeln!(out, "{} objects deleted", report.deleted_objects);
    }
    out
}
