"""A client of the OCI distribution API v2 (what every registry speaks), for pulling: manifests and blobs
of one repository, with the registry's authentication.

Authentication follows the registry's ``WWW-Authenticate`` challenge on a 401, as Docker does:
- ``Bearer realm=...,service=...,scope=...`` (Docker Hub and most public registries): ask the realm for a
  token for that service and scope (``repository:<name>:pull``), with basic auth when credentials are
  given, anonymously otherwise; a `RegistryAuth.token` is used as the bearer token itself;
- ``Basic``: send the user name and password.
The Authorization is kept for the next requests of the same client. Blob downloads are often redirected
to a storage service (S3, a CDN) that refuses extra credentials: redirects are followed by hand, without
the Authorization header.

Errors are `RegistryError` whose reason is the registry's own message (see ``errors.py``).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from kubelite import __version__
from kubelite.kubelet.images.digest import is_digest, sha256_digest, verify_bytes
from kubelite.kubelet.images.errors import DigestMismatch, RegistryError
from kubelite.kubelet.images.manifest import ACCEPT, MAX_MANIFEST_SIZE, media_type_of
from kubelite.kubelet.images.model import RegistryAuth
from kubelite.kubelet.images.reference import Reference, is_loopback_host

USER_AGENT = f"kubelite/{__version__}"
_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_CHALLENGE_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')
_CHUNK = 1 << 16


def new_session() -> aiohttp.ClientSession:
    """A session for registry traffic: no overall time limit (layers are big), but a stalled connection
    fails after a minute instead of hanging a pod's start."""
    timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=60)
    return aiohttp.ClientSession(timeout=timeout, headers={"User-Agent": USER_AGENT})


def registry_scheme(host: str, insecure_registries: frozenset[str] = frozenset()) -> str:
    """http for registries on this machine and for those configured insecure, https for the rest."""
    return "http" if is_loopback_host(host) or host in insecure_registries else "https"


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    body: bytes
    media_type: str
    # The digest of ``body``, checked against the one asked for or announced by the registry.
    digest: str


@dataclass(slots=True)
class BlobResponse:
    """A blob download in progress: ``start`` is the offset of its first byte (the offset asked for when
    the registry honoured the Range request, 0 when it sent the whole blob)."""

    start: int
    chunks: AsyncIterator[bytes]


class RegistryClient:
    """Pulls from one repository (``ref.path``) of one registry (``ref.api_host``)."""

    def __init__(self, session: aiohttp.ClientSession, ref: Reference, *, auth: RegistryAuth | None = None,
                 insecure_registries: frozenset[str] = frozenset()) -> None:
        self.session = session
        self.host = ref.api_host
        self.repository = ref.path
        self.auth = auth or RegistryAuth()
        self.base = f"{registry_scheme(self.host, insecure_registries)}://{self.host}/v2/{ref.path}/"
        self._authorization: str | None = None

    async def get_manifest(self, reference: str) -> FetchedManifest:
        """The manifest or index named by a tag or a digest, verified against that digest (or against the
        registry's Docker-Content-Digest for a tag)."""
        url = f"{self.base}manifests/{reference}"
        async with self._request_context(url, {"Accept": ACCEPT}) as resp:
            if resp.status != 200:
                raise await self._error(resp)
            if (resp.content_length or 0) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {reference} is larger than {MAX_MANIFEST_SIZE} bytes")
            body = await resp.content.read(MAX_MANIFEST_SIZE + 1)
            if len(body) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {reference} is larger than {MAX_MANIFEST_SIZE} bytes")
            content_type = resp.headers.get("Content-Type", "")
            announced = resp.headers.get("Docker-Content-Digest", "")
        if is_digest(reference):
            verify_bytes(body, reference, what=f"manifest {reference}")
            digest = reference
        else:
            digest = sha256_digest(body)
            if announced.startswith("sha256:") and announced != digest:
                raise DigestMismatch(f"digest mismatch for manifest {reference}: the registry says {announced}, "
                                     f"the content is {digest}")
        return FetchedManifest(body=body, media_type=media_type_of(body, content_type), digest=digest)

    @asynccontextmanager
    async def get_blob(self, digest: str, *, offset: int = 0) -> AsyncIterator[BlobResponse]:
        """Download a blob from ``offset`` on (a Range request when offset > 0). The caller verifies it."""
        url = f"{self.base}blobs/{digest}"
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with self._request_context(url, headers) as resp:
            if resp.status == 416 and offset:
                # The partial file is no prefix the registry can continue: start over.
                async with self.get_blob(digest) as whole:
                    yield whole
                return
            if resp.status == 206 and _range_start(resp.headers.get("Content-Range", "")) == offset:
                start = offset
            elif resp.status == 200:
                start = 0
            else:
                raise await self._error(resp)
            yield BlobResponse(start=start, chunks=_chunks(resp))

    # -- requests ----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _request_context(self, url: str, headers: dict[str, str]) -> AsyncIterator[aiohttp.ClientResponse]:
        resp = await self._request(url, headers)
        try:
            yield resp
        finally:
            resp.release()

    async def _request(self, url: str, headers: dict[str, str]) -> aiohttp.ClientResponse:
        """GET ``url`` as the registry wants: answer one authentication challenge, follow redirects (only
        to the registry itself with credentials)."""
        resp = await self._get(url, headers, with_auth=True)
        if resp.status == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            authorization = await self._authorize(challenge)
            if authorization is None or authorization == self._authorization:
                raise await self._error(resp)
            resp.release()
            self._authorization = authorization
            resp = await self._get(url, headers, with_auth=True)
            if resp.status == 401:
                raise await self._error(resp)
        for _ in range(_MAX_REDIRECTS):
            if resp.status not in _REDIRECTS or "Location" not in resp.headers:
                return resp
            location = urljoin(url, resp.headers["Location"])
            resp.release()
            same_origin = urlsplit(location)[:2] == urlsplit(self.base)[:2]
            resp = await self._get(location, headers, with_auth=same_origin)
            url = location
        resp.release()
        raise RegistryError(f"too many redirects fetching {url}")

    async def _get(self, url: str, headers: dict[str, str], *, with_auth: bool) -> aiohttp.ClientResponse:
        all_headers = dict(headers)
        if with_auth and self._authorization:
            all_headers["Authorization"] = self._authorization
        try:
            return await self.session.get(url, headers=all_headers, allow_redirects=False)
        except aiohttp.ClientConnectorError as e:
            raise RegistryError(f"cannot reach registry {self.host}: {e.os_error.strerror or e}") from None
        except aiohttp.ClientError as e:
            raise RegistryError(f"registry {self.host}: {e}") from None
        except TimeoutError:
            raise RegistryError(f"registry {self.host} did not answer in time") from None

    async def _authorize(self, challenge: str) -> str | None:
        """The Authorization header answering ``challenge``, or None when there is nothing to answer with."""
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.auth.username:
                return None
            return "Basic " + _basic(self.auth)
        if scheme != "bearer":
            return None
        if self.auth.token:
            return f"Bearer {self.auth.token}"
        realm = params.get("realm", "")
        if not realm:
            raise RegistryError(f"registry {self.host} asked for a token without saying where to get it")
        query = {"scope": params.get("scope") or f"repository:{self.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        headers = {"Authorization": "Basic " + _basic(self.auth)} if self.auth.username else {}
        try:
            async with self.session.get(realm, params=query, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise error_from_response(resp.status, body)
        except aiohttp.ClientError as e:
            raise RegistryError(f"cannot get a token from {realm}: {e}") from None
        try:
            data = json.loads(body)
            token = data.get("token") or data.get("access_token")
        except (json.JSONDecodeError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"the token server {realm} sent no token")
        return f"Bearer {token}"

    async def _error(self, resp: aiohttp.ClientResponse) -> RegistryError:
        try:
            body = await resp.content.read(64 << 10)
        except aiohttp.ClientError:
            body = b""
        finally:
            resp.release()
        return error_from_response(resp.status, body)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="...",service="..."`` → ("bearer", {"realm": ..., "service": ...})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"')
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


def error_from_response(status: int, body: bytes) -> RegistryError:
    """A RegistryError with the registry's reason: its ``errors`` list (distribution), ``details`` (Docker
    Hub's token server) or the HTTP status phrase when the body says nothing."""
    codes: tuple[str, ...] = ()
    reason = ""
    try:
        data: Any = json.loads(body) if body else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = {}
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors:
            codes = tuple(str(e.get("code", "")) for e in errors if isinstance(e, dict))
            reason = "; ".join(_format_error(e) for e in errors if isinstance(e, dict))
        elif isinstance(data.get("details"), str):
            reason = data["details"]
            if status == 401:
                reason = f"unauthorized: {reason}"
        elif isinstance(data.get("error"), str):
            reason = data["error"]
    if not reason:
        try:
            reason = HTTPStatus(status).phrase.lower()
        except ValueError:
            reason = f"unexpected status {status}"
    return RegistryError(reason, status=status, codes=codes)


def _format_error(error: dict[str, Any]) -> str:
    # Docker's errcode.Error: "<code as words>: <message>", where the code alone says the same.
    code = str(error.get("code", "")).lower().replace("_", " ")
    message = str(error.get("message", "")).strip()
    if not message or message.lower() == code:
        return message or code
    return f"{code}: {message}" if code else message


def _basic(auth: RegistryAuth) -> str:
    return base64.b64encode(f"{auth.username}:{auth.password}".encode()).decode("ascii")


def _range_start(content_range: str) -> int | None:
    # "bytes 100-999/1000"
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*", content_range)
    return int(match.group(1)) if match else None


async def _chunks(resp: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    async for chunk in resp.content.iter_chunked(_CHUNK):
        yield chunk
