//! The backup's durable position per partition, published as the committed offsets of a consumer
//! group (`source.progress_group`): standalone commits, so that `kafka-consumer-groups.sh`, Burrow
//! and Kafka UIs show the backup's lag like any consumer's. Best effort: never fails the backup.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;

use super::ProgressBoard;
use crate::kafka::{CommittedOffset, KafkaClient};

/// Unchanged positions are committed again this often, so that the broker does not expire the
/// offsets of a quiet partition (`offsets.retention.minutes`, 7 days by default).
const REFRESH_EVERY: Duration = Duration::from_secs(600);

/// Publishes committed positions to one consumer group.
pub(super) struct ProgressGroup {
    client: Arc<KafkaClient>,
    group: String,
    metadata: String,
    state: Mutex<Published>,
    warned: AtomicBool,
}

#[derive(Default)]
struct Published {
    offsets: BTreeMap<(String, i32), i64>,
    refreshed: Option<Instant>,
}

impl ProgressGroup {
    /// Publishes to `group` for backup `backup_id` (named in each offset's metadata).
    pub fn new(client: Arc<KafkaClient>, group: &str, backup_id: &str) -> Self {
        Self {
            client,
            group: group.to_string(),
            metadata: format!("kafka-backup {backup_id}"),
            state: Mutex::new(Published::default()),
            warned: AtomicBool::new(false),
        }
    }

    /// Commits the positions of `board` that changed since the last call (all of them every
    /// [`REFRESH_EVERY`]). A failure is logged (a missing ACL once, naming it), never returned.
    pub async fn publish(&self, board: &Mutex<ProgressBoard>) {
        let (offsets, refresh) = {
            let board = board.lock().expect("progress lock");
            let state = self.state.lock().expect("published lock");
            let refresh = state.refreshed.is_none_or(|at| at.elapsed() >= REFRESH_EVERY);
            let offsets: Vec<CommittedOffset> = board
                .partitions
                .iter()
                .flat_map(|(topic, partitions)| {
                    partitions.iter().filter_map(move |(&partition, progress)| {
                        Some((topic.clone(), partition, progress.committed_offset?))
                    })
                })
                .filter(|(topic, partition, offset)| {
                    refresh || state.offsets.get(&(topic.clone(), *partition)) != Some(offset)
                })
                .map(|(topic, partition, offset)| CommittedOffset {
                    topic,
                    partition,
                    offset,
                    metadata: Some(self.metadata.clone()),
                })
                .collect();
            (offsets, refresh)
        };
        if offsets.is_empty() {
            return;
        }
        match self.client.commit_offsets(&self.group, &offsets).await {
            Ok(()) => {
                let mut state = self.state.lock().expect("published lock");
                for offset in offsets {
                    state.offsets.insert((offset.topic, offset.partition), offset.offset);
                }
                if refresh {
                    state.refreshed = Some(Instant::now());
                }
            }
            Err(error)
                if matches!(
                    error.response_error(),
                    Some(ResponseError::GroupAuthorizationFailed | ResponseError::TopicAuthorizationFailed)
                ) =>
            {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(group = %self.group, %error,
                        "source.progress_group: the backup's positions cannot be published (the principal needs Read on the group); the backup itself is unaffected");
                }
            }
            Err(error) => {
                tracing::warn!(group = %self.group, %error,
                    "could not publish the backup's positions to source.progress_group; trying again at the next checkpoint");
            }
        }
    }
}
