"""TLS of the kubelet's HTTPS endpoint: who may call it, and its serving certificate.

Only the API server may call the kubelet (``/healthz`` aside). It proves who it is with a client
certificate issued by the cluster CA whose common name is `KUBELET_CLIENT_COMMON_NAME` (kubeadm's name for
the same credential); the TLS layer verifies the chain against the cluster CA the kubelet is given, and the
kubelet's middleware checks the name. The serving certificate is self-signed by a CA of the kubelet's own,
made on first start (as the kubelet does without ``--tls-cert-file``); the API server does not verify it,
as kube-apiserver does not without ``--kubelet-certificate-authority``.
"""

from __future__ import annotations

import datetime as dt
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubelite.apiserver.certs import (
    RENEW_BEFORE,
    certificate_sans,
    create_ca,
    issue_serving_cert,
    write_atomic,
)

KUBELET_CLIENT_COMMON_NAME = "kube-apiserver-kubelet-client"
SERVING_CERT_FILE = "kubelet.crt"
SERVING_KEY_FILE = "kubelet.key"


def ensure_serving_cert(directory: Path, *, node_name: str, sans: Iterable[str]) -> tuple[Path, Path]:
    """The kubelet's serving certificate and key under ``directory``, made (self-signed) when missing, when
    a wanted subject alternative name is not in it, or when it expires within 30 days. The certificate file
    holds the chain: the serving certificate, then the kubelet's own CA."""
    cert_path, key_path = directory / SERVING_CERT_FILE, directory / SERVING_KEY_FILE
    wanted = {s.lower() for s in sans if s} | {node_name.lower()}
    if _current(cert_path, key_path, wanted):
        return cert_path, key_path
    ca = create_ca(f"{node_name}-ca@{int(dt.datetime.now(dt.UTC).timestamp())}")
    cert_pem, key_pem = issue_serving_cert(ca, sorted(wanted), common_name=node_name)
    write_atomic(key_path, key_pem, mode=0o600)
    write_atomic(cert_path, cert_pem + ca.cert_pem, mode=0o644)
    return cert_path, key_path


def _current(cert_path: Path, key_path: Path, wanted: set[str]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        return False
    if key.public_key() != cert.public_key():
        return False
    if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < RENEW_BEFORE:
        return False
    return wanted <= certificate_sans(cert)


def server_ssl_context(cert_path: Path, key_path: Path, client_ca_pem: bytes) -> ssl.SSLContext:
    """Serve ``cert_path`` and verify client certificates against ``client_ca_pem`` (the cluster CA).

    A client without a certificate still connects (``/healthz``); every other path checks the name of a
    verified certificate (`client_common_name`)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    ctx.load_verify_locations(cadata=client_ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def client_common_name(peercert: Any) -> str | None:
    """The common name of a verified peer certificate (``SSLSocket.getpeercert()``), or None."""
    if not isinstance(peercert, dict):
        return None
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
