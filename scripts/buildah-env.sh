# Sourced by the scripts and tests that use buildah: its storage lives in the repo's .test-infra
# (vfs: no overlay mounts, no daemon, no root-owned /var/lib/containers), as BUILDAH_STORAGE flags.
buildah_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.test-infra/containers"
BUILDAH_STORAGE=(--root "$buildah_root/storage" --runroot "$buildah_root/run" --storage-driver vfs)
