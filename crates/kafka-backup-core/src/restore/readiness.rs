//! The partitions of the topics a restore created, watched until their leaders serve them: a
//! leader creates the logs one after another (seconds for 1,000 partitions), so each partition's
//! restore starts as soon as its own log answers instead of after the last one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::kafka::{KafkaClient, KafkaError, TOPIC_POLL};
use crate::retry::Retriable;

/// What is known of the created topics so far.
#[derive(Debug, Clone, Default)]
struct Serving {
    /// Per created topic, its partition count and the partitions that answer.
    topics: BTreeMap<String, (i32, BTreeSet<i32>)>,
    /// Why the watch ended before every partition answered.
    failed: Option<(String, KafkaError)>,
}

impl Serving {
    /// Whether `partition` of `topic` (every partition when `None`) answers; true for a topic this
    /// run did not create.
    fn serves(&self, topic: &str, partition: Option<i32>) -> bool {
        self.topics.get(topic).is_none_or(|(count, serving)| match partition {
            Some(partition) => serving.contains(&partition),
            None => serving.len() == *count as usize,
        })
    }

    /// The first created topic with a partition that does not answer yet, and that partition.
    fn first_missing(&self) -> Option<(&str, i32)> {
        self.topics.iter().find_map(|(topic, (count, serving))| {
            (0..*count).find(|p| !serving.contains(p)).map(|partition| (topic.as_str(), partition))
        })
    }
}

/// A watch over the partitions of newly created topics, polled until every one answers, or until
/// no further partition has come up for a whole timeout (so thousands of partitions may take longer
/// in all, while a stuck leader is still reported); dropped, it stops polling.
pub(super) struct NewPartitions {
    serving: watch::Receiver<Serving>,
    poller: JoinHandle<()>,
}

impl NewPartitions {
    /// Starts watching the `created` topics (name, partition count) through `client`, giving up
    /// when no partition has come up for `timeout`.
    pub fn watch(client: Arc<KafkaClient>, created: Vec<(String, i32)>, timeout: Duration) -> Self {
        let topics = created.into_iter().map(|(name, count)| (name, (count, BTreeSet::new()))).collect();
        let (sender, serving) = watch::channel(Serving { topics, failed: None });
        let poller = tokio::spawn(async move {
            let mut last_progress = tokio::time::Instant::now();
            loop {
                let pending: Vec<String> = {
                    let state = sender.borrow();
                    state.topics.keys().filter(|topic| !state.serves(topic, None)).cloned().collect()
                };
                for topic in pending {
                    match client.serving_partitions(&topic).await {
                        Ok(answered) => {
                            sender.send_if_modified(|state| {
                                let Some((_, serving)) = state.topics.get_mut(&topic) else { return false };
                                let before = serving.len();
                                serving.extend(answered);
                                if serving.len() > before {
                                    last_progress = tokio::time::Instant::now();
                                }
                                serving.len() > before
                            });
                        }
                        Err(error) if error.is_retriable() => {}
                        Err(error) => {
                            sender.send_modify(|state| state.failed = Some((topic, error)));
                            return;
                        }
                    }
                }
                let missing = sender.borrow().first_missing().map(|(t, p)| (t.to_string(), p));
                let Some((topic, partition)) = missing else { return };
                if last_progress.elapsed() + TOPIC_POLL > timeout {
                    let error =
                        KafkaError::UnknownTopicOrPartition { topic: topic.clone(), partition: Some(partition) };
                    sender.send_modify(|state| state.failed = Some((topic, error)));
                    return;
                }
                tokio::time::sleep(TOPIC_POLL).await;
            }
        });
        Self { serving, poller }
    }

    /// Waits until `partition` of `topic` (every partition when `None`) answers; at once for a
    /// topic this run did not create.
    pub async fn wait(&self, topic: &str, partition: Option<i32>) -> Result<(), EngineError> {
        let mut serving = self.serving.clone();
        let state = serving
            .wait_for(|state| state.serves(topic, partition) || state.failed.is_some())
            .await
            .map(|state| state.clone())
            .unwrap_or_else(|_| self.serving.borrow().clone());
        if state.serves(topic, partition) {
            return Ok(());
        }
        let (failed_topic, error) = state.failed.unwrap_or_else(|| {
            (topic.to_string(), KafkaError::UnknownTopicOrPartition { topic: topic.to_string(), partition })
        });
        Err(EngineError::kafka(format!(
            "waiting for the leaders of the new topic {failed_topic} to create its partitions (check the brokers' logs; \
             a re-run restores into the topic once it is up)"
        ))(error))
    }
}

impl Drop for NewPartitions {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_serves_once_listed_and_a_topic_not_created_serves_at_once() {
        let mut state = Serving::default();
        state.topics.insert("new".into(), (3, BTreeSet::from([0, 2])));
        assert!(state.serves("new", Some(0)) && state.serves("new", Some(2)));
        assert!(!state.serves("new", Some(1)), "its log is not created yet");
        assert!(!state.serves("new", None), "not every partition yet");
        assert!(state.serves("existing", Some(7)) && state.serves("existing", None));
        assert_eq!(state.first_missing(), Some(("new", 1)));
        state.topics.get_mut("new").unwrap().1.insert(1);
        assert!(state.serves("new", None));
        assert_eq!(state.first_missing(), None);
    }
}
