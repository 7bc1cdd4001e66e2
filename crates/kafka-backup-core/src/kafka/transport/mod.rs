//! The byte stream under a broker connection: plain TCP, or TLS over it (`tls.rs`), behind one
//! reader/writer pair, so that the connection's framing and pipelining never see which it is.
//! SASL, when it comes, runs on this stream before the connection's first request.

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

/// Opens the stream to `address` (`host:port`) the config's security protocol asks for.
pub async fn open(address: &str, config: &ClientConfig) -> Result<(Reader, Writer), KafkaError> {
    let (host, port) = parse_host_port(address)?;
    let connect_error = |reason: String| KafkaError::Connect { broker: address.to_string(), reason };
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect((host.as_str(), port)))
        .await
        .map_err(|_| connect_error(format!("no answer within {:?}", config.connect_timeout)))?
        .map_err(|e| connect_error(e.to_string()))?;
    stream.set_nodelay(true).map_err(|e| connect_error(e.to_string()))?;
    match config.security_protocol {
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
            let tls = config.tls.connect(stream, &host, address, config.connect_timeout).await?;
            let (reader, writer) = tokio::io::split(tls);
            Ok((Box::new(reader), Box::new(writer)))
        }
        SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => {
            let (reader, writer) = stream.into_split();
            Ok((Box::new(reader), Box::new(writer)))
        }
    }
}
