//! The process-wide rustls crypto provider that reqwest needs (object stores, the OIDC token
//! endpoint): ring, like the Kafka connections (GUIDE.md section 5), installed once.

use std::sync::Once;

/// Installs ring as the process's TLS provider: reqwest is built without a provider of its own
/// and panics unless one is installed.
pub(crate) fn install_tls_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only means another provider was installed first, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
