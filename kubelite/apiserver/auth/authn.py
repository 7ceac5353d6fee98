"""Authentication: who is making this request.

The shape follows kube-apiserver's authenticator chain:

- A ``RequestAuthenticator`` looks at one kind of credential in a request. It returns the user, or
  ``None`` when the request carries no credential of its kind, and raises ``InvalidCredentials``
  when it carries one that is rejected (a wrong bearer token). ``ClientCertAuthenticator`` and
  ``BearerTokenAuthenticator`` are the two kinds today.
- A ``TokenAuthenticator`` resolves one bearer token; ``BearerTokenAuthenticator`` asks each of its
  token authenticators in turn. ``StaticTokenAuthenticator`` reads kube-apiserver's
  ``--token-auth-file`` CSV; service-account JWTs and node bootstrap tokens plug in beside it.
- ``Authenticator`` is the union: client certificate first, then bearer tokens (kube-apiserver's
  order); the first user found wins and gains the group ``system:authenticated``. When none is
  found it returns ``None``, or raises ``InvalidCredentials`` if some credential was rejected.
- ``authn_middleware`` stores the user on ``request[USER_KEY]`` (read it with ``request_user``).
  A request without credentials is answered 401 unless its path is public (the health and version
  endpoints, which Kubernetes' RBAC grants to ``system:unauthenticated``); there it proceeds as
  ``system:anonymous``. A rejected credential is a 401 on every path, public or not: a bad token
  is never taken for anonymous.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import os
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from cryptography import x509
from cryptography.x509.oid import NameOID

from kubelite.api.errors import unauthorized
from kubelite.apiserver.certs import write_atomic

log = logging.getLogger(__name__)

SYSTEM_MASTERS = "system:masters"
AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"
ANONYMOUS_USER = "system:anonymous"
# The `extra` key under which kube-apiserver records which credential authenticated a user.
CREDENTIAL_ID_KEY = "authentication.kubernetes.io/credential-id"
ADMIN_USER = "admin"
TOKEN_FILE = "tokens.csv"
PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version", "/cacerts")


@dataclass(frozen=True, slots=True)
class UserInfo:
    """An authenticated (or anonymous) user, as Kubernetes' ``user.Info``."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``authentication.k8s.io/v1`` UserInfo JSON (as in SelfSubjectReview and TokenReview)."""
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out


ANONYMOUS = UserInfo(ANONYMOUS_USER, groups=(UNAUTHENTICATED_GROUP,))

# Where the middleware leaves the user; a typed key, as aiohttp 3.14 warns about plain string keys.
USER_KEY = web.RequestKey("user", UserInfo)


class InvalidCredentials(Exception):
    """The request carried a credential, and it was rejected."""


class TokenAuthenticator(Protocol):
    async def authenticate_token(self, token: str) -> UserInfo | None:
        """The user ``token`` belongs to, or ``None`` when this authenticator does not know it."""
        ...


class RequestAuthenticator(Protocol):
    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The user behind ``request``; ``None`` when it has no credential of this kind.

        Raises ``InvalidCredentials`` when it has one and it is rejected.
        """
        ...


class StaticTokenAuthenticator:
    """Bearer tokens from a fixed table (kube-apiserver's ``--token-auth-file``).

    Lookups compare the SHA-256 of the presented token with every entry in constant time, so the
    time taken says nothing about how close a guess came to a real token.
    """

    def __init__(self, tokens: Mapping[str, UserInfo]) -> None:
        self._entries = [(_digest(token), user) for token, user in tokens.items()]

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str]) -> StaticTokenAuthenticator:
        return cls(read_token_file(path))

    async def authenticate_token(self, token: str) -> UserInfo | None:
        presented = _digest(token)
        found: UserInfo | None = None
        for digest, user in self._entries:
            # No early exit: every entry is compared whatever matched.
            if hmac.compare_digest(presented, digest):
                found = user
        return found


class BearerTokenAuthenticator:
    """``Authorization: Bearer <token>``, resolved by the first token authenticator that knows it."""

    def __init__(self, authenticators: Sequence[TokenAuthenticator]) -> None:
        self._authenticators = list(authenticators)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is None:
            return None
        for authenticator in self._authenticators:
            user = await authenticator.authenticate_token(token)
            if user is not None:
                return user
        raise InvalidCredentials("invalid bearer token")


class ClientCertAuthenticator:
    """A TLS client certificate: user name from the CN, groups from the O entries.

    The TLS layer (``certs.ssl_server_context``) has already verified the certificate against the
    cluster CA during the handshake; an unverified certificate never gets this far.
    """

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        cert = x509.load_der_x509_certificate(der)
        # The handshake checked validity once; a connection can outlive its certificate.
        if cert.not_valid_after_utc < datetime.now(UTC):
            raise InvalidCredentials("client certificate has expired")
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if not names or not names[0]:
            # kube-apiserver ignores a certificate without a CN rather than rejecting the request.
            return None
        groups = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
        credential_id = "X509SHA256=" + hashlib.sha256(der).hexdigest()
        return UserInfo(names[0], groups=groups, extra={CREDENTIAL_ID_KEY: (credential_id,)})


class Authenticator:
    """The union of request authenticators (see the module doc for the rules)."""

    def __init__(self, authenticators: Sequence[RequestAuthenticator]) -> None:
        self._authenticators = list(authenticators)

    @classmethod
    def standard(cls, tokens: Sequence[TokenAuthenticator]) -> Authenticator:
        """Client certificates, then bearer tokens resolved by ``tokens`` in order."""
        return cls([ClientCertAuthenticator(), BearerTokenAuthenticator(tokens)])

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        rejected: InvalidCredentials | None = None
        for authenticator in self._authenticators:
            try:
                user = await authenticator.authenticate(request)
            except InvalidCredentials as e:
                rejected = rejected or e
                continue
            if user is not None:
                return _with_authenticated_group(user)
        if rejected is not None:
            raise rejected
        return None


def authn_middleware(authenticator: RequestAuthenticator, *,
                     public_paths: Iterable[str] = PUBLIC_PATHS) -> Middleware:
    """An aiohttp middleware authenticating every request (see the module doc)."""
    public = frozenset(p.rstrip("/") for p in public_paths)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            user = await authenticator.authenticate(request)
        except InvalidCredentials as e:
            log.debug("unauthorized %s %s: %s", request.method, request.path, e)
            return _unauthorized()
        if user is None:
            if request.path.rstrip("/") not in public:
                return _unauthorized()
            user = ANONYMOUS
        request[USER_KEY] = user
        return await handler(request)

    return authenticate


def request_user(request: web.Request) -> UserInfo:
    """The user ``authn_middleware`` stored on ``request``."""
    user: UserInfo = request[USER_KEY]
    return user


def bearer_token(header: str) -> str | None:
    """The token in an ``Authorization`` header value, or ``None`` when it holds no bearer token.

    Parsed as kube-apiserver does: the scheme is case-insensitive and exactly one space separates
    it from the token.
    """
    parts = header.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def token_file_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / TOKEN_FILE


def read_token_file(path: str | os.PathLike[str]) -> dict[str, UserInfo]:
    """Parse a static token file: CSV rows ``token,user,uid[,"group1,group2"]``.

    As kube-apiserver: blank lines are skipped, a row with an empty token is skipped with a warning,
    a row with fewer than 3 columns is an error (``ValueError``), columns after the 4th are ignored,
    and a repeated token keeps its last row.
    """
    tokens: dict[str, UserInfo] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            if len(row) < 3:
                raise ValueError(f"token file '{path}' must have at least 3 columns "
                                 f"(token, user name, user uid), found {len(row)}")
            token, name, uid = row[0], row[1], row[2]
            if not token:
                log.warning("empty token has been found in token file '%s', record number '%d'", path, number)
                continue
            if token in tokens:
                log.warning("duplicate token has been found in token file '%s', record number '%d'",
                            path, number)
            groups = tuple(g for g in row[3].split(",") if g) if len(row) >= 4 else ()
            tokens[token] = UserInfo(name, uid=uid, groups=groups)
    return tokens


def ensure_admin_token(data_dir: str | os.PathLike[str]) -> str:
    """The admin's bearer token from ``<data_dir>/tokens.csv``, created on first use.

    The admin is the user ``admin`` in group ``system:masters``; its token is 32 random bytes,
    URL-safe. Other rows of the file are kept. The file is written atomically with mode 0600.
    """
    return ensure_token(data_dir, ADMIN_USER, SYSTEM_MASTERS)


def ensure_token(data_dir: str | os.PathLike[str], user_name: str, groups: str) -> str:
    """The bearer token of ``user_name`` in ``<data_dir>/tokens.csv``, created (with ``groups``, a
    comma-separated list) on first use; see `ensure_admin_token`."""
    path = token_file_path(data_dir)
    existing = read_token_file(path) if path.exists() else {}
    for token, user in existing.items():
        if user.name == user_name:
            return token
    token = secrets.token_urlsafe(32)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([token, user_name, str(uuid.uuid4()), groups])
    previous = path.read_text(encoding="utf-8") if path.exists() else ""
    if previous and not previous.endswith("\n"):
        previous += "\n"
    write_atomic(path, (previous + buffer.getvalue()).encode(), mode=0o600)
    return token


def _with_authenticated_group(user: UserInfo) -> UserInfo:
    if AUTHENTICATED_GROUP in user.groups:
        return user
    return UserInfo(user.name, uid=user.uid, groups=(*user.groups, AUTHENTICATED_GROUP), extra=user.extra)


def _unauthorized() -> web.Response:
    return web.json_response(unauthorized().to_status(), status=401)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
