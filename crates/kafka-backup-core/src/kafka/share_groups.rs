//! Share-group positions (KIP-932): DescribeShareGroupOffsets (each partition's start offset: the
//! first record not yet acknowledged for good), AlterShareGroupOffsets and DeleteShareGroupOffsets.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::{in_asked_order, only_answer, KafkaClient, Route};
use super::connection::BrokerConnection;
use super::groups::{CommittedOffset, GroupAnswers};
use super::KafkaError;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn context(group: &str) -> String {
    format!(" for share group {group}")
}

/// The error of one partition's answer, if any.
struct PartitionAnswer<'a> {
    api: &'static str,
    group: &'a str,
    address: &'a str,
}

impl PartitionAnswer<'_> {
    fn check(&self, topic: &TopicName, partition: i32, code: i16, message: Option<StrBytes>) -> Result<(), KafkaError> {
        let at = format!(" for share group {} on {}/{partition}", self.group, topic.0);
        KafkaError::check(self.api, at, self.address, code, message.map(|m| m.to_string()))
    }
}

/// The start offsets of each of share groups `groups`, in one DescribeShareGroupOffsets (see
/// [`KafkaClient::share_group_offsets`]).
pub(super) async fn describe_share_offsets(
    connection: Arc<BrokerConnection>,
    groups: Vec<String>,
) -> Result<GroupAnswers<Vec<CommittedOffset>>, KafkaError> {
    let asked = groups.iter().map(|g| DescribeShareGroupOffsetsRequestGroup::default().with_group_id(GroupId(text(g))));
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(asked.map(|g| g.with_topics(None)).collect());
    let response = connection.send(&request).await?;
    let address = connection.address();
    let mut answered = HashMap::new();
    for described in response.groups {
        let group = described.group_id.0.to_string();
        let read = || {
            let message = described.error_message.map(|m| m.to_string());
            KafkaError::check("DescribeShareGroupOffsets", context(&group), address, described.error_code, message)?;
            let answer = PartitionAnswer { api: "DescribeShareGroupOffsets", group: &group, address };
            let mut offsets = Vec::new();
            for topic in described.topics {
                for partition in topic.partitions {
                    let (index, code) = (partition.partition_index, partition.error_code);
                    answer.check(&topic.topic_name, index, code, partition.error_message)?;
                    if partition.start_offset >= 0 {
                        offsets.push(CommittedOffset {
                            topic: topic.topic_name.0.to_string(),
                            partition: partition.partition_index,
                            offset: partition.start_offset,
                            metadata: None,
                        });
                    }
                }
            }
            offsets.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
            Ok(offsets)
        };
        let offsets = read();
        answered.insert(group, offsets);
    }
    Ok(in_asked_order(("DescribeShareGroupOffsets", address, "group"), &groups, answered))
}

impl KafkaClient {
    /// The start offset of share group `group` on every partition it has a position on (as
    /// `CommittedOffset`s without metadata; partitions without one are left out).
    pub async fn share_group_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, KafkaError> {
        self.on("DescribeShareGroupOffsets", Route::Coordinator(group), |connection| async move {
            only_answer(describe_share_offsets(connection, vec![group.to_string()]).await?)
        })
        .await
    }

    /// Sets the start offsets of share group `group` (the coordinator refuses while it has
    /// members, with NON_EMPTY_GROUP).
    pub async fn alter_share_group_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), KafkaError> {
        let mut topics: Vec<AlterShareGroupOffsetsRequestTopic> = Vec::new();
        for offset in offsets {
            let partition = AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(offset.partition)
                .with_start_offset(offset.offset);
            match topics.iter_mut().find(|t| t.topic_name.0.as_str() == offset.topic) {
                Some(topic) => topic.partitions.push(partition),
                None => topics.push(
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(TopicName(text(&offset.topic)))
                        .with_partitions(vec![partition]),
                ),
            }
        }
        let topics = &topics;
        self.on("AlterShareGroupOffsets", Route::Coordinator(group), |connection| async move {
            let request = AlterShareGroupOffsetsRequest::default()
                .with_group_id(GroupId(text(group)))
                .with_topics(topics.clone());
            let response = connection.send(&request).await?;
            let address = connection.address();
            let message = response.error_message.map(|m| m.to_string());
            KafkaError::check("AlterShareGroupOffsets", context(group), address, response.error_code, message)?;
            let answer = PartitionAnswer { api: "AlterShareGroupOffsets", group, address };
            for topic in response.responses {
                for partition in topic.partitions {
                    let (index, code) = (partition.partition_index, partition.error_code);
                    answer.check(&topic.topic_name, index, code, partition.error_message)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Deletes the positions of share group `group` on every partition of `topic`.
    pub async fn delete_share_group_offsets(&self, group: &str, topic: &str) -> Result<(), KafkaError> {
        self.on("DeleteShareGroupOffsets", Route::Coordinator(group), |connection| async move {
            let request =
                DeleteShareGroupOffsetsRequest::default().with_group_id(GroupId(text(group))).with_topics(vec![
                    DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(TopicName(text(topic))),
                ]);
            let response = connection.send(&request).await?;
            let address = connection.address();
            let message = response.error_message.map(|m| m.to_string());
            KafkaError::check("DeleteShareGroupOffsets", context(group), address, response.error_code, message)?;
            for result in response.responses {
                let message = result.error_message.map(|m| m.to_string());
                let at = format!(" for share group {group} on {}", result.topic_name.0);
                KafkaError::check("DeleteShareGroupOffsets", at, address, result.error_code, message)?;
            }
            Ok(())
        })
        .await
    }
}
