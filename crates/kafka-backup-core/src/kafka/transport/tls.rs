//! TLS to the brokers with rustls (ring provider): the trust roots (a PEM bundle, or the system's),
//! an optional client certificate for mTLS (`client_certificate.rs`), and hostname verification,
//! on unless explicitly turned off. Follows librdkafka's `ssl.*` settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::client_certificate::ClientCertificate;
use super::pem::{read_certificates, tls_config_error};
use crate::kafka::KafkaError;
use crate::secret::Secret;

/// The value of `ssl_endpoint_identification_algorithm` that turns hostname verification off.
pub const NO_HOSTNAME_VERIFICATION: &str = "none";

/// TLS settings of a client (used with security protocol SSL or SASL_SSL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM bundle of the CAs to trust; the system's roots when `None`.
    pub ca_location: Option<PathBuf>,
    /// PEM client certificate chain, for brokers that require client certificates (mTLS).
    pub certificate_location: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub key_location: Option<PathBuf>,
    /// Password of the private key when it is encrypted (`ENCRYPTED PRIVATE KEY`, PKCS#8).
    pub key_password: Option<Secret>,
    /// Check that the broker's certificate names the host connected to (on by default).
    pub verify_hostname: bool,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            ca_location: None,
            certificate_location: None,
            key_location: None,
            key_password: None,
            verify_hostname: true,
        }
    }
}

impl TlsSettings {
    /// True when any TLS setting was given (they mean nothing without SSL or SASL_SSL).
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }

    /// Checks the settings by building the client configuration, reading the PEM files: every
    /// problem with them is reported here, before any connection.
    pub fn check(&self) -> Result<(), KafkaError> {
        self.connector().map(|_| ())
    }

    /// The rustls client configuration of one connection, with what it answers a request for a
    /// client certificate.
    fn connector(&self) -> Result<(TlsConnector, Arc<ClientCertificate>), KafkaError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = Arc::new(self.roots()?);
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_config_error(format!("no TLS version available: {e}")))?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| tls_config_error(format!("cannot build the certificate verifier: {e}")))?;
        let builder = if self.verify_hostname {
            builder.with_webpki_verifier(verifier)
        } else {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyHostname(verifier)))
        };
        let client_certificate = match (&self.certificate_location, &self.key_location) {
            (Some(certificate), Some(key)) => {
                ClientCertificate::load(certificate, key, self.key_password.as_ref(), &provider)?
            }
            (None, None) if self.key_password.is_some() => {
                return Err(tls_config_error("ssl_key_password is given without ssl_key_location".into()))
            }
            (None, None) => ClientCertificate::none(),
            _ => {
                return Err(tls_config_error(
                    "ssl_certificate_location and ssl_key_location go together: give both for mTLS, or neither".into(),
                ))
            }
        };
        let client_certificate = Arc::new(client_certificate);
        let config = builder.with_client_cert_resolver(client_certificate.clone());
        Ok((TlsConnector::from(Arc::new(config)), client_certificate))
    }

    fn roots(&self) -> Result<RootCertStore, KafkaError> {
        let mut roots = RootCertStore::empty();
        match &self.ca_location {
            Some(path) => {
                for certificate in read_certificates(path)? {
                    roots.add(certificate).map_err(|e| {
                        tls_config_error(format!(
                            "ssl_ca_location {}: not a usable CA certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(tls_config_error(
                        "no system CA certificates were found; set ssl_ca_location to the CA bundle that signed the \
                         brokers' certificates"
                            .into(),
                    ));
                }
            }
        }
        Ok(roots)
    }

    /// Runs the TLS handshake over `stream`, naming the broker `host` for verification. Returns the
    /// stream, and when the broker asked for a client certificate this client does not have, what
    /// to tell the user if the broker then drops the connection (TLS 1.3 refuses a missing client
    /// certificate after the handshake, often by a reset rather than an alert).
    pub(super) async fn connect(
        &self,
        stream: TcpStream,
        host: &str,
        address: &str,
        timeout: Duration,
    ) -> Result<(TlsStream<TcpStream>, Option<String>), KafkaError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| KafkaError::Config(format!("broker host {host:?} is not a valid TLS server name: {e}")))?;
        let (connector, client_certificate) = self.connector()?;
        let handshake = connector.connect(name, stream);
        let tls = |reason: String| KafkaError::Tls { broker: address.to_string(), reason };
        match tokio::time::timeout(timeout, handshake).await {
            Err(_) => Err(KafkaError::Connect {
                broker: address.to_string(),
                reason: format!("TLS handshake not done within {timeout:?}"),
            }),
            Ok(Err(error)) => Err(tls(explain(&error))),
            Ok(Ok(stream)) => {
                let unanswered = client_certificate.unanswered_request().then(|| {
                    "the broker asked for a client certificate and none is configured: its listener may require one \
                     (ssl.client.auth=required); set ssl_certificate_location and ssl_key_location"
                        .to_string()
                });
                Ok((stream, unanswered))
            }
        }
    }
}

/// The explanation of a read or write error that is the broker refusing our TLS session (with
/// TLS 1.3 a refused client certificate arrives as an alert after the handshake), if it is one.
pub fn refusal(error: &std::io::Error) -> Option<String> {
    let alert = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    matches!(alert, Some(rustls::Error::AlertReceived(_))).then(|| explain(error))
}

/// What an operator should check for a failed handshake.
fn explain(error: &std::io::Error) -> String {
    let inner = error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>());
    let hint = match inner {
        Some(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature)) => {
            "the broker's certificate is not signed by a trusted CA: set ssl_ca_location to the CA bundle that signed it"
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => {
            "the broker's certificate does not name this host: connect with a name the certificate holds (see \
             its subject alternative names), or fix the certificate"
        }
        Some(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet,
        )) => "the broker's certificate is expired or not valid yet: renew it, and check this machine's clock",
        Some(rustls::Error::AlertReceived(_)) => {
            "the broker refused the handshake: if it requires client certificates, set ssl_certificate_location and \
             ssl_key_location"
        }
        _ => "check that the listener speaks TLS (security_protocol SSL or SASL_SSL) and the TLS settings",
    };
    format!("{error}; {hint}")
}

/// Verifies the certificate chain like the WebPKI verifier but accepts any host name:
/// `ssl_endpoint_identification_algorithm: none`.
#[derive(Debug)]
struct AnyHostname(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostname {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
