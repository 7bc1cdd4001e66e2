//! kafka-backup engine: Kafka protocol client, record-batch codec, segment format, storage on a
//! directory or object stores, backup, restore and consumer-offset recovery. The `kafka-backup`
//! binary is a thin CLI over this crate.
#![warn(missing_docs)]

pub mod access_snapshots;
pub mod backup;
pub mod backup_location;
mod buffers;
pub mod catalog;
pub mod clock;
pub mod cluster_info;
pub mod config;
pub mod error;
pub mod group_snapshots;
pub mod kafka;
pub mod layout;
pub mod log_reader;
pub mod manifest;
pub mod metrics;
pub mod offset_map;
pub mod offset_reset;
pub mod partitioner;
mod process_tls;
pub mod prune;
pub mod records;
pub mod reset_job;
pub mod restore;
pub mod retention;
pub mod retry;
mod seconds;
pub mod secret;
pub mod segment;
mod stop_signal;
pub mod storage;
pub mod stored_segment;
pub mod three_phase;
pub mod time_window;
pub mod topics;
mod uri;
pub mod validate;
pub mod verify;
pub mod worker_group;
