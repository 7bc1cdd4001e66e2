//! Records as the reference client sees them (`RefRecord`, bytes as hex on the wire to Python), and
//! the record sets the tests produce: fidelity cases, headers, incompressible values.

use serde::{Deserialize, Serialize};

/// A record as the reference client sees it. Bytes travel as hex to and from Python.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RefRecord {
    /// Partition (chosen by the producer's partitioner when `None`).
    pub partition: Option<i32>,
    /// Offset (filled in by produce and consume).
    pub offset: Option<i64>,
    /// Key.
    #[serde(with = "hex_bytes")]
    pub key: Option<Vec<u8>>,
    /// Value.
    #[serde(with = "hex_bytes")]
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicates kept.
    #[serde(with = "hex_headers")]
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp in epoch ms (producer default when `None`).
    pub timestamp: Option<i64>,
    /// `create_time` or `log_append_time` (filled in by consume).
    pub timestamp_type: Option<String>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn to_hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Vec<u8> {
        (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex")).collect()
    }

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_some(&to_hex(bytes)),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<String>::deserialize(deserializer)?.map(|text| from_hex(&text)))
    }
}

mod hex_headers {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::hex_bytes::{from_hex, to_hex};

    type Headers = Vec<(String, Option<Vec<u8>>)>;

    pub fn serialize<S: Serializer>(headers: &Headers, serializer: S) -> Result<S::Ok, S::Error> {
        headers
            .iter()
            .map(|(key, value)| (key.clone(), value.as_deref().map(to_hex)))
            .collect::<Vec<_>>()
            .serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Headers, D::Error> {
        let raw = Vec::<(String, Option<String>)>::deserialize(deserializer)?;
        Ok(raw.into_iter().map(|(key, value)| (key, value.map(|v| from_hex(&v)))).collect())
    }
}

/// The topic configs the fidelity records need on Apache Kafka 4: its brokers refuse records
/// stamped more than an hour ahead by default (`log.message.timestamp.after.max.ms`), and time
/// retention would delete records stamped decades ago within seconds.
pub const FIDELITY_TOPIC_CONFIGS: &[(&str, &str)] =
    &[("message.timestamp.after.max.ms", "9223372036854775807"), ("retention.ms", "-1")];

/// Records covering the fidelity cases (their topic needs [`FIDELITY_TOPIC_CONFIGS`]), all for `partition`: null vs empty keys and values,
/// duplicate header keys in a set order, null header values, and timestamps decades apart (and out
/// of order) inside one batch.
pub fn fidelity_records(partition: i32) -> Vec<RefRecord> {
    let timestamps = [1_000_000_000_000i64, 4_102_444_800_000, 1_700_000_000_000, 86_400_000];
    let mut records = Vec::new();
    for i in 0..24usize {
        let header_value = |text: &str| Some(text.as_bytes().to_vec());
        records.push(RefRecord {
            partition: Some(partition),
            key: match i % 4 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("key-{i}").into_bytes()),
            },
            value: match i % 5 {
                0 => None,
                1 => Some(Vec::new()),
                _ => Some(format!("value-{i}-").repeat(i * 7).into_bytes()),
            },
            headers: match i % 3 {
                0 => vec![],
                1 => vec![
                    ("dup".into(), header_value("first")),
                    ("dup".into(), None),
                    ("dup".into(), header_value("third")),
                ],
                _ => vec![("z".into(), header_value("1")), ("a".into(), Some(vec![])), ("m".into(), None)],
            },
            timestamp: Some(timestamps[i % timestamps.len()]),
            ..RefRecord::default()
        });
    }
    records
}

/// `count` small records (`k{i}` / `v{i}`) for `partition`.
pub(crate) fn small_records(partition: i32, count: usize) -> Vec<RefRecord> {
    (0..count)
        .map(|i| RefRecord {
            partition: Some(partition),
            key: Some(format!("k{i}").into_bytes()),
            value: Some(format!("v{i}").into_bytes()),
            ..RefRecord::default()
        })
        .collect()
}

/// `count` small records (`k{i}` / `v{i}`) for `partition`, each with three headers in a set
/// order: a duplicate key (`trace`) whose second value is null, and an empty value; every fifth
/// record has a null key. What a restore that rewrites records must keep byte for byte.
pub fn records_with_headers(partition: i32, count: usize) -> Vec<RefRecord> {
    small_records(partition, count)
        .into_iter()
        .enumerate()
        .map(|(i, record)| RefRecord {
            key: if i % 5 == 4 { None } else { record.key },
            headers: sample_headers(i),
            ..record
        })
        .collect()
}

/// The headers of record `i` of [`records_with_headers`].
pub fn sample_headers(i: usize) -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("trace".into(), Some(format!("t{i}").into_bytes())),
        ("trace".into(), None),
        ("empty".into(), Some(Vec::new())),
    ]
}

/// `count` records for `partition` with keys `key-{i}` and 1 KiB values of pseudo-random bytes,
/// which no codec compresses: segments, chunks and upload parts then have predictable sizes.
pub fn incompressible_records(partition: i32, count: usize) -> Vec<RefRecord> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_byte = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    (0..count)
        .map(|i| RefRecord {
            partition: Some(partition),
            key: Some(format!("key-{i}").into_bytes()),
            value: Some((0..1024).map(|_| next_byte()).collect()),
            ..RefRecord::default()
        })
        .collect()
}
