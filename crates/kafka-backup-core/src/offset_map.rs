//! Source offset -> target offset mapping recorded while restoring, compact per produced batch:
//! a batch's records took consecutive target offsets, so only its source offsets (a range, or a
//! list when compaction or a time window left holes) and its first target offset are kept.

use serde::{Deserialize, Serialize};

/// One produced batch: its records' source offsets and the target offsets they received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedBatch {
    /// Source offset of the first record.
    pub source_first: i64,
    /// Source offset of the last record.
    pub source_last: i64,
    /// Target offset of the first record; the others follow consecutively.
    pub target_first: i64,
    /// Number of records.
    pub count: i64,
    /// Every source offset, present only when they are not `source_first..=source_last`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_offsets: Option<Vec<i64>>,
}

impl MappedBatch {
    /// A batch of records with the given (increasing) source offsets, starting at `target_first`.
    pub fn new(source_offsets: &[i64], target_first: i64) -> Self {
        let (first, last) = (source_offsets[0], source_offsets[source_offsets.len() - 1]);
        let count = source_offsets.len() as i64;
        let contiguous = last - first + 1 == count;
        Self {
            source_first: first,
            source_last: last,
            target_first,
            count,
            source_offsets: (!contiguous).then(|| source_offsets.to_vec()),
        }
    }

    /// Target offset after this batch.
    pub fn target_next(&self) -> i64 {
        self.target_first + self.count
    }

    /// Target offset of the first record whose source offset is `>= source`, if any here.
    fn first_at_or_after(&self, source: i64) -> Option<i64> {
        if source > self.source_last {
            return None;
        }
        let index = match &self.source_offsets {
            None => (source - self.source_first).max(0),
            Some(offsets) => offsets.partition_point(|&o| o < source) as i64,
        };
        Some(self.target_first + index)
    }
}

/// The mapping of one restored partition, batches in source order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    batches: Vec<MappedBatch>,
    /// Target end offset of the restored partition (where a consumer past everything resumes).
    target_end: i64,
}

impl OffsetMap {
    /// Builds the map from batches in source order and the restored partition's end offset.
    pub fn new(batches: Vec<MappedBatch>, target_end: i64) -> Self {
        Self { batches, target_end }
    }

    /// The target offset a consumer committed at source offset `committed` must resume from:
    /// that of the first restored record whose source offset is `>= committed`, or the target
    /// end when every restored record is below it. Never overshoots a record it has not read.
    pub fn translate(&self, committed: i64) -> i64 {
        let index = self.batches.partition_point(|b| b.source_last < committed);
        self.batches.get(index).and_then(|b| b.first_at_or_after(committed)).unwrap_or(self.target_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_batches_are_stored_as_ranges() {
        let batch = MappedBatch::new(&[10, 11, 12], 100);
        assert_eq!(batch.source_offsets, None);
        assert_eq!(batch.target_next(), 103);
        let holes = MappedBatch::new(&[10, 12, 15], 100);
        assert_eq!(holes.source_offsets, Some(vec![10, 12, 15]));
    }

    #[test]
    fn translation_never_overshoots_across_gaps() {
        // Source offsets 0-2, then a compaction/marker gap, then 5, 7 and 8 (6 filtered out).
        let map = OffsetMap::new(vec![MappedBatch::new(&[0, 1, 2], 0), MappedBatch::new(&[5, 7, 8], 3)], 6);
        let expected = [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (5, 3), (6, 4), (7, 4), (8, 5), (9, 6), (1000, 6)];
        for (committed, target) in expected {
            assert_eq!(map.translate(committed), target, "committed {committed}");
        }
    }

    #[test]
    fn a_window_that_starts_late_maps_early_commits_to_the_first_restored_record() {
        let map = OffsetMap::new(vec![MappedBatch::new(&[50, 51], 7)], 9);
        assert_eq!(map.translate(0), 7);
        assert_eq!(OffsetMap::new(vec![], 0).translate(5), 0);
    }
}
