//! An OAuth 2.0 token endpoint for the OIDC tests (`tools/token_server.py`): it issues unsigned JWTs
//! that the test clusters accept for OAUTHBEARER and counts what it issued.

use std::path::PathBuf;
use std::process::Child;

use tempfile::TempDir;

use crate::start_tool_server;

/// A running token endpoint for one client; stopped when dropped.
pub struct TokenEndpoint {
    child: Child,
    log: PathBuf,
    _dir: TempDir,
    /// The URL to give as `sasl_oauthbearer_token_endpoint_url`.
    pub url: String,
}

impl TokenEndpoint {
    /// Starts an endpoint issuing tokens to `client_id` with `client_secret`, each valid for
    /// `lifetime_s` seconds (its `sub`, the Kafka principal, is the client id).
    pub fn start(client_id: &str, client_secret: &str, lifetime_s: u32) -> Self {
        let dir = TempDir::new().expect("token endpoint dir");
        let log = dir.path().join("issued.log");
        let (child, port) = start_tool_server(
            "token_server.py",
            &[client_id, client_secret, &lifetime_s.to_string()],
            std::fs::File::create(&log).expect("token endpoint log").into(),
        );
        Self { child, log, _dir: dir, url: format!("http://127.0.0.1:{port}/token") }
    }

    /// The scope asked for with each token issued so far, in order.
    pub fn issued(&self) -> Vec<String> {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.lines().filter_map(|line| line.strip_prefix("issued ")).map(|scope| scope.trim().to_string()).collect()
    }
}

impl Drop for TokenEndpoint {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
