#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it on a fresh machine: installs the test
# infrastructure (Tansu broker, confluent-kafka), then checks formatting, lints, and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-infra.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
scripts/demo.sh   # the README's first command must keep working
