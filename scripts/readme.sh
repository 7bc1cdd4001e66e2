#!/usr/bin/env bash
# Runs the README's walkthrough as a new user would: every ```bash block of README.md after the
# first (the first holds the two fresh-machine commands, scripts/demo.sh and scripts/test.sh),
# in order, in one shell, from the repository root, on fresh local clusters and an empty
# ./backups. A block that fails fails this script: the README cannot drift from the code.
set -euo pipefail
cd "$(dirname "$0")/.."

script=$(mktemp)
trap 'rm -f "$script"; scripts/brokers.sh stop >/dev/null 2>&1 || true' EXIT
awk '
  /^```bash$/ { blocks++; inside = 1; next }
  /^```$/ && inside { inside = 0; next }
  inside && blocks > 1 { print }
' README.md >"$script"
[ -s "$script" ] || { echo "readme: no walkthrough blocks found in README.md" >&2; exit 1; }

scripts/brokers.sh stop >/dev/null 2>&1 || true
rm -rf backups
echo "readme: running $(grep -c . "$script") lines of README.md's walkthrough"
bash -euo pipefail -x "$script"
rm -rf backups
echo "readme: the walkthrough ran to the end"
