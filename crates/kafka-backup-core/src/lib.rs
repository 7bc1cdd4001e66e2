//! kafka-backup engine: Kafka protocol client, record-batch codec, and (in later layers) backup,
//! restore and consumer-offset recovery. The `kafka-backup` binary is a thin CLI over this crate.
#![warn(missing_docs)]

pub mod cluster_info;
pub mod kafka;
pub mod records;
pub mod retry;
