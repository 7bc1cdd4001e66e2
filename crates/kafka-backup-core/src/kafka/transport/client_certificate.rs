//! The client certificate of mTLS: the PEM chain and private key (`pem.rs`), checked to go
//! together, and presented when the broker asks (which is remembered, to explain a refusal).
//! X.509 version 1 certificates are accepted as librdkafka and Java accept them: rustls' own
//! pairing check parses the certificate with webpki, which refuses version 1, so the subject's
//! public key is read here and compared with the private key's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;

use super::pem::{read_certificates, read_key, tls_config_error};
use crate::kafka::KafkaError;
use crate::secret::Secret;

/// What this client answers a broker's certificate request with, and whether one came.
#[derive(Debug)]
pub(super) struct ClientCertificate {
    key: Option<Arc<CertifiedKey>>,
    requested: AtomicBool,
}

impl ClientCertificate {
    /// No certificate: a broker that asks gets none (and the request is remembered, to explain a
    /// refusal that follows).
    pub fn none() -> Self {
        Self { key: None, requested: AtomicBool::new(false) }
    }

    /// The chain in `certificate` with the key in `key`, refused when they do not go together.
    pub fn load(
        certificate: &Path,
        key: &Path,
        password: Option<&Secret>,
        provider: &CryptoProvider,
    ) -> Result<Self, KafkaError> {
        let chain = read_certificates(certificate)?;
        let private_key = read_key(key, password)?;
        let signing_key = provider.key_provider.load_private_key(private_key).map_err(|e| {
            tls_config_error(format!("the private key {} cannot sign TLS handshakes: {e}", key.display()))
        })?;
        let certified = subject_public_key_info(&chain[0]).ok_or_else(|| {
            tls_config_error(format!("{} does not start with a readable X.509 certificate", certificate.display()))
        })?;
        if signing_key.public_key().is_some_and(|public| public.as_ref() != certified) {
            return Err(tls_config_error(format!(
                "the client certificate and key do not go together: the first certificate of {} certifies another \
                 key than {}",
                certificate.display(),
                key.display()
            )));
        }
        let key = Arc::new(CertifiedKey::new(chain, signing_key));
        Ok(Self { key: Some(key), requested: AtomicBool::new(false) })
    }

    /// True when the broker asked for a client certificate and this client has none.
    pub fn unanswered_request(&self) -> bool {
        self.key.is_none() && self.requested.load(Ordering::Relaxed)
    }
}

impl ResolvesClientCert for ClientCertificate {
    fn resolve(&self, _acceptable_issuers: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.requested.store(true, Ordering::Relaxed);
        self.key.clone()
    }

    fn has_certs(&self) -> bool {
        self.key.is_some()
    }
}

/// The DER of the subject public key info of an X.509 certificate of any version: the seventh
/// field of its TBSCertificate, or the sixth when the version field is absent (version 1). A walk
/// over six DER elements; no X.509 crate is in the tree, and webpki refuses version 1.
fn subject_public_key_info(certificate: &[u8]) -> Option<Vec<u8>> {
    use pkcs8::der::asn1::AnyRef;
    use pkcs8::der::{Decode, Encode, Reader, SliceReader, Tag, TagNumber, Tagged};
    let certificate = AnyRef::from_der(certificate).ok()?;
    let tbs = SliceReader::new(certificate.value()).ok()?.decode::<AnyRef>().ok()?;
    let mut fields = SliceReader::new(tbs.value()).ok()?;
    let first = fields.decode::<AnyRef>().ok()?;
    let version = Tag::ContextSpecific { constructed: true, number: TagNumber::N0 };
    // serialNumber (unless it was the first field), signature, issuer, validity, subject.
    let skipped = if first.tag() == version { 5 } else { 4 };
    for _ in 0..skipped {
        fields.decode::<AnyRef>().ok()?;
    }
    fields.decode::<AnyRef>().ok()?.to_der().ok()
}
