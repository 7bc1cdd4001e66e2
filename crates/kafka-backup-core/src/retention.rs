//! A retention policy: which backups under a path to keep (the last N, those newer than a duration,
//! the newest of each of the last N days, weeks and months) and how long segments live inside them.
//! `prune` applies it; backup configs carry it for `prune --config`.

use std::time::Duration;

/// What to keep. A backup is kept when any rule keeps it; without a rule, no backup is deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the N most recently written backups.
    pub keep_last: Option<usize>,
    /// Keep the backups written within this long.
    pub keep_within: Option<Duration>,
    /// Keep the newest backup of each of the last N days (UTC) that have one.
    pub keep_daily: Option<usize>,
    /// Keep the newest backup of each of the last N weeks (Monday to Sunday, UTC) that have one.
    pub keep_weekly: Option<usize>,
    /// Keep the newest backup of each of the last N months (UTC) that have one.
    pub keep_monthly: Option<usize>,
    /// Inside the backups kept: drop whole segments whose records are all older than this (the
    /// last segment of each partition stays).
    pub segment_retention: Option<Duration>,
}

impl RetentionPolicy {
    /// Whether any rule says which backups to keep (else backups are left alone).
    pub fn selects_backups(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_within.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
    }
}
