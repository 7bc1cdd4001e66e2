//! `kafka-backup cluster-info`: connects (to `--bootstrap-servers`, or the cluster of a config file
//! with its security settings), gathers the cluster report, prints it as text or JSON.

use std::fmt::Write;

use anyhow::Context;
use kafka_backup_core::cluster_info::{gather_from, ClusterInfo};
use kafka_backup_core::config::cluster_of_config_file;
use kafka_backup_core::kafka::ClientConfig;

use crate::cli::{ClusterInfoArgs, Format};

/// Runs the command.
pub async fn run(args: ClusterInfoArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => cluster_of_config_file(path).with_context(|| format!("in {}", path.display()))?,
        None => ClientConfig::new(args.bootstrap_servers.clone()),
    };
    config.bootstrap_timeout = args.timeout();
    config.retry.deadline = args.timeout();
    let info = gather_from(config).await.context("reading cluster metadata and offsets")?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&info)?),
        Format::Text => print!("{}", render_text(&info)),
    }
    Ok(())
}

fn render_text(info: &ClusterInfo) -> String {
    let mut out = String::new();
    let cluster_id = info.cluster_id.as_deref().unwrap_or("(none reported)");
    let _ = writeln!(out, "Cluster {cluster_id}, controller {}", info.controller_id);
    let _ = writeln!(out, "\nBrokers ({}):", info.brokers.len());
    for broker in &info.brokers {
        let rack = broker.rack.as_deref().map(|r| format!("  rack {r}")).unwrap_or_default();
        let _ = writeln!(out, "  {:>6}  {}{rack}", broker.node_id, broker.address);
    }
    let _ = writeln!(out, "\nTopics ({}):", info.topics.len());
    for topic in &info.topics {
        let internal = if topic.internal { ", internal" } else { "" };
        let _ = writeln!(out, "  {} ({} partitions{internal})", topic.name, topic.partitions.len());
        let _ = writeln!(
            out,
            "    {:>9}  {:>6}  {:<12}  {:>14}  {:>14}",
            "partition", "leader", "replicas", "earliest", "latest"
        );
        for p in &topic.partitions {
            let leader = p.leader.map_or_else(|| "none".to_string(), |l| l.to_string());
            let replicas = p.replicas.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
            let _ = writeln!(
                out,
                "    {:>9}  {:>6}  {:<12}  {:>14}  {:>14}",
                p.partition, leader, replicas, p.earliest_offset, p.latest_offset
            );
        }
    }
    out
}
