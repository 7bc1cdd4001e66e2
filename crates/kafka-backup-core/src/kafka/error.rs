//! Errors of the Kafka client layer: each names the broker, API and (where there is one) the
//! topic-partition or group, says whether a retry can help, and what the operator can do.

use std::time::Duration;

use kafka_protocol::ResponseError;

use crate::retry::Retriable;

/// Everything that can go wrong talking to a Kafka cluster.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KafkaError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to broker {broker}: {reason}")]
    Connect {
        /// `host:port` tried.
        broker: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed: certificates, trust or protocol (not retried: it fails the same way).
    #[error("TLS with broker {broker} failed: {reason}")]
    Tls {
        /// `host:port` of the broker.
        broker: String,
        /// What failed and what to check.
        reason: String,
    },
    /// The broker refused our SASL credentials (not retried: error 58 is final).
    #[error("SASL {mechanism} authentication as {user:?} with broker {broker} failed: {reason}")]
    Authentication {
        /// `host:port` of the broker.
        broker: String,
        /// Mechanism tried.
        mechanism: &'static str,
        /// User name (never the password).
        user: String,
        /// What the broker or the exchange said, and what to check.
        reason: String,
    },
    /// An established connection failed.
    #[error("connection to broker {broker} failed: {reason}")]
    ConnectionLost {
        /// `host:port` of the broker.
        broker: String,
        /// Why.
        reason: String,
    },
    /// No response within the request timeout.
    #[error("{api} request to broker {broker} got no response within {timeout:?}")]
    Timeout {
        /// API name.
        api: &'static str,
        /// `host:port` of the broker.
        broker: String,
        /// Request timeout in force.
        timeout: Duration,
    },
    /// None of the bootstrap servers answered in time.
    #[error(
        "could not reach the cluster through any bootstrap server ({servers}) within {elapsed:.1?}; \
         last error: {last_error}. Check bootstrap_servers and that the brokers are up and reachable from here"
    )]
    BootstrapFailed {
        /// The servers tried, comma-separated.
        servers: String,
        /// Time spent trying.
        elapsed: Duration,
        /// The last failure seen.
        last_error: String,
    },
    /// The broker lacks the API, or shares no version of it with this client.
    #[error("broker {broker} does not support {api} in a version this client speaks (broker: {broker_versions}, client: {client_versions})")]
    UnsupportedApi {
        /// API name.
        api: &'static str,
        /// `host:port` of the broker.
        broker: String,
        /// The broker's range, or "none" if absent.
        broker_versions: String,
        /// This client's range.
        client_versions: String,
    },
    /// The broker answered with an error code.
    #[error(
        "{api}{context} failed on broker {broker}: {error} (code {code}){}{}",
        message.as_deref().map(|m| format!(": {m}")).unwrap_or_default(),
        acl_hint(api, *error)
    )]
    Broker {
        /// API name.
        api: &'static str,
        /// What the request was about, e.g. " for orders-3" or " for group billing".
        context: String,
        /// `host:port` or node id of the broker.
        broker: String,
        /// The decoded error.
        error: ResponseError,
        /// The raw code.
        code: i16,
        /// The broker's message, if it sent one.
        message: Option<String>,
    },
    /// The response could not be decoded or made no sense.
    #[error("malformed {api} response from broker {broker}: {reason}")]
    Protocol {
        /// API name.
        api: &'static str,
        /// `host:port` of the broker.
        broker: String,
        /// What was wrong.
        reason: String,
    },
    /// The metadata knows no leader for a partition (yet).
    #[error("partition {topic}-{partition} has no available leader")]
    NoLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The read replica serving a partition (KIP-392) does not hold the offset yet: the fetch is
    /// retried at the leader.
    #[error("read replica node {node} of {topic}-{partition} is behind its leader; fetching from the leader")]
    ReplicaBehind {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// The replica's node id.
        node: i32,
    },
    /// A topic or partition does not exist in the cluster.
    #[error("topic {topic}{} does not exist in the cluster", partition.map(|p| format!(" partition {p}")).unwrap_or_default())]
    UnknownTopicOrPartition {
        /// Topic.
        topic: String,
        /// Partition, when the topic exists but the partition does not.
        partition: Option<i32>,
    },
    /// A feature that later versions will add was asked for.
    #[error("{feature} is not supported yet; {hint}")]
    NotSupported {
        /// What was asked for.
        feature: String,
        /// What to do instead.
        hint: String,
    },
    /// The client configuration is invalid.
    #[error("invalid Kafka client setting: {0}")]
    Config(String),
    /// A retriable error kept happening until the deadline.
    #[error("{last} (gave up after {attempts} attempts over {elapsed:.1?})")]
    GaveUp {
        /// The last error.
        last: Box<KafkaError>,
        /// Attempts made.
        attempts: u32,
        /// Time spent.
        elapsed: Duration,
    },
}

/// Error codes after which the cached leader or partition list is probably stale.
const STALE_METADATA_CODES: [ResponseError; 5] = [
    ResponseError::NotLeaderOrFollower,
    ResponseError::LeaderNotAvailable,
    ResponseError::UnknownTopicOrPartition,
    ResponseError::FencedLeaderEpoch,
    ResponseError::UnknownLeaderEpoch,
];

/// Error codes after which the cached group coordinator is probably stale.
const STALE_COORDINATOR_CODES: [ResponseError; 2] =
    [ResponseError::NotCoordinator, ResponseError::CoordinatorNotAvailable];

impl KafkaError {
    /// A short name of the kind of error, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Tls { .. } => "tls",
            Self::Authentication { .. } => "authentication",
            Self::ConnectionLost { .. } => "connection_lost",
            Self::Timeout { .. } => "timeout",
            Self::BootstrapFailed { .. } => "bootstrap_failed",
            Self::UnsupportedApi { .. } => "unsupported_api",
            Self::Broker { .. } => "broker_error",
            Self::Protocol { .. } => "protocol",
            Self::NoLeader { .. } => "no_leader",
            Self::ReplicaBehind { .. } => "replica_behind",
            Self::UnknownTopicOrPartition { .. } => "unknown_topic_or_partition",
            Self::NotSupported { .. } => "not_supported",
            Self::Config(_) => "config",
            Self::GaveUp { .. } => "gave_up",
        }
    }

    /// Builds a broker error from a non-zero code.
    pub fn broker(api: &'static str, context: String, broker: &str, code: i16, message: Option<String>) -> Self {
        Self::Broker {
            api,
            context,
            broker: broker.to_string(),
            error: ResponseError::try_from_code(code).unwrap_or(ResponseError::Unknown(code)),
            code,
            message,
        }
    }

    /// `Ok` for error code 0, else the broker's error (see [`KafkaError::broker`]).
    pub fn check(
        api: &'static str,
        context: String,
        broker: &str,
        code: i16,
        message: Option<String>,
    ) -> Result<(), Self> {
        match code {
            0 => Ok(()),
            code => Err(Self::broker(api, context, broker, code, message)),
        }
    }

    /// A response that lacks the part answering our request.
    pub fn no_answer(api: &'static str, broker: &str, missing: String) -> Self {
        Self::Protocol { api, broker: broker.to_string(), reason: format!("the response has {missing}") }
    }

    /// The Kafka error code behind this error, if a broker sent one.
    pub fn response_error(&self) -> Option<ResponseError> {
        match self {
            Self::Broker { error, .. } => Some(*error),
            Self::GaveUp { last, .. } => last.response_error(),
            _ => None,
        }
    }

    /// True when the topic (or partition) does not exist on the cluster, as the metadata or a
    /// broker's answer says: deleted, perhaps to be created again.
    pub fn is_unknown_topic(&self) -> bool {
        match self {
            Self::UnknownTopicOrPartition { .. } => true,
            Self::GaveUp { last, .. } => last.is_unknown_topic(),
            _ => matches!(
                self.response_error(),
                Some(ResponseError::UnknownTopicOrPartition | ResponseError::UnknownTopicId)
            ),
        }
    }

    /// True when the cluster will not answer this principal: an authorization failure on the
    /// topic, group or cluster, or a broker without the API. Optional captures warn on it.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::UnsupportedApi { .. })
            || matches!(
                self.response_error(),
                Some(
                    ResponseError::TopicAuthorizationFailed
                        | ResponseError::GroupAuthorizationFailed
                        | ResponseError::ClusterAuthorizationFailed
                )
            )
    }

    /// True when the metadata cache should be refreshed before the next attempt.
    pub fn invalidates_metadata(&self) -> bool {
        matches!(self, Self::NoLeader { .. } | Self::Connect { .. } | Self::ConnectionLost { .. })
            || self.response_error().is_some_and(|e| STALE_METADATA_CODES.contains(&e))
    }

    /// True when the group coordinator should be looked up again before the next attempt.
    pub fn invalidates_coordinator(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::ConnectionLost { .. })
            || self.response_error().is_some_and(|e| STALE_COORDINATOR_CODES.contains(&e))
    }
}

/// For an authorization error, the ACL the principal lacks (Kafka's operation per API, KIP-11).
fn acl_hint(api: &str, error: ResponseError) -> String {
    let needed = match (error, api) {
        (ResponseError::TopicAuthorizationFailed, "Fetch") => "Read on the topic",
        (ResponseError::TopicAuthorizationFailed, "Produce") => "Write on the topic",
        (ResponseError::TopicAuthorizationFailed, "CreateTopics") => "Create on the topic (or the cluster)",
        (ResponseError::TopicAuthorizationFailed, "DescribeConfigs") => "DescribeConfigs on the topic",
        (ResponseError::TopicAuthorizationFailed, "DeleteRecords") => "Delete on the topic",
        (ResponseError::TopicAuthorizationFailed, "IncrementalAlterConfigs") => "AlterConfigs on the topic",
        (ResponseError::TopicAuthorizationFailed, _) => "Describe on the topic",
        (ResponseError::GroupAuthorizationFailed, "OffsetCommit") => "Read on the group",
        (ResponseError::GroupAuthorizationFailed, "DeleteGroups" | "OffsetDelete") => "Delete on the group",
        (ResponseError::GroupAuthorizationFailed, "JoinGroup" | "SyncGroup" | "Heartbeat" | "LeaveGroup") => {
            "Read on the group"
        }
        (ResponseError::GroupAuthorizationFailed, _) => "Describe on the group",
        (ResponseError::ClusterAuthorizationFailed, "DescribeAcls") => "Describe on the cluster",
        (ResponseError::ClusterAuthorizationFailed, "CreateAcls") => "Alter on the cluster",
        (ResponseError::ClusterAuthorizationFailed, "DescribeClientQuotas") => "DescribeConfigs on the cluster",
        (ResponseError::ClusterAuthorizationFailed, "AlterClientQuotas") => "AlterConfigs on the cluster",
        (ResponseError::ClusterAuthorizationFailed, "DescribeUserScramCredentials") => "Describe on the cluster",
        (ResponseError::ClusterAuthorizationFailed, _) => "the cluster-level operation this call needs",
        (ResponseError::TransactionalIdAuthorizationFailed, _) => "Write on the transactional id",
        _ => return String::new(),
    };
    format!("; the principal this tool authenticates as lacks the ACL {needed}: grant it (kafka-acls --add)")
}

impl Retriable for KafkaError {
    fn is_retriable(&self) -> bool {
        match self {
            Self::Connect { .. }
            | Self::ConnectionLost { .. }
            | Self::Timeout { .. }
            | Self::NoLeader { .. }
            | Self::ReplicaBehind { .. } => true,
            Self::Broker { error, .. } => {
                error.is_retriable()
                    || STALE_COORDINATOR_CODES.contains(error)
                    || *error == ResponseError::CoordinatorLoadInProgress
                    // A transactional id's previous transaction is still being completed.
                    || *error == ResponseError::ConcurrentTransactions
            }
            _ => false,
        }
    }

    fn gave_up(self, attempts: u32, elapsed: Duration) -> Self {
        Self::GaveUp { last: Box::new(self), attempts, elapsed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker_error(code: i16) -> KafkaError {
        KafkaError::broker("Fetch", " for orders-3".into(), "b1:9092", code, None)
    }

    #[test]
    fn leadership_changes_are_retried_after_a_metadata_refresh() {
        for code in [6, 5, 3, 74, 75] {
            let error = broker_error(code);
            assert!(error.is_retriable(), "{error}");
            assert!(error.invalidates_metadata(), "{error}");
        }
    }

    #[test]
    fn coordinator_moves_are_retried_after_a_new_lookup() {
        for code in [14, 15, 16] {
            let error = broker_error(code);
            assert!(error.is_retriable(), "{error}");
        }
        assert!(broker_error(16).invalidates_coordinator());
    }

    #[test]
    fn authorization_and_corruption_are_not_retried() {
        for code in [29, 1, 36] {
            assert!(!broker_error(code).is_retriable(), "code {code}");
        }
    }

    #[test]
    fn a_broker_error_names_api_partition_broker_and_code() {
        let text = broker_error(6).to_string();
        for part in ["Fetch", "orders-3", "b1:9092", "NotLeaderOrFollower", "code 6"] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn an_authorization_error_names_the_acl_kafka_checks() {
        let hint = |api, code| KafkaError::broker(api, String::new(), "b1:9092", code, None).to_string();
        assert!(hint("Fetch", 29).contains("Read on the topic"), "{}", hint("Fetch", 29));
        assert!(hint("OffsetCommit", 30).contains("Read on the group"));
        // Kafka authorizes OffsetDelete as Delete on the group (and Read on its topics).
        assert!(hint("OffsetDelete", 30).contains("Delete on the group"), "{}", hint("OffsetDelete", 30));
        assert!(hint("DescribeGroups", 30).contains("Describe on the group"));
    }
}
