//! `cluster-info`: a report of a cluster's id, brokers, topics, partition leaders and the
//! earliest/latest offset of every partition, gathered with the Kafka client.

use serde::Serialize;

use crate::kafka::{ClientConfig, IsolationLevel, KafkaClient, KafkaError, OffsetSpec};

/// What `kafka-backup cluster-info` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClusterInfo {
    /// Cluster id, if reported.
    pub cluster_id: Option<String>,
    /// Node id of the controller (-1 if unknown).
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: Vec<BrokerSummary>,
    /// Topics by name.
    pub topics: Vec<TopicSummary>,
}

/// One broker.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BrokerSummary {
    /// Node id.
    pub node_id: i32,
    /// `host:port`.
    pub address: String,
    /// Rack, if any.
    pub rack: Option<String>,
}

/// One topic.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TopicSummary {
    /// Name.
    pub name: String,
    /// Internal topic (e.g. `__consumer_offsets`).
    pub internal: bool,
    /// Partitions by index.
    pub partitions: Vec<PartitionSummary>,
}

/// One partition.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionSummary {
    /// Index.
    pub partition: i32,
    /// Leader node id, `None` when leaderless.
    pub leader: Option<i32>,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// Log start offset.
    pub earliest_offset: i64,
    /// Log end offset (high watermark).
    pub latest_offset: i64,
}

/// Connects to the cluster `config` names and gathers its report.
pub async fn gather_from(config: ClientConfig) -> Result<ClusterInfo, KafkaError> {
    gather(&KafkaClient::connect(config).await?).await
}

/// Gathers the report. Offsets are read uncommitted: the latest offset is the high watermark.
async fn gather(client: &KafkaClient) -> Result<ClusterInfo, KafkaError> {
    let metadata = client.refresh_metadata(None).await?;
    let mut topics = Vec::with_capacity(metadata.topics.len());
    for topic in metadata.topics.values() {
        let indexes: Vec<i32> = topic.partitions.keys().copied().collect();
        let earliest =
            client.list_offsets(&topic.name, &indexes, OffsetSpec::Earliest, IsolationLevel::ReadUncommitted).await?;
        let latest =
            client.list_offsets(&topic.name, &indexes, OffsetSpec::Latest, IsolationLevel::ReadUncommitted).await?;
        let partitions = topic
            .partitions
            .values()
            .zip(earliest.iter().zip(latest.iter()))
            .map(|(p, (&(_, earliest_offset), &(_, latest_offset)))| PartitionSummary {
                partition: p.partition,
                leader: p.leader,
                replicas: p.replicas.clone(),
                earliest_offset,
                latest_offset,
            })
            .collect();
        topics.push(TopicSummary { name: topic.name.clone(), internal: topic.is_internal, partitions });
    }
    Ok(ClusterInfo {
        cluster_id: metadata.cluster_id.clone(),
        controller_id: metadata.controller_id,
        brokers: metadata
            .brokers
            .values()
            .map(|b| BrokerSummary { node_id: b.node_id, address: b.address(), rack: b.rack.clone() })
            .collect(),
        topics,
    })
}
