//! The PEM files TLS settings name: certificate chains, and private keys in PKCS#8, PKCS#1 or SEC1
//! form or encrypted PKCS#8 (PBES2) with a password; each problem names the file and the setting.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::kafka::KafkaError;
use crate::secret::Secret;

/// An error in the TLS settings.
pub(super) fn tls_config_error(reason: String) -> KafkaError {
    KafkaError::Config(format!("TLS settings: {reason}"))
}

/// The certificates of a PEM file (at least one).
pub(super) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, KafkaError> {
    let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|all| all.collect::<Result<_, _>>())
        .map_err(|e| tls_config_error(format!("cannot read certificates from {}: {e}", path.display())))?;
    if certificates.is_empty() {
        return Err(tls_config_error(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certificates)
}

/// The private key of a PEM file, opened with `password` when it is encrypted.
pub(super) fn read_key(path: &Path, password: Option<&Secret>) -> Result<PrivateKeyDer<'static>, KafkaError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| tls_config_error(format!("cannot read the private key {}: {e}", path.display())))?;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return decrypt_key(path, &text, password);
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(tls_config_error(format!(
            "{} is encrypted in OpenSSL's legacy PEM form, which is not read: convert it to encrypted PKCS#8 \
             (openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8) and keep ssl_key_password",
            path.display()
        )));
    }
    if password.is_some() {
        return Err(tls_config_error(format!(
            "ssl_key_password is given but {} is not an encrypted private key: remove ssl_key_password",
            path.display()
        )));
    }
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| {
        tls_config_error(format!("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}", path.display()))
    })
}

/// Opens an encrypted PKCS#8 key (PBES2: PBKDF2 or scrypt with AES-CBC) with its password.
fn decrypt_key(path: &Path, text: &str, password: Option<&Secret>) -> Result<PrivateKeyDer<'static>, KafkaError> {
    use pkcs8::der::{Decode, Document};
    let Some(password) = password else {
        return Err(tls_config_error(format!(
            "the private key {} is encrypted: set ssl_key_password (usually from ${{ENV}})",
            path.display()
        )));
    };
    let unreadable =
        |e: String| tls_config_error(format!("{} is not a readable encrypted private key: {e}", path.display()));
    let (_, document) = Document::from_pem(text).map_err(|e| unreadable(e.to_string()))?;
    let encrypted =
        pkcs8::EncryptedPrivateKeyInfo::from_der(document.as_bytes()).map_err(|e| unreadable(e.to_string()))?;
    let key = encrypted.decrypt(password.expose()).map_err(|_| {
        tls_config_error(format!(
            "ssl_key_password does not open the private key {} (a wrong password, or an encryption scheme other \
             than PBES2 with AES-CBC)",
            path.display()
        ))
    })?;
    Ok(PrivateKeyDer::Pkcs8(key.as_bytes().to_vec().into()))
}
