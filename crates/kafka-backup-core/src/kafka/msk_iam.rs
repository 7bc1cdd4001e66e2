//! The AWS_MSK_IAM SASL mechanism of Amazon MSK: one JSON message carrying a SigV4 signature of
//! the `kafka-cluster:Connect` action for the broker's host, as a presigned GET request would carry
//! it (aws-msk-iam-auth's format `2020_10_22`). SigV4 is written here (a few HMACs over ring) because
//! the AWS SDKs pull hundreds of crates; the test checks it against botocore's own presigner.

use std::time::SystemTime;

use ring::{digest, hmac};

use crate::secret::Secret;

const SERVICE: &str = "kafka-cluster";
const ACTION: &str = "kafka-cluster:Connect";
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How long the signature is valid, in seconds (the reference client's value).
const EXPIRES_SECS: u32 = 900;

/// AWS credentials (from the standard environment variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Secret,
    /// Session token of temporary credentials.
    pub session_token: Option<Secret>,
}

impl AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`, read now (so that
    /// rotated credentials exported by a sidecar are used by the next connection).
    pub fn from_env() -> Result<Self, String> {
        let variable = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match (variable("AWS_ACCESS_KEY_ID"), variable("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret)) => Ok(Self {
                access_key_id,
                secret_access_key: Secret::new(secret),
                session_token: variable("AWS_SESSION_TOKEN").map(Secret::new),
            }),
            _ => Err("AWS_MSK_IAM signs with the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                      (and AWS_SESSION_TOKEN for temporary ones), which are not set; instance roles and \
                      web identity are not read: export the role's credentials (e.g. aws configure \
                      export-credentials)"
                .into()),
        }
    }
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else `%XX`.
fn uri_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

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
        assert_eq!(uri_encode("kafka-cluster:Connect"), "kafka-cluster%3AConnect");
    }
}
