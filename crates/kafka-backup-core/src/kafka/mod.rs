//! Kafka client over the `kafka-protocol` crate's request and response messages.
//! Layers, each using only those below it: `versions` (API version negotiation) ->
//! `connection` (one broker socket) -> `client` (bootstrap, metadata, routing, retries) ->
//! typed calls in `log` (partitions), `admin` (topics, producer ids) and `groups`.

mod admin;
mod client;
mod config;
mod connection;
mod error;
mod groups;
mod log;
mod metadata;
pub mod msk_iam;
mod oidc;
mod sasl;
mod scram;
mod transport;
mod versions;

pub use crate::secret::Secret;
pub(crate) use admin::TOPIC_POLL;
pub use admin::{NewTopic, TopicConfigEntry};
pub use client::KafkaClient;
pub use config::{ClientConfig, SecurityProtocol};
pub use error::KafkaError;
pub use groups::{CommittedOffset, GroupDescription, GroupListing, GroupMember};
pub use log::{
    AbortedTransaction, FetchOptions, FetchedPartition, IsolationLevel, OffsetSpec, PendingProduce, ProduceAck,
};
pub use metadata::{BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use oidc::{OidcSettings, OidcTokens};
pub use sasl::{SaslCredentials, SaslMechanism, SaslSettings};
pub use transport::{TlsSettings, NO_HOSTNAME_VERIFICATION};
