"""The cluster's PKI: one CA, the API server's serving certificate, and client certificates.

Layout under ``<data_dir>/tls/`` (keys 0600, certificates 0644, the folder 0700)::

    ca.crt  ca.key            the cluster CA: ECDSA P-256, 10 years, CN "kubelite-ca"
    serving.crt serving.key   the API server's certificate, signed by the CA, 1 year

Contracts:
- ``load_or_create_pki`` creates what is missing and reuses what exists. The CA is never replaced
  while its files are present (every kubeconfig and node identity trusts it). The serving
  certificate is issued again when a requested subject alternative name is missing from it, when it
  expires within 30 days, or when it was not signed by the current CA.
- Concurrent callers on one data dir are serialised by an advisory lock, and every file is written
  to a temporary name and renamed, so a reader never sees half a key.
- ``ssl_server_context`` serves the serving certificate and asks (optionally) for a client
  certificate, which the TLS layer verifies against the CA; authentication then trusts whatever
  certificate reached it (see ``auth.authn.ClientCertAuthenticator``).

Everything here is synchronous file and key work; call it from async code through
``asyncio.to_thread`` when the loop must stay responsive.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import ipaddress
import os
import socket
import ssl
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_COMMON_NAME = "kubelite-ca"
SERVING_COMMON_NAME = "kube-apiserver"
CA_VALIDITY = dt.timedelta(days=3650)
SERVING_VALIDITY = dt.timedelta(days=365)
CLIENT_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
# Certificates start a little in the past so that a host whose clock lags behind still accepts them.
BACKDATE = dt.timedelta(hours=1)

# The names in-cluster clients use for the API server, and the first IP of the default service CIDR
# (10.96.0.0/12), which the `kubernetes` Service in `default` gets.
CLUSTER_SANS = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
)
LOOPBACK_SANS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True, slots=True)
class CertificateAuthority:
    """A CA able to sign certificates: its certificate and private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def from_pem(cls, cert_pem: bytes, key_pem: bytes) -> CertificateAuthority:
        key = serialization.load_pem_private_key(key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key is not an ECDSA key")
        return cls(x509.load_pem_x509_certificate(cert_pem), key)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True, slots=True)
class PKI:
    """Where the cluster's TLS material lives, and its PEM bytes as loaded or created."""

    tls_dir: Path
    ca_cert_path: Path
    ca_key_path: Path
    serving_cert_path: Path
    serving_key_path: Path
    ca_cert_pem: bytes
    ca_key_pem: bytes
    serving_cert_pem: bytes
    serving_key_pem: bytes

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority.from_pem(self.ca_cert_pem, self.ca_key_pem)


def load_or_create_pki(data_dir: str | os.PathLike[str], *, extra_sans: Iterable[str] = (),
                       bind_address: str | None = None) -> PKI:
    """Load the PKI under ``<data_dir>/tls``, creating or renewing what is needed (see module doc).

    ``extra_sans`` are host names or IP addresses clients will also use (``--tls-san``);
    ``bind_address`` is the address the server listens on, added when it is a specific one.
    """
    tls_dir = Path(data_dir) / "tls"
    tls_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(tls_dir, 0o700)
    paths = {name: tls_dir / name for name in ("ca.crt", "ca.key", "serving.crt", "serving.key")}
    wanted = default_sans(bind_address=bind_address) | {_normalize_san(s) for s in extra_sans if s.strip()}

    with _locked(tls_dir / ".lock"):
        if paths["ca.crt"].exists() and paths["ca.key"].exists():
            ca_key_pem = paths["ca.key"].read_bytes()
            ca = CertificateAuthority.from_pem(paths["ca.crt"].read_bytes(), ca_key_pem)
        else:
            ca = create_ca()
            ca_key_pem = _key_pem(ca.key)
            write_atomic(paths["ca.key"], ca_key_pem, mode=0o600)
            write_atomic(paths["ca.crt"], ca.cert_pem, mode=0o644)
            # A new CA invalidates any serving certificate signed by an old one.
            paths["serving.crt"].unlink(missing_ok=True)

        if _serving_is_current(paths["serving.crt"], paths["serving.key"], ca, wanted):
            serving_cert_pem = paths["serving.crt"].read_bytes()
            serving_key_pem = paths["serving.key"].read_bytes()
        else:
            serving_cert_pem, serving_key_pem = issue_serving_cert(ca, sorted(wanted))
            write_atomic(paths["serving.key"], serving_key_pem, mode=0o600)
            write_atomic(paths["serving.crt"], serving_cert_pem, mode=0o644)

        return PKI(
            tls_dir=tls_dir,
            ca_cert_path=paths["ca.crt"],
            ca_key_path=paths["ca.key"],
            serving_cert_path=paths["serving.crt"],
            serving_key_path=paths["serving.key"],
            ca_cert_pem=ca.cert_pem,
            ca_key_pem=ca_key_pem,
            serving_cert_pem=serving_cert_pem,
            serving_key_pem=serving_key_pem,
        )


def create_ca(common_name: str = CA_COMMON_NAME) -> CertificateAuthority:
    """A new self-signed CA (ECDSA P-256, valid 10 years) allowed to sign leaf certificates only."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(cert, key)


def issue_serving_cert(ca: CertificateAuthority, sans: Iterable[str], *,
                       common_name: str = SERVING_COMMON_NAME,
                       validity: dt.timedelta = SERVING_VALIDITY) -> tuple[bytes, bytes]:
    """A TLS server certificate for ``sans`` (host names and IP addresses), as (cert PEM, key PEM)."""
    san = x509.SubjectAlternativeName([_general_name(s) for s in sans])
    return _issue(ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]),
                  ExtendedKeyUsageOID.SERVER_AUTH, validity, san)


def issue_client_cert(ca: CertificateAuthority, common_name: str, organizations: Iterable[str] = (), *,
                      validity: dt.timedelta = CLIENT_VALIDITY) -> tuple[bytes, bytes]:
    """A TLS client certificate as (cert PEM, key PEM).

    The API server reads the user name from the CN and the groups from the O entries, as
    kube-apiserver does: ``issue_client_cert(ca, "admin", ["system:masters"])`` is a cluster admin,
    ``issue_client_cert(ca, "system:node:n1", ["system:nodes"])`` a node identity.
    """
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return _issue(ca, x509.Name(attributes), ExtendedKeyUsageOID.CLIENT_AUTH, validity, None)


def ssl_server_context(pki: PKI) -> ssl.SSLContext:
    """A server-side TLS context serving the serving certificate and verifying optional client
    certificates against the cluster CA (a client without one still connects, for bearer tokens)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(pki.serving_cert_path, pki.serving_key_path)
    ctx.load_verify_locations(cafile=str(pki.ca_cert_path))
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def default_sans(*, bind_address: str | None = None) -> set[str]:
    """The names every serving certificate carries: loopback, this host's name and addresses, the
    in-cluster names of the API server, and ``bind_address`` when it is not a wildcard."""
    sans = set(LOOPBACK_SANS) | set(CLUSTER_SANS)
    hostname = socket.gethostname()
    if hostname:
        sans.add(hostname.lower())
    sans.update(str(a) for a in host_addresses())
    if bind_address:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(bind_address)
            if not address.is_unspecified:
                sans.add(str(address))
    return {_normalize_san(s) for s in sans}


def host_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """This host's non-loopback, non-link-local addresses: those its host name resolves to, and on
    Linux those configured on its interfaces (so that other hosts can reach the server by IP)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(socket.gethostname(), None):
            found.add(str(info[4][0]).split("%")[0])
    found.update(_interface_ipv4())
    found.update(_interface_ipv6())
    out: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for text in found:
        with contextlib.suppress(ValueError):
            address = ipaddress.ip_address(text)
            if not (address.is_loopback or address.is_link_local or address.is_unspecified):
                out.add(address)
    return out


def certificate_sans(cert: x509.Certificate) -> set[str]:
    """The subject alternative names of ``cert`` in the normalized text form used by ``wanted``."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {n.lower() for n in ext.get_values_for_type(x509.DNSName)}
    names.update(str(a) for a in ext.get_values_for_type(x509.IPAddress))
    return names


def _serving_is_current(cert_path: Path, key_path: Path, ca: CertificateAuthority, wanted: set[str]) -> bool:
    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca.cert)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError, InvalidSignature):
        return False
    # The key and the certificate are renamed into place one after the other; a crash in between
    # leaves a pair that does not match, which must be issued again rather than served.
    if key.public_key() != cert.public_key():
        return False
    if cert.not_valid_after_utc - _now() < RENEW_BEFORE:
        return False
    return wanted <= certificate_sans(cert)


def _issue(ca: CertificateAuthority, subject: x509.Name, usage: x509.ObjectIdentifier,
           validity: dt.timedelta, san: x509.SubjectAlternativeName | None) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        # A leaf never outlives the CA that vouches for it.
        .not_valid_after(min(now + validity, ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                       critical=False)
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    # ECDSA keys sign; they never encipher keys, so keyEncipherment stays off.
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _general_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _normalize_san(san: str) -> str:
    san = san.strip()
    try:
        return str(ipaddress.ip_address(san))
    except ValueError:
        return san.lower()


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_atomic(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so that a reader sees the
    old content or the new, never a mix; the file has ``mode`` from its creation on (secrets are
    never readable by others, not even for a moment). Parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _interface_ipv4() -> set[str]:
    """IPv4 address of each interface, through the SIOCGIFADDR ioctl (Linux; empty elsewhere)."""
    siocgifaddr = 0x8915
    out: set[str] = set()
    try:
        interfaces = socket.if_nameindex()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return out
    with sock:
        for _, name in interfaces:
            request = struct.pack("256s", name.encode()[:15])
            try:
                reply = fcntl.ioctl(sock.fileno(), siocgifaddr, request)
            except OSError:  # an interface without an IPv4 address
                continue
            out.add(socket.inet_ntoa(reply[20:24]))
    return out


def _interface_ipv6() -> set[str]:
    """Global IPv6 addresses from /proc/net/if_inet6 (Linux; empty elsewhere)."""
    out: set[str] = set()
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[3] == "00":  # scope 00 = global
            out.add(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return out
