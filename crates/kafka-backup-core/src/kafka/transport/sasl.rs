//! SASL authentication of a new broker connection (KIP-43, KIP-152): SaslHandshake v1 names the
//! mechanism, then SaslAuthenticate carries its messages; nothing else is sent on the connection
//! before it succeeds. PLAIN (RFC 4616), SCRAM-SHA-256/512 (`scram.rs`), OAUTHBEARER (RFC 7628;
//! KIP-255) with a token the operator supplies or one from an OIDC token endpoint (`oidc.rs`), and
//! Amazon MSK's AWS_MSK_IAM (`msk_iam.rs`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use ring::rand::{SecureRandom, SystemRandom};

use super::msk_iam::{auth_payload, AwsCredentialChain};
use super::oidc::OidcTokens;
use super::scram::{ScramClient, ScramHash};
use crate::kafka::KafkaError;
use crate::secret::Secret;

/// A SASL mechanism this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// Username and password in clear (use it over TLS only).
    Plain,
    /// Salted challenge-response with SHA-256.
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    ScramSha512,
    /// A bearer token (a JWT from the operator's identity provider).
    OauthBearer,
    /// Amazon MSK's IAM access control: a SigV4 signature with AWS credentials.
    AwsMskIam,
}

impl SaslMechanism {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
            Self::OauthBearer => "OAUTHBEARER",
            Self::AwsMskIam => "AWS_MSK_IAM",
        }
    }
}

impl FromStr for SaslMechanism {
    type Err = KafkaError;

    fn from_str(text: &str) -> Result<Self, KafkaError> {
        match text.to_ascii_uppercase().as_str() {
            "PLAIN" => Ok(Self::Plain),
            "SCRAM-SHA-256" => Ok(Self::ScramSha256),
            "SCRAM-SHA-512" => Ok(Self::ScramSha512),
            "OAUTHBEARER" => Ok(Self::OauthBearer),
            "AWS_MSK_IAM" => Ok(Self::AwsMskIam),
            "GSSAPI" => Err(KafkaError::NotSupported {
                feature: format!("SASL mechanism {text}"),
                hint: "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER and AWS_MSK_IAM are implemented"
                    .into(),
            }),
            _ => Err(KafkaError::Config(format!(
                "unknown SASL mechanism {text:?}; expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER or AWS_MSK_IAM"
            ))),
        }
    }
}

/// Who to authenticate as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// Mechanism.
    pub mechanism: SaslMechanism,
    /// What proves it: a password for PLAIN and SCRAM, a token for OAUTHBEARER.
    pub credentials: SaslCredentials,
}

/// The secret half of a SASL login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslCredentials {
    /// User name and password (PLAIN, SCRAM).
    Password {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// A bearer token as given (OAUTHBEARER).
    Token(Secret),
    /// A file holding the bearer token, read again for every new connection, so that a token
    /// another process refreshes is picked up (OAUTHBEARER).
    TokenFile(std::path::PathBuf),
    /// Tokens from an OIDC token endpoint, shared by the client's connections (OAUTHBEARER).
    Oidc(Arc<OidcTokens>),
    /// The AWS credential chain and region of the cluster (AWS_MSK_IAM).
    Aws(Arc<AwsCredentialChain>),
}

impl SaslCredentials {
    /// Who the errors name: the user, or that a token was used (never any secret).
    fn principal(&self) -> String {
        match self {
            Self::Password { username, .. } => username.clone(),
            Self::Token(_) => "the configured token".into(),
            Self::TokenFile(path) => format!("the token in {}", path.display()),
            Self::Oidc(tokens) => format!("the token of OIDC client {}", tokens.client_id()),
            Self::Aws(chain) => format!("the AWS credentials of region {}", chain.region()),
        }
    }
}

/// The two requests of the SASL exchange, sent by a broker connection that has sent nothing but
/// ApiVersions yet (the connection's pipelining above implements it; SASL knows nothing of it).
pub trait SaslChannel {
    /// `host:port` of the broker.
    fn address(&self) -> &str;
    /// Sends SaslHandshake and returns the answer.
    fn handshake(
        &self,
        request: SaslHandshakeRequest,
    ) -> impl std::future::Future<Output = Result<SaslHandshakeResponse, KafkaError>> + Send;
    /// Sends SaslAuthenticate and returns the answer.
    fn authenticate(
        &self,
        request: SaslAuthenticateRequest,
    ) -> impl std::future::Future<Output = Result<SaslAuthenticateResponse, KafkaError>> + Send;
}

/// Authenticates `connection` (just opened, ApiVersions done) as `settings` says; returns the
/// session lifetime the broker set (`connections.max.reauth.ms`, KIP-368), if it set one.
pub async fn authenticate(
    connection: &impl SaslChannel,
    settings: &SaslSettings,
) -> Result<Option<Duration>, KafkaError> {
    let mechanism = settings.mechanism.name();
    let failed = |reason: String| KafkaError::Authentication {
        broker: connection.address().to_string(),
        mechanism,
        user: settings.credentials.principal(),
        reason,
    };
    let handshake = connection
        .handshake(SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism)))
        .await?;
    if handshake.error_code != 0 {
        let offered: Vec<String> = handshake.mechanisms.iter().map(|m| m.to_string()).collect();
        return Err(failed(format!(
            "the listener does not offer {mechanism} (it offers {}); set sasl_mechanism to one of them",
            offered.join(", ")
        )));
    }
    // Each step answers with the broker's bytes and the session lifetime it set (0: none).
    let exchange = |bytes: Vec<u8>| async {
        let response =
            connection.authenticate(SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes))).await?;
        if response.error_code != 0 {
            let message = response.error_message.map(|m| m.to_string()).unwrap_or_default();
            return Err(failed(format!("{message} (check the SASL credentials)")));
        }
        Ok((response.auth_bytes, response.session_lifetime_ms))
    };
    let lifetime_ms = match (&settings.credentials, settings.mechanism) {
        (SaslCredentials::Password { username, password }, SaslMechanism::Plain) => {
            exchange(format!("\0{username}\0{}", password.expose()).into_bytes()).await?.1
        }
        (SaslCredentials::Password { username, password }, SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512) => {
            let hash =
                if settings.mechanism == SaslMechanism::ScramSha256 { ScramHash::Sha256 } else { ScramHash::Sha512 };
            let (client, first) = ScramClient::start(hash, username, password.expose(), &nonce()?);
            let (server_first, _) = exchange(first.into_bytes()).await?;
            let server_first = String::from_utf8_lossy(&server_first).into_owned();
            let last = client.answer(&server_first).map_err(&failed)?;
            let (server_final, lifetime_ms) = exchange(last.message.clone().into_bytes()).await?;
            last.verify(&String::from_utf8_lossy(&server_final)).map_err(&failed)?;
            lifetime_ms
        }
        (
            SaslCredentials::Token(_) | SaslCredentials::TokenFile(_) | SaslCredentials::Oidc(_),
            SaslMechanism::OauthBearer,
        ) => {
            let token = bearer_token(&settings.credentials).await.map_err(&failed)?;
            // RFC 7628 initial client response: gs2 header, then kvpairs separated by ^A.
            let (challenge, lifetime_ms) =
                exchange(format!("n,,\x01auth=Bearer {}\x01\x01", token.expose()).into_bytes()).await?;
            if !challenge.is_empty() {
                // An error challenge (JSON): acknowledged with ^A, which the broker then fails.
                let detail = String::from_utf8_lossy(&challenge).into_owned();
                let _ = exchange(vec![0x01]).await;
                if let SaslCredentials::Oidc(tokens) = &settings.credentials {
                    tokens.forget().await;
                }
                return Err(failed(format!("the broker refused the token: {detail}")));
            }
            lifetime_ms
        }
        (SaslCredentials::Aws(chain), SaslMechanism::AwsMskIam) => {
            let credentials = chain.credentials().await.map_err(&failed)?;
            let region = chain.region();
            let address = connection.address();
            let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
            let user_agent = concat!("kafka-backup/", env!("CARGO_PKG_VERSION"));
            let payload = auth_payload(host, region, &credentials, user_agent, std::time::SystemTime::now());
            exchange(payload.into_bytes()).await?.1
        }
        _ => return Err(failed("these credentials do not go with this mechanism".into())),
    };
    Ok((lifetime_ms > 0).then(|| Duration::from_millis(lifetime_ms as u64)))
}

/// The token to send now: as given, read from its file (trimmed) at this connection, or the OIDC
/// source's current one.
async fn bearer_token(credentials: &SaslCredentials) -> Result<Secret, String> {
    match credentials {
        SaslCredentials::Token(token) => Ok(token.clone()),
        SaslCredentials::Oidc(tokens) => tokens.token().await,
        SaslCredentials::TokenFile(path) => std::fs::read_to_string(path)
            .map(|text| Secret::new(text.trim().to_string()))
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display())),
        SaslCredentials::Password { .. } | SaslCredentials::Aws(_) => {
            Err("OAUTHBEARER needs a token, not a password or AWS credentials".into())
        }
    }
}

/// 24 random bytes as base64url: a SCRAM client nonce.
fn nonce() -> Result<String, KafkaError> {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| KafkaError::Config("the system random number generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
