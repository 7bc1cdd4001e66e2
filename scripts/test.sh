#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it on a fresh machine: installs the test
# infrastructure (Tansu broker, confluent-kafka), checks formatting and lints, runs every test
# and the README's demo, then prints one total line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-infra.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
scripts/demo.sh   # the README's first command must keep working
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
