//! Wall-clock time as Kafka and the stored records count it: milliseconds since the Unix epoch.
//! One place, so every layer stamps time the same way.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch (0 for a clock set before it).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
