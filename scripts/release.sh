#!/usr/bin/env bash
# Builds the release artifacts of this commit into target/dist/VERSION/: the static binary's
# tarball (binary, man page, shell completions, LICENSE, README, CHANGELOG), the container image's
# OCI archive and the packaged Helm chart, with SHA256SUMS over all three. Refuses a chart whose
# version or appVersion differs from the crates' version. Prints the directory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
binary=$(scripts/static-binary.sh)
version=$("$binary" --version | awk '{ print $2 }')
chart=deploy/helm/kafka-backup
for key in version appVersion; do
  value=$(awk -v key="$key:" '$1 == key { gsub(/"/, "", $2); print $2 }' "$chart/Chart.yaml")
  [ "$value" = "$version" ] || { echo "release: $chart/Chart.yaml has $key $value, the binary is $version" >&2; exit 1; }
done
image=$(scripts/image.sh)
dist="target/dist/$version"
rm -rf "$dist"
mkdir -p "$dist"

name="kafka-backup-$version-x86_64-linux-musl"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/completions"
cp "$binary" LICENSE README.md CHANGELOG.md "$stage/$name/"
"$binary" man >"$stage/$name/kafka-backup.1"
for shell in bash zsh fish; do
  "$binary" completions "$shell" >"$stage/$name/completions/kafka-backup.$shell"
done
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$dist/$name.tar.gz" "$name"
cp "$image" "$dist/"
.test-infra/bin/helm package "$chart" --destination "$dist" >/dev/null
(cd "$dist" && sha256sum -- * >SHA256SUMS)
echo "$root/$dist"
