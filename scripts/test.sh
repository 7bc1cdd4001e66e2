#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it on a fresh machine: installs the test
# infrastructure (Apache Kafka, test certificates, Tansu, confluent-kafka, buildah, the musl
# target, helm), checks formatting and lints, builds the static binary and the container image once
# (the image and deploy tests use them), runs every test (they start the shared Kafka clusters
# they need), the README's demo and its walkthrough (scripts/readme.sh), stops the clusters, then
# prints one total line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-infra.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
scripts/release.sh >/dev/null # the static binary, the image and the chart, built once; tests/image.rs and deploy.rs use them
log=$(mktemp)
trap 'rm -f "$log"; .test-infra/bin/python tools/clusters.py stop' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
scripts/demo.sh   # the README's first command must keep working
scripts/readme.sh # and its walkthrough, block by block
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
