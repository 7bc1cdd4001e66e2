#!/usr/bin/env python3
"""A TLS server whose certificate, signed by the test CA, expired a year ago: for the "expired
certificate" test (the brokers' own certificates are valid, and a broker cannot be given another).

Usage: expired_tls_server.py TLS_DIR
  Signs a certificate for localhost and 127.0.0.1 with TLS_DIR/ca.key, valid from two years ago to
  one year ago; listens on a free 127.0.0.1 port, prints "ready PORT", and offers the certificate
  to every connection (the client's handshake fails before any Kafka request). Runs until stdin
  closes.
"""
import datetime
import ipaddress
import os
import socket
import ssl
import sys
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def expired_certificate(tls_dir, directory):
    with open(os.path.join(tls_dir, "ca.key"), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(tls_dir, "ca.pem"), "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=730))
        .not_valid_after(now - datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "expired.pem"), os.path.join(directory, "expired.key")
    with open(cert_path, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def serve(listener, context):
    while True:
        client, _ = listener.accept()
        try:
            context.wrap_socket(client, server_side=True).close()
        except (ssl.SSLError, OSError):
            client.close()


def main():
    with tempfile.TemporaryDirectory() as directory:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*expired_certificate(sys.argv[1], directory))
        listener = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=serve, args=(listener, context), daemon=True).start()
        print(f"ready {listener.getsockname()[1]}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
