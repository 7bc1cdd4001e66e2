//! Consumer-group offset recovery on the target cluster: the strategies that translate a group's
//! committed source offsets, the plan of target offsets they give, and its execution and rollback.
//!
//! A plan joins two things kept with the backup: the group snapshots (`groups/`, see
//! `group_snapshots.rs`) and the restores recorded under `restores/{target cluster id}/` (which
//! source partition went to which target partition, with which time window, and the offset map).

mod execute;
mod plan;
mod restored;
mod translate;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use execute::{execute_plan, rollback, GroupReset, ResetRecord, RollbackReport};
pub use plan::{build_reset_plan, GroupSelection, PlannedOffset, ResetPlan};
pub use restored::{recorded_target_clusters, reset_target};
pub use translate::{first_record_at_or_after, offset_for_timestamp};

/// How committed source offsets become target offsets (`restore.consumer_group_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GroupStrategy {
    /// Restore data only; consumer offsets are left alone.
    Skip,
    /// The source -> target offset map recorded during the restore (exact, never skips a record).
    Exact,
    /// The map rebuilt by reading the `x-original-offset` headers back from the target topics.
    HeaderBased,
    /// The committed record's timestamp, looked up on the target with ListOffsets (approximate).
    TimestampBased,
    /// Like header-based, but partitions where the group already committed on the target keep it.
    ClusterScan,
    /// The exact map, reported only: nothing is committed.
    Manual,
}

impl GroupStrategy {
    /// Every strategy, in documentation order.
    pub const ALL: [GroupStrategy; 6] =
        [Self::Skip, Self::Exact, Self::HeaderBased, Self::TimestampBased, Self::ClusterScan, Self::Manual];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Exact => "exact",
            Self::HeaderBased => "header-based",
            Self::TimestampBased => "timestamp-based",
            Self::ClusterScan => "cluster-scan",
            Self::Manual => "manual",
        }
    }

    /// Whether planning with the strategy reads the target cluster (its records or offsets).
    pub fn reads_target(self) -> bool {
        matches!(self, Self::HeaderBased | Self::TimestampBased | Self::ClusterScan)
    }

    /// Whether the strategy reads restored records' `x-original-offset` headers.
    pub fn reads_offset_headers(self) -> bool {
        matches!(self, Self::HeaderBased | Self::ClusterScan)
    }
}

impl fmt::Display for GroupStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GroupStrategy {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|s| s.name() == name).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|s| s.name()).collect();
            format!("unknown strategy {name:?}; expected one of {}", names.join(", "))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategy_names_round_trip() {
        for strategy in GroupStrategy::ALL {
            assert_eq!(strategy.name().parse::<GroupStrategy>().unwrap(), strategy);
            let json = serde_json::to_string(&strategy).unwrap();
            assert_eq!(json, format!("\"{}\"", strategy.name()));
        }
        assert!("headers".parse::<GroupStrategy>().unwrap_err().contains("header-based"));
    }
}
