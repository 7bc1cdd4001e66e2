//! OAUTHBEARER tokens from an identity provider's token endpoint (OAuth 2.0 client credentials,
//! RFC 6749 section 4.4): fetched when a connection first needs one, shared by every connection,
//! and fetched again once 80 % of a token's lifetime has passed, so no connection presents a
//! token about to expire (a broker ends a session when its token expires, KIP-368).

use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::secret::Secret;

/// Share of a token's lifetime after which a new one is fetched (librdkafka refreshes at 80 % too).
const REFRESH_AT: f64 = 0.8;

/// How long one request to the token endpoint may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where and as whom to ask for tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The token endpoint's URL: https, or http to this machine only.
    pub token_endpoint: String,
    /// The client's id at the identity provider.
    pub client_id: String,
    /// The client's secret.
    pub client_secret: Secret,
    /// The scope to ask for, if the provider needs one.
    pub scope: Option<String>,
}

impl OidcSettings {
    /// Checks the endpoint URL: the client secret crosses the network in clear over plain http,
    /// so http is only accepted to a loopback address.
    pub fn check_endpoint(&self) -> Result<(), String> {
        let url = reqwest::Url::parse(&self.token_endpoint).map_err(|e| format!("not a URL: {e}"))?;
        let host = url.host_str().unwrap_or_default();
        let ip = host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>();
        let loopback = host == "localhost" || ip.is_ok_and(|ip| ip.is_loopback());
        match url.scheme() {
            "https" => Ok(()),
            "http" if loopback => Ok(()),
            "http" => Err("plain http would send the client secret in clear: use an https URL".into()),
            other => Err(format!("{other}: not an http(s) URL")),
        }
    }
}

/// The token source of a client: the current token and when to fetch the next.
#[derive(Debug)]
pub struct OidcTokens {
    settings: OidcSettings,
    current: tokio::sync::Mutex<Option<Token>>,
}

#[derive(Debug)]
struct Token {
    value: Secret,
    refresh_at: Instant,
}

/// The token endpoint's JSON answer (RFC 6749 section 5.1; section 5.2 for errors).
#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    error: Option<String>,
    error_description: Option<String>,
}

impl PartialEq for OidcTokens {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
    }
}

impl Eq for OidcTokens {}

impl OidcTokens {
    /// A source that has fetched nothing yet.
    pub fn new(settings: OidcSettings) -> Self {
        Self { settings, current: tokio::sync::Mutex::new(None) }
    }

    /// The client id, for errors (never the secret).
    pub fn client_id(&self) -> &str {
        &self.settings.client_id
    }

    /// The token to present now: the current one while it is fresh, else a new one.
    pub async fn token(&self) -> Result<Secret, String> {
        let mut current = self.current.lock().await;
        if let Some(token) = current.as_ref().filter(|token| Instant::now() < token.refresh_at) {
            return Ok(token.value.clone());
        }
        let (value, lifetime) = self.fetch().await?;
        tracing::debug!(endpoint = %self.settings.token_endpoint, lifetime_s = lifetime.as_secs(), "fetched an OAUTHBEARER token");
        *current = Some(Token { value: value.clone(), refresh_at: Instant::now() + lifetime.mul_f64(REFRESH_AT) });
        Ok(value)
    }

    /// Drops the current token (a broker refused it): the next connection fetches a new one.
    pub async fn forget(&self) {
        *self.current.lock().await = None;
    }

    async fn fetch(&self) -> Result<(Secret, Duration), String> {
        let settings = &self.settings;
        let endpoint = &settings.token_endpoint;
        crate::process_tls::install_tls_provider();
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client for the token endpoint: {e}"))?;
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &settings.scope {
            form.push(("scope", scope));
        }
        let response = client
            .post(endpoint)
            .basic_auth(&settings.client_id, Some(settings.client_secret.expose()))
            .form(&form)
            .send()
            .await
            .map_err(|e| format!("cannot reach the token endpoint {endpoint}: {}", error_chain(&e)))?;
        let status = response.status();
        let body = response.text().await.map_err(|e| format!("the token endpoint {endpoint} broke off: {e}"))?;
        let answer: Option<TokenAnswer> = serde_json::from_str(&body).ok();
        let access_token = answer.as_ref().and_then(|a| a.access_token.clone());
        match (status.is_success(), access_token) {
            (true, Some(token)) => {
                let lifetime = answer.and_then(|a| a.expires_in).map(Duration::from_secs);
                // Without expires_in the token is used for one connection only.
                Ok((Secret::new(token), lifetime.unwrap_or(Duration::ZERO)))
            }
            (true, None) => Err(format!("the token endpoint {endpoint} answered without an access_token")),
            (false, _) => {
                // Only the standard error fields are shown: a body could echo what was sent.
                let reason = answer
                    .map(|a| [a.error, a.error_description].into_iter().flatten().collect::<Vec<_>>().join(": "))
                    .unwrap_or_default();
                Err(format!(
                    "the token endpoint {endpoint} refused client {}: HTTP {status} {reason}; check \
                     sasl_oauthbearer_client_id, sasl_oauthbearer_client_secret and sasl_oauthbearer_scope",
                    settings.client_id
                ))
            }
        }
    }
}

/// An error with its causes ("error sending request" alone does not say connection refused).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(&format!(": {inner}"));
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(endpoint: &str) -> OidcSettings {
        OidcSettings {
            token_endpoint: endpoint.into(),
            client_id: "backup".into(),
            client_secret: Secret::new("s3cret".into()),
            scope: None,
        }
    }

    #[test]
    fn plain_http_is_only_accepted_to_this_machine() {
        assert!(settings("https://login.example.com/oauth2/token").check_endpoint().is_ok());
        assert!(settings("http://127.0.0.1:8080/token").check_endpoint().is_ok());
        assert!(settings("http://localhost/token").check_endpoint().is_ok());
        assert!(settings("http://[::1]:9000/token").check_endpoint().is_ok());
        assert!(settings("http://idp.example.com/token").check_endpoint().unwrap_err().contains("in clear"));
        assert!(settings("ftp://idp.example.com/token").check_endpoint().is_err());
        assert!(settings("idp.example.com").check_endpoint().unwrap_err().contains("not a URL"));
    }
}
