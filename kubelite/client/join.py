"""Joining a node to a cluster with one secret, as k3s does: ``kubelite agent --server URL --token K10...``.

A join token is ``K10<sha256 of the cluster CA certificate, hex>::<bearer token>``. The agent fetches the CA
from the server's public ``/cacerts`` without trusting the connection yet, and accepts it only if its hash is
the one in the token; from then on every request is verified against that CA. A bare token (no ``K10``
prefix) needs the CA given separately.
"""

from __future__ import annotations

import hashlib
import ssl

import aiohttp

PREFIX = "K10"


class JoinError(Exception):
    """The token or the server's CA is not what it should be."""


def format_join_token(ca_pem: bytes, token: str) -> str:
    return f"{PREFIX}{hashlib.sha256(ca_pem).hexdigest()}::{token}"


def parse_join_token(text: str) -> tuple[str | None, str]:
    """(the CA's sha256 hex or None, the bearer token)."""
    text = text.strip()
    if text.startswith(PREFIX) and "::" in text:
        ca_hash, _, token = text[len(PREFIX):].partition("::")
        if len(ca_hash) != 64 or any(c not in "0123456789abcdef" for c in ca_hash) or not token:
            raise JoinError("the join token is malformed: expected K10<64 hex digits>::<token>")
        return ca_hash, token
    if not text:
        raise JoinError("the join token is empty")
    return None, text


async def fetch_cluster_ca(server: str, ca_hash: str, *, timeout: float = 10.0) -> bytes:
    """The cluster CA from ``server``'s ``/cacerts``, checked against ``ca_hash``."""
    insecure = ssl.create_default_context()
    insecure.check_hostname = False
    insecure.verify_mode = ssl.CERT_NONE  # verified below by its hash, which the token carries
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(f"{server.rstrip('/')}/cacerts", ssl=insecure) as resp:
            if resp.status != 200:
                raise JoinError(f"{server}/cacerts answered {resp.status}")
            ca_pem = await resp.read()
    except aiohttp.ClientError as e:
        raise JoinError(f"cannot reach {server}: {e}") from e
    if hashlib.sha256(ca_pem).hexdigest() != ca_hash:
        raise JoinError(f"the CA served by {server} does not match the join token: refusing to trust it")
    return ca_pem
