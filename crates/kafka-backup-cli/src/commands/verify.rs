//! `kafka-backup verify --config restore.yaml`: compares the restore's target topics with the
//! backup record by record and prints, per target partition, counts and the first difference.

use anyhow::{bail, Context};
use kafka_backup_core::three_phase::RestoreJob;
use kafka_backup_core::verify::{verify_restore, PartitionCheck, VerifyReport};

use crate::cli::{Format, VerifyArgs};

/// Runs the command; any difference is a non-zero exit.
pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let job = RestoreJob::load(&args.config).with_context(|| format!("in {}", args.config.display()))?;
    let report = verify_restore(&job.restore).await?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Text => print!("{}", render(&report)),
    }
    let different = report.partitions.iter().filter(|p| !p.is_identical()).count();
    if different > 0 {
        bail!("{different} of {} target partitions differ from backup {}", report.partitions.len(), report.backup_id);
    }
    Ok(())
}

fn name(check: &PartitionCheck) -> (String, String) {
    let sources = check.source_partitions.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    let target = check.target_partition.map_or("*".to_string(), |p| p.to_string());
    (format!("{}-{sources}", check.source_topic), format!("{}-{target}", check.target_topic))
}

fn render(report: &VerifyReport) -> String {
    let mut out = format!(
        "Verify of backup {} against cluster {}: {} records expected in {} target partitions ({:.1} s)\n",
        report.backup_id,
        report.target_cluster,
        report.expected(),
        report.partitions.len(),
        report.duration.as_secs_f64()
    );
    for check in &report.partitions {
        let (source, target) = name(check);
        let verdict = if check.is_identical() { "identical".to_string() } else { "DIFFERENT".to_string() };
        out.push_str(&format!(
            "  {source} -> {target}: {} expected, {} found, {} missing, {} extra: {verdict}\n",
            check.expected, check.found, check.missing, check.extra
        ));
        if let Some(difference) = &check.first_difference {
            out.push_str(&format!("    first difference: {difference}\n"));
        }
    }
    if report.is_identical() {
        out.push_str("OK: the target holds exactly the backup's records (key, value, headers, timestamp, order)\n");
    }
    out
}
