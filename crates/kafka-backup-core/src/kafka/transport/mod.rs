//! The byte stream under a broker connection: plain TCP, or TLS over it (`tls.rs`), behind one
//! reader/writer pair, so that the connection's framing and pipelining never see which it is.
//! SASL, when it comes, runs on this stream before the connection's first request.

mod client_certificate;
mod tls;

pub use tls::{refusal as tls_refusal, TlsSettings, NO_HOSTNAME_VERIFICATION};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::config::{parse_host_port, ClientConfig, SecurityProtocol};
use super::KafkaError;

/// The read half of a broker stream.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a broker stream (callers flush after each frame: TLS buffers).
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

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

/// Opens the stream to `address` (`host:port`) the config's security protocol asks for.
pub async fn open(address: &str, config: &ClientConfig) -> Result<Stream, KafkaError> {
    let (host, port) = parse_host_port(address)?;
    let connect_error = |reason: String| KafkaError::Connect { broker: address.to_string(), reason };
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| connect_error(format!("no answer within {:?}", config.connect_timeout)))?
        .map_err(|e| connect_error(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| connect_error(e.to_string()))?;
    match config.security_protocol {
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
            let (tls, unanswered_certificate_request) =
                config.tls.connect(stream, &host, address, config.connect_timeout).await?;
            let (reader, writer) = tokio::io::split(tls);
            Ok(Stream { reader: Box::new(reader), writer: Box::new(writer), unanswered_certificate_request })
        }
        SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => {
            let (reader, writer) = stream.into_split();
            Ok(Stream { reader: Box::new(reader), writer: Box::new(writer), unanswered_certificate_request: None })
        }
    }
}
