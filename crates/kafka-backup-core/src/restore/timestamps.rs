//! Restoring into an existing topic with `message.timestamp.type=LogAppendTime`, whose broker
//! would re-stamp every restored record with the time of the restore: the plan says so, and with
//! `restore.switch_to_create_time` the topic is switched to CreateTime for the restore and back.

use std::time::{Duration, Instant};

use super::plan::RestorePlan;
use super::RestoreTarget;
use crate::error::EngineError;
use crate::kafka::{ClusterMetadata, TOPIC_POLL};
use crate::layout::timestamp_switch_key;
use crate::storage::StorageError;

const TIMESTAMP_TYPE: &str = "message.timestamp.type";
const LOG_APPEND_TIME: &str = "LogAppendTime";
const CREATE_TIME: &str = "CreateTime";
/// How long a switched config may take to reach every broker leading the topic.
const PROPAGATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Marks the plan's existing LogAppendTime target topics: switched for the restore when `switch`
/// is set (or when an interrupted restore switched it already: its marker is in the restore
/// state), otherwise a warning that their records lose their timestamps. A topic whose configs
/// cannot be read is a warning.
pub(super) async fn check_timestamp_types(
    target: &RestoreTarget,
    metadata: &ClusterMetadata,
    plan: &mut RestorePlan,
    switch: bool,
) -> Result<(), EngineError> {
    let mut unmarked = Vec::new();
    for (at, topic) in plan.topics.iter_mut().enumerate() {
        if topic.create.is_some() || !metadata.topics.contains_key(&topic.target) {
            continue;
        }
        let marker = timestamp_switch_key(&target.cluster_id, &topic.target);
        if target.store.size(&marker).await?.is_some() {
            topic.switch_to_create_time = true;
            plan.warnings.push(format!(
                "{}: switched to {TIMESTAMP_TYPE}={CREATE_TIME} by an interrupted restore; switched back to \
                 {LOG_APPEND_TIME} when this one completes",
                topic.target
            ));
            continue;
        }
        unmarked.push(at);
    }
    // The configs of every existing target topic in one DescribeConfigs, not one per topic.
    let names: Vec<String> = unmarked.iter().map(|&at| plan.topics[at].target.clone()).collect();
    let described = match target.client.describe_topics_configs(&names).await {
        Ok(described) => described,
        Err(error) if error.is_refusal() => names.iter().map(|name| (name.clone(), Err(error.clone()))).collect(),
        Err(error) => return Err(EngineError::kafka("reading the configs of the target topics")(error)),
    };
    for (at, (_, configs)) in unmarked.into_iter().zip(described) {
        let topic = &mut plan.topics[at];
        let configs = match configs {
            Ok(configs) => configs,
            Err(error) if error.is_refusal() => {
                plan.warnings.push(format!("{}: its timestamp type could not be read: {error}", topic.target));
                continue;
            }
            Err(error) => {
                return Err(EngineError::kafka(format!("reading the configs of topic {}", topic.target))(error))
            }
        };
        let log_append_time =
            configs.iter().any(|c| c.name == TIMESTAMP_TYPE && c.value.as_deref() == Some(LOG_APPEND_TIME));
        if !log_append_time {
            continue;
        }
        if switch {
            topic.switch_to_create_time = true;
            plan.warnings.push(format!(
                "{}: has {TIMESTAMP_TYPE}={LOG_APPEND_TIME}: switched to {CREATE_TIME} for the restore, so that \
                 restored records keep their timestamps, and back after it (records produced meanwhile by others \
                 keep their producers' timestamps)",
                topic.target
            ));
        } else {
            plan.warnings.push(format!(
                "{}: has {TIMESTAMP_TYPE}={LOG_APPEND_TIME}: the broker stamps every restored record with the time \
                 of the restore and their original timestamps are lost; set restore.switch_to_create_time: true to \
                 switch it to {CREATE_TIME} for the restore and back after it",
                topic.target
            ));
        }
    }
    Ok(())
}

/// Switches the plan's marked topics to CreateTime (recording it first, so that an interrupted
/// restore's re-run switches them back) and waits until every broker leading one applies it.
pub(super) async fn switch_to_create_time(target: &RestoreTarget, plan: &RestorePlan) -> Result<(), EngineError> {
    for topic in plan.topics.iter().filter(|t| t.switch_to_create_time) {
        let marker = timestamp_switch_key(&target.cluster_id, &topic.target);
        let record = serde_json::json!({ "topic": topic.target, "restore_to": LOG_APPEND_TIME });
        target.store.put(&marker, crate::manifest::to_json(&record)).await?;
        set_everywhere(target, &topic.target, CREATE_TIME).await?;
        tracing::info!(topic = %topic.target, "switched to CreateTime for the restore");
    }
    Ok(())
}

/// Switches the plan's marked topics back to LogAppendTime after a completed restore.
pub(super) async fn switch_back(target: &RestoreTarget, plan: &RestorePlan) -> Result<(), EngineError> {
    for topic in plan.topics.iter().filter(|t| t.switch_to_create_time) {
        set_everywhere(target, &topic.target, LOG_APPEND_TIME).await?;
        match target.store.delete(&timestamp_switch_key(&target.cluster_id, &topic.target)).await {
            Ok(()) | Err(StorageError::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
        tracing::info!(topic = %topic.target, "switched back to LogAppendTime after the restore");
    }
    Ok(())
}

/// Sets `topic`'s timestamp type to `value` and waits until each broker leading one of its
/// partitions reports it (a config change reaches the brokers one after another).
async fn set_everywhere(target: &RestoreTarget, topic: &str, value: &str) -> Result<(), EngineError> {
    let client = &target.client;
    client
        .set_topic_config(topic, TIMESTAMP_TYPE, value)
        .await
        .map_err(EngineError::kafka(format!("setting {TIMESTAMP_TYPE}={value} on topic {topic}")))?;
    let deadline = Instant::now() + PROPAGATION_TIMEOUT;
    loop {
        let applied = client
            .topic_config_on_every_leader(topic, TIMESTAMP_TYPE)
            .await
            .map_err(EngineError::kafka(format!("reading the configs of topic {topic}")))?;
        if applied.iter().all(|found| found.as_deref() == Some(value)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(EngineError::Conflicts {
                conflicts: vec![format!(
                    "topic {topic}: {TIMESTAMP_TYPE}={value} was not applied by every broker leading it within {}s; \
                     run the restore again",
                    PROPAGATION_TIMEOUT.as_secs()
                )],
            });
        }
        tokio::time::sleep(TOPIC_POLL).await;
    }
}
