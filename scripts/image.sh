#!/usr/bin/env bash
# Builds the kafka-backup container image (deploy/image/Containerfile: FROM scratch, the static
# binary of scripts/static-binary.sh, CA certificates, a non-root user) with buildah, without a
# daemon, into target/image/kafka-backup-VERSION.oci.tar (an OCI archive: `podman load -i`,
# `skopeo copy oci-archive:...`), and leaves it in buildah's local storage under
# .test-infra/containers as localhost/kafka-backup:VERSION. Prints the archive's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v buildah >/dev/null || { echo "image: buildah is missing; run scripts/install-test-infra.sh" >&2; exit 1; }
binary=$(scripts/static-binary.sh)
version=$("$binary" --version | awk '{ print $2 }')
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp deploy/image/Containerfile deploy/image/passwd deploy/image/group "$binary" "$context/"
cp /etc/ssl/certs/ca-certificates.crt "$context/"
mkdir "$context/data"
mkdir -p target/image
archive="target/image/kafka-backup-$version.oci.tar"
# shellcheck source=scripts/buildah-env.sh
. scripts/buildah-env.sh
buildah "${BUILDAH_STORAGE[@]}" bud --isolation chroot --quiet \
  --label "org.opencontainers.image.version=$version" --label "org.opencontainers.image.revision=$commit" \
  -t "localhost/kafka-backup:$version" -f "$context/Containerfile" "$context" >&2
rm -f "$archive"
buildah "${BUILDAH_STORAGE[@]}" push --quiet "localhost/kafka-backup:$version" "oci-archive:$archive:kafka-backup:$version" >&2
echo "$root/$archive"
