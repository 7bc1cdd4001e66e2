//! The group leader's division of the work: every partition to one worker, balanced by weight (what
//! is left to move, plus an even share per partition) and sticky (a worker keeps what it holds
//! while that stays within its share), so that a rebalance moves as little as it can.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::topics::TopicPartition;

/// Partitions by topic, as members exchange them.
pub type PartitionsByTopic = BTreeMap<String, Vec<i32>>;

/// What a member tells the leader when it joins.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerClaim {
    /// The worker's name (its static id, or host and process id).
    pub worker: String,
    /// The partitions it held in the previous generation.
    pub owned: PartitionsByTopic,
    /// The generation whose work it finished, when it rejoins for that reason (a follower's
    /// changed claim is what makes the coordinator start a new generation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_generation: Option<i32>,
}

/// What the leader gives a member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerAssignment {
    /// The partitions the member works on in this generation.
    pub partitions: PartitionsByTopic,
    /// Those of `partitions` that no member claimed (their last worker may still be writing).
    #[serde(default)]
    pub unclaimed: PartitionsByTopic,
    /// No work is left: the members stop.
    #[serde(default)]
    pub finished: bool,
}

/// `partitions` grouped by topic.
pub fn by_topic<'a>(partitions: impl IntoIterator<Item = &'a TopicPartition>) -> PartitionsByTopic {
    let mut grouped = PartitionsByTopic::new();
    for tp in partitions {
        grouped.entry(tp.topic.clone()).or_default().push(tp.partition);
    }
    grouped
}

/// `grouped` as a flat, sorted list.
pub fn flatten(grouped: &PartitionsByTopic) -> Vec<TopicPartition> {
    let set: BTreeSet<TopicPartition> = grouped
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |&p| TopicPartition::new(topic, p)))
        .collect();
    set.into_iter().collect()
}

/// Divides `work` (partition and weight) among `members` (member id and claim). Every partition
/// goes to exactly one member; a member keeps the partitions it claims, heaviest first, while its
/// load stays within an even share of the total (and always keeps one); the rest go, heaviest first,
/// to the least loaded member. Deterministic: every leader computes the same from the same input.
pub fn assign(
    members: &BTreeMap<String, WorkerClaim>,
    work: &BTreeMap<TopicPartition, u64>,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let mut assigned: BTreeMap<String, Vec<TopicPartition>> =
        members.keys().map(|member| (member.clone(), Vec::new())).collect();
    if members.is_empty() {
        return assigned;
    }
    let total: u64 = work.values().sum();
    let share = total.div_ceil(members.len() as u64);
    let mut load: BTreeMap<&str, u64> = members.keys().map(|member| (member.as_str(), 0)).collect();
    let mut taken = BTreeSet::new();
    for (member, claim) in members {
        let mut owned: Vec<(TopicPartition, u64)> =
            flatten(&claim.owned).into_iter().filter_map(|tp| work.get(&tp).map(|&weight| (tp, weight))).collect();
        owned.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for (tp, weight) in owned {
            let held = load[member.as_str()];
            if taken.contains(&tp) || (held > 0 && held + weight > share) {
                continue;
            }
            taken.insert(tp.clone());
            *load.get_mut(member.as_str()).expect("every member has a load") += weight;
            assigned.get_mut(member).expect("every member is listed").push(tp);
        }
    }
    let mut rest: Vec<(&TopicPartition, u64)> =
        work.iter().filter(|(tp, _)| !taken.contains(*tp)).map(|(tp, &w)| (tp, w)).collect();
    rest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    for (tp, weight) in rest {
        let least = members
            .keys()
            .min_by_key(|member| (load[member.as_str()], assigned[*member].len(), (*member).clone()))
            .expect("members is not empty");
        *load.get_mut(least.as_str()).expect("every member has a load") += weight;
        assigned.get_mut(least).expect("every member is listed").push(tp.clone());
    }
    for partitions in assigned.values_mut() {
        partitions.sort();
    }
    assigned
}

/// Each partition's weight: the records left to move (`pending`), plus an even share of their total
/// per partition (at least 1), so that partitions spread by count once every worker has caught up.
pub fn weights(pending: &BTreeMap<TopicPartition, u64>) -> BTreeMap<TopicPartition, u64> {
    let total: u64 = pending.values().sum();
    let even = (total / pending.len().max(1) as u64).max(1);
    pending.iter().map(|(tp, &left)| (tp.clone(), left + even)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new("t", partition)
    }

    fn even_work(count: i32) -> BTreeMap<TopicPartition, u64> {
        (0..count).map(|p| (tp(p), 1)).collect()
    }

    fn claims(owned: &[(&str, &[i32])]) -> BTreeMap<String, WorkerClaim> {
        owned
            .iter()
            .map(|(member, partitions)| {
                let owned = if partitions.is_empty() {
                    PartitionsByTopic::new()
                } else {
                    [("t".to_string(), partitions.to_vec())].into()
                };
                (member.to_string(), WorkerClaim { worker: member.to_string(), owned, finished_generation: None })
            })
            .collect()
    }

    fn counts(assigned: &BTreeMap<String, Vec<TopicPartition>>) -> Vec<usize> {
        assigned.values().map(Vec::len).collect()
    }

    fn every_partition_once(assigned: &BTreeMap<String, Vec<TopicPartition>>, count: i32) {
        let mut all: Vec<TopicPartition> = assigned.values().flatten().cloned().collect();
        all.sort();
        assert_eq!(all, (0..count).map(tp).collect::<Vec<_>>());
    }

    #[test]
    fn a_new_group_splits_the_partitions_evenly() {
        let assigned = assign(&claims(&[("a", &[]), ("b", &[]), ("c", &[])]), &even_work(24));
        assert_eq!(counts(&assigned), vec![8, 8, 8]);
        every_partition_once(&assigned, 24);
    }

    #[test]
    fn a_member_that_joins_takes_only_from_the_others_surplus() {
        let a: Vec<i32> = (0..12).collect();
        let b: Vec<i32> = (12..24).collect();
        let assigned = assign(&claims(&[("a", &a), ("b", &b), ("c", &[])]), &even_work(24));
        assert_eq!(counts(&assigned), vec![8, 8, 8]);
        every_partition_once(&assigned, 24);
        assert!(assigned["a"].iter().all(|p| p.partition < 12), "a keeps only its own: {:?}", assigned["a"]);
        assert!(assigned["b"].iter().all(|p| p.partition >= 12), "b keeps only its own");
    }

    #[test]
    fn a_member_that_left_has_its_partitions_spread_and_nothing_else_moves() {
        let assigned = assign(&claims(&[("a", &[0, 1, 2, 3]), ("c", &[8, 9, 10, 11])]), &even_work(12));
        every_partition_once(&assigned, 12);
        assert!((0..4).all(|p| assigned["a"].contains(&tp(p))));
        assert!((8..12).all(|p| assigned["c"].contains(&tp(p))));
        assert_eq!(counts(&assigned), vec![6, 6]);
    }

    #[test]
    fn the_same_claims_give_the_same_assignment() {
        let owned: Vec<i32> = (0..6).collect();
        let group = claims(&[("a", &owned), ("b", &[6, 7, 8, 9, 10, 11])]);
        let assigned = assign(&group, &even_work(12));
        assert_eq!(assigned["a"], (0..6).map(tp).collect::<Vec<_>>(), "nothing moves");
        assert_eq!(assign(&group, &even_work(12)), assigned);
    }

    #[test]
    fn a_partition_with_a_backlog_counts_for_its_weight() {
        let pending: BTreeMap<TopicPartition, u64> = (0..4).map(|p| (tp(p), if p == 0 { 900 } else { 0 })).collect();
        let assigned = assign(&claims(&[("a", &[]), ("b", &[])]), &weights(&pending));
        let holder = if assigned["a"].contains(&tp(0)) { "a" } else { "b" };
        assert_eq!(assigned[holder], vec![tp(0)], "the busy partition has a worker to itself");
        every_partition_once(&assigned, 4);
    }

    #[test]
    fn a_partition_claimed_twice_goes_to_one_member() {
        let assigned = assign(&claims(&[("a", &[0, 1]), ("b", &[1, 2])]), &even_work(4));
        every_partition_once(&assigned, 4);
    }

    #[test]
    fn partitions_that_no_longer_exist_are_dropped_and_no_members_means_no_assignment() {
        let assigned = assign(&claims(&[("a", &[0, 7])]), &even_work(2));
        assert_eq!(assigned["a"], vec![tp(0), tp(1)]);
        assert!(assign(&BTreeMap::new(), &even_work(2)).is_empty());
    }

    #[test]
    fn grouping_by_topic_round_trips() {
        let list = vec![TopicPartition::new("a", 1), TopicPartition::new("a", 0), TopicPartition::new("b", 3)];
        let grouped = by_topic(&list);
        assert_eq!(grouped["a"], vec![1, 0]);
        assert_eq!(
            flatten(&grouped),
            vec![TopicPartition::new("a", 0), TopicPartition::new("a", 1), TopicPartition::new("b", 3)]
        );
    }
}
