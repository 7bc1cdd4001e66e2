//! A snapshot of cluster metadata (brokers, topics, partitions, leaders), built from Metadata
//! responses; the client keeps one in cache and routes partition requests to its leaders.

use std::collections::BTreeMap;

use kafka_protocol::messages::MetadataResponse;
use kafka_protocol::ResponseError;

use super::KafkaError;

/// Brokers and topics of a cluster as of one Metadata response (merged over calls).
#[derive(Debug, Clone, Default)]
pub struct ClusterMetadata {
    /// Cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Node id of the active controller (-1 if unknown).
    pub controller_id: i32,
    /// Live brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics by name (only those asked for so far, or all after a full refresh).
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// One broker's advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, if configured.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, with brackets around IPv6 literals.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Internal topics such as `__consumer_offsets`.
    pub is_internal: bool,
    /// The topic's id (KIP-516) in Kafka's own notation (the `TopicId` of `kafka-topics.sh
    /// --describe`); `None` from a broker that does not report ids. A topic deleted and created
    /// again under the same name has a new one.
    pub topic_id: Option<String>,
    /// Partitions by index.
    pub partitions: BTreeMap<i32, PartitionMetadata>,
}

/// One partition's replicas and leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader node id, `None` while no leader is available.
    pub leader: Option<i32>,
    /// Leader epoch (-1 if unknown).
    pub leader_epoch: i32,
    /// Replica node ids.
    pub replicas: Vec<i32>,
    /// In-sync replica node ids.
    pub isr: Vec<i32>,
}

/// A topic id as Kafka prints it: URL-safe base64 of its 16 bytes, without padding.
fn kafka_topic_id(bytes: &[u8; 16]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The id a topic id printed as Kafka prints it stands for; `None` for any other text.
pub fn parse_topic_id(text: &str) -> Option<uuid::Uuid> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()?;
    Some(uuid::Uuid::from_bytes(bytes.try_into().ok()?))
}

impl ClusterMetadata {
    /// Builds a snapshot from a response. `requested` names the topics asked for: a requested
    /// topic the cluster does not have is an error, a topic still electing leaders is retriable.
    pub fn from_response(
        response: &MetadataResponse,
        requested: Option<&[String]>,
        broker: &str,
    ) -> Result<Self, KafkaError> {
        let brokers = response
            .brokers
            .iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.as_ref().map(|r| r.to_string()),
                };
                (info.node_id, info)
            })
            .collect();
        let mut topics = BTreeMap::new();
        for topic in &response.topics {
            let name = topic.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            match ResponseError::try_from_code(topic.error_code) {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) => {
                    return Err(KafkaError::UnknownTopicOrPartition { topic: name, partition: None })
                }
                Some(_) => {
                    return Err(KafkaError::broker(
                        "Metadata",
                        format!(" for topic {name}"),
                        broker,
                        topic.error_code,
                        None,
                    ))
                }
            }
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let leader = (p.error_code != ResponseError::LeaderNotAvailable.code() && p.leader_id.0 >= 0)
                        .then_some(p.leader_id.0);
                    let metadata = PartitionMetadata {
                        partition: p.partition_index,
                        leader,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|n| n.0).collect(),
                        isr: p.isr_nodes.iter().map(|n| n.0).collect(),
                    };
                    (p.partition_index, metadata)
                })
                .collect();
            let topic_id = (!topic.topic_id.is_nil()).then(|| kafka_topic_id(topic.topic_id.as_bytes()));
            topics.insert(name.clone(), TopicMetadata { name, is_internal: topic.is_internal, topic_id, partitions });
        }
        if let Some(requested) = requested {
            if let Some(missing) = requested.iter().find(|t| !topics.contains_key(*t)) {
                return Err(KafkaError::UnknownTopicOrPartition { topic: missing.clone(), partition: None });
            }
        }
        Ok(Self {
            cluster_id: response.cluster_id.as_ref().map(|c| c.to_string()),
            controller_id: response.controller_id.0,
            brokers,
            topics,
        })
    }

    /// Folds a newer snapshot in: brokers and controller replaced, the given topics replaced;
    /// with `full` the topic list is replaced whole (deleted topics disappear).
    pub fn merge(&mut self, newer: ClusterMetadata, full: bool) {
        self.cluster_id = newer.cluster_id.or(self.cluster_id.take());
        self.controller_id = newer.controller_id;
        self.brokers = newer.brokers;
        if full {
            self.topics = newer.topics;
        } else {
            self.topics.extend(newer.topics);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_ids_read_as_kafka_prints_them() {
        let mut one = [0u8; 16];
        one[15] = 1;
        assert_eq!(kafka_topic_id(&one), "AAAAAAAAAAAAAAAAAAAAAQ", "Kafka's Uuid.ONE_UUID");
        assert_eq!(parse_topic_id("AAAAAAAAAAAAAAAAAAAAAQ").map(|id| *id.as_bytes()), Some(one));
        assert_eq!(parse_topic_id("orders"), None);
    }
}
