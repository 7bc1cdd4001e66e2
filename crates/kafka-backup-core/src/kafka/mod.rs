//! Kafka client over the `kafka-protocol` crate's request and response messages.
//! Layers, each using only those below it: `versions` (API version negotiation) ->
//! `connection` (one broker socket) -> `client` (bootstrap, metadata, routing, retries) ->
//! typed calls in `log` (partitions), `admin` (topics, producer ids), `acls`, `quotas`, `users`
//! (SCRAM), `groups`, `membership` and `transactions` (writer fences).

mod acls;
mod admin;
mod client;
mod config;
mod connection;
mod error;
mod fetch_rounds;
mod fetch_session;
mod group_batches;
mod groups;
mod log;
mod membership;
mod metadata;
mod quotas;
mod share_groups;
mod transactions;
mod transport;
mod users;
mod versions;

pub use crate::secret::Secret;
pub use acls::AclBinding;
pub(crate) use admin::TOPIC_POLL;
pub use admin::{NewTopic, TopicConfigEntry};
pub use client::KafkaClient;
pub use config::ClientConfig;
pub use error::KafkaError;
pub use fetch_rounds::{FetchRounds, RoundFetch};
pub use groups::{CommittedOffset, GroupDescription, GroupListing, GroupMember};
pub use log::{
    AbortedTransaction, FetchOptions, FetchedPartition, IsolationLevel, OffsetSpec, PendingProduce, ProduceAck,
};
pub use membership::{JoinTerms, Joined, JoinedMember, Membership};
pub use metadata::{parse_topic_id, BrokerInfo, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use quotas::ClientQuota;
pub use transport::{
    msk_iam, OidcSettings, OidcTokens, SaslCredentials, SaslMechanism, SaslSettings, SecurityProtocol, TlsSettings,
    NO_HOSTNAME_VERIFICATION,
};
pub use users::ScramUser;
