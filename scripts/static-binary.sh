#!/usr/bin/env bash
# Builds the static, stripped kafka-backup binary for x86_64 Linux (musl libc, with jemalloc as
# its allocator: docs/performance.md compares it with glibc, musl's own malloc and mimalloc) into
# target/static/kafka-backup and prints its path.
# Needs the musl target and musl-gcc (scripts/install-test-infra.sh installs both). Reuses a
# binary already built from the same commit and sources (CI builds it once per run).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
target=x86_64-unknown-linux-musl
out=target/static/kafka-backup
rustup target list --installed | grep -qx "$target" || { echo "static-binary: run scripts/install-test-infra.sh (the $target target is missing)" >&2; exit 1; }
command -v musl-gcc >/dev/null || { echo "static-binary: run scripts/install-test-infra.sh (musl-gcc, Debian's musl-tools, is missing)" >&2; exit 1; }
# ring and zstd compile C: with musl-gcc for this target.
export CC_x86_64_unknown_linux_musl=musl-gcc
# jemalloc's defaults (4 arenas per core, dirty pages kept 10 s) held 13 % more memory than glibc's
# malloc in the bench; two arenas and a 1 s decay bring it within 8 % at the same speed.
export JEMALLOC_SYS_WITH_MALLOC_CONF="narenas:2,dirty_decay_ms:1000,muzzy_decay_ms:0"
cargo build --locked --profile dist --target "$target" -p kafka-backup-cli >&2
mkdir -p target/static
cp "target/$target/dist/kafka-backup" "$out.tmp" && mv "$out.tmp" "$out"
echo "$root/$out"
