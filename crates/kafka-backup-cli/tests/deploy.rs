//! What ships for deployment, checked as the tools that consume it check it: the systemd units
//! under `deploy/systemd` pass `systemd-analyze verify` (with the binary path pointed at the one
//! built here), and every `kafka-backup` command line in them parses.

use std::path::PathBuf;
use std::process::Command;

use kafka_backup_testkit::repo_root;

const INSTALLED: &str = "/usr/local/bin/kafka-backup";

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> =
        std::fs::read_dir(repo_root().join("deploy/systemd")).unwrap().map(|entry| entry.unwrap().path()).collect();
    units.sort();
    units
}

#[test]
fn systemd_units_verify_and_their_commands_parse() {
    let dir = tempfile::TempDir::new().unwrap();
    let binary = env!("CARGO_BIN_EXE_kafka-backup");
    let mut names = Vec::new();
    let mut commands = Vec::new();
    for unit in units() {
        let text = std::fs::read_to_string(&unit).unwrap();
        for line in text.lines() {
            if let Some(command) = line.strip_prefix("ExecStart=").or_else(|| line.strip_prefix("ExecStartPre=")) {
                commands.push(command.to_string());
            }
        }
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::write(dir.path().join(&name), text.replace(INSTALLED, binary)).unwrap();
        names.push(name);
    }
    assert!(names.iter().any(|n| n.ends_with(".timer")) && names.len() >= 3, "{names:?}");
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&names)
        .current_dir(dir.path())
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed to check the units");
    assert!(
        verify.status.success(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );

    // Each command line parses as written (its --help stops before anything runs).
    assert!(commands.len() >= 3, "{commands:?}");
    for command in commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        assert_eq!(words[0], INSTALLED, "{command}");
        let output = Command::new(binary).args(&words[1..]).arg("--help").output().unwrap();
        assert!(output.status.success(), "{command}: {}", String::from_utf8_lossy(&output.stderr));
    }
}
