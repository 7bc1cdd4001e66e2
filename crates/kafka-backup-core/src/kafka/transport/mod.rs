//! The byte stream under a broker connection: plain TCP, or TLS over it (`tls.rs`), behind one
//! reader/writer pair, so that the connection's framing and pipelining never see which it is.
//! SASL, when it comes, runs on this stream before the connection's first request.

mod client_certificate;
pub mod msk_iam;
mod oidc;
mod pem;
mod sasl;
mod scram;
mod tls;

pub use oidc::{OidcSettings, OidcTokens};
pub use sasl::{authenticate, SaslChannel, SaslCredentials, SaslMechanism, SaslSettings};
pub use tls::{refusal as tls_refusal, TlsSettings, NO_HOSTNAME_VERIFICATION};

use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::KafkaError;

/// The read half of a broker stream.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a broker stream (callers flush after each frame: TLS buffers).
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// How to talk to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// Unencrypted, unauthenticated TCP.
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL over plain TCP.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// The name as configured (librdkafka's spelling).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }
}

impl FromStr for SecurityProtocol {
    type Err = KafkaError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(Self::Plaintext),
            "SSL" => Ok(Self::Ssl),
            "SASL_PLAINTEXT" => Ok(Self::SaslPlaintext),
            "SASL_SSL" => Ok(Self::SaslSsl),
            _ => Err(KafkaError::Config(format!(
                "unknown security protocol {text:?}; expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
            ))),
        }
    }
}

/// Splits `host:port` (IPv6 as `[::1]:9092`), rejecting anything else with the offending text.
pub fn parse_host_port(server: &str) -> Result<(String, u16), KafkaError> {
    let bad = |why: &str| KafkaError::Config(format!("bootstrap server {server:?} {why}; expected host:port"));
    let (host, port) = server.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains("://") {
        return Err(bad("is not a plain host name"));
    }
    let port = port.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| bad("has an invalid port"))?;
    Ok((host.to_string(), port))
}

/// An open stream to a broker.
pub struct Stream {
    /// What is read.
    pub reader: Reader,
    /// What is written.
    pub writer: Writer,
    /// Set when the broker asked for a client certificate this client does not have: the reason
    /// to give if the broker drops the connection before its first answer.
    pub unanswered_certificate_request: Option<String>,
}

/// Opens the stream to `address` (`host:port`) that `security` asks for (TLS with `tls`), within
/// `connect_timeout` for the TCP connection and again for the TLS handshake.
pub async fn open(
    address: &str,
    security: SecurityProtocol,
    tls: &TlsSettings,
    connect_timeout: Duration,
) -> Result<Stream, KafkaError> {
    let (host, port) = parse_host_port(address)?;
    let connect_error = |reason: String| KafkaError::Connect { broker: address.to_string(), reason };
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| connect_error(format!("no answer within {:?}", connect_timeout)))?
        .map_err(|e| connect_error(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| connect_error(e.to_string()))?;
    match security {
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
            let (tls, unanswered_certificate_request) = tls.connect(stream, &host, address, connect_timeout).await?;
            let (reader, writer) = tokio::io::split(tls);
            Ok(Stream { reader: Box::new(reader), writer: Box::new(writer), unanswered_certificate_request })
        }
        SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => {
            let (reader, writer) = stream.into_split();
            Ok(Stream { reader: Box::new(reader), writer: Box::new(writer), unanswered_certificate_request: None })
        }
    }
}
