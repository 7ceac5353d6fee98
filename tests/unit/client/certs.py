"""Throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1/localhost, a client certificate."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Pem:
    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _issue(subject: str, issuer: x509.Name | None, issuer_key: ec.EllipticCurvePrivateKey | None, *,
           ca: bool = False, sans: list[x509.GeneralName] | None = None,
           usage: list[x509.ObjectIdentifier] | None = None,
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False), critical=True)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                                        critical=False)
    else:
        assert issuer_key is not None
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256()), key


@dataclass
class Pki:
    ca: Pem
    server: Pem
    client: Pem

    def write(self, directory: Path) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, pem in (("ca", self.ca), ("server", self.server), ("client", self.client)):
            paths[f"{name}.crt"] = directory / f"{name}.crt"
            paths[f"{name}.key"] = directory / f"{name}.key"
            paths[f"{name}.crt"].write_bytes(pem.cert)
            paths[f"{name}.key"].write_bytes(pem.key)
        return paths


def make_pki(server_names: tuple[str, ...] = ("localhost",), *, include_ip: bool = True) -> Pki:
    ca_cert, ca_key = _issue("test-ca", None, None, ca=True)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
    if include_ip:
        sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    srv_cert, srv_key = _issue("server", ca_cert.subject, ca_key, sans=sans,
                               usage=[ExtendedKeyUsageOID.SERVER_AUTH])
    cli_cert, cli_key = _issue("alice", ca_cert.subject, ca_key, usage=[ExtendedKeyUsageOID.CLIENT_AUTH])
    enc = serialization.Encoding.PEM
    return Pki(Pem(ca_cert.public_bytes(enc), _key_pem(ca_key)),
               Pem(srv_cert.public_bytes(enc), _key_pem(srv_key)),
               Pem(cli_cert.public_bytes(enc), _key_pem(cli_key)))
