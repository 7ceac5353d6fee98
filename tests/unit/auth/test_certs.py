"""The PKI: generation, reuse, renewal of the serving certificate, client certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubelite.apiserver import certs


def _cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_creates_ca_and_serving_cert(tmp_path: Path) -> None:
    pki = certs.load_or_create_pki(tmp_path, extra_sans=["api.example.com", "203.0.113.7"])

    assert pki.tls_dir == tmp_path / "tls"
    assert _mode(pki.tls_dir) == 0o700
    assert _mode(pki.ca_key_path) == 0o600
    assert _mode(pki.serving_key_path) == 0o600
    assert pki.ca_cert_path.read_bytes() == pki.ca_cert_pem

    ca = _cert(pki.ca_cert_pem)
    assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kubelite-ca"
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = ca.not_valid_after_utc - ca.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3652)

    serving = _cert(pki.serving_cert_pem)
    serving.verify_directly_issued_by(ca)
    lifetime = serving.not_valid_after_utc - serving.not_valid_before_utc
    assert dt.timedelta(days=364) < lifetime < dt.timedelta(days=366)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    sans = certs.certificate_sans(serving)
    assert {"localhost", "127.0.0.1", "::1", "10.96.0.1", "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
            "api.example.com", "203.0.113.7"} <= sans
    assert certs.default_sans() <= sans
    san_ext = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.96.0.1") in san_ext.get_values_for_type(x509.IPAddress)


def test_default_sans_cover_host_and_bind_address() -> None:
    sans = certs.default_sans(bind_address="198.51.100.4")
    assert "198.51.100.4" in sans
    assert {str(a) for a in certs.host_addresses()} <= sans
    assert "0.0.0.0" not in certs.default_sans(bind_address="0.0.0.0")
    assert all(not a.is_loopback for a in certs.host_addresses())


def test_later_starts_reuse_everything(tmp_path: Path) -> None:
    first = certs.load_or_create_pki(tmp_path, extra_sans=["a.example"])
    again = certs.load_or_create_pki(tmp_path, extra_sans=["A.example"])
    assert again == first


def test_new_san_reissues_serving_cert_and_keeps_ca(tmp_path: Path) -> None:
    first = certs.load_or_create_pki(tmp_path, extra_sans=["a.example"])
    second = certs.load_or_create_pki(tmp_path, extra_sans=["a.example", "b.example", "192.0.2.99"])

    assert second.ca_cert_pem == first.ca_cert_pem
    assert second.ca_key_pem == first.ca_key_pem
    assert second.serving_cert_pem != first.serving_cert_pem
    assert second.serving_key_pem != first.serving_key_pem
    assert {"a.example", "b.example", "192.0.2.99"} <= certs.certificate_sans(_cert(second.serving_cert_pem))
    assert second.serving_cert_path.read_bytes() == second.serving_cert_pem


def test_serving_cert_close_to_expiry_is_reissued(tmp_path: Path) -> None:
    first = certs.load_or_create_pki(tmp_path)
    expiring, key = certs.issue_serving_cert(first.ca, sorted(certs.default_sans()),
                                             validity=dt.timedelta(days=20))
    first.serving_cert_path.write_bytes(expiring)
    first.serving_key_path.write_bytes(key)

    renewed = certs.load_or_create_pki(tmp_path)
    assert renewed.ca_cert_pem == first.ca_cert_pem
    assert renewed.serving_cert_pem != expiring
    assert _cert(renewed.serving_cert_pem).not_valid_after_utc > certs._now() + dt.timedelta(days=300)


@pytest.mark.parametrize("damage", [
    pytest.param("key", id="key-not-matching-cert"),
    pytest.param("foreign-ca", id="signed-by-another-ca"),
])
def test_unusable_serving_cert_is_reissued(tmp_path: Path, damage: str) -> None:
    first = certs.load_or_create_pki(tmp_path)
    if damage == "key":
        _, other_key = certs.issue_serving_cert(first.ca, ["localhost"])
        first.serving_key_path.write_bytes(other_key)
    else:
        foreign, foreign_key = certs.issue_serving_cert(certs.create_ca(), sorted(certs.default_sans()))
        first.serving_cert_path.write_bytes(foreign)
        first.serving_key_path.write_bytes(foreign_key)

    renewed = certs.load_or_create_pki(tmp_path)
    _cert(renewed.serving_cert_pem).verify_directly_issued_by(_cert(first.ca_cert_pem))
    # The context loads only when key and certificate belong together.
    certs.ssl_server_context(renewed)


def test_missing_ca_creates_new_ca_and_serving_cert(tmp_path: Path) -> None:
    first = certs.load_or_create_pki(tmp_path)
    first.ca_key_path.unlink()
    second = certs.load_or_create_pki(tmp_path)
    assert second.ca_cert_pem != first.ca_cert_pem
    _cert(second.serving_cert_pem).verify_directly_issued_by(_cert(second.ca_cert_pem))


def test_client_cert_carries_user_and_groups(tmp_path: Path) -> None:
    pki = certs.load_or_create_pki(tmp_path)
    cert_pem, key_pem = certs.issue_client_cert(pki.ca, "system:node:n1", ["system:nodes", "extra"])
    cert = _cert(cert_pem)
    cert.verify_directly_issued_by(_cert(pki.ca_cert_pem))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:n1"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:nodes", "extra"]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert b"PRIVATE KEY" in key_pem


def test_server_context_requests_optional_client_certs(tmp_path: Path) -> None:
    ctx = certs.ssl_server_context(certs.load_or_create_pki(tmp_path))
    assert ctx.verify_mode == ssl.CERT_OPTIONAL
    assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_write_atomic_sets_mode_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "secret"
    certs.write_atomic(target, b"one", mode=0o600)
    certs.write_atomic(target, b"two", mode=0o600)
    assert target.read_bytes() == b"two"
    assert _mode(target) == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["secret"]
