//! Secure connections as a user configures them, against the TLS listeners of the Apache Kafka
//! clusters (`tools/clusters.py`: SSL, and MTLS which requires a client certificate; certificates
//! from the test CA in `.test-infra/tls`) and SASL listeners (PLAIN, SCRAM-SHA-256/512 users
//! `admin` and `alice`). Data goes through the secure listeners; confluent-kafka checks it on the
//! PLAINTEXT ones. OAUTHBEARER takes unsigned JWTs there (Kafka's unsecured validator), given or
//! from a local OIDC token endpoint (`testkit::TokenEndpoint`). AWS_MSK_IAM
//! has no listener here: its handshake is checked against one that does not offer it, its
//! signature against botocore (core/tests/msk_iam_signature.rs).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use kafka_backup_testkit::{self as testkit, unique, KafkaCluster, RefRecord};
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
    mtls_settings_with("client.pem", key)
}

fn mtls_settings_with(certificate: &str, key: &str) -> String {
    ssl_settings(&format!(
        "  ssl_certificate_location: {}\n  ssl_key_location: {}\n",
        tls_file(certificate),
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

    // mTLS with the key encrypted (PKCS#8, PBES2) and its password from the environment.
    let config = write_config(dir.path(), &source.listener("MTLS"), "encrypted-key", &topic, "");
    let settings = mtls_settings("client-encrypted.key") + "  ssl_key_password: ${CLIENT_KEY_PASSWORD}\n";
    with_connection_settings(&config, "  topics:", &settings);
    let output = binary()
        .args(["backup", "--config", config.to_str().unwrap()])
        .env("CLIENT_KEY_PASSWORD", "client-key-secret")
        .output()
        .unwrap();
    assert_success(&output);
    assert!(!text(&output.stdout).contains("client-key-secret") && !text(&output.stderr).contains("client-key-secret"));
    assert_eq!(backed_up_records(dir.path(), "encrypted-key", &topic), original);

    // mTLS with an X.509 version 1 client certificate (`openssl x509 -req` without extensions).
    let config = write_config(dir.path(), &source.listener("MTLS"), "v1-certificate", &topic, "");
    with_connection_settings(&config, "  topics:", &mtls_settings_with("client-v1.pem", "client.key"));
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "v1-certificate", &topic), original);
}

/// A TLS server offering a certificate of the test CA that expired a year ago
/// (`tools/expired_tls_server.py`); runs while the returned child's stdin is open.
fn expired_certificate_server() -> (std::process::Child, String) {
    let tls_dir = KafkaCluster::source().tls_dir().display().to_string();
    let (child, port) =
        testkit::start_tool_server("expired_tls_server.py", &[&tls_dir], std::process::Stdio::inherit());
    (child, format!("127.0.0.1:{port}"))
}

/// Accepts connections on another loopback address (127.0.0.2, which the brokers' certificates do
/// not name) and relays them to `broker`; returns the address to connect to.
fn relay_from_an_unnamed_address(broker: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let address = listener.local_addr().unwrap().to_string();
    let broker = broker.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = std::net::TcpStream::connect(&broker).expect("the broker");
            let (mut client_in, mut upstream_out) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut client_in, &mut upstream_out));
            let (mut upstream_in, mut client_out) = (upstream, client);
            std::thread::spawn(move || std::io::copy(&mut upstream_in, &mut client_out));
        }
    });
    address
}

/// Runs a backup of `listener` with `settings` and returns its stderr, asserting it failed.
fn failed_backup(listener: &str, settings: &str) -> String {
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), listener, "refused", "*", "");
    let bootstrap_timeout =
        if settings.contains("bootstrap_timeout_secs") { "" } else { "  bootstrap_timeout_secs: 5\n" };
    with_connection_settings(&config, "  topics:", &format!("{settings}{bootstrap_timeout}"));
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

    // Said on the first connection, not after the bootstrap deadline's retries.
    let no_client_certificate =
        failed_backup(&source.listener("MTLS"), &ssl_settings("  bootstrap_timeout_secs: 600\n"));
    assert!(
        no_client_certificate.contains("client certificate")
            && no_client_certificate.contains("ssl_certificate_location"),
        "{no_client_certificate}"
    );

    let other_key = failed_backup(&ssl, &mtls_settings_with("client-v1.pem", "server.key"));
    assert!(other_key.contains("do not go together") && other_key.contains("client-v1.pem"), "{other_key}");

    let plaintext_to_tls = failed_backup(&ssl, "");
    assert!(plaintext_to_tls.contains(&ssl), "{plaintext_to_tls}");

    let missing_ca = failed_backup(&ssl, "  security_protocol: SSL\n  ssl_ca_location: /nonexistent/ca.pem\n");
    assert!(missing_ca.contains("/nonexistent/ca.pem"), "{missing_ca}");

    let half_mtls =
        failed_backup(&ssl, &ssl_settings(&format!("  ssl_certificate_location: {}\n", tls_file("client.pem"))));
    assert!(half_mtls.contains("go together"), "{half_mtls}");

    let hostname_mismatch = relay_from_an_unnamed_address(&ssl);
    let mismatch = failed_backup(&hostname_mismatch, &ssl_settings(""));
    assert!(
        mismatch.contains(&hostname_mismatch) && mismatch.contains("does not name this host"),
        "the certificate names localhost and 127.0.0.1 only: {mismatch}"
    );

    let (_server, expired) = expired_certificate_server();
    let expired_error = failed_backup(&expired, &ssl_settings(""));
    assert!(expired_error.contains(&expired) && expired_error.contains("expired"), "{expired_error}");

    let encrypted = failed_backup(&ssl, &mtls_settings("client-encrypted.key"));
    assert!(encrypted.contains("is encrypted: set ssl_key_password"), "{encrypted}");

    let wrong_password =
        failed_backup(&ssl, &(mtls_settings("client-encrypted.key") + "  ssl_key_password: not-the-secret\n"));
    assert!(wrong_password.contains("ssl_key_password does not open"), "{wrong_password}");
    assert!(!wrong_password.contains("not-the-secret"), "the password is never printed: {wrong_password}");

    let password_without_key = failed_backup(&ssl, &ssl_settings("  ssl_key_password: client-key-secret\n"));
    assert!(password_without_key.contains("without ssl_key_location"), "{password_without_key}");
    assert!(!password_without_key.contains("client-key-secret"), "never printed: {password_without_key}");

    let tls_without_ssl = failed_backup(&source.bootstrap(), &format!("  ssl_ca_location: {}\n", tls_file("ca.pem")));
    assert!(tls_without_ssl.contains("security_protocol is PLAINTEXT"), "{tls_without_ssl}");

    let unknown_check = failed_backup(&ssl, &ssl_settings("  ssl_endpoint_identification_algorithm: sometimes\n"));
    assert!(unknown_check.contains("ssl_endpoint_identification_algorithm"), "{unknown_check}");
}

fn sasl_settings(protocol: &str, mechanism: &str, user: &str, password: &str) -> String {
    let tls =
        if protocol == "SASL_SSL" { format!("  ssl_ca_location: {}\n", tls_file("ca.pem")) } else { String::new() };
    format!(
        "  security_protocol: {protocol}\n{tls}  sasl_mechanism: {mechanism}\n  sasl_username: {user}\n  \
         sasl_password: {password}\n"
    )
}

/// Every file under `dir`, as bytes.
fn every_stored_byte(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for path in std::fs::read_dir(folder).unwrap().map(|e| e.unwrap().path()) {
            if path.is_dir() {
                stack.push(path);
            } else {
                all.extend(std::fs::read(path).unwrap());
            }
        }
    }
    all
}

#[test]
fn sasl_plain_and_scram_round_trip_and_three_phase_restore_over_sasl_ssl() {
    let (source, target) = (KafkaCluster::source(), KafkaCluster::target());
    let topic = unique("authenticated");
    testkit::create_topic(&source.bootstrap(), &topic, 2, &[]);
    testkit::produce_small(&source.bootstrap(), &topic, 0, 30);
    testkit::produce_small(&source.bootstrap(), &topic, 1, 20);
    let group = unique("billing");
    testkit::commit(&source.bootstrap(), &group, &[(&topic, 0, 12), (&topic, 1, 20)]);
    let original = testkit::consume(&source.bootstrap(), &topic, &[0, 1]);
    let dir = TempDir::new().unwrap();
    let mut outputs = String::new();

    // Backup over SASL_PLAINTEXT with PLAIN, the password from a file.
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "alice-secret\n").unwrap();
    let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), "sasl", &topic, "");
    let settings = format!(
        "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: PLAIN\n  sasl_username: alice\n  \
         sasl_password_file: {}\n",
        password_file.display()
    );
    with_connection_settings(&config, "  topics:", &settings);
    let output = backup(&config);
    assert_success(&output);
    outputs += &(text(&output.stdout) + &text(&output.stderr));
    assert_eq!(backed_up_records(dir.path(), "sasl", &topic), original);

    // Restore over SASL_PLAINTEXT with SCRAM-SHA-256.
    let copy = unique("authenticated-256");
    let mapping = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config =
        write_restore_config(dir.path(), "scram256", &target.listener("SASL_PLAINTEXT"), "sasl", &mapping);
    with_connection_settings(
        &restore_config,
        "storage:",
        &sasl_settings("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret"),
    );
    let output = restore(&restore_config, &[]);
    assert_success(&output);
    outputs += &(text(&output.stdout) + &text(&output.stderr));
    assert_eq!(testkit::consume(&target.bootstrap(), &copy, &[0, 1]), original);

    // Three-phase restore over SASL_SSL with SCRAM-SHA-512: data and the group's offsets.
    let copy = unique("authenticated-512");
    let mapping = format!("  topic_mapping:\n    {topic}: {copy}\n");
    let restore_config = write_restore_config(dir.path(), "scram512", &target.listener("SASL_SSL"), "sasl", &mapping);
    with_connection_settings(
        &restore_config,
        "storage:",
        &sasl_settings("SASL_SSL", "SCRAM-SHA-512", "admin", "admin-secret"),
    );
    let output = run(&["three-phase-restore", "--config", restore_config.to_str().unwrap()]);
    assert_success(&output);
    outputs += &(text(&output.stdout) + &text(&output.stderr));
    assert_eq!(testkit::consume(&target.bootstrap(), &copy, &[0, 1]), original);
    assert_eq!(testkit::committed(&target.bootstrap(), &group, &copy, &[0, 1]), [(0, 12), (1, 20)].into());

    // cluster-info reaches the same secured cluster through the restore config.
    let info = run(&["cluster-info", "--config", restore_config.to_str().unwrap(), "--format", "json"]);
    assert_success(&info);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["cluster_id"], target.cluster_id());
    outputs += &info.to_string();

    let stored = every_stored_byte(&dir.path().join("store"));
    for secret in ["alice-secret", "admin-secret"] {
        assert!(!outputs.contains(secret), "{secret} appeared in the output");
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} was written to the store");
    }
}

#[test]
fn sasl_failures_name_the_broker_mechanism_and_user_and_never_the_password() {
    let source = KafkaCluster::source();
    let listener = source.listener("SASL_PLAINTEXT");
    for (mechanism, user, password) in [
        ("SCRAM-SHA-512", "alice", "wrong-password-1"),
        ("PLAIN", "alice", "wrong-password-2"),
        ("SCRAM-SHA-256", "nobody", "wrong-password-3"),
    ] {
        let error = failed_backup(&listener, &sasl_settings("SASL_PLAINTEXT", mechanism, user, password));
        assert!(error.contains(&listener) && error.contains(mechanism) && error.contains(user), "{error}");
        assert!(error.contains("authentication") || error.contains("Authentication"), "{error}");
        assert!(!error.contains(password), "the password is never printed: {error}");
        assert!(
            !error.contains("could not reach the cluster"),
            "refused at once, not retried until the timeout: {error}"
        );
    }
}

#[test]
fn a_continuous_backup_outlives_several_sasl_sessions_without_a_failed_request() {
    // The REAUTH listener ends SASL sessions after 10 s (connections.max.reauth.ms, KIP-368).
    let source = KafkaCluster::source();
    let topic = unique("long-lived");
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 1000\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.listener("REAUTH"), "reauth", &topic, settings);
    with_connection_settings(
        &config,
        "  topics:",
        &sasl_settings("SASL_PLAINTEXT", "SCRAM-SHA-512", "alice", "alice-secret"),
    );
    // A single retry is logged at debug level; none may happen.
    let child = binary()
        .args(["backup", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn,kafka_backup_core::retry=debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Past one session lifetime before each next round.
    let output = back_up_in_rounds(child, dir.path(), "reauth", &topic, 4, 11);
    let stderr = text(&output.stderr);
    assert!(!stderr.contains("retrying"), "connections were retired before their sessions ended: {stderr}");
}

/// Drives the continuous backup `child` (backup `id` of partition 0 of `topic` into `dir`): `rounds`
/// times 10 records produced and waited for in the store, then `pause_s` seconds; then SIGTERM.
/// Asserts a clean exit and the stored records equal to confluent-kafka's read; returns the output.
fn back_up_in_rounds(
    child: std::process::Child,
    dir: &Path,
    id: &str,
    topic: &str,
    rounds: usize,
    pause_s: u64,
) -> std::process::Output {
    let bootstrap = KafkaCluster::source().bootstrap();
    for round in 1..=rounds {
        testkit::produce_small(&bootstrap, topic, 0, 10);
        wait_for("the round's records backed up", HANG, || {
            backed_up_records_if_any(dir, id, topic).len() == round * 10
        });
        std::thread::sleep(Duration::from_secs(pause_s));
    }
    send_signal(&child, "-TERM");
    let output = wait_with_deadline(child, HANG);
    assert_success(&output);
    assert_eq!(backed_up_records(dir, id, topic), testkit::consume(&bootstrap, topic, &[0]));
    output
}

/// A backup of `topic` as `user` (SCRAM over SASL_PLAINTEXT) into `dir` as `id`.
fn backup_as(dir: &TempDir, id: &str, topic: &str, user: &str) -> std::process::Output {
    let source = KafkaCluster::source();
    let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), id, topic, "");
    let settings = sasl_settings("SASL_PLAINTEXT", "SCRAM-SHA-256", user, &format!("{user}-secret"));
    with_connection_settings(&config, "  topics:", &settings);
    wait_with_deadline(spawn(&["backup", "--config", config.to_str().unwrap()], false), HANG)
}

#[test]
fn acl_denials_name_the_resource_and_the_acl_needed() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let (hidden, readable_not) = (unique("hidden"), unique("unreadable"));
    for topic in [&hidden, &readable_not] {
        testkit::create_topic(&bootstrap, topic, 1, &[]);
        testkit::produce_small(&bootstrap, topic, 0, 5);
        testkit::add_acl(&bootstrap, "topic", topic, "User:alice", "READ", "DENY");
    }
    // With an ACL on it, a topic alice may not Describe is not even listed to her.
    let dir = TempDir::new().unwrap();
    let output = backup_as(&dir, "hidden", &hidden, "alice");
    assert!(!output.status.success());
    assert!(text(&output.stderr).contains("may not Describe"), "{}", text(&output.stderr));

    // Allowed to Describe, denied Read: the fetch is refused, and the error says which ACL.
    testkit::add_acl(&bootstrap, "topic", &readable_not, "User:alice", "DESCRIBE", "ALLOW");
    let output = backup_as(&dir, "unreadable", &readable_not, "alice");
    assert!(!output.status.success(), "a topic the principal may not read fails the backup");
    let stderr = text(&output.stderr);
    assert!(stderr.contains(&readable_not) && stderr.contains("TopicAuthorizationFailed"), "{stderr}");
    assert!(stderr.contains("lacks the ACL Read on the topic"), "{stderr}");
    assert!(backed_up_records_if_any(dir.path(), "unreadable", &readable_not).is_empty(), "nothing was backed up");

    // The super user the ACLs do not restrict backs the same topic up as usual.
    assert_success(&backup_as(&dir, "allowed", &readable_not, "admin"));
    assert_eq!(backed_up_records(dir.path(), "allowed", &readable_not).len(), 5);
}

#[test]
fn a_principal_that_may_not_describe_acls_quotas_or_users_gets_warnings_naming_the_acl_not_a_failed_backup() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let topic = unique("limited");
    testkit::create_topic(&bootstrap, &topic, 1, &[]);
    testkit::produce_small(&bootstrap, &topic, 0, 5);
    let user = unique("limited-user");
    let password = format!("{user}-secret");
    let credential = format!("SCRAM-SHA-256=[iterations=4096,password={password}]");
    let user_args = ["--alter", "--add-config", &credential, "--entity-type", "users", "--entity-name", &user];
    testkit::kafka_configs(&bootstrap, &user_args);
    // An ACL on the cluster ends allow.everyone.if.no.acl.found for it: every principal is allowed
    // all of it again explicitly (what the other tests' principals had), this one denied Describe
    // (DescribeAcls, DescribeUserScramCredentials) and DescribeConfigs (DescribeClientQuotas).
    testkit::add_acl(&bootstrap, "cluster", "kafka-cluster", "User:*", "ALL", "ALLOW");
    for operation in ["DESCRIBE", "DESCRIBE_CONFIGS"] {
        testkit::add_acl(&bootstrap, "cluster", "kafka-cluster", &format!("User:{user}"), operation, "DENY");
    }
    let dir = TempDir::new().unwrap();
    let output = until_the_user_authenticates(|| backup_as(&dir, "limited", &topic, &user));
    assert_success(&output);
    let summary = text(&output.stdout);
    for what in ["ACLs", "client quotas", "SCRAM users"] {
        assert!(summary.contains(&format!("{what} were not captured")), "{what}: {summary}");
    }
    assert!(summary.contains("lacks the ACL"), "the missing permission is named: {summary}");
    assert_eq!(backed_up_records(dir.path(), "limited", &topic), testkit::consume(&bootstrap, &topic, &[0]));
    let described = describe_json(dir.path(), "limited");
    assert!(described["access"]["acls"].is_null(), "not captured, not empty: {}", described["access"]);
}

/// Runs `attempt` until a SCRAM user created a moment ago authenticates (its credentials reach
/// the brokers shortly after they are written), at most 30 s.
fn until_the_user_authenticates(mut attempt: impl FnMut() -> std::process::Output) -> std::process::Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = attempt();
        let refused = text(&output.stderr).to_lowercase().contains("authentication");
        if output.status.success() || !refused || Instant::now() > deadline {
            return output;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn oauthbearer_with_a_token_file_or_an_inline_token_round_trips_and_an_expired_token_is_refused() {
    let (source, target) = (KafkaCluster::source(), KafkaCluster::target());
    let topic = unique("bearer");
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    testkit::produce_small(&source.bootstrap(), &topic, 0, 25);
    let original = testkit::consume(&source.bootstrap(), &topic, &[0]);
    let dir = TempDir::new().unwrap();

    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", testkit::unsecured_jwt("alice", 3600))).unwrap();
    let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), "bearer", &topic, "");
    with_connection_settings(&config, "  topics:", &token_file_settings(&token_file));
    assert_success(&backup(&config));
    assert_eq!(backed_up_records(dir.path(), "bearer", &topic), original);

    let token = testkit::unsecured_jwt("alice", 3600);
    let restore_config = write_restore_config(dir.path(), "bearer", &target.listener("SASL_SSL"), "bearer", "");
    let settings = format!(
        "  security_protocol: SASL_SSL\n  ssl_ca_location: {}\n  sasl_mechanism: OAUTHBEARER\n  \
         sasl_oauthbearer_token: {token}\n",
        tls_file("ca.pem")
    );
    with_connection_settings(&restore_config, "storage:", &settings);
    let output = restore(&restore_config, &[]);
    assert_success(&output);
    assert!(
        !text(&output.stdout).contains(&token) && !text(&output.stderr).contains(&token),
        "the token is never printed"
    );
    assert_eq!(testkit::consume(&target.bootstrap(), &topic, &[0]), original);

    // An expired token written over the file: the next connection reads it and is refused.
    std::fs::write(&token_file, testkit::unsecured_jwt("alice", -600)).unwrap();
    let error = failed_backup(&source.listener("SASL_PLAINTEXT"), &token_file_settings(&token_file));
    assert!(error.contains("OAUTHBEARER") && error.contains("token"), "{error}");
}

/// OAUTHBEARER over SASL_PLAINTEXT with the token in `token_file`.
fn token_file_settings(token_file: &Path) -> String {
    format!(
        "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_token_file: {}\n",
        token_file.display()
    )
}

/// OAUTHBEARER over SASL_PLAINTEXT with tokens from the OIDC token endpoint at `url`.
fn oidc_settings(url: &str, client_secret: &str) -> String {
    format!(
        "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: OAUTHBEARER\n  sasl_oauthbearer_token_endpoint_url: \
         {url}\n  sasl_oauthbearer_client_id: backup-client\n  sasl_oauthbearer_client_secret: {client_secret}\n  \
         sasl_oauthbearer_scope: kafka\n"
    )
}

#[test]
fn oauthbearer_tokens_from_an_oidc_endpoint_are_fetched_again_before_they_expire() {
    // Tokens live 6 s; the REAUTH listener ends each session when its token expires (KIP-368).
    let source = KafkaCluster::source();
    let topic = unique("oidc");
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    let endpoint = testkit::TokenEndpoint::start("backup-client", "client-s3cret", 6);
    let dir = TempDir::new().unwrap();
    let settings = "  continuous: true\n  segment_max_interval_ms: 1000\n  checkpoint_interval_secs: 1\n";
    let config = write_config(dir.path(), &source.listener("REAUTH"), "oidc", &topic, settings);
    with_connection_settings(&config, "  topics:", &oidc_settings(&endpoint.url, "client-s3cret"));
    let child = spawn(&["backup", "--config", config.to_str().unwrap()], false);
    // Past one token's lifetime before each next round.
    let output = back_up_in_rounds(child, dir.path(), "oidc", &topic, 3, 7);
    let issued = endpoint.issued();
    assert!(
        issued.len() >= 3,
        "a token per lifetime over about 21 s, not one per connection or one in all: {issued:?}"
    );
    assert!(issued.iter().all(|scope| scope == "kafka"), "{issued:?}");
    assert!(!text(&output.stdout).contains("client-s3cret") && !text(&output.stderr).contains("client-s3cret"));

    let refused = failed_backup(&source.listener("SASL_PLAINTEXT"), &oidc_settings(&endpoint.url, "wrong-secret"));
    assert!(refused.contains("invalid_client") && refused.contains("backup-client"), "{refused}");
    assert!(!refused.contains("wrong-secret"), "the secret is never printed: {refused}");
}

#[test]
fn aws_msk_iam_on_a_listener_without_it_fails_naming_what_the_listener_offers() {
    let source = KafkaCluster::source();
    let dir = TempDir::new().unwrap();
    let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), "msk", "*", "");
    let settings = "  security_protocol: SASL_PLAINTEXT\n  sasl_mechanism: AWS_MSK_IAM\n  sasl_aws_region: eu-west-1\n";
    let text_config = std::fs::read_to_string(&config).unwrap().replace("  topics:", &format!("{settings}  topics:"));
    std::fs::write(&config, text_config).unwrap();
    let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    let output = binary()
        .args(["backup", "--config", config.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("does not offer AWS_MSK_IAM") && stderr.contains("SCRAM-SHA-512"), "{stderr}");
    assert!(!stderr.contains(secret) && !text(&output.stdout).contains(secret));
}

#[test]
fn a_selected_group_the_principal_may_not_describe_is_a_warning_not_a_failed_backup() {
    let bootstrap = KafkaCluster::source().bootstrap();
    let topic = unique("grouped");
    testkit::create_topic(&bootstrap, &topic, 1, &[]);
    testkit::produce_small(&bootstrap, &topic, 0, 5);
    let (visible, hidden) = (unique("visible"), unique("hidden-group"));
    for group in [&visible, &hidden] {
        testkit::commit(&bootstrap, group, &[(&topic, 0, 3)]);
    }
    testkit::add_acl(&bootstrap, "group", &hidden, "User:alice", "DESCRIBE", "DENY");
    let dir = TempDir::new().unwrap();
    let source = KafkaCluster::source();
    let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), "groups", &topic, "");
    let settings = sasl_settings("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret");
    with_connection_settings(
        &config,
        "  topics:",
        &format!("{settings}  groups:\n    include: [\"{visible}\", \"{hidden}\"]\n"),
    );
    let output = wait_with_deadline(spawn(&["backup", "--config", config.to_str().unwrap()], false), HANG);
    assert_success(&output);
    let summary = text(&output.stdout);
    assert!(summary.contains(&format!("WARNING offsets of group {hidden} were not captured")), "{summary}");
    assert!(summary.contains("lacks the ACL Describe"), "{summary}");
    assert!(!summary.contains(&format!("group {visible} were not")), "{summary}");
    assert_eq!(backed_up_records(dir.path(), "groups", &topic).len(), 5);
}

#[test]
fn a_progress_group_the_principal_may_not_commit_to_is_a_warning_not_a_failed_backup() {
    let source = KafkaCluster::source();
    let bootstrap = source.bootstrap();
    let topic = unique("lag-denied");
    testkit::create_topic(&bootstrap, &topic, 1, &[]);
    testkit::produce_small(&bootstrap, &topic, 0, 5);
    let (denied, allowed) = (unique("lag-denied"), unique("lag-allowed"));
    testkit::add_acl(&bootstrap, "group", &denied, "User:alice", "READ", "DENY");
    let dir = TempDir::new().unwrap();
    let settings = sasl_settings("SASL_PLAINTEXT", "SCRAM-SHA-256", "alice", "alice-secret");
    let run_as_alice = |id: &str, group: &str| {
        let config = write_config(dir.path(), &source.listener("SASL_PLAINTEXT"), id, &topic, "");
        with_connection_settings(&config, "  topics:", &format!("{settings}  progress_group: {group}\n"));
        wait_with_deadline(spawn(&["backup", "--config", config.to_str().unwrap()], false), HANG)
    };
    let output = run_as_alice("lag-denied", &denied);
    assert_success(&output);
    let stderr = text(&output.stderr);
    assert!(stderr.contains("source.progress_group") && stderr.contains("Read on the group"), "{stderr}");
    assert_eq!(backed_up_records(dir.path(), "lag-denied", &topic).len(), 5, "the backup itself is complete");
    // (-1001: librdkafka's "no committed offset")
    assert_eq!(testkit::committed(&bootstrap, &denied, &topic, &[0]), [(0, -1001)].into(), "nothing was committed");

    // A group she may use shows the backup's position, read with confluent-kafka.
    assert_success(&run_as_alice("lag-allowed", &allowed));
    assert_eq!(testkit::committed(&bootstrap, &allowed, &topic, &[0]), [(0, 5)].into());
}

#[test]
fn acls_quotas_and_users_of_the_source_are_restored_acls_under_the_renamed_topic() {
    let (source, target) = (KafkaCluster::source(), KafkaCluster::target());
    let (topic, other, group) = (unique("guarded"), unique("unguarded"), unique("guarded-readers"));
    testkit::create_topic(&source.bootstrap(), &topic, 1, &[]);
    testkit::create_topic(&source.bootstrap(), &other, 1, &[]);
    let records = vec![RefRecord { partition: Some(0), value: Some(b"v".to_vec()), ..RefRecord::default() }];
    testkit::produce(&source.bootstrap(), &topic, &records, &[]);
    testkit::commit(&source.bootstrap(), &group, &[(&topic, 0, 1)]);
    let principal = format!("User:{}", unique("reader"));
    testkit::add_acl(&source.bootstrap(), "topic", &topic, &principal, "READ", "ALLOW");
    testkit::add_acl(&source.bootstrap(), "topic", &topic, &principal, "DESCRIBE", "ALLOW");
    testkit::add_acl(&source.bootstrap(), "group", &group, &principal, "READ", "ALLOW");
    // A binding on a topic the backup does not hold is not kept.
    testkit::add_acl(&source.bootstrap(), "topic", &other, &principal, "WRITE", "DENY");
    // A client quota, set and read back with Kafka's own kafka-configs.
    let user = principal.trim_start_matches("User:").to_string();
    let quota_args = ["--alter", "--add-config", "producer_byte_rate=1048576,consumer_byte_rate=2097152"];
    testkit::kafka_configs(
        &source.bootstrap(),
        &[&quota_args[..], &["--entity-type", "users", "--entity-name", &user]].concat(),
    );

    let dir = TempDir::new().unwrap();
    assert_success(&backup(&write_config(dir.path(), &source.bootstrap(), "guarded", &topic, "")));
    // `describe` shows what the backup holds of them.
    let described = describe_json(dir.path(), "guarded");
    let kept = described["access"]["acls"].as_array().expect("the ACL bindings kept");
    let ours = kept.iter().filter(|b| b["principal"] == principal.as_str()).count();
    assert_eq!(ours, 3, "the topic's two and the group's, not the other topic's: {}", described["access"]);
    let restored = unique("guarded-copy");
    let settings = format!("  topic_mapping:\n    {topic}: {restored}\n  metadata: [acls, quotas, users]\n");
    let config = write_restore_config(dir.path(), "guarded", &target.bootstrap(), "guarded", &settings);
    let binding = |kind: &str, name: &str, operation: &str| {
        [kind, name, "LITERAL", &principal, "*", operation, "ALLOW"].map(str::to_string)
    };
    let of_principal = |bootstrap: &str| -> Vec<[String; 7]> {
        testkit::acls(bootstrap).into_iter().filter(|b| b[3] == principal).collect()
    };
    // The dry run lists every binding it would create, under the target's topic name.
    let dry = restore(&config, &["--dry-run"]);
    assert_success(&dry);
    let plan = text(&dry.stdout);
    assert!(plan.contains(&format!("ACL ALLOW {principal} READ on TOPIC {restored} (LITERAL)")), "{plan}");
    assert!(plan.contains(&format!("ACL ALLOW {principal} READ on GROUP {group} (LITERAL)")), "{plan}");
    assert!(!plan.contains(&other), "a topic the backup does not hold: {plan}");
    assert!(
        plan.contains(&format!("QUOTA user={user}: consumer_byte_rate=2097152,producer_byte_rate=1048576")),
        "{plan}"
    );
    // The source's SCRAM users are listed, to be created with their passwords (never returned).
    assert!(plan.contains("SCRAM user alice (SCRAM-SHA-512, 4096 iterations) is not created"), "{plan}");
    assert!(!plan.contains("alice-secret"), "{plan}");
    assert!(of_principal(&target.bootstrap()).is_empty(), "a dry run creates nothing");
    let quotas_of = |bootstrap: &str| {
        testkit::kafka_configs(bootstrap, &["--describe", "--entity-type", "users", "--entity-name", &user])
    };
    assert!(!quotas_of(&target.bootstrap()).contains("producer_byte_rate"), "a dry run sets no quota");

    assert_success(&restore(&config, &[]));
    let mut expected = vec![
        binding("GROUP", &group, "READ"),
        binding("TOPIC", &restored, "DESCRIBE"),
        binding("TOPIC", &restored, "READ"),
    ];
    expected.sort();
    let mut found = of_principal(&target.bootstrap());
    found.sort();
    assert_eq!(found, expected, "the broker's own answer (confluent-kafka's admin client)");
    let quotas = quotas_of(&target.bootstrap());
    assert!(
        quotas.contains("producer_byte_rate=1048576.0") && quotas.contains("consumer_byte_rate=2097152.0"),
        "{quotas}"
    );
    // Run again, the bindings exist already: nothing changes, nothing fails.
    assert_success(&restore(&config, &[]));
    assert_eq!(of_principal(&target.bootstrap()).len(), 3);
}
