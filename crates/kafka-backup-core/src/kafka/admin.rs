//! Cluster administration calls: CreateTopics, DescribeConfigs and IncrementalAlterConfigs (topic
//! configs), and InitProducerId (an id for idempotent producing).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreateTopicsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, ProducerId,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::client::{in_asked_order, only_answer, KafkaClient, Route};
use super::connection::BrokerConnection;
use super::log::list_offsets_on;
use super::{IsolationLevel, KafkaError, OffsetSpec};
use crate::retry::Retriable;

/// How often a new topic's readiness is checked.
pub(crate) const TOPIC_POLL: Duration = Duration::from_millis(100);

/// DescribeConfigs resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs operation that sets a value.
const CONFIG_SET: i8 = 0;
/// `config_source` of a value set on the topic itself (`kafka-configs --alter --entity-type topics`
/// or CreateTopics configs); every other source is a broker-wide default of that cluster.
const SOURCE_DYNAMIC_TOPIC_CONFIG: i8 = 1;

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic-level configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
}

/// One topic config as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigEntry {
    /// Config name.
    pub name: String,
    /// Value (`None` when the broker hides it or it is unset).
    pub value: Option<String>,
    /// True when the value was set on the topic; false for the cluster's defaults (built in, or
    /// set broker-wide in `server.properties` or dynamically), which another cluster has its own of.
    pub set_on_topic: bool,
    /// True for secrets the broker will not reveal.
    pub is_sensitive: bool,
}

/// Topics created in one CreateTopics at most (the controller creates them in one metadata
/// record batch; a few hundred partitions' worth keeps it quick).
const TOPICS_PER_CREATE: usize = 100;

/// Creates `topics` in one CreateTopics on `connection`, waiting up to `timeout` on the broker;
/// each topic's answer in the order asked.
async fn create_topics_on(
    connection: &BrokerConnection,
    topics: &[NewTopic],
    timeout: Duration,
) -> Result<Vec<(String, Result<(), KafkaError>)>, KafkaError> {
    let creatable = topics.iter().map(|topic| {
        let configs = topic.configs.iter().map(|(name, value)| {
            CreatableTopicConfig::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_value(Some(StrBytes::from_string(value.clone())))
        });
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.name.clone())))
            .with_num_partitions(topic.partitions)
            .with_replication_factor(topic.replication_factor)
            .with_configs(configs.collect())
    });
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topics(creatable.collect());
    let response = connection.send(&request).await?;
    let mut answered = HashMap::new();
    for result in response.topics {
        let name = result.name.0.to_string();
        let message = result.error_message.map(|m| m.to_string());
        let context = format!(" for topic {name}");
        answered
            .insert(name, KafkaError::check("CreateTopics", context, connection.address(), result.error_code, message));
    }
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    Ok(in_asked_order(("CreateTopics", connection.address(), "topic"), &names, answered))
}

/// Topics described in one DescribeConfigs at most: the answer carries every config of each (some
/// 50), so a few hundred keep it well under a megabyte.
const CONFIGS_PER_REQUEST: usize = 500;

/// The configs of each of `topics`, in one DescribeConfigs on `connection`, in the order asked.
async fn describe_configs_on(
    connection: &BrokerConnection,
    topics: &[String],
) -> Result<Vec<(String, Result<Vec<TopicConfigEntry>, KafkaError>)>, KafkaError> {
    let resources = topics.iter().map(|topic| {
        DescribeConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(topic.clone()))
            .with_configuration_keys(None)
    });
    let response = connection.send(&DescribeConfigsRequest::default().with_resources(resources.collect())).await?;
    let mut answered: HashMap<String, Result<Vec<TopicConfigEntry>, KafkaError>> = HashMap::new();
    for result in response.results {
        let topic = result.resource_name.to_string();
        let message = result.error_message.map(|m| m.to_string());
        let context = format!(" for topic {topic}");
        let configs = result.configs.into_iter().map(|c| TopicConfigEntry {
            name: c.name.to_string(),
            value: c.value.map(|v| v.to_string()),
            set_on_topic: c.config_source == SOURCE_DYNAMIC_TOPIC_CONFIG,
            is_sensitive: c.is_sensitive,
        });
        let answer = KafkaError::check("DescribeConfigs", context, connection.address(), result.error_code, message);
        answered.insert(topic, answer.map(|()| configs.collect()));
    }
    Ok(in_asked_order(("DescribeConfigs", connection.address(), "topic"), topics, answered))
}

impl KafkaClient {
    /// Creates a topic and waits until each of its partitions has a leader (whose log may still be
    /// in creation: see `serving_partitions`). An existing topic is an error whose
    /// `response_error()` is `TopicAlreadyExists`, so callers can tell it from a real failure.
    pub async fn create_topic(&self, topic: &NewTopic, timeout: Duration) -> Result<(), KafkaError> {
        only_answer(self.create_topics(std::slice::from_ref(topic), timeout).await?)
    }

    /// Creates `topics` (see [`Self::create_topic`]) in one CreateTopics per `TOPICS_PER_CREATE`
    /// rather than one per topic, then waits until the metadata shows a leader for every partition
    /// of those created (one Metadata request per poll for all). Each topic's own error is its
    /// entry's; one a retry may mend (the controller moved) is asked again on its own.
    pub async fn create_topics(
        &self,
        topics: &[NewTopic],
        timeout: Duration,
    ) -> Result<Vec<(String, Result<(), KafkaError>)>, KafkaError> {
        let mut answers = Vec::with_capacity(topics.len());
        for chunk in topics.chunks(TOPICS_PER_CREATE) {
            let created = self.on("CreateTopics", Route::Controller, |connection| async move {
                create_topics_on(&connection, chunk, timeout).await
            });
            for (topic, (name, answer)) in chunk.iter().zip(created.await?) {
                let answer = match answer {
                    Err(error) if error.is_retriable() => {
                        let alone = std::slice::from_ref(topic);
                        self.on("CreateTopics", Route::Controller, |connection| async move {
                            only_answer(create_topics_on(&connection, alone, timeout).await?)
                        })
                        .await
                    }
                    answer => answer,
                };
                answers.push((name, answer));
            }
        }
        let created: Vec<String> =
            answers.iter().filter(|(_, answer)| answer.is_ok()).map(|(name, _)| name.clone()).collect();
        self.await_leaders(&created, timeout).await?;
        Ok(answers)
    }

    /// Waits until the metadata shows each of `topics` with a leader for every partition: the
    /// controller has created them, but a broker's metadata cache learns of them a moment later
    /// (seen under load on Apache Kafka 4.2). The leaders create the partitions' logs after that,
    /// one after another (seconds for 1,000 partitions): `serving_partitions` tells which answer.
    async fn await_leaders(&self, topics: &[String], timeout: Duration) -> Result<(), KafkaError> {
        let started = tokio::time::Instant::now();
        let mut waiting: Vec<String> = topics.to_vec();
        while !waiting.is_empty() {
            match self.refresh_metadata(Some(&waiting)).await {
                Ok(metadata) => waiting.retain(|topic| {
                    !metadata.topics.get(topic).is_some_and(|t| t.partitions.values().all(|p| p.leader.is_some()))
                }),
                Err(KafkaError::UnknownTopicOrPartition { .. }) => {}
                Err(error) => return Err(error),
            }
            if waiting.is_empty() {
                break;
            }
            // A short fixed poll: the wait ends within moments of the broker being ready.
            if started.elapsed() + TOPIC_POLL > timeout {
                return Err(KafkaError::UnknownTopicOrPartition { topic: waiting.remove(0), partition: None });
            }
            tokio::time::sleep(TOPIC_POLL).await;
        }
        Ok(())
    }

    /// The partitions of `topic` whose leaders answer a ListOffsets (one request per leader for all
    /// its partitions); a partition without a leader, or whose log its leader has not created yet,
    /// is left out. The metadata is asked for again when the cache has lost the topic.
    pub async fn serving_partitions(&self, topic: &str) -> Result<BTreeSet<i32>, KafkaError> {
        let mut metadata = self.cached_metadata();
        if !metadata.topics.contains_key(topic) {
            metadata = self.refresh_metadata(Some(&[topic.to_string()])).await?;
        }
        let Some(partitions) = metadata.topics.get(topic).map(|t| &t.partitions) else { return Ok(BTreeSet::new()) };
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (&partition, info) in partitions {
            if let Some(leader) = info.leader {
                by_leader.entry(leader).or_default().push(partition);
            }
        }
        let mut serving = BTreeSet::new();
        for (leader, partitions) in by_leader {
            let asked = (topic, OffsetSpec::Latest, IsolationLevel::ReadUncommitted);
            let answered = list_offsets_on(self.node_connection(leader).await?, asked, partitions).await?;
            serving.extend(answered.into_iter().filter(|(_, answer)| answer.is_ok()).map(|(partition, _)| partition));
        }
        Ok(serving)
    }

    /// The configs of `topic`, each marked set on the topic or not.
    pub async fn describe_topic_configs(&self, topic: &str) -> Result<Vec<TopicConfigEntry>, KafkaError> {
        self.describe_topic_configs_via(topic, Route::Any).await
    }

    /// The value of config `name` of `topic` as each broker leading one of its partitions reports
    /// it: a config change reaches the brokers one after another.
    pub async fn topic_config_on_every_leader(
        &self,
        topic: &str,
        name: &str,
    ) -> Result<Vec<Option<String>>, KafkaError> {
        let metadata = self.refresh_metadata(Some(&[topic.to_string()])).await?;
        let mut one_per_leader: BTreeMap<i32, i32> = BTreeMap::new();
        for (&partition, details) in metadata.topics.get(topic).map(|t| &t.partitions).into_iter().flatten() {
            one_per_leader.entry(details.leader.unwrap_or(-1)).or_insert(partition);
        }
        let mut values = Vec::new();
        for partition in one_per_leader.into_values() {
            let configs = self.describe_topic_configs_via(topic, Route::Leader(topic, partition)).await?;
            values.push(configs.into_iter().find(|c| c.name == name).and_then(|c| c.value));
        }
        Ok(values)
    }

    async fn describe_topic_configs_via(
        &self,
        topic: &str,
        route: Route<'_>,
    ) -> Result<Vec<TopicConfigEntry>, KafkaError> {
        self.on("DescribeConfigs", route, |connection| async move {
            only_answer(describe_configs_on(&connection, &[topic.to_string()]).await?)
        })
        .await
    }

    /// The configs of each of `topics` (see [`Self::describe_topic_configs`]), in one
    /// DescribeConfigs per `CONFIGS_PER_REQUEST` topics rather than one per topic; each topic's
    /// own error is its entry's.
    pub async fn describe_topics_configs(
        &self,
        topics: &[String],
    ) -> Result<Vec<(String, Result<Vec<TopicConfigEntry>, KafkaError>)>, KafkaError> {
        let mut answers = Vec::with_capacity(topics.len());
        for chunk in topics.chunks(CONFIGS_PER_REQUEST) {
            let described =
                self.on("DescribeConfigs", Route::Any, |connection| async move {
                    describe_configs_on(&connection, chunk).await
                })
                .await?;
            answers.extend(described);
        }
        Ok(answers)
    }

    /// Sets config `name` of `topic` to `value` (IncrementalAlterConfigs SET), leaving its other
    /// configs as they are.
    pub async fn set_topic_config(&self, topic: &str, name: &str, value: &str) -> Result<(), KafkaError> {
        self.on("IncrementalAlterConfigs", Route::Any, |connection| async move {
            let request =
                IncrementalAlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
                    .with_resource_type(RESOURCE_TOPIC)
                    .with_resource_name(StrBytes::from_string(topic.to_string()))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(StrBytes::from_string(name.to_string()))
                        .with_config_operation(CONFIG_SET)
                        .with_value(Some(StrBytes::from_string(value.to_string())))])]);
            let response = connection.send(&request).await?;
            match response.responses.into_iter().next() {
                Some(answer) if answer.error_code != 0 => Err(KafkaError::broker(
                    "IncrementalAlterConfigs",
                    format!(" setting {name}={value} on topic {topic}"),
                    connection.address(),
                    answer.error_code,
                    answer.error_message.map(|m| m.to_string()),
                )),
                Some(_) => Ok(()),
                None => Err(KafkaError::no_answer(
                    "IncrementalAlterConfigs",
                    connection.address(),
                    format!("no result for topic {topic}"),
                )),
            }
        })
        .await
    }

    /// A producer id and epoch for an idempotent (non-transactional) producer.
    pub async fn init_producer_id(&self) -> Result<(i64, i16), KafkaError> {
        self.on("InitProducerId", Route::Any, |connection| async move {
            let request = InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(-1)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1);
            let response = connection.send(&request).await?;
            if response.error_code != 0 {
                return Err(KafkaError::broker(
                    "InitProducerId",
                    String::new(),
                    connection.address(),
                    response.error_code,
                    None,
                ));
            }
            Ok((response.producer_id.0, response.producer_epoch))
        })
        .await
    }
}
