"""Certificates for the HTTPS listener, chosen per handshake by SNI.

The listener's `ssl.SSLContext` carries the gateway's default certificate (self-signed, made at start,
like ingress-nginx's "Fake Certificate") and an ``sni_callback`` that looks the client's server name up
in the current `RouteTable` and switches the connection to that certificate's own context. Contexts are
built ahead, when a table is installed (`TLSStore.update`), never during a handshake; one context serves
every host that uses the same Secret content. A Secret whose certificate or key cannot be loaded, or
whose certificate does not name a host it is used for, is reported (the first falls back to the default
certificate; the second is served anyway, as ingress-nginx does, since clients may not check).

Private keys are loaded through files (the ssl module cannot load them from memory) in a private
temporary folder, in /dev/shm where it exists so that they never reach a disk, deleted at once.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kubelite.proxy.ingress.routes import Certificate, RouteTable, host_matches

log = logging.getLogger(__name__)

DEFAULT_CERT_SUBJECT = "kubelite Ingress Controller Fake Certificate"
DEFAULT_CERT_HOST = "ingress.local"
INVALID_CERTIFICATE = "InvalidCertificate"
CERTIFICATE_MISMATCH = "CertificateHostMismatch"
_KEY_DIRS = ("/dev/shm",)


@dataclass(frozen=True, slots=True)
class CertificateProblem:
    certificate: Certificate
    reason: str
    message: str


def self_signed(common_name: str = DEFAULT_CERT_SUBJECT, hosts: Iterable[str] = (DEFAULT_CERT_HOST,),
                days: int = 365) -> tuple[bytes, bytes]:
    """A new self-signed certificate (ECDSA P-256) and its key, as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "kubelite")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def server_context(chain_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    """A server context for one certificate chain and key; `ssl.SSLError` when they do not load or match."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    key_dir = next((d for d in _KEY_DIRS if os.access(d, os.W_OK)), None)
    with tempfile.TemporaryDirectory(prefix="kubelite-ingress-", dir=key_dir) as folder:
        chain_path, key_path = Path(folder) / "tls.crt", Path(folder) / "tls.key"
        for path, data in ((chain_path, chain_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        context.load_cert_chain(chain_path, key_path)
    return context


def certificate_names(chain_pem: bytes) -> list[str]:
    """The DNS names the leaf certificate is for: its subjectAltName DNS entries, else its common name."""
    leaf = x509.load_pem_x509_certificate(chain_pem)
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n).lower() for n in san.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value).lower() for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def covers(names: Iterable[str], host: str) -> bool:
    """Whether a certificate for ``names`` is valid for ``host`` (a rule host, maybe ``*.``-prefixed)."""
    for name in names:
        if name == host or (name.startswith("*.") and not host.startswith("*.") and host_matches(name, host)):
            return True
    return False


class TLSStore:
    """The HTTPS listener's certificates; see the module docstring."""

    def __init__(self, default_chain_pem: bytes | None = None, default_key_pem: bytes | None = None) -> None:
        if default_chain_pem is None or default_key_pem is None:
            default_chain_pem, default_key_pem = self_signed()
        self.default_chain_pem = default_chain_pem
        self.context = server_context(default_chain_pem, default_key_pem)
        self.context.sni_callback = self._pick
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._table = RouteTable()

    def update(self, table: RouteTable) -> list[CertificateProblem]:
        """Build the contexts ``table`` needs (reusing those of unchanged certificates), then use it for
        new handshakes. Returns what is wrong with its certificates."""
        problems: list[CertificateProblem] = []
        contexts: dict[str, ssl.SSLContext] = {}
        names: dict[str, list[str]] = {}
        for cert in table.all_certificates():
            fingerprint = cert.fingerprint
            if fingerprint in contexts or fingerprint in names:
                continue
            try:
                contexts[fingerprint] = self._contexts.get(fingerprint) or server_context(cert.chain_pem, cert.key_pem)
                names[fingerprint] = certificate_names(cert.chain_pem)
            except (ssl.SSLError, ValueError, OSError) as e:
                contexts.pop(fingerprint, None)
                names[fingerprint] = []
                problems.append(CertificateProblem(cert, INVALID_CERTIFICATE, f"secret {cert.secret} holds no usable "
                                                   f"certificate and key ({e}); its hosts get the default certificate"))
        for host, cert in [*table.certificates.items(),
                           *((f"*.{h}", c) for h, c in table.wildcard_certificates.items())]:
            cert_names = names.get(cert.fingerprint)
            if cert_names and not covers(cert_names, host):
                problems.append(CertificateProblem(
                    cert, CERTIFICATE_MISMATCH, f'the certificate in secret {cert.secret} is not valid for host '
                    f'"{host}" (it is for {", ".join(cert_names)})'))
        self._contexts = contexts
        self._table = table
        return problems

    def context_for(self, server_name: str | None) -> ssl.SSLContext:
        """The context a handshake for ``server_name`` gets."""
        cert = self._table.certificate(server_name)
        if cert is not None:
            context = self._contexts.get(cert.fingerprint)
            if context is not None:
                return context
        return self.context

    def _pick(self, connection: ssl.SSLObject | ssl.SSLSocket, server_name: str | None,
              _context: ssl.SSLContext) -> int | None:
        context = self.context_for(server_name)
        if context is not self.context:
            connection.context = context
        return None
