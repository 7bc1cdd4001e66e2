//! Reading many groups at once, as a group snapshot does: their coordinators in one FindCoordinator,
//! then one OffsetFetch, DescribeGroups, ConsumerGroupDescribe or DescribeShareGroupOffsets per coordinator.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use kafka_protocol::ResponseError;

use super::client::{Coordinated, KafkaClient, Route};
use super::connection::BrokerConnection;
use super::groups::{
    describe_classic_groups, describe_consumer_groups, fetch_offsets, find_coordinators, GroupAnswers,
};
use super::share_groups::describe_share_offsets;
use super::{CommittedOffset, GroupDescription, KafkaError};

impl KafkaClient {
    /// Every committed offset of each of `groups` (see [`Self::committed_offsets`]), in one
    /// OffsetFetch per coordinator.
    pub async fn committed_offsets_of(&self, groups: &[String]) -> GroupAnswers<Vec<CommittedOffset>> {
        let single = |group: String| async move { self.committed_offsets(&group).await };
        self.per_coordinator("OffsetFetch", groups, fetch_offsets, single).await
    }

    /// The start offsets of each of share groups `groups` (see [`Self::share_group_offsets`]), in
    /// one DescribeShareGroupOffsets per coordinator.
    pub async fn share_group_offsets_of(&self, groups: &[String]) -> GroupAnswers<Vec<CommittedOffset>> {
        let single = |group: String| async move { self.share_group_offsets(&group).await };
        self.per_coordinator("DescribeShareGroupOffsets", groups, describe_share_offsets, single).await
    }

    /// State and members of each of `groups` (see [`Self::describe_group`]): one DescribeGroups
    /// per coordinator, then one ConsumerGroupDescribe per coordinator for the groups it did not
    /// know as classic groups.
    pub async fn describe_groups(&self, groups: &[String]) -> GroupAnswers<GroupDescription> {
        let single = |group: String| async move { self.describe_classic_group(&group).await };
        let classic = self.per_coordinator("DescribeGroups", groups, describe_classic_groups, single).await;
        let mut unknown = BTreeMap::new();
        let mut described = Vec::new();
        for (group, answer) in classic {
            match answer {
                Ok(found) if found.state != "Dead" => described.push((group, Ok(found))),
                Err(error) if error.response_error() != Some(ResponseError::GroupIdNotFound) => {
                    described.push((group, Err(error)))
                }
                not_classic => {
                    unknown.insert(group, not_classic);
                }
            }
        }
        let asked: Vec<String> = unknown.keys().cloned().collect();
        let single = |group: String| async move { self.describe_consumer_group(&group).await };
        let consumer = self.per_coordinator("ConsumerGroupDescribe", &asked, describe_consumer_groups, single).await;
        for (group, answer) in consumer {
            let answer = match answer {
                // A broker without KIP-848 groups: what DescribeGroups said stands.
                Err(KafkaError::UnsupportedApi { .. }) => unknown.remove(&group).expect("asked for it"),
                answer => answer,
            };
            described.push((group, answer));
        }
        let order: HashMap<&String, usize> = groups.iter().enumerate().map(|(at, g)| (g, at)).collect();
        described.sort_by_key(|(group, _)| order[group]);
        described
    }

    /// Runs `batch` once for each coordinator with the groups it coordinates; a group whose
    /// coordinator is not found, or moved, is asked again on its own with `single`
    /// ([`KafkaClient::per_broker`]). Answers come in the order of `groups`.
    async fn per_coordinator<T, Batch, BatchFut, Single, SingleFut>(
        &self,
        api: &'static str,
        groups: &[String],
        batch: Batch,
        single: Single,
    ) -> GroupAnswers<T>
    where
        Batch: Fn(Arc<BrokerConnection>, Vec<String>) -> BatchFut,
        BatchFut: Future<Output = Result<GroupAnswers<T>, KafkaError>>,
        Single: Fn(String) -> SingleFut,
        SingleFut: Future<Output = Result<T, KafkaError>>,
    {
        let (by_coordinator, not_found) = self.coordinators_of(groups).await;
        let batches = by_coordinator.iter().map(|(address, asked)| (Route::Broker(address), asked.clone())).collect();
        let forget = |group: &String| self.forget_coordinator(Coordinated::Group(group));
        let mut answered = self.per_broker(api, (batches, not_found), (batch, single), forget).await;
        groups.iter().map(|group| (group.clone(), answered.remove(group).expect("every group answered"))).collect()
    }

    /// The groups of `groups` by the address of their coordinator (cached, or found in one
    /// FindCoordinator for all the others), and the groups whose coordinator was not found.
    async fn coordinators_of(&self, groups: &[String]) -> (BTreeMap<String, Vec<String>>, Vec<String>) {
        let mut by_coordinator: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut unknown = Vec::new();
        for group in groups {
            match self.cached_coordinator(Coordinated::Group(group)) {
                Some(coordinator) => by_coordinator.entry(coordinator.address()).or_default().push(group.clone()),
                None => unknown.push(group.clone()),
            }
        }
        if unknown.is_empty() {
            return (by_coordinator, unknown);
        }
        let lookup = |connection: Arc<BrokerConnection>| {
            let keys = unknown.clone();
            async move { find_coordinators(&connection, Coordinated::Group(""), keys).await }
        };
        let mut not_found = Vec::new();
        match self.attempt("FindCoordinator", Route::Any, &lookup).await {
            Ok(found) => {
                for (group, coordinator) in found {
                    match coordinator {
                        Ok(coordinator) => {
                            self.remember_coordinator(Coordinated::Group(&group), coordinator.clone());
                            by_coordinator.entry(coordinator.address()).or_default().push(group);
                        }
                        Err(_) => not_found.push(group),
                    }
                }
            }
            Err(_) => not_found = unknown,
        }
        (by_coordinator, not_found)
    }
}
