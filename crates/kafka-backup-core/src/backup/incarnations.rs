//! Topic incarnations on the backup side: a topic deleted and created again under its name (a new
//! topic id) is backed up as a new incarnation, `{topic}@{n}`, beside the old one, which stays.
//!
//! A run learns each topic's id from the source's metadata and compares it with the backup's
//! latest incarnation of the topic: at its start (a topic re-created between runs) and whenever a
//! partition's fetch finds its topic gone or its position past the log end (re-created while it
//! runs). The first to see a new id writes the incarnation record with a conditional put, so the
//! partitions of a topic, and the workers of a group, all agree on its name.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::topic_configs;
use crate::clock::now_ms;
use crate::error::EngineError;
use crate::kafka::{KafkaClient, KafkaError, TopicMetadata};
use crate::layout::{incarnation_key, incarnation_of, stored_topic};
use crate::manifest::{to_json, BackupManifest, IncarnationRecord, ManifestError};
use crate::storage::{BackupStore, StorageError};

/// How long a look at the metadata that found a topic deleted holds for all its partitions.
const GONE_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The incarnation a topic is backed up as: its name in the backup and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Current {
    stored: String,
    topic_id: Option<String>,
    /// When a look at the metadata last found the topic deleted.
    gone_at: Option<Instant>,
}

/// What a look at a topic's metadata found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Found {
    /// The incarnation being backed up (or a broker that reports no topic ids).
    Same,
    /// The topic does not exist now.
    Gone,
    /// A new incarnation, backed up under `stored`, with its id and partitions.
    Recreated { stored: String, topic_id: Option<String>, partitions: BTreeSet<i32> },
}

/// The incarnations a run backs up, by Kafka topic name.
pub(super) struct Incarnations {
    client: Arc<KafkaClient>,
    store: BackupStore,
    current: Mutex<HashMap<String, Current>>,
}

impl Incarnations {
    pub fn new(client: Arc<KafkaClient>, store: BackupStore) -> Self {
        Self { client, store, current: Mutex::default() }
    }

    /// At a run's start: the name in the backup `topic` is backed up under, beginning a new
    /// incarnation in `manifest` when the topic's id is not that of the latest one the backup
    /// holds. Returns it with the warning telling the user of a new incarnation.
    pub async fn begin(
        &self,
        manifest: &mut BackupManifest,
        topic: &TopicMetadata,
    ) -> Result<(String, Option<String>), EngineError> {
        let latest = manifest.incarnations(&topic.name).last().map(|t| (t.name.clone(), t.topic_id.clone()));
        let mut current = self.current.lock().await;
        let (stored, warning) = match latest {
            None => (topic.name.clone(), None),
            Some((stored, known)) if known.is_none() || topic.topic_id.is_none() || known == topic.topic_id => {
                (stored, None)
            }
            Some((stored, known)) => {
                let (next, record) = self.record_new(&stored, known, topic).await?;
                let warning = recreated_warning(&topic.name, &stored, &next);
                manifest.add_incarnation(&next, record);
                (next, Some(warning))
            }
        };
        current.insert(
            topic.name.clone(),
            Current { stored: stored.clone(), topic_id: topic.topic_id.clone(), gone_at: None },
        );
        Ok((stored, warning))
    }

    /// The name in the backup `topic`'s partitions are backed up under: the incarnation this
    /// run began or found, else the latest in `manifest` (a worker of a group, whose leader began it).
    /// Its id is the manifest's, else the one in this process's metadata (a worker may read the
    /// manifest before its leader has saved the id there): without one, a re-created topic could
    /// not be told from the old.
    pub async fn backed_up_as(&self, manifest: &BackupManifest, topic: &str) -> (String, Option<String>) {
        let mut current = self.current.lock().await;
        let known = current.entry(topic.to_string()).or_insert_with(|| {
            let metadata = self.client.cached_metadata();
            let seen = metadata.topics.get(topic).and_then(|t| t.topic_id.clone());
            match manifest.incarnations(topic).last() {
                Some(latest) => {
                    Current { stored: latest.name.clone(), topic_id: latest.topic_id.clone().or(seen), gone_at: None }
                }
                None => Current { stored: topic.to_string(), topic_id: seen, gone_at: None },
            }
        });
        (known.stored.clone(), known.topic_id.clone())
    }

    /// Whether `topic`, backed up as `stored`, is still that incarnation on the source: read
    /// again from its metadata, a new one recorded the first time a partition finds it.
    /// A deleted topic is looked up at most once per second, whatever its partition count.
    pub async fn check(&self, topic: &str, stored: &str) -> Result<Found, EngineError> {
        let mut current = self.current.lock().await;
        let known = current.entry(topic.to_string()).or_insert_with(|| Current {
            stored: stored.to_string(),
            topic_id: None,
            gone_at: None,
        });
        if known.gone_at.is_some_and(|at| at.elapsed() < GONE_RECHECK_INTERVAL) {
            return Ok(Found::Gone);
        }
        self.client.forget_topic(topic);
        let looked_up = match self.client.refresh_metadata(Some(&[topic.to_string()])).await {
            Ok(metadata) => metadata.topics.get(topic).cloned(),
            Err(KafkaError::UnknownTopicOrPartition { .. }) => None,
            Err(error) => return Err(EngineError::kafka(format!("reading the metadata of topic {topic}"))(error)),
        };
        let Some(now) = looked_up else {
            known.gone_at = Some(Instant::now());
            return Ok(Found::Gone);
        };
        known.gone_at = None;
        let known = known.clone();
        let now = &now;
        let partitions = now.partitions.keys().copied().collect();
        if known.stored != stored && known.topic_id == now.topic_id {
            // Another partition of the topic found the new incarnation first.
            return Ok(Found::Recreated { stored: known.stored, topic_id: known.topic_id, partitions });
        }
        if known.topic_id.is_none() || now.topic_id.is_none() || known.topic_id == now.topic_id {
            return Ok(Found::Same);
        }
        let (next, _) = self.record_new(&known.stored, known.topic_id, now).await?;
        tracing::warn!("{}", recreated_warning(topic, &known.stored, &next));
        current
            .insert(topic.to_string(), Current { stored: next.clone(), topic_id: now.topic_id.clone(), gone_at: None });
        Ok(Found::Recreated { stored: next, topic_id: now.topic_id.clone(), partitions })
    }

    /// Writes the record of the incarnation after `latest` for `topic` as it is now; when another
    /// process wrote that one first for the same id, it is the one, else the next is tried.
    async fn record_new(
        &self,
        latest: &str,
        previous_topic_id: Option<String>,
        topic: &TopicMetadata,
    ) -> Result<(String, IncarnationRecord), EngineError> {
        let (configs, warning) = topic_configs(&self.client, &topic.name).await?;
        if let Some(warning) = warning {
            tracing::warn!("{warning}");
        }
        let record = IncarnationRecord {
            topic_id: topic.topic_id.clone().unwrap_or_default(),
            previous_topic_id,
            since_ms: now_ms(),
            partition_count: topic.partitions.len() as i32,
            replication_factor: topic.partitions.values().map(|p| p.replicas.len()).max().unwrap_or(0) as i16,
            configs,
        };
        let mut incarnation = incarnation_of(latest).1 + 1;
        loop {
            let stored = stored_topic(&topic.name, incarnation);
            let key = incarnation_key(&stored);
            match self.store.put_new(&key, to_json(&record)).await {
                Ok(()) => return Ok((stored, record)),
                Err(StorageError::AlreadyExists { .. }) => {
                    let written: IncarnationRecord = serde_json::from_slice(&self.store.get(&key).await?)
                        .map_err(|source| ManifestError::Parse { key: key.clone(), source })?;
                    if written.topic_id == record.topic_id {
                        return Ok((stored, written));
                    }
                    incarnation += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

fn recreated_warning(topic: &str, old: &str, new: &str) -> String {
    format!(
        "topic {topic} was deleted and created again on the source (a new topic id): its new incarnation is backed \
         up as {new}; the old one stays in the backup as {old}, restorable with restore.incarnations"
    )
}
