//! Secure connections as a user configures them, against the TLS listeners of the Apache Kafka
//! clusters (`tools/clusters.py`: SSL, and MTLS which requires a client certificate; certificates
//! from the test CA in `.test-infra/tls`). Data goes through the TLS listeners; confluent-kafka
//! checks it on the PLAINTEXT ones. SASL is not implemented yet and is refused (config_keys.rs).

mod common;

use std::path::Path;

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster};
use tempfile::TempDir;

/// `settings` (YAML lines under `source:`/`target:`) added to a config written by the helpers.
fn with_connection_settings(config: &Path, before: &str, settings: &str) {
    let text = std::fs::read_to_string(config).unwrap().replacen(before, &format!("{settings}{before}"), 1);
    std::fs::write(config, text).unwrap();
}

fn tls_file(name: &str) -> String {
    KafkaCluster::source().tls_dir().join(name).display().to_string()
}

fn ssl_settings(extra: &str) -> String {
    format!("  security_protocol: SSL\n  ssl_ca_location: {}\n{extra}", tls_file("ca.pem"))
}

fn mtls_settings(key: &str) -> String {
    ssl_settings(&format!(
        "  ssl_certificate_location: {}\n  ssl_key_location: {}\n",
        tls_file("client.pem"),
        tls_file(key)
    ))
}

#[test]
fn backup_over_tls_and_restore_over_mtls_round_trip_every_record() {
    let (source, target) = (KafkaCluster::source(), KafkaCluster::target());
    let topic = unique("secure");
    testkit::create_topic(&source.bootstrap(), &topic, 2, testkit::FIDELITY_TOPIC_CONFIGS);
    let mut records = testkit::fidelity_records(0);
    records.extend(testkit::fidelity_records(1));
    testkit::produce(&source.bootstrap(), &topic, &records, &[]);
    let original = testkit::consume(&source.bootstrap(), &topic, &[0, 1]);

    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.listener("SSL"), "tls", &topic, "");
    with_connection_settings(&config, "  topics:", &ssl_settings(""));
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "tls", &topic), original);

    // mTLS with the client key in PKCS#1 form (the PKCS#8 form is used below).
    let restore_config = write_restore_config(dir.path(), "mtls", &target.listener("MTLS"), "tls", "");
    with_connection_settings(&restore_config, "storage:", &mtls_settings("client-pkcs1.key"));
    assert_success(&restore(&restore_config, &[]));
    assert_eq!(testkit::consume(&target.bootstrap(), &topic, &[0, 1]), original);

    // A backup through the mTLS listener with the PKCS#8 key, and hostname checks off (warned).
    let config = write_config(dir.path(), &source.listener("MTLS"), "mtls-backup", &topic, "");
    let settings = mtls_settings("client.key") + "  ssl_endpoint_identification_algorithm: none\n";
    with_connection_settings(&config, "  topics:", &settings);
    let output = backup(&config);
    assert_success(&output);
    assert!(text(&output.stderr).contains("host names are NOT"), "a loud warning: {}", text(&output.stderr));
    assert_eq!(backed_up_records(dir.path(), "mtls-backup", &topic), original);
}

/// Runs a backup of `listener` with `settings` and returns its stderr, asserting it failed.
fn failed_backup(listener: &str, settings: &str) -> String {
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), listener, "refused", "*", "");
    with_connection_settings(&config, "  topics:", &format!("{settings}  bootstrap_timeout_secs: 5\n"));
    let output = wait_with_deadline(spawn(&["backup", "--config", config.to_str().unwrap()], false), HANG);
    assert!(!output.status.success(), "{settings} must fail");
    assert!(!dir.path().join("store/refused").exists(), "nothing was written");
    text(&output.stderr)
}

#[test]
fn tls_failures_say_what_to_check() {
    let source = KafkaCluster::source();
    let ssl = source.listener("SSL");

    let untrusted =
        failed_backup(&ssl, &format!("  security_protocol: SSL\n  ssl_ca_location: {}\n", tls_file("other-ca.pem")));
    assert!(untrusted.contains(&ssl) && untrusted.contains("not signed by a trusted CA"), "{untrusted}");

    let no_client_certificate = failed_backup(&source.listener("MTLS"), &ssl_settings(""));
    assert!(no_client_certificate.contains("client certificate"), "{no_client_certificate}");

    let plaintext_to_tls = failed_backup(&ssl, "");
    assert!(plaintext_to_tls.contains(&ssl), "{plaintext_to_tls}");

    let missing_ca = failed_backup(&ssl, "  security_protocol: SSL\n  ssl_ca_location: /nonexistent/ca.pem\n");
    assert!(missing_ca.contains("/nonexistent/ca.pem"), "{missing_ca}");

    let half_mtls =
        failed_backup(&ssl, &ssl_settings(&format!("  ssl_certificate_location: {}\n", tls_file("client.pem"))));
    assert!(half_mtls.contains("go together"), "{half_mtls}");

    let encrypted = failed_backup(&ssl, &mtls_settings("client-encrypted.key"));
    assert!(encrypted.contains("encrypted private key") && encrypted.contains("openssl pkcs8"), "{encrypted}");

    let password = failed_backup(&ssl, &ssl_settings("  ssl_key_password: client-key-secret\n"));
    assert!(password.contains("source.ssl_key_password"), "{password}");
    assert!(!password.contains("client-key-secret"), "the password is never printed: {password}");

    let tls_without_ssl = failed_backup(&source.bootstrap(), &format!("  ssl_ca_location: {}\n", tls_file("ca.pem")));
    assert!(tls_without_ssl.contains("security_protocol is PLAINTEXT"), "{tls_without_ssl}");

    let unknown_check = failed_backup(&ssl, &ssl_settings("  ssl_endpoint_identification_algorithm: sometimes\n"));
    assert!(unknown_check.contains("ssl_endpoint_identification_algorithm"), "{unknown_check}");
}
