//! The AWS_MSK_IAM signature against an independent implementation: botocore's SigV4 presigner
//! (`tools/sigv4_reference.py`, the signer aws-msk-iam-sasl-signer builds on), for fixed
//! credentials and times, with and without a session token; and the credential chain it signs with,
//! from variables and from an EKS Pod Identity endpoint served here. No MSK cluster is reachable here.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use kafka_backup_core::kafka::msk_iam::{auth_payload, AwsCredentialChain, AwsCredentials};
use kafka_backup_core::secret::Secret;
use kafka_backup_testkit::{infra_program, repo_root};

fn reference(host: &str, region: &str, credentials: &AwsCredentials, timestamp: &str, token: &str) -> String {
    let output = std::process::Command::new(infra_program("python"))
        .arg(repo_root().join("tools/sigv4_reference.py"))
        .args([host, region, &credentials.access_key_id, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token, timestamp])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

#[test]
fn the_signature_matches_botocores_presigner() {
    let cases = [
        ("b-1.cluster.abc123.c2.kafka.eu-west-1.amazonaws.com", "eu-west-1", None, 1_603_324_800, "20201022T000000Z"),
        (
            "boot-x.c1.kafka-serverless.us-east-1.amazonaws.com",
            "us-east-1",
            Some("IQoJb3JpZ2luX2Vj/+token=="),
            1_795_660_000,
            "20261126T022640Z",
        ),
    ];
    for (host, region, token, seconds, timestamp) in cases {
        let credentials = AwsCredentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: token.map(|t| Secret::new(t.to_string())),
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds);
        let payload: serde_json::Value =
            serde_json::from_str(&auth_payload(host, region, &credentials, "kafka-backup/test", at)).unwrap();
        assert_eq!(payload["x-amz-date"], timestamp);
        assert_eq!(payload["host"], host);
        assert_eq!(payload["action"], "kafka-cluster:Connect");
        let expected = reference(host, region, &credentials, timestamp, token.unwrap_or("-"));
        assert_eq!(payload["x-amz-signature"], expected.as_str(), "{host} {region} token {token:?}");
    }
}

fn variables(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect()
}

/// A container-credentials endpoint (the document ECS and EKS Pod Identity serve) that answers
/// requests carrying `authorization` and counts them; returns its URL and the count.
fn pod_identity_endpoint(authorization: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/credentials", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = stream.read(&mut buffer).unwrap_or(0);
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
            }
            let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
            let (status, body) = if request.contains(&format!("authorization: {authorization}")) {
                count.fetch_add(1, Ordering::SeqCst);
                let expiration = humantime::format_rfc3339_seconds(SystemTime::now() + Duration::from_secs(3600));
                let body = format!(
                    r#"{{"AccessKeyId":"ASIAPODIDENTITY","SecretAccessKey":"pod-secret","Token":"pod-session","Expiration":"{expiration}"}}"#
                );
                ("200 OK", body)
            } else {
                ("403 Forbidden", "{}".to_string())
            };
            let answer = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (url, served)
}

#[tokio::test]
async fn the_chain_reads_static_variables_and_an_eks_pod_identity_endpoint() {
    let static_chain = AwsCredentialChain::from_variables(
        "eu-west-1",
        variables(&[
            ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            ("AWS_SESSION_TOKEN", "session"),
        ]),
    )
    .unwrap();
    let credentials = static_chain.credentials().await.unwrap();
    assert_eq!(credentials.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(credentials.session_token, Some(Secret::new("session".into())));

    let dir = tempfile::TempDir::new().unwrap();
    let token_file = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_file, "pod-token").unwrap();
    let (url, served) = pod_identity_endpoint("pod-token");
    let token_file = token_file.display().to_string();
    let pod_chain = AwsCredentialChain::from_variables(
        "us-east-1",
        variables(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", &url),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_file),
        ]),
    )
    .unwrap();
    for _ in 0..3 {
        let credentials = pod_chain.credentials().await.unwrap();
        assert_eq!(credentials.access_key_id, "ASIAPODIDENTITY");
        assert_eq!(credentials.secret_access_key, Secret::new("pod-secret".into()));
        assert_eq!(credentials.session_token, Some(Secret::new("pod-session".into())));
    }
    assert_eq!(served.load(Ordering::SeqCst), 1, "credentials valid for an hour are fetched once");
}
