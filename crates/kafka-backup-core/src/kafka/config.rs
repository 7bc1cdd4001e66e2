//! Settings of the Kafka client: bootstrap servers, security protocol and TLS, timeouts, retry
//! policy. Parsed values only; the YAML front end (`config/endpoint.rs`) maps its keys onto this struct.

use std::time::Duration;

use super::transport::{parse_host_port, SaslSettings, SecurityProtocol, TlsSettings};
use super::KafkaError;
use crate::retry::RetryPolicy;

/// Everything the client needs to reach a cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` entries; any one reachable broker is enough to discover the rest.
    pub bootstrap_servers: Vec<String>,
    /// Sent in every request header; shows up in broker logs and quotas.
    pub client_id: String,
    /// The rack or zone this client runs in (KIP-392): fetches go to a replica there when the
    /// cluster sets `replica.selector.class`.
    pub client_rack: Option<String>,
    /// Transport security.
    pub security_protocol: SecurityProtocol,
    /// TLS settings, used with SSL and SASL_SSL.
    pub tls: TlsSettings,
    /// SASL credentials, used with SASL_PLAINTEXT and SASL_SSL.
    pub sasl: Option<SaslSettings>,
    /// Limit on one TCP connect.
    pub connect_timeout: Duration,
    /// Limit on one request's round trip. 30 s is the Kafka clients' `request.timeout.ms`.
    pub request_timeout: Duration,
    /// Limit on reaching the cluster at all before a command gives up.
    pub bootstrap_timeout: Duration,
    /// Backoff and deadline for retriable errors.
    pub retry: RetryPolicy,
    /// Largest response frame accepted; guards the allocation made from the wire length.
    pub max_response_bytes: usize,
}

impl ClientConfig {
    /// Defaults for everything but the bootstrap list.
    pub fn new(bootstrap_servers: Vec<String>) -> Self {
        Self {
            bootstrap_servers,
            client_id: "kafka-backup".to_string(),
            client_rack: None,
            security_protocol: SecurityProtocol::Plaintext,
            tls: TlsSettings::default(),
            sasl: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            bootstrap_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            // Fetch responses are bounded by our fetch.max.bytes (tens of MiB); 512 MiB is far
            // above any legitimate frame and far below what would exhaust memory.
            max_response_bytes: 512 * 1024 * 1024,
        }
    }

    /// The rack sent with fetches, "" for none.
    pub fn rack(&self) -> &str {
        self.client_rack.as_deref().unwrap_or_default()
    }

    /// Checks the settings before any connection is made.
    pub fn validate(&self) -> Result<(), KafkaError> {
        let (uses_tls, uses_sasl) = match self.security_protocol {
            SecurityProtocol::Plaintext => (false, false),
            SecurityProtocol::Ssl => (true, false),
            SecurityProtocol::SaslPlaintext => (false, true),
            SecurityProtocol::SaslSsl => (true, true),
        };
        if self.tls.is_set() && !uses_tls {
            return Err(KafkaError::Config(format!(
                "TLS settings are given but security_protocol is {}: use SSL or SASL_SSL, or remove the ssl_* settings",
                self.security_protocol.name()
            )));
        }
        match (&self.sasl, uses_sasl) {
            (Some(_), false) => {
                return Err(KafkaError::Config(
                    "SASL settings are given but security_protocol has no SASL: use SASL_SSL (or SASL_PLAINTEXT), \
                     or remove the sasl_* settings"
                        .into(),
                ))
            }
            (None, true) => {
                return Err(KafkaError::Config(
                    "security_protocol SASL_* needs sasl_mechanism and its credentials".into(),
                ))
            }
            _ => {}
        }
        if uses_tls {
            self.tls.check()?;
            if !self.tls.verify_hostname {
                tracing::warn!(
                    "ssl_endpoint_identification_algorithm is none: broker certificates are checked, their host \
                     names are NOT; anyone holding a certificate from the trusted CAs can pose as a broker"
                );
            }
        }
        if self.bootstrap_servers.is_empty() {
            return Err(KafkaError::Config("bootstrap_servers is empty; give at least one host:port".into()));
        }
        for server in &self.bootstrap_servers {
            parse_host_port(server)?;
        }
        if self.bootstrap_timeout.is_zero() || self.request_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(KafkaError::Config("timeouts must be greater than zero".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_settings_must_match_the_protocol() {
        let mut config = ClientConfig::new(vec!["k:9092".into()]);
        config.security_protocol = "sasl_plaintext".parse().unwrap();
        assert!(config.validate().unwrap_err().to_string().contains("needs sasl_mechanism"));
        let mut config = ClientConfig::new(vec!["k:9092".into()]);
        config.sasl = Some(SaslSettings {
            mechanism: "scram-sha-512".parse().unwrap(),
            credentials: crate::kafka::SaslCredentials::Password {
                username: "alice".into(),
                password: crate::kafka::Secret::new("hunter2".into()),
            },
        });
        assert!(config.validate().unwrap_err().to_string().contains("no SASL"));
        config.security_protocol = SecurityProtocol::SaslPlaintext;
        config.validate().unwrap();
        assert!(!format!("{config:?}").contains("hunter2"), "Debug never shows the password");
        assert!("GSSAPI".parse::<crate::kafka::SaslMechanism>().unwrap_err().to_string().contains("implemented"));
    }

    #[test]
    fn malformed_bootstrap_servers_are_named() {
        for bad in ["kafka", "kafka:", "kafka:99999", "PLAINTEXT://kafka:9092", ":9092"] {
            let error = ClientConfig::new(vec![bad.into()]).validate().unwrap_err();
            assert!(error.to_string().contains(bad), "{error}");
        }
        assert_eq!(parse_host_port("[::1]:9092").unwrap(), ("::1".to_string(), 9092));
        assert!(ClientConfig::new(vec![]).validate().is_err());
    }
}
