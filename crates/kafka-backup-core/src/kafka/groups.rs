//! Consumer-group calls: FindCoordinator, OffsetFetch, OffsetCommit (as an admin, outside any
//! generation), ListGroups (every broker), DescribeGroups and ConsumerGroupDescribe (KIP-848),
//! DeleteGroups and OffsetDelete. Old and batched request shapes (FindCoordinator v4+, OffsetFetch
//! v8+) are both handled.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerProtocolSubscription, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, Message, StrBytes};
use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::client::{in_asked_order, only_answer, Coordinated, KafkaClient, Route};
use super::connection::BrokerConnection;
use super::metadata::BrokerInfo;
use super::KafkaError;

/// First FindCoordinator version that batches keys.
const FIND_COORDINATOR_BATCHED: i16 = 4;
/// First OffsetFetch version that batches groups.
const OFFSET_FETCH_BATCHED: i16 = 8;

/// A committed offset of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset the group will read.
    pub offset: i64,
    /// Metadata string committed with the offset.
    pub metadata: Option<String>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `consumer` for consumer groups, empty for groups used only to store offsets.
    pub protocol_type: String,
    /// `classic`, `consumer` (KIP-848), `share` (KIP-932), `streams`; empty before ListGroups v5.
    pub group_type: String,
    /// `Empty`, `Stable`, ...; empty before ListGroups v4.
    pub state: String,
}

impl GroupListing {
    /// Whether the group is a share group (whose positions are not committed offsets).
    pub fn is_share_group(&self) -> bool {
        self.group_type == "share"
    }
}

/// A group's state, protocol and members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, `Dead`, ...
    pub state: String,
    /// `classic` (members assign, DescribeGroups) or `consumer` (KIP-848: the broker assigns).
    pub protocol: String,
    /// The assignor: a classic group's protocol (`range`, `cooperative-sticky`, ...), a consumer
    /// group's server-side assignor (`uniform`, `range`); empty for a group without members.
    pub assignor: String,
    /// Members currently in the group.
    pub members: Vec<GroupMember>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupMember {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// Static membership id (KIP-345), when the member has one.
    pub instance_id: Option<String>,
    /// Client id of the member's consumer.
    pub client_id: String,
    /// Host the member connects from.
    pub client_host: String,
    /// Topics the member subscribed to by name.
    pub subscribed_topics: Vec<String>,
    /// The regular expression it subscribed with (KIP-848 groups), if any.
    pub subscribed_regex: Option<String>,
}

/// The error part of a group description answer (DescribeGroups and ConsumerGroupDescribe alike).
struct GroupAnswer {
    code: i16,
    message: Option<StrBytes>,
}

impl GroupAnswer {
    /// The description, or the broker's error for `api`.
    fn into_description(
        self,
        api: &'static str,
        address: &str,
        described: GroupDescription,
    ) -> Result<GroupDescription, KafkaError> {
        if self.code != 0 {
            let message = self.message.map(|m| m.to_string());
            return Err(KafkaError::broker(api, group_context(&described.group_id), address, self.code, message));
        }
        Ok(described)
    }
}

/// The topics a classic consumer-group member subscribed to, from its member metadata (a
/// ConsumerProtocolSubscription behind its version); none for other protocols or unreadable data.
fn classic_subscription(protocol_type: &str, metadata: &Bytes) -> Vec<String> {
    let mut bytes = metadata.clone();
    if protocol_type != "consumer" || bytes.len() < 2 {
        return Vec::new();
    }
    // A newer version is read as the newest known: fields are only ever added at the end.
    let version = bytes.get_i16().clamp(0, ConsumerProtocolSubscription::VERSIONS.max);
    match ConsumerProtocolSubscription::decode(&mut bytes, version) {
        Ok(subscription) => subscription.topics.iter().map(|t| t.to_string()).collect(),
        Err(_) => Vec::new(),
    }
}

fn group_context(group: &str) -> String {
    format!(" for group {group}")
}

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// Each group's answer to a request that asked for several (in the order asked): the whole
/// request's failure is the outer error, a group's own error its entry's.
pub(super) type GroupAnswers<T> = Vec<(String, Result<T, KafkaError>)>;

/// The coordinators of `keys` (groups or transactional ids, as `kind` says) in one
/// FindCoordinator (v4+ batches keys; before, one request per key on the same connection).
pub(super) async fn find_coordinators(
    connection: &BrokerConnection,
    kind: Coordinated<'_>,
    keys: Vec<String>,
) -> Result<GroupAnswers<BrokerInfo>, KafkaError> {
    let version = connection.version_for::<FindCoordinatorRequest>()?;
    let request = FindCoordinatorRequest::default().with_key_type(kind.key_type());
    let found = |key: &str, code: i16, message: Option<StrBytes>, (node_id, host, port)| match code {
        0 => Ok(BrokerInfo { node_id, host, port, rack: None }),
        code => Err(KafkaError::broker(
            "FindCoordinator",
            kind.with_key(key).context(),
            connection.address(),
            code,
            message.map(|m| m.to_string()),
        )),
    };
    let mut answered = HashMap::new();
    if version >= FIND_COORDINATOR_BATCHED {
        let keys_asked = keys.iter().map(|k| StrBytes::from_string(k.clone())).collect();
        let response = connection.send(&request.with_coordinator_keys(keys_asked)).await?;
        for c in response.coordinators {
            let key = c.key.to_string();
            let answer = found(&key, c.error_code, c.error_message, (c.node_id.0, c.host.to_string(), c.port));
            answered.insert(key, answer);
        }
    } else {
        for key in &keys {
            let response = connection.send(&request.clone().with_key(StrBytes::from_string(key.clone()))).await?;
            let at = (response.node_id.0, response.host.to_string(), response.port);
            answered.insert(key.clone(), found(key, response.error_code, response.error_message, at));
        }
    }
    Ok(in_asked_order(("FindCoordinator", connection.address(), "key"), &keys, answered))
}

/// One partition's committed offset in an OffsetFetch answer, whichever version's shape it came in.
struct AnsweredOffset {
    topic: String,
    partition: i32,
    offset: i64,
    metadata: Option<StrBytes>,
    code: i16,
}

/// The partitions of OffsetFetch answer topics as [`AnsweredOffset`]s: the answer of a group
/// (v8+) and of a whole request (before) have the same fields in types of their own.
macro_rules! answered_offsets {
    ($topics:expr) => {
        $topics.into_iter().flat_map(|t| {
            t.partitions.into_iter().map(move |p| AnsweredOffset {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                metadata: p.metadata,
                code: p.error_code,
            })
        })
    };
}

/// The committed offsets of `group` from its answer (`code`: the group's error), or the first
/// error in it.
fn group_offsets(
    (group, address): (&str, &str),
    code: i16,
    answered: impl IntoIterator<Item = AnsweredOffset>,
) -> Result<Vec<CommittedOffset>, KafkaError> {
    let error = |code| KafkaError::broker("OffsetFetch", group_context(group), address, code, None);
    if code != 0 {
        return Err(error(code));
    }
    let mut offsets = Vec::new();
    for answer in answered {
        if answer.code != 0 {
            return Err(error(answer.code));
        }
        // -1 means "no offset committed" for a partition the group knows of.
        if answer.offset >= 0 {
            let (topic, partition, offset) = (answer.topic, answer.partition, answer.offset);
            offsets.push(CommittedOffset {
                topic,
                partition,
                offset,
                metadata: answer.metadata.map(|m| m.to_string()),
            });
        }
    }
    Ok(offsets)
}

/// Every committed offset of each of `groups`, in one OffsetFetch (v8+ batches groups; before,
/// one request per group on the same connection).
pub(super) async fn fetch_offsets(
    connection: Arc<BrokerConnection>,
    groups: Vec<String>,
) -> Result<GroupAnswers<Vec<CommittedOffset>>, KafkaError> {
    let version = connection.version_for::<OffsetFetchRequest>()?;
    let address = connection.address();
    let mut answered = HashMap::new();
    if version >= OFFSET_FETCH_BATCHED {
        let asked =
            groups.iter().map(|g| OffsetFetchRequestGroup::default().with_group_id(group_id(g)).with_topics(None));
        let response = connection.send(&OffsetFetchRequest::default().with_groups(asked.collect())).await?;
        for answer in response.groups {
            let group = answer.group_id.0.to_string();
            let partitions = answered_offsets!(answer.topics);
            let offsets = group_offsets((&group, address), answer.error_code, partitions);
            answered.insert(group, offsets);
        }
    } else {
        for group in &groups {
            let request = OffsetFetchRequest::default().with_group_id(group_id(group)).with_topics(None);
            let response = connection.send(&request).await?;
            let partitions = answered_offsets!(response.topics);
            answered.insert(group.clone(), group_offsets((group, address), response.error_code, partitions));
        }
    }
    Ok(in_asked_order(("OffsetFetch", address, "group"), &groups, answered))
}

/// State, protocol and members of each of `groups` as classic groups, in one DescribeGroups.
pub(super) async fn describe_classic_groups(
    connection: Arc<BrokerConnection>,
    groups: Vec<String>,
) -> Result<GroupAnswers<GroupDescription>, KafkaError> {
    let asked = groups.iter().map(|g| group_id(g)).collect();
    let response = connection.send(&DescribeGroupsRequest::default().with_groups(asked)).await?;
    let mut answered = HashMap::new();
    for described in response.groups {
        let group = described.group_id.0.to_string();
        let answer = GroupAnswer { code: described.error_code, message: described.error_message };
        let protocol_type = described.protocol_type.to_string();
        let members = described.members.into_iter().map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            instance_id: m.group_instance_id.map(|id| id.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            subscribed_topics: classic_subscription(&protocol_type, &m.member_metadata),
            subscribed_regex: None,
        });
        let description = GroupDescription {
            group_id: group.clone(),
            state: described.group_state.to_string(),
            protocol: "classic".to_string(),
            assignor: described.protocol_data.to_string(),
            members: members.collect(),
        };
        answered.insert(group, answer.into_description("DescribeGroups", connection.address(), description));
    }
    Ok(in_asked_order(("DescribeGroups", connection.address(), "group"), &groups, answered))
}

/// State, assignor and members of each of `groups` as KIP-848 consumer groups, in one
/// ConsumerGroupDescribe; a group it does not know is `Dead`, without members.
pub(super) async fn describe_consumer_groups(
    connection: Arc<BrokerConnection>,
    groups: Vec<String>,
) -> Result<GroupAnswers<GroupDescription>, KafkaError> {
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(groups.iter().map(|g| group_id(g)).collect());
    let response = connection.send(&request).await?;
    let mut answered = HashMap::new();
    for described in response.groups {
        let group = described.group_id.0.to_string();
        let mut description = GroupDescription {
            group_id: group.clone(),
            state: described.group_state.to_string(),
            protocol: "consumer".to_string(),
            assignor: described.assignor_name.to_string(),
            members: Vec::new(),
        };
        if described.error_code == ResponseError::GroupIdNotFound.code() {
            description.state = "Dead".to_string();
            answered.insert(group, Ok(description));
            continue;
        }
        let answer = GroupAnswer { code: described.error_code, message: described.error_message };
        description.members = described
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                instance_id: m.instance_id.map(|id| id.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                subscribed_topics: m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect(),
                subscribed_regex: m.subscribed_topic_regex.map(|r| r.to_string()),
            })
            .collect();
        answered.insert(group, answer.into_description("ConsumerGroupDescribe", connection.address(), description));
    }
    Ok(in_asked_order(("ConsumerGroupDescribe", connection.address(), "group"), &groups, answered))
}

impl KafkaClient {
    /// Finds the coordinator broker of a group or transactional id.
    pub(super) async fn lookup_coordinator(&self, coordinated: Coordinated<'_>) -> Result<BrokerInfo, KafkaError> {
        let key = vec![coordinated.key().to_string()];
        self.on("FindCoordinator", Route::Any, |connection| {
            let key = key.clone();
            async move { only_answer(find_coordinators(&connection, coordinated, key).await?) }
        })
        .await
    }

    /// Every committed offset of `group`.
    pub async fn committed_offsets(&self, group: &str) -> Result<Vec<CommittedOffset>, KafkaError> {
        self.on("OffsetFetch", Route::Coordinator(group), |connection| async move {
            only_answer(fetch_offsets(connection, vec![group.to_string()]).await?)
        })
        .await
    }

    /// Commits `offsets` for `group` as an administrator (no generation, no member id). The
    /// coordinator refuses this while the group has active members.
    pub async fn commit_offsets(&self, group: &str, offsets: &[CommittedOffset]) -> Result<(), KafkaError> {
        self.on("OffsetCommit", Route::Coordinator(group), |connection| async move {
            let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
            for offset in offsets {
                let partition = OffsetCommitRequestPartition::default()
                    .with_partition_index(offset.partition)
                    .with_committed_offset(offset.offset)
                    .with_committed_leader_epoch(-1)
                    .with_committed_metadata(offset.metadata.clone().map(StrBytes::from_string));
                match topics.iter_mut().find(|t| t.name.0.as_str() == offset.topic) {
                    Some(topic) => topic.partitions.push(partition),
                    None => topics.push(
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(offset.topic.clone())))
                            .with_partitions(vec![partition]),
                    ),
                }
            }
            let request = OffsetCommitRequest::default()
                .with_group_id(group_id(group))
                .with_generation_id_or_member_epoch(-1)
                .with_member_id(StrBytes::new())
                .with_topics(topics);
            let response = connection.send(&request).await?;
            for topic in &response.topics {
                if let Some(p) = topic.partitions.iter().find(|p| p.error_code != 0) {
                    return Err(KafkaError::broker(
                        "OffsetCommit",
                        format!(" for group {group} on {}-{}", topic.name.0, p.partition_index),
                        connection.address(),
                        p.error_code,
                        None,
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// Every group of the cluster (each broker lists the groups it coordinates).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>, KafkaError> {
        let brokers: Vec<i32> = self.refresh_metadata(Some(&[])).await?.brokers.keys().copied().collect();
        let mut groups = Vec::new();
        for node_id in brokers {
            let listed = self
                .config()
                .retry
                .run("ListGroups", || async {
                    let connection = self.node_connection(node_id).await?;
                    let response = connection.send(&ListGroupsRequest::default()).await?;
                    if response.error_code != 0 {
                        return Err(KafkaError::broker(
                            "ListGroups",
                            String::new(),
                            connection.address(),
                            response.error_code,
                            None,
                        ));
                    }
                    Ok(response
                        .groups
                        .into_iter()
                        .map(|g| GroupListing {
                            group_id: g.group_id.0.to_string(),
                            protocol_type: g.protocol_type.to_string(),
                            group_type: g.group_type.to_string(),
                            state: g.group_state.to_string(),
                        })
                        .collect::<Vec<_>>())
                })
                .await?;
            groups.extend(listed);
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// State and members of `group`, classic (DescribeGroups) or KIP-848 consumer group
    /// (ConsumerGroupDescribe). DescribeGroups does not see consumer groups: up to v5 it reports
    /// them `Dead`, from v6 GROUP_ID_NOT_FOUND, so either answer is checked with
    /// ConsumerGroupDescribe where the broker has it. A group neither knows is `Dead`, no members.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        let classic = match self.describe_classic_group(group).await {
            Ok(described) if described.state != "Dead" => return Ok(described),
            Err(error) if error.response_error() != Some(ResponseError::GroupIdNotFound) => return Err(error),
            other => other,
        };
        match self.describe_consumer_group(group).await {
            Err(KafkaError::UnsupportedApi { .. }) => classic,
            consumer => consumer,
        }
    }

    pub(super) async fn describe_classic_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        self.on("DescribeGroups", Route::Coordinator(group), |connection| async move {
            only_answer(describe_classic_groups(connection, vec![group.to_string()]).await?)
        })
        .await
    }

    pub(super) async fn describe_consumer_group(&self, group: &str) -> Result<GroupDescription, KafkaError> {
        self.on("ConsumerGroupDescribe", Route::Coordinator(group), |connection| async move {
            only_answer(describe_consumer_groups(connection, vec![group.to_string()]).await?)
        })
        .await
    }

    /// Deletes `group` with its committed offsets (the coordinator refuses while it has members).
    pub async fn delete_group(&self, group: &str) -> Result<(), KafkaError> {
        self.on("DeleteGroups", Route::Coordinator(group), |connection| async move {
            let response =
                connection.send(&DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)])).await?;
            match response.results.iter().find(|r| r.error_code != 0) {
                Some(failed) => Err(KafkaError::broker(
                    "DeleteGroups",
                    group_context(group),
                    connection.address(),
                    failed.error_code,
                    None,
                )),
                None => Ok(()),
            }
        })
        .await
    }

    /// Deletes the committed offsets of `group` on `partitions` of `topic`.
    pub async fn delete_offsets(&self, group: &str, topic: &str, partitions: &[i32]) -> Result<(), KafkaError> {
        self.on("OffsetDelete", Route::Coordinator(group), |connection| async move {
            let request = OffsetDeleteRequest::default().with_group_id(group_id(group)).with_topics(vec![
                OffsetDeleteRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        partitions
                            .iter()
                            .map(|&p| OffsetDeleteRequestPartition::default().with_partition_index(p))
                            .collect(),
                    ),
            ]);
            let response = connection.send(&request).await?;
            let failed = (response.error_code != 0).then_some(response.error_code).or_else(|| {
                response.topics.iter().flat_map(|t| &t.partitions).find(|p| p.error_code != 0).map(|p| p.error_code)
            });
            match failed {
                Some(code) => Err(KafkaError::broker(
                    "OffsetDelete",
                    format!(" for group {group} on {topic}"),
                    connection.address(),
                    code,
                    None,
                )),
                None => Ok(()),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::Encodable;

    use super::*;

    fn metadata(version: i16, topics: &[&str]) -> Bytes {
        let subscription = ConsumerProtocolSubscription::default()
            .with_topics(topics.iter().map(|t| StrBytes::from_string(t.to_string())).collect());
        let mut bytes = BytesMut::new();
        bytes.put_i16(version);
        subscription.encode(&mut bytes, version.min(ConsumerProtocolSubscription::VERSIONS.max)).unwrap();
        bytes.freeze()
    }

    #[test]
    fn a_classic_members_subscription_is_read_from_its_metadata() {
        assert_eq!(classic_subscription("consumer", &metadata(0, &["orders", "audit"])), ["orders", "audit"]);
        assert_eq!(classic_subscription("consumer", &metadata(3, &["orders"])), ["orders"]);
        // A version newer than ours still starts with the fields we know.
        assert_eq!(classic_subscription("consumer", &metadata(9, &["orders"])), ["orders"]);
        // Connect workers and other protocols carry something else; garbage reads as nothing.
        assert!(classic_subscription("connect", &metadata(0, &["orders"])).is_empty());
        assert!(classic_subscription("consumer", &Bytes::from_static(&[0, 0, 0xff])).is_empty());
    }
}
