//! The AWS_MSK_IAM signature against an independent implementation: botocore's SigV4 presigner
//! (`tools/sigv4_reference.py`, the signer aws-msk-iam-sasl-signer builds on), for fixed
//! credentials and times, with and without a session token. No MSK cluster is reachable here.

use std::time::{Duration, SystemTime};

use kafka_backup_core::kafka::msk_iam::{auth_payload, AwsCredentials};
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
