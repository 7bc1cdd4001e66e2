//! The point-in-time window of a restore: which record timestamps it keeps, and whether a
//! segment or chunk's timestamp range can hold any of them.

/// Point-in-time window: records whose timestamp lies in `start..=end` (either bound optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeWindow {
    /// Earliest timestamp kept (epoch ms, inclusive).
    pub start: Option<i64>,
    /// Latest timestamp kept (epoch ms, inclusive).
    pub end: Option<i64>,
}

impl TimeWindow {
    /// Whether `timestamp` is inside the window.
    pub fn contains(&self, timestamp: i64) -> bool {
        self.start.is_none_or(|start| timestamp >= start) && self.end.is_none_or(|end| timestamp <= end)
    }

    /// Whether the whole range `min..=max` is inside the window.
    pub fn covers(&self, min: i64, max: i64) -> bool {
        self.contains(min) && self.contains(max)
    }

    /// Whether no timestamp of `min..=max` can be inside the window.
    pub fn excludes(&self, min: i64, max: i64) -> bool {
        self.start.is_some_and(|start| max < start) || self.end.is_some_and(|end| min > end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_windows_are_inclusive() {
        let window = TimeWindow { start: Some(10), end: Some(20) };
        assert!(window.contains(10) && window.contains(20) && !window.contains(9) && !window.contains(21));
        assert!(window.covers(10, 20) && !window.covers(9, 20));
        assert!(window.excludes(0, 9) && window.excludes(21, 30) && !window.excludes(0, 10));
        assert!(TimeWindow::default().covers(i64::MIN, i64::MAX));
    }
}
