//! `kafka-backup restore` and `three-phase-restore --config FILE [--dry-run]`: plans the restore,
//! prints the plan for a dry run, otherwise restores, translates and commits group offsets as the
//! strategy says (restore: skip by default; three-phase-restore: exact), and prints one report.

use std::fmt::Write;

use anyhow::{bail, Context};
use kafka_backup_core::offset_reset::GroupStrategy;
use kafka_backup_core::restore::{RestorePlan, RestoreReport};
use kafka_backup_core::three_phase::{run_three_phase_restore, RestoreJob, ThreePhaseReport};

use super::offset_reset;
use crate::cli::{Format, PlanFormat, RestoreArgs};

/// Runs the command, with `default_strategy` for group offsets unless the config names one.
pub async fn run(args: RestoreArgs, default_strategy: GroupStrategy, display: super::Display) -> anyhow::Result<()> {
    let mut job = RestoreJob::load(&args.config)
        .and_then(|mut job| {
            job.restore = job.restore.with_group(args.group_id, args.group_instance_id)?;
            Ok(job)
        })
        .with_context(|| format!("in {}", args.config.display()))?;
    job.restore.settings.dry_run |= args.dry_run;
    super::serve_metrics(job.restore.metrics).await?;
    let shutdown = super::signals::stop_requested("stop requested: finishing the batch in flight…");
    let display = super::Display { quiet: display.quiet || job.restore.settings.dry_run, ..display };
    let progress = super::progress::start("restore", display);
    let phases = run_three_phase_restore(&job, default_strategy, shutdown).await;
    drop(progress); // cleared before the summary is printed
    let phases = phases?;
    let report = &phases.restore;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&phases)?);
        return outcome(&phases);
    }
    print!("{}", render_plan(&report.plan));
    if report.dry_run {
        println!("Dry run: nothing was written.");
        if !report.plan.conflicts.is_empty() {
            bail!("the restore cannot start: {} conflicts (see CONFLICT lines above)", report.plan.conflicts.len());
        }
        return Ok(());
    }
    print!("{}", summary(report));
    let Some(plan) = &phases.plan else { return outcome(&phases) };
    print!("{}", offset_reset::render(plan, PlanFormat::Text)?);
    match &phases.reset {
        Some(record) => print!("{}", offset_reset::applied_summary(record, plan)),
        None if phases.strategy == GroupStrategy::Manual => {
            println!("Strategy manual: nothing was committed; apply the offsets above by hand.")
        }
        None => println!("No consumer-group offset was committed: none could be translated (see above)."),
    }
    Ok(())
}

/// The exit status of a restore: a failure when it was stopped early or a dry run found conflicts.
fn outcome(phases: &ThreePhaseReport) -> anyhow::Result<()> {
    let report = &phases.restore;
    if report.dry_run && !report.plan.conflicts.is_empty() {
        bail!("the restore cannot start: {} conflicts", report.plan.conflicts.len());
    }
    if report.interrupted {
        bail!("the restore was stopped before it was complete; run the same command again to continue");
    }
    Ok(())
}

fn window(start: Option<i64>, end: Option<i64>) -> String {
    match (start, end) {
        (None, None) => "all records".to_string(),
        (start, end) => format!(
            "records with timestamps {} ..= {} (epoch ms)",
            start.map_or("-inf".to_string(), |s| s.to_string()),
            end.map_or("+inf".to_string(), |e| e.to_string())
        ),
    }
}

fn render_plan(plan: &RestorePlan) -> String {
    let mut out =
        format!("Restore plan for backup {}: {}\n", plan.backup_id, window(plan.window_start, plan.window_end));
    for topic in &plan.topics {
        let creation = match (&topic.create, topic.repartition) {
            (None, Some(count)) => format!("existing topic, records routed by key into its {count} partitions"),
            (None, None) => "existing topic".to_string(),
            (Some(create), _) => {
                let configs: Vec<String> = create.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "create with {} partitions, replication factor {}{}",
                    create.partitions,
                    create.replication_factor,
                    if configs.is_empty() { String::new() } else { format!(", configs {}", configs.join(" ")) }
                )
            }
        };
        let _ = writeln!(out, "  {} -> {} ({creation})", topic.source, topic.target);
        for p in &topic.partitions {
            let target = if topic.repartition.is_some() { "by key".to_string() } else { p.target.to_string() };
            let from = p.start_offset.map(|start| format!(" from source offset {start}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "    partition {} -> {target}{from}: {} segments, up to {} records, {:.1} MiB stored",
                p.source,
                p.segments,
                p.records,
                p.bytes as f64 / (1024.0 * 1024.0)
            );
        }
    }
    for binding in &plan.acls {
        let _ = writeln!(out, "  ACL {binding}");
    }
    for quota in &plan.quotas {
        let _ = writeln!(out, "  QUOTA {quota}");
    }
    for position in &plan.share_groups {
        let _ = writeln!(
            out,
            "  SHARE-GROUP {} {}-{}: start offset {} on the source, translated after the data",
            position.group, position.target_topic, position.partition, position.source_offset
        );
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "  WARNING {warning}");
    }
    for conflict in &plan.conflicts {
        let _ = writeln!(out, "  CONFLICT {conflict}");
    }
    out
}

fn summary(report: &RestoreReport) -> String {
    let mib = super::mib(report.bytes);
    let mut out = format!(
        "Restored {} records in {} batches ({mib:.1} MiB) in {:.1} s ({:.1} MiB/s)\n",
        report.records,
        report.batches,
        report.duration.as_secs_f64(),
        mib / report.duration.as_secs_f64().max(1e-9)
    );
    if !report.created_topics.is_empty() {
        let _ = writeln!(out, "  created topics: {}", report.created_topics.join(", "));
    }
    if !report.plan.acls.is_empty() {
        let _ = writeln!(out, "  ACL bindings created (or already there): {}", report.plan.acls.len());
    }
    if !report.plan.quotas.is_empty() {
        let _ = writeln!(out, "  client quotas set: {}", report.plan.quotas.len());
    }
    if !report.purged_topics.is_empty() {
        let _ = writeln!(out, "  purged before the restore: {}", report.purged_topics.join(", "));
    }
    if let Some(worker) = &report.worker {
        let _ = writeln!(
            out,
            "  worker {} of group {}: {} generations, {} partitions lost to other workers; {}",
            worker.worker,
            worker.group,
            worker.generations,
            worker.partitions_lost,
            if worker.finished_the_restore {
                "it found the restore complete and finished it"
            } else {
                "another worker finishes the restore"
            }
        );
    }
    if report.already_restored > 0 {
        let _ = writeln!(out, "  {} records were already restored by an interrupted run", report.already_restored);
    }
    out
}
