//! Codec tests: property round trips over random records for every codec, known vectors, and
//! the malformed inputs a corrupt segment or a hostile broker can produce.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;

fn record(offset: i64, timestamp: i64) -> Record {
    Record {
        offset,
        timestamp,
        key: Some(Bytes::from(format!("key-{offset}"))),
        value: Some(Bytes::from(format!("value-{offset}"))),
        headers: vec![],
    }
}

fn options(compression: Compression) -> BatchOptions {
    BatchOptions { compression, ..BatchOptions::default() }
}

fn arb_bytes(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(Bytes::new())),
        6 => proptest::collection::vec(any::<u8>(), 0..max).prop_map(|v| Some(Bytes::from(v))),
    ]
}

fn arb_header() -> impl Strategy<Value = RecordHeader> {
    (prop_oneof![Just(b"dup".to_vec()), proptest::collection::vec(any::<u8>(), 0..12)], arb_bytes(24))
        .prop_map(|(key, value)| RecordHeader { key: Bytes::from(key), value })
}

/// Records with offset gaps (compaction) and timestamps far apart in both directions.
fn arb_records() -> impl Strategy<Value = Vec<Record>> {
    let one = (
        1i64..1_000,
        prop_oneof![Just(0i64), -4_000_000_000_000i64..4_000_000_000_000i64],
        arb_bytes(64),
        arb_bytes(512),
        proptest::collection::vec(arb_header(), 0..6),
    );
    (any::<u32>(), 1_600_000_000_000i64..1_800_000_000_000i64, proptest::collection::vec(one, 1..40)).prop_map(
        |(start, base_ts, items)| {
            let mut offset = i64::from(start);
            items
                .into_iter()
                .map(|(gap, ts_shift, key, value, headers)| {
                    offset += gap;
                    Record { offset, timestamp: base_ts + ts_shift, key, value, headers }
                })
                .collect()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn batches_round_trip_for_every_codec(records in arb_records()) {
        for codec in Compression::ALL {
            let batch = RecordBatch::encode(&records, &options(codec)).unwrap();
            let parsed = RecordBatch::from_bytes(batch.as_bytes().clone()).unwrap();
            prop_assert_eq!(parsed.compression().unwrap(), codec);
            prop_assert_eq!(parsed.base_offset(), records[0].offset);
            prop_assert_eq!(parsed.last_offset(), records.last().unwrap().offset);
            prop_assert_eq!(parsed.record_count() as usize, records.len());
            prop_assert_eq!(parsed.max_timestamp(), records.iter().map(|r| r.timestamp).max().unwrap());
            prop_assert_eq!(&parsed.records().unwrap(), &records);
            let min = records.iter().map(|r| r.timestamp).min().unwrap();
            let max = records.iter().map(|r| r.timestamp).max().unwrap();
            prop_assert_eq!(parsed.timestamp_range().unwrap(), Some((min, max)));
        }
    }

    #[test]
    fn random_bytes_never_panic_the_parser(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(split) = split_batches(Bytes::from(data)) {
            for batch in split.batches {
                let _ = batch.records();
            }
        }
    }

    #[test]
    fn any_single_flipped_byte_after_the_crc_is_detected(records in arb_records(), position in any::<prop::sample::Index>()) {
        let batch = RecordBatch::encode(&records, &options(Compression::None)).unwrap();
        let mut bytes = batch.as_bytes().to_vec();
        let at = 21 + position.index(bytes.len() - 21);
        bytes[at] ^= 0x01;
        let corrupt = RecordBatch::from_bytes(Bytes::from(bytes)).unwrap();
        let is_crc_mismatch = matches!(corrupt.verify_crc(), Err(RecordsError::CrcMismatch { .. }));
        prop_assert!(is_crc_mismatch);
    }
}

#[test]
fn crc32c_is_castagnoli_per_the_standard_check_value() {
    // CRC-32C check value of "123456789" (RFC 3720 appendix B.4).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn extremes_survive_a_round_trip() {
    let five_mb = Bytes::from(vec![0xabu8; 5 * 1024 * 1024]);
    let many_headers: Vec<RecordHeader> = (0..100)
        .map(|i| RecordHeader {
            key: Bytes::from(if i % 2 == 0 { "same".to_string() } else { format!("h{i}") }),
            value: (i % 3 != 0).then(|| Bytes::from(format!("v{i}"))),
        })
        .collect();
    let records = vec![
        Record { offset: 10, timestamp: 0, key: None, value: Some(five_mb), headers: vec![] },
        Record {
            offset: 11,
            timestamp: 4_102_444_800_000,
            key: Some(Bytes::new()),
            value: None,
            headers: many_headers,
        },
        Record { offset: 5_000, timestamp: -1, key: None, value: Some(Bytes::new()), headers: vec![] },
    ];
    for codec in Compression::ALL {
        let batch = RecordBatch::encode(&records, &options(codec)).unwrap();
        assert_eq!(batch.records().unwrap(), records, "{codec:?}");
    }
}

#[test]
fn timestamp_deltas_wider_than_24_days_decode_as_varlong() {
    let records = vec![record(0, 1_000), record(1, 1_000 + 30 * 24 * 3_600_000)];
    let batch = RecordBatch::encode(&records, &BatchOptions::default()).unwrap();
    assert_eq!(batch.records().unwrap()[1].timestamp, 1_000 + 30 * 24 * 3_600_000);
}

#[test]
fn log_append_time_gives_every_record_the_batch_max_timestamp() {
    let records = vec![record(0, 100), record(1, 250)];
    let options = BatchOptions { timestamp_type: TimestampType::LogAppendTime, ..BatchOptions::default() };
    let batch = RecordBatch::encode(&records, &options).unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    let decoded = batch.records().unwrap();
    assert!(decoded.iter().all(|r| r.timestamp == 250));
}

#[test]
fn header_fields_are_written_where_the_spec_puts_them() {
    let options = BatchOptions {
        compression: Compression::Zstd,
        transactional: true,
        producer_id: 77,
        producer_epoch: 3,
        base_sequence: 9,
        partition_leader_epoch: 5,
        ..BatchOptions::default()
    };
    let batch = RecordBatch::encode(&[record(40, 1), record(42, 2)], &options).unwrap();
    let b = batch.as_bytes();
    assert_eq!(&b[0..8], &40i64.to_be_bytes());
    assert_eq!(i32::from_be_bytes(b[8..12].try_into().unwrap()) as usize, b.len() - 12);
    assert_eq!(b[16], 2);
    assert_eq!(batch.attributes(), 4 | 0x10);
    assert!(batch.is_transactional() && !batch.is_control());
    assert_eq!(
        (batch.partition_leader_epoch(), batch.producer_id(), batch.producer_epoch(), batch.base_sequence()),
        (5, 77, 3, 9)
    );
    assert_eq!((batch.last_offset_delta(), batch.base_timestamp()), (2, 1));
    batch.verify_crc().unwrap();
}

#[test]
fn a_trailing_partial_batch_is_dropped_and_reported() {
    let first = RecordBatch::encode(&[record(0, 1)], &BatchOptions::default()).unwrap();
    let second = RecordBatch::encode(&[record(1, 1), record(2, 2)], &BatchOptions::default()).unwrap();
    for cut in [1, 11, 12, 20, second.size() - 1] {
        let mut set = first.as_bytes().to_vec();
        set.extend_from_slice(&second.as_bytes()[..cut]);
        let split = split_batches(Bytes::from(set)).unwrap();
        assert_eq!(split.batches, vec![first.clone()], "cut at {cut}");
        assert!(split.partial_tail);
    }
    let mut whole = first.as_bytes().to_vec();
    whole.extend_from_slice(second.as_bytes());
    let split = split_batches(Bytes::from(whole)).unwrap();
    assert_eq!(split.batches.len(), 2);
    assert!(!split.partial_tail);
}

#[test]
fn legacy_message_format_is_refused_by_name() {
    let mut bytes = RecordBatch::encode(&[record(7, 1)], &BatchOptions::default()).unwrap().as_bytes().to_vec();
    bytes[16] = 1;
    let error = split_batches(Bytes::from(bytes)).unwrap_err();
    assert!(matches!(error, RecordsError::UnsupportedMagic { base_offset: 7, magic: 1 }));
    assert!(error.to_string().contains("v2"));
}

/// Rewrites the records section of an uncompressed batch and fixes the CRC, so that only the
/// malformed record itself is wrong.
fn batch_with_section(count: i32, section: &[u8]) -> RecordBatch {
    let mut bytes = RecordBatch::encode(&[record(0, 1)], &BatchOptions::default()).unwrap().as_bytes()[..61].to_vec();
    bytes.extend_from_slice(section);
    let length = (bytes.len() - 12) as i32;
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    bytes[57..61].copy_from_slice(&count.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    RecordBatch::from_bytes(Bytes::from(bytes)).unwrap()
}

#[test]
fn hostile_counts_and_lengths_are_errors_not_allocations() {
    // Claims 2^31-1 records with an empty section.
    assert!(batch_with_section(i32::MAX, &[]).records().is_err());
    // A record whose header count is huge but whose body is 6 bytes long.
    let huge_headers = [0x0c, 0x00, 0x00, 0x00, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f];
    assert!(batch_with_section(1, &huge_headers).records().is_err());
    // A key length pointing past the end of the record.
    let long_key = [0x08, 0x00, 0x00, 0x00, 0x7e];
    assert!(matches!(
        batch_with_section(1, &long_key).records(),
        Err(RecordsError::InvalidLength { field: "key", .. })
    ));
    // More records than the header says.
    let one = RecordBatch::encode(&[record(0, 1), record(1, 1)], &BatchOptions::default()).unwrap();
    assert!(matches!(batch_with_section(1, &one.as_bytes()[61..]).records(), Err(RecordsError::Inconsistent { .. })));
}

#[test]
fn compacted_empty_batches_parse_with_zero_records() {
    let batch = batch_with_section(0, &[]);
    assert_eq!(batch.record_count(), 0);
    assert!(batch.records().unwrap().is_empty());
}

#[test]
fn a_batch_for_another_producer_keeps_its_records_and_gets_new_producer_fields() {
    let options = BatchOptions {
        compression: Compression::Lz4,
        transactional: true,
        producer_id: 5,
        ..options(Compression::Lz4)
    };
    let source = RecordBatch::encode(&[record(100, 7), record(101, 9)], &options).unwrap();
    let copy = source.for_producer(42, 3, 17);
    copy.verify_crc().unwrap();
    assert_eq!((copy.base_offset(), copy.partition_leader_epoch()), (0, -1));
    assert_eq!((copy.producer_id(), copy.producer_epoch(), copy.base_sequence()), (42, 3, 17));
    assert!(!copy.is_transactional() && !copy.is_control());
    assert_eq!(copy.compression().unwrap(), Compression::Lz4);
    assert_eq!(&copy.as_bytes()[61..], &source.as_bytes()[61..], "records untouched");
    let relative: Vec<_> = copy.records().unwrap().iter().map(|r| (r.offset, r.timestamp)).collect();
    assert_eq!(relative, vec![(0, 7), (1, 9)]);
    assert!(source.has_contiguous_offsets());
    assert!(!RecordBatch::encode(&[record(1, 1), record(3, 1)], &BatchOptions::default())
        .unwrap()
        .has_contiguous_offsets());
}

#[test]
fn records_below_an_offset_are_cut_from_a_batch_and_the_rest_keeps_its_fields() {
    let records: Vec<Record> = (10..20).map(|o| record(o, 1_000 + o)).collect();
    let options = BatchOptions {
        producer_id: 77,
        producer_epoch: 3,
        base_sequence: 100,
        transactional: true,
        partition_leader_epoch: 5,
        ..options(Compression::Zstd)
    };
    let batch = RecordBatch::encode(&records, &options).unwrap();
    assert_eq!(batch.without_records_before(10).unwrap(), Some(batch.clone()), "nothing below: unchanged");
    assert_eq!(batch.without_records_before(20).unwrap(), None, "everything below: nothing left");
    let cut = batch.without_records_before(14).unwrap().expect("records 14..20 remain");
    cut.verify_crc().unwrap();
    assert_eq!(cut.records().unwrap(), records[4..].to_vec());
    assert_eq!((cut.base_offset(), cut.last_offset(), cut.record_count()), (14, 19, 6));
    assert_eq!((cut.producer_id(), cut.producer_epoch(), cut.base_sequence()), (77, 3, 104));
    assert_eq!(cut.compression().unwrap(), Compression::Zstd);
    assert!(cut.is_transactional());
    assert_eq!(cut.partition_leader_epoch(), 5);
}
