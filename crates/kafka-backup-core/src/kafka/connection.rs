//! One connection to one broker over the transport's stream (TCP or TLS): size-prefixed framing,
//! correlation ids, pipelined requests (many in flight, answered in any order), a per-request
//! timeout, and the ApiVersions handshake. It knows nothing of topics or routing; the client above
//! decides where requests go.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::config::ClientConfig;
use super::transport::{self, Reader, Stream, Writer};
use super::versions::{ApiVersionTable, ClientApi};
use super::KafkaError;

/// Error code a broker returns (with a v0 body) when it does not know our ApiVersions version.
const UNSUPPORTED_VERSION: i16 = 35;

type Waiter = oneshot::Sender<Result<Bytes, String>>;

/// Requests in flight, and the reason the connection died once it has.
#[derive(Default)]
struct InFlight {
    waiters: HashMap<i32, Waiter>,
    closed: Option<String>,
    /// Set when the broker refused the TLS session: not a lost connection, so not retried.
    tls_refusal: Option<String>,
}

impl InFlight {
    /// Marks the connection dead and fails every waiting request with `reason`.
    fn close(&mut self, reason: &str) {
        if self.closed.is_none() {
            self.closed = Some(reason.to_string());
        }
        for (_, waiter) in self.waiters.drain() {
            let _ = waiter.send(Err(reason.to_string()));
        }
    }
}

/// A live connection to one broker with its negotiated API versions.
pub struct BrokerConnection {
    address: String,
    client_id: StrBytes,
    request_timeout: Duration,
    next_correlation_id: AtomicI32,
    outgoing: mpsc::UnboundedSender<Bytes>,
    in_flight: Arc<Mutex<InFlight>>,
    versions: ApiVersionTable,
    tasks: [JoinHandle<()>; 2],
    /// When to stop handing this connection out: before the broker's SASL session lifetime ends
    /// (KIP-368), so that a fresh, freshly authenticated connection takes over.
    retire_at: Option<std::time::Instant>,
}

impl Drop for BrokerConnection {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl BrokerConnection {
    /// Connects to `address` (`host:port`) and negotiates API versions.
    pub async fn connect(address: &str, config: &ClientConfig) -> Result<Self, KafkaError> {
        let Stream { reader, writer, unanswered_certificate_request } =
            transport::open(address, config.security_protocol, &config.tls, config.connect_timeout).await?;
        let in_flight = Arc::new(Mutex::new(InFlight::default()));
        let (outgoing, frames) = mpsc::unbounded_channel();
        let tasks = [
            tokio::spawn(read_responses(reader, in_flight.clone(), config.max_response_bytes)),
            tokio::spawn(write_requests(writer, frames, in_flight.clone())),
        ];
        let mut connection = Self {
            address: address.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            request_timeout: config.request_timeout,
            next_correlation_id: AtomicI32::new(0),
            outgoing,
            in_flight,
            versions: ApiVersionTable::default(),
            tasks,
            retire_at: None,
        };
        connection.versions = match connection.handshake().await {
            Ok(versions) => versions,
            Err(error) => {
                let refused = connection.in_flight.lock().expect("in-flight lock").tls_refusal.take();
                let refused = refused.or(unanswered_certificate_request);
                return Err(refused.map_or(error, |reason| KafkaError::Tls { broker: address.to_string(), reason }));
            }
        };
        if let Some(sasl) = &config.sasl {
            let lifetime = transport::authenticate(&connection, sasl).await?;
            connection.retire_at = lifetime.map(|lifetime| std::time::Instant::now() + retire_after(lifetime));
        }
        Ok(connection)
    }

    /// `host:port` of the broker.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// True once the connection has failed, or its SASL session is about to expire; the client
    /// then opens a new one (requests already started here still get their answers).
    pub fn is_closed(&self) -> bool {
        self.retire_at.is_some_and(|at| std::time::Instant::now() >= at)
            || self.in_flight.lock().expect("in-flight lock").closed.is_some()
    }

    /// The version `send` will use for `R`, for requests whose shape depends on it.
    pub fn version_for<R: ClientApi>(&self) -> Result<i16, KafkaError> {
        self.versions.negotiate::<R>(&self.address)
    }

    /// Sends `request` at the highest version both sides support and decodes the response.
    pub async fn send<R: ClientApi>(&self, request: &R) -> Result<R::Response, KafkaError> {
        self.start(request)?.response().await
    }

    /// [`Self::send`] at version `max` at most, for a request built for that version's shape.
    pub async fn send_at_most<R: ClientApi>(&self, request: &R, max: i16) -> Result<R::Response, KafkaError> {
        let version = self.version_for::<R>()?.min(max);
        self.start_version(request, version)?.response().await
    }

    /// [`Self::send`] for a request the broker may hold longer than the request timeout (a
    /// JoinGroup waits for every member of the group): waits up to `timeout`.
    pub async fn send_waiting<R: ClientApi>(&self, request: &R, timeout: Duration) -> Result<R::Response, KafkaError> {
        let mut pending = self.start(request)?;
        pending.timeout = timeout;
        pending.response().await
    }

    /// Puts `request` on the wire now (requests leave in the order `start` is called) and returns
    /// the answer to wait for, so that several requests can be in flight in a known order.
    pub fn start<R: ClientApi>(&self, request: &R) -> Result<PendingResponse<R>, KafkaError> {
        let version = self.version_for::<R>()?;
        self.start_version(request, version)
    }

    fn start_version<R: ClientApi>(&self, request: &R, version: i16) -> Result<PendingResponse<R>, KafkaError> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let header_version = R::header_version(version);
        let encoding_failed = |reason: String| KafkaError::Protocol {
            api: R::NAME,
            broker: self.address.clone(),
            reason: format!("cannot encode v{version} request: {reason}"),
        };
        // Sized up front, from the pool: a produce request carries a megabyte batch, and a frame
        // grown by doubling would be reallocated and copied a dozen times on its way there.
        let size = header
            .compute_size(header_version)
            .and_then(|header_size| Ok(header_size + request.compute_size(version)?))
            .map_err(|e| encoding_failed(e.to_string()))?;
        let mut frame = crate::buffers::take(4 + size);
        frame.extend_from_slice(&[0; 4]);
        header
            .encode(&mut frame, header_version)
            .and_then(|()| request.encode(&mut frame, version))
            .map_err(|e| encoding_failed(e.to_string()))?;
        let length = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&length.to_be_bytes());

        let (sender, receiver) = oneshot::channel();
        {
            let mut in_flight = self.in_flight.lock().expect("in-flight lock");
            if let Some(reason) = &in_flight.closed {
                return Err(self.connection_lost(reason.clone()));
            }
            in_flight.waiters.insert(correlation_id, sender);
        }
        if self.outgoing.send(crate::buffers::shared(frame)).is_err() {
            return Err(self.connection_lost("writer stopped".into()));
        }
        Ok(PendingResponse {
            address: self.address.clone(),
            timeout: self.request_timeout,
            in_flight: self.in_flight.clone(),
            correlation_id,
            version,
            receiver,
            request: PhantomData,
        })
    }

    fn connection_lost(&self, reason: String) -> KafkaError {
        KafkaError::ConnectionLost { broker: self.address.clone(), reason }
    }

    /// ApiVersions, retried at v0 semantics if the broker does not know our version (KIP-511).
    async fn handshake(&self) -> Result<ApiVersionTable, KafkaError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-backup"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut version = ApiVersionsRequest::CLIENT_VERSIONS.max;
        loop {
            let body = self.start_version(&request, version)?.body().await?;
            let error_code = body.clone().try_get_i16().unwrap_or(0);
            if error_code == UNSUPPORTED_VERSION && version > 0 {
                // The broker should answer in v0 format with the ApiVersions versions it supports;
                // some (librdkafka's mock cluster) answer in another shape. Either way, step down.
                let advertised = decode::<ApiVersionsRequest>(&self.address, &mut body.clone(), 0)
                    .ok()
                    .and_then(|fallback| ApiVersionTable::from_response(&fallback).range(ApiVersionsRequest::KEY))
                    .map(|range| range.max);
                version = advertised.map_or(version - 1, |max| max.clamp(0, version - 1));
                continue;
            }
            let response: ApiVersionsResponse =
                decode::<ApiVersionsRequest>(&self.address, &mut body.clone(), version)?;
            if response.error_code != 0 {
                return Err(KafkaError::broker("ApiVersions", String::new(), &self.address, response.error_code, None));
            }
            return Ok(ApiVersionTable::from_response(&response));
        }
    }
}

impl transport::SaslChannel for BrokerConnection {
    fn address(&self) -> &str {
        &self.address
    }

    async fn handshake(&self, request: SaslHandshakeRequest) -> Result<SaslHandshakeResponse, KafkaError> {
        self.send(&request).await
    }

    async fn authenticate(&self, request: SaslAuthenticateRequest) -> Result<SaslAuthenticateResponse, KafkaError> {
        self.send(&request).await
    }
}

/// A request on the wire; [`PendingResponse::response`] waits for and decodes its answer.
pub struct PendingResponse<R: ClientApi> {
    address: String,
    timeout: Duration,
    in_flight: Arc<Mutex<InFlight>>,
    correlation_id: i32,
    version: i16,
    receiver: oneshot::Receiver<Result<Bytes, String>>,
    request: PhantomData<fn() -> R>,
}

impl<R: ClientApi> PendingResponse<R> {
    /// The decoded response.
    pub async fn response(self) -> Result<R::Response, KafkaError> {
        let (address, version) = (self.address.clone(), self.version);
        let mut body = self.body().await?;
        decode::<R>(&address, &mut body, version)
    }

    /// The response body after its header.
    async fn body(self) -> Result<Bytes, KafkaError> {
        let lost = |reason: String| KafkaError::ConnectionLost { broker: self.address.clone(), reason };
        let mut response = match tokio::time::timeout(self.timeout, self.receiver).await {
            Ok(Ok(Ok(response))) => response,
            Ok(Ok(Err(reason))) => return Err(lost(reason)),
            Ok(Err(_)) => return Err(lost("connection closed".into())),
            Err(_) => {
                // The stream state is unknown after a lost response: drop the connection, as the
                // Java client does, so that retries start on a fresh one.
                self.in_flight.lock().expect("in-flight lock").close("request timed out");
                return Err(KafkaError::Timeout { api: R::NAME, broker: self.address.clone(), timeout: self.timeout });
            }
        };
        let protocol_error =
            |reason: String| KafkaError::Protocol { api: R::NAME, broker: self.address.clone(), reason };
        let header = ResponseHeader::decode(&mut response, R::Response::header_version(self.version))
            .map_err(|e| protocol_error(format!("cannot decode response header: {e}")))?;
        if header.correlation_id != self.correlation_id {
            return Err(protocol_error(format!(
                "correlation id {} answered request {}",
                header.correlation_id, self.correlation_id
            )));
        }
        Ok(response)
    }
}

fn decode<R: ClientApi>(address: &str, body: &mut Bytes, version: i16) -> Result<R::Response, KafkaError> {
    R::Response::decode(body, version).map_err(|e| KafkaError::Protocol {
        api: R::NAME,
        broker: address.to_string(),
        reason: format!("cannot decode v{version} response: {e}"),
    })
}

/// 85 to 95 % of a SASL session's lifetime, at random, as KIP-368 suggests: connections opened
/// together do not all retire at once, and each retires well before the broker would close it.
fn retire_after(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.85 + 0.10 * fastrand::f64())
}

/// Reads size-prefixed response frames and hands each to the request with its correlation id.
async fn read_responses(mut reader: Reader, in_flight: Arc<Mutex<InFlight>>, max_frame: usize) {
    let reason = loop {
        let length = match reader.read_i32().await {
            Ok(length) => length,
            Err(e) => {
                in_flight.lock().expect("in-flight lock").tls_refusal = transport::tls_refusal(&e);
                break format!("read failed: {e}");
            }
        };
        if length < 4 || length as usize > max_frame {
            break format!("response frame of {length} bytes is outside 4..={max_frame}; closing the connection");
        }
        // Spare room past the frame, so that reading to its end does not grow the buffer.
        let mut frame = crate::buffers::take(length as usize + 64);
        match (&mut reader).take(length as u64).read_to_end(&mut frame).await {
            Ok(read) if read == length as usize => {}
            Ok(read) => break format!("the connection closed {read} bytes into a response of {length}"),
            Err(e) => break format!("read failed inside a response: {e}"),
        }
        let frame = crate::buffers::shared(frame);
        let correlation_id = (&frame[..4]).get_i32();
        let waiter = in_flight.lock().expect("in-flight lock").waiters.remove(&correlation_id);
        match waiter {
            Some(waiter) => {
                let _ = waiter.send(Ok(frame));
            }
            None => tracing::debug!(correlation_id, "response for a request that is no longer waiting"),
        }
    };
    in_flight.lock().expect("in-flight lock").close(&reason);
}

/// Writes whole frames in order, so a cancelled caller can never leave half a frame on the wire.
async fn write_requests(
    mut writer: Writer,
    mut frames: mpsc::UnboundedReceiver<Bytes>,
    in_flight: Arc<Mutex<InFlight>>,
) {
    while let Some(frame) = frames.recv().await {
        // Flushed frame by frame: a TLS writer holds bytes until flushed.
        if let Err(e) = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        }
        .await
        {
            in_flight.lock().expect("in-flight lock").close(&format!("write failed: {e}"));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sasl_session_retires_between_85_and_95_percent_of_its_lifetime() {
        for _ in 0..1000 {
            let after = retire_after(Duration::from_secs(100));
            assert!(after >= Duration::from_secs(85) && after <= Duration::from_secs(95), "{after:?}");
        }
    }
}
