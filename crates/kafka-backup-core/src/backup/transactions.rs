//! Which fetched batches a backup keeps: never control batches (COMMIT/ABORT markers), never
//! batches of aborted transactions. Follows the read_committed consumer algorithm of KIP-98:
//! an aborted transaction becomes active at its first offset and ends at its ABORT marker.

use std::collections::{BTreeSet, HashSet};

use crate::kafka::AbortedTransaction;
use crate::records::{RecordBatch, RecordsError};

/// Control record type of an ABORT marker (key: version i16, type i16).
const CONTROL_TYPE_ABORT: i16 = 0;

/// Tracks aborted transactions across the fetches of one partition.
#[derive(Debug, Default)]
pub struct TransactionFilter {
    /// Aborted transactions not reached yet, by (first offset, producer id).
    upcoming: BTreeSet<(i64, i64)>,
    /// Producers whose current transaction was aborted.
    aborting: HashSet<i64>,
}

impl TransactionFilter {
    /// Adds the aborted transactions a fetch response reported (duplicates are harmless).
    pub fn add_aborted(&mut self, aborted: &[AbortedTransaction]) {
        self.upcoming.extend(aborted.iter().map(|a| (a.first_offset, a.producer_id)));
    }

    /// Whether to keep `batch`; batches must be offered in offset order.
    pub fn keep(&mut self, batch: &RecordBatch) -> Result<bool, RecordsError> {
        while let Some(&(first_offset, producer_id)) = self.upcoming.first() {
            if first_offset > batch.last_offset() {
                break;
            }
            self.upcoming.pop_first();
            self.aborting.insert(producer_id);
        }
        if batch.is_control() {
            if is_abort_marker(batch)? {
                self.aborting.remove(&batch.producer_id());
            }
            return Ok(false);
        }
        Ok(!(batch.is_transactional() && self.aborting.contains(&batch.producer_id())))
    }
}

fn is_abort_marker(batch: &RecordBatch) -> Result<bool, RecordsError> {
    let records = batch.records()?;
    let Some(key) = records.first().and_then(|r| r.key.as_ref()) else { return Ok(false) };
    Ok(key.len() >= 4 && i16::from_be_bytes([key[2], key[3]]) == CONTROL_TYPE_ABORT)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::records::{BatchOptions, Record};

    fn data(offset: i64, producer_id: i64, transactional: bool) -> RecordBatch {
        let record = Record { offset, timestamp: 1, key: None, value: Some(Bytes::from_static(b"v")), headers: vec![] };
        let options = BatchOptions { transactional, producer_id, producer_epoch: 0, ..BatchOptions::default() };
        RecordBatch::encode(&[record], &options).unwrap()
    }

    fn marker(offset: i64, producer_id: i64, control_type: i16) -> RecordBatch {
        let mut key = 0i16.to_be_bytes().to_vec();
        key.extend_from_slice(&control_type.to_be_bytes());
        let record = Record {
            offset,
            timestamp: 1,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: vec![],
        };
        let options = BatchOptions {
            transactional: true,
            control: true,
            producer_id,
            producer_epoch: 0,
            ..BatchOptions::default()
        };
        RecordBatch::encode(&[record], &options).unwrap()
    }

    #[test]
    fn aborted_transactions_and_all_markers_are_dropped() {
        // Producer 7 aborts offsets 1-2 (marker at 4); producer 8 commits 3 (marker at 5);
        // producer 7 then writes a new, committed transaction at 6 (marker at 7).
        let log = [
            (data(0, -1, false), true),
            (data(1, 7, true), false),
            (data(2, 7, true), false),
            (data(3, 8, true), true),
            (marker(4, 7, 0), false),
            (marker(5, 8, 1), false),
            (data(6, 7, true), true),
            (marker(7, 7, 1), false),
            (data(8, -1, false), true),
        ];
        let mut filter = TransactionFilter::default();
        filter.add_aborted(&[AbortedTransaction { producer_id: 7, first_offset: 1 }]);
        for (batch, expected) in &log {
            assert_eq!(filter.keep(batch).unwrap(), *expected, "batch at {}", batch.base_offset());
        }
    }

    #[test]
    fn an_abort_reported_in_a_later_fetch_still_applies() {
        let mut filter = TransactionFilter::default();
        assert!(filter.keep(&data(0, 3, false)).unwrap(), "non-transactional data of the same producer id");
        filter.add_aborted(&[AbortedTransaction { producer_id: 3, first_offset: 1 }]);
        filter.add_aborted(&[AbortedTransaction { producer_id: 3, first_offset: 1 }]);
        assert!(!filter.keep(&data(1, 3, true)).unwrap());
        assert!(!filter.keep(&marker(2, 3, 0)).unwrap());
        assert!(filter.keep(&data(3, 3, true)).unwrap(), "the abort ended at its marker");
    }
}
