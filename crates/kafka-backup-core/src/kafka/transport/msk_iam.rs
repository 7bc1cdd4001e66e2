//! The AWS_MSK_IAM SASL mechanism of Amazon MSK: one JSON message carrying a SigV4 signature of
//! the `kafka-cluster:Connect` action for the broker's host, as a presigned GET request would carry
//! it (aws-msk-iam-auth's format `2020_10_22`). SigV4 is written here (a few HMACs over ring) because
//! the AWS SDKs pull hundreds of crates; the test checks it against botocore's own presigner.

use std::time::SystemTime;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey, AwsCredentialProvider};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};
use ring::{digest, hmac};

use crate::secret::Secret;
use crate::uri::uri_encode;

const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How long the signature is valid, in seconds (the reference client's value).
const EXPIRES_SECS: u32 = 900;

/// AWS credentials, as the chain resolved them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

/// The standard AWS credential chain of a region, as `object_store` implements it for S3 (reused,
/// not written twice): `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), web
/// identity (EKS IRSA: `AWS_WEB_IDENTITY_TOKEN_FILE` with `AWS_ROLE_ARN`), the ECS task role
/// (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`), EKS Pod Identity (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
/// with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`), else the EC2 instance role (IMDSv2). Temporary
/// credentials are cached and fetched again before they expire.
#[derive(Debug)]
pub struct AwsCredentialChain {
    region: String,
    provider: AwsCredentialProvider,
}

impl PartialEq for AwsCredentialChain {
    fn eq(&self, other: &Self) -> bool {
        self.region == other.region
    }
}

impl Eq for AwsCredentialChain {}

impl AwsCredentialChain {
    /// The chain of this process's environment.
    pub fn from_env(region: &str) -> Result<Self, String> {
        Self::from_variables(region, std::env::vars())
    }

    /// The chain that `variables` (`AWS_*` environment variables) configure.
    pub fn from_variables(region: &str, variables: impl IntoIterator<Item = (String, String)>) -> Result<Self, String> {
        crate::process_tls::install_tls_provider();
        let mut builder = AmazonS3Builder::new();
        for (name, value) in variables {
            if let Some(key) = name.strip_prefix("AWS_").and_then(|_| name.to_ascii_lowercase().parse().ok()) {
                builder = builder.with_config(key, value);
            }
        }
        // A machine that is not on EC2 fails fast instead of retrying the metadata service.
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 2,
            retry_timeout: std::time::Duration::from_secs(15),
        };
        let store = builder
            .with_region(region)
            .with_bucket_name("unused-by-msk-iam")
            .with_retry(retry)
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "3s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "10s")
            .build()
            .map_err(|e| format!("the AWS credential settings are not usable: {e}"))?;
        Ok(Self { region: region.to_string(), provider: store.credentials().clone() })
    }

    /// The region the cluster is in.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The credentials to sign with now.
    pub async fn credentials(&self) -> Result<AwsCredentials, String> {
        let credential = self.provider.get_credential().await.map_err(|e| {
            format!(
                "no AWS credentials: {e}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with a role \
                 (EKS IRSA or Pod Identity, ECS task role, EC2 instance profile)"
            )
        })?;
        Ok(AwsCredentials {
            access_key_id: credential.key_id.clone(),
            secret_access_key: Secret::new(credential.secret_key.clone()),
            session_token: credential.token.clone().map(Secret::new),
        })
    }
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else `%XX`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes()).as_ref().to_vec()
}

/// `YYYYMMDDTHHMMSSZ` of `at`.
fn amz_date(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string().replace(['-', ':'], "")
}

/// The authentication message for the broker at `host` (no port) in `region`, signed at `at`.
pub fn auth_payload(
    host: &str,
    region: &str,
    credentials: &AwsCredentials,
    user_agent: &str,
    at: SystemTime,
) -> String {
    let date_time = amz_date(at);
    let date = &date_time[..8];
    let scope = format!("{date}/{region}/{SERVICE}/aws4_request");
    let credential = format!("{}/{scope}", credentials.access_key_id);
    let mut query = vec![
        ("Action", ACTION.to_string()),
        ("X-Amz-Algorithm", ALGORITHM.to_string()),
        ("X-Amz-Credential", credential.clone()),
        ("X-Amz-Date", date_time.clone()),
        ("X-Amz-Expires", EXPIRES_SECS.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ];
    if let Some(token) = &credentials.session_token {
        query.push(("X-Amz-Security-Token", token.expose().to_string()));
    }
    query.sort();
    let canonical_query: Vec<String> =
        query.iter().map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v))).collect();
    let empty_payload = hex(digest::digest(&digest::SHA256, b"").as_ref());
    let canonical_request = format!("GET\n/\n{}\nhost:{host}\n\nhost\n{empty_payload}", canonical_query.join("&"));
    let string_to_sign = format!(
        "{ALGORITHM}\n{date_time}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(format!("AWS4{}", credentials.secret_access_key.expose()).as_bytes(), date);
    for part in [region, SERVICE, "aws4_request"] {
        key = hmac_sha256(&key, part);
    }
    let signature = hex(&hmac_sha256(&key, &string_to_sign));
    let mut payload = serde_json::json!({
        "version": "2020_10_22",
        "host": host,
        "user-agent": user_agent,
        "action": ACTION,
        "x-amz-algorithm": ALGORITHM,
        "x-amz-credential": credential,
        "x-amz-date": date_time,
        "x-amz-signedheaders": "host",
        "x-amz-expires": EXPIRES_SECS.to_string(),
        "x-amz-signature": signature,
    });
    if let Some(token) = &credentials.session_token {
        payload["x-amz-security-token"] = token.expose().into();
    }
    payload.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payload_names_the_host_scope_and_time_and_holds_no_secret_key() {
        let credentials = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: Some(Secret::new("token/with+chars=".into())),
        };
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_603_324_800); // 2020-10-22
        let payload: serde_json::Value =
            serde_json::from_str(&auth_payload("b-1.msk.example.com", "eu-west-1", &credentials, "kb", at)).unwrap();
        assert_eq!(payload["x-amz-date"], "20201022T000000Z");
        assert_eq!(payload["x-amz-credential"], "AKIDEXAMPLE/20201022/eu-west-1/kafka-cluster/aws4_request");
        assert_eq!(payload["x-amz-security-token"], "token/with+chars=");
        assert_eq!(payload["x-amz-signature"].as_str().unwrap().len(), 64);
        assert!(!payload.to_string().contains("wJalrXUtnFEMI"));
    }
}
