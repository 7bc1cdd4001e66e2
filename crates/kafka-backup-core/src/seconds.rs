//! Durations in the reports commands print as JSON: a number of seconds (`"duration_seconds": 1.25`),
//! the one representation every report schema uses.

use std::time::Duration;

/// Serializes `duration` as seconds (for `#[serde(serialize_with = "crate::seconds::serialize")]`).
pub(crate) fn serialize<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}
