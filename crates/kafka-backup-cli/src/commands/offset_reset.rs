//! `kafka-backup offset-reset plan|execute|rollback`: the consumer-group offsets of a backup's
//! groups on a target it was restored into, rendered as text, JSON, CSV or shell commands.

use std::fmt::Write;

use anyhow::{bail, Context};
use kafka_backup_core::group_snapshots::GroupKind;
use kafka_backup_core::offset_reset::{execute_plan, rollback, PlannedOffset, ResetPlan, ResetRecord};
use kafka_backup_core::reset_job::{ResetJob, ResetRequest};
use kafka_backup_core::three_phase::RestoreJob;

use crate::cli::{BackupTargetArgs, Format, OffsetPlanArgs, OffsetResetCommand, PlanFormat, RollbackArgs};

/// Runs an `offset-reset` subcommand.
pub async fn run(command: OffsetResetCommand) -> anyhow::Result<()> {
    match command {
        OffsetResetCommand::Plan(args) => plan(args).await,
        OffsetResetCommand::Execute(args) => execute(args).await,
        OffsetResetCommand::Rollback(args) => roll_back(args).await,
    }
}

/// The reset the arguments ask for (a config, when given, read here).
fn request(args: &BackupTargetArgs, target_cluster_id: Option<&str>) -> anyhow::Result<ResetRequest> {
    let job = match &args.config {
        Some(path) => Some(RestoreJob::load(path).with_context(|| format!("in {}", path.display()))?),
        None => None,
    };
    Ok(ResetRequest {
        job,
        path: args.path.clone(),
        backup_id: args.backup_id.clone(),
        bootstrap_servers: args.bootstrap_servers.clone(),
        keys: args.keys.given()?,
        target_cluster_id: target_cluster_id.map(str::to_string),
    })
}

async fn planned(args: &OffsetPlanArgs) -> anyhow::Result<(ResetJob, ResetPlan)> {
    let job = request(&args.location, args.target_cluster_id.as_deref())?.resolve().await?;
    let groups = (!args.all_groups).then_some(args.groups.as_slice());
    let plan = job.plan(groups, args.strategy).await?;
    Ok((job, plan))
}

async fn plan(args: OffsetPlanArgs) -> anyhow::Result<()> {
    let (_, plan) = planned(&args).await?;
    print!("{}", render(&plan, args.format)?);
    Ok(())
}

async fn execute(args: OffsetPlanArgs) -> anyhow::Result<()> {
    let (job, plan) = planned(&args).await?;
    let client = job.committing_client("offset-reset execute")?;
    if args.format != PlanFormat::Json {
        print!("{}", render(&plan, args.format)?);
    }
    let record = execute_plan(client, &job.store, &plan).await?;
    if args.format == PlanFormat::Json {
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "plan": plan, "reset": record }))?);
    }
    let Some(record) = record else {
        bail!("nothing was committed: no planned offset could be translated (see the plan)");
    };
    if args.format == PlanFormat::Json {
        return Ok(());
    }
    print!("{}", applied_summary(&record, &plan));
    println!(
        "Undo with: kafka-backup offset-reset rollback --path <storage root> --backup-id {} --bootstrap-servers <target> \
         --reset-id {}",
        job.backup_id, record.reset_id
    );
    Ok(())
}

async fn roll_back(args: RollbackArgs) -> anyhow::Result<()> {
    let job = request(&args.location, None)?.resolve().await?;
    let client = job.committing_client("offset-reset rollback")?;
    let cluster_id = job.cluster_id.clone();
    let report = rollback(client, &job.store, &cluster_id, args.reset_id.as_deref()).await?;
    if args.format == Format::Json {
        let mut json = serde_json::to_value(&report)?;
        json["target_cluster_id"] = cluster_id.into();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("Rolled back {} on cluster {cluster_id}", report.reset_id);
    if !report.restored.is_empty() {
        println!("  previous offsets restored for: {}", report.restored.join(", "));
    }
    if !report.deleted.is_empty() {
        println!("  deleted (they had no offsets before the reset): {}", report.deleted.join(", "));
    }
    Ok(())
}

/// The report of a commit: groups and partitions reset, and what could not be translated.
pub(super) fn applied_summary(record: &ResetRecord, plan: &ResetPlan) -> String {
    let partitions: usize = record.groups.values().map(|g| g.applied.len()).sum();
    let mut out = format!(
        "Committed {partitions} offsets of {} groups on cluster {} (reset {}, strategy {})\n",
        record.groups.len(),
        record.target_cluster_id,
        record.reset_id,
        record.strategy
    );
    let untranslated: Vec<_> = plan.untranslated().collect();
    if !untranslated.is_empty() {
        let _ = writeln!(out, "  {} partitions could not be translated and were left alone:", untranslated.len());
        for o in untranslated {
            let reason = o.note.as_deref().unwrap_or("no reason recorded");
            let _ = writeln!(out, "    {} {}-{}: {reason}", o.group, o.source_topic, o.source_partition);
        }
    }
    out
}

/// `plan` in `format`.
pub(super) fn render(plan: &ResetPlan, format: PlanFormat) -> anyhow::Result<String> {
    Ok(match format {
        PlanFormat::Text => render_text(plan),
        PlanFormat::Json => serde_json::to_string_pretty(plan)? + "\n",
        PlanFormat::Csv => render_csv(plan),
        PlanFormat::Shell => render_shell(plan),
    })
}

fn title(plan: &ResetPlan) -> String {
    format!(
        "Offset reset plan for backup {} into cluster {} (strategy {})",
        plan.backup_id, plan.target_cluster_id, plan.strategy
    )
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A group as the text plan names it: share groups are marked.
fn group_label(o: &PlannedOffset) -> String {
    match o.kind {
        GroupKind::Consumer => o.group.clone(),
        GroupKind::Share => format!("{} (share)", o.group),
    }
}

fn render_text(plan: &ResetPlan) -> String {
    let mut out = title(plan) + "\n";
    let mut rows = vec![["GROUP", "SOURCE", "OFFSET", "TARGET", "OFFSET", "NOTE"].map(str::to_string)];
    for o in &plan.offsets {
        let target = match (&o.target_topic, o.target_partition) {
            (Some(topic), Some(partition)) => format!("{topic}-{partition}"),
            (Some(topic), None) => format!("{topic} (by key)"),
            _ => "-".to_string(),
        };
        rows.push([
            group_label(o),
            format!("{}-{}", o.source_topic, o.source_partition),
            o.source_offset.to_string(),
            target,
            dash(o.target_offset),
            o.note.clone().unwrap_or_default(),
        ]);
    }
    if plan.offsets.is_empty() {
        out.push_str("  no group offsets to translate\n");
    } else {
        let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
        for row in &rows {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "  WARNING {warning}");
    }
    out
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn render_csv(plan: &ResetPlan) -> String {
    let mut out = "group,source_topic,source_partition,source_offset,snapshot_taken_at_ms,target_topic,\
                   target_partition,target_offset,method,note,kind\n"
        .to_string();
    for o in &plan.offsets {
        let kind = match o.kind {
            GroupKind::Consumer => "consumer",
            GroupKind::Share => "share",
        };
        let fields = [
            o.group.clone(),
            o.source_topic.clone(),
            o.source_partition.to_string(),
            o.source_offset.to_string(),
            o.snapshot_taken_at_ms.to_string(),
            o.target_topic.clone().unwrap_or_default(),
            o.target_partition.map(|p| p.to_string()).unwrap_or_default(),
            o.target_offset.map(|p| p.to_string()).unwrap_or_default(),
            o.method.to_string(),
            o.note.clone().unwrap_or_default(),
            kind.to_string(),
        ];
        let _ = writeln!(out, "{}", fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
    }
    out
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

fn render_shell(plan: &ResetPlan) -> String {
    let mut out = format!(
        "#!/bin/sh\n# {}.\n# Stop the groups' consumers first; BOOTSTRAP is the target cluster.\nset -e\n\
         : \"${{BOOTSTRAP:?set BOOTSTRAP to the target cluster's bootstrap servers}}\"\n",
        title(plan)
    );
    for o in &plan.offsets {
        match (&o.target_topic, o.target_partition, o.target_offset) {
            (Some(topic), Some(partition), Some(offset)) if o.kind == GroupKind::Share => {
                let _ = writeln!(
                    out,
                    "# share group {}: start offset {offset} on {topic}:{partition} (kafka-share-groups.sh has no \
                     --to-offset: use kafka-backup offset-reset execute, or Admin#alterShareGroupOffsets)",
                    o.group
                );
            }
            (Some(topic), Some(partition), Some(offset)) => {
                let _ = writeln!(
                    out,
                    "kafka-consumer-groups.sh --bootstrap-server \"$BOOTSTRAP\" --group {} --topic {} \
                     --reset-offsets --to-offset {offset} --execute",
                    shell_quote(&o.group),
                    shell_quote(&format!("{topic}:{partition}"))
                );
            }
            _ => {
                let reason = o.note.as_deref().unwrap_or("not translated").replace('\n', " ");
                let _ = writeln!(
                    out,
                    "# not translated: group {} {}-{} (source offset {}): {reason}",
                    o.group, o.source_topic, o.source_partition, o.source_offset
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_backup_core::offset_reset::GroupStrategy;

    fn plan() -> ResetPlan {
        let planned = |group: &str, partition, target: Option<i64>, note: Option<&str>| PlannedOffset {
            group: group.to_string(),
            kind: GroupKind::Consumer,
            source_topic: "orders".to_string(),
            source_partition: partition,
            source_offset: 42,
            snapshot_taken_at_ms: 1_000,
            target_topic: target.map(|_| "orders-dr".to_string()),
            target_partition: target.map(|_| partition),
            target_offset: target,
            method: GroupStrategy::Exact,
            note: note.map(str::to_string),
        };
        ResetPlan {
            backup_id: "nightly".to_string(),
            target_cluster_id: "dr".to_string(),
            strategy: GroupStrategy::Exact,
            offsets: vec![
                planned("billing's", 0, Some(40), None),
                planned("billing's", 1, None, Some("orders-1 was not restored, into \"dr\"")),
            ],
            warnings: vec![],
        }
    }

    #[test]
    fn csv_quotes_fields_that_need_it() {
        let csv = render_csv(&plan());
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "billing's,orders,0,42,1000,orders-dr,0,40,exact,,consumer");
        assert_eq!(
            lines[2],
            "billing's,orders,1,42,1000,,,,exact,\"orders-1 was not restored, into \"\"dr\"\"\",consumer"
        );
    }

    #[test]
    fn shell_commands_quote_names_and_comment_untranslated_offsets() {
        let shell = render_shell(&plan());
        assert!(
            shell.contains("--group 'billing'\\''s' --topic 'orders-dr:0' --reset-offsets --to-offset 40 --execute")
        );
        assert!(shell.contains("# not translated: group billing's orders-1 (source offset 42): orders-1 was not"));
    }

    #[test]
    fn share_groups_are_marked_in_text_and_csv_and_commented_in_shell() {
        let mut plan = plan();
        plan.offsets.truncate(1);
        plan.offsets[0].kind = GroupKind::Share;
        assert!(render_text(&plan).contains("billing's (share)"));
        assert!(render_csv(&plan).lines().nth(1).unwrap().ends_with(",exact,,share"));
        let shell = render_shell(&plan);
        assert!(shell.contains("# share group billing's: start offset 40 on orders-dr:0"), "{shell}");
        assert!(!shell.contains("kafka-consumer-groups.sh --bootstrap-server"), "{shell}");
    }
}
