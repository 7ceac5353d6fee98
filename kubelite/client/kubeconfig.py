"""Load the kubeconfig that kubectl reads and turn it into a connection `Config`.

Which files, as kubectl (client-go's ``clientcmd`` loading rules):
1. an explicit path (``--kubeconfig``): only that file, which must exist;
2. else ``$KUBECONFIG``: a colon-separated list, empty entries and missing files skipped, merged so that
   the first file to set a value or a named entry wins (a later file never changes it, nor merges
   fields into an entry an earlier file named);
3. else ``~/.kube/config``.

File references inside a file (certificate-authority, client-certificate, client-key, tokenFile) are
resolved relative to the directory of the file that holds them.

What is used of the chosen context: the cluster's ``server``, ``certificate-authority(-data)``,
``insecure-skip-tls-verify`` and ``tls-server-name``; the user's ``token`` / ``tokenFile``,
``client-certificate(-data)`` + ``client-key(-data)``, ``username`` + ``password`` and impersonation
(``as``, ``as-groups``, ``as-uid``); the context's ``namespace`` (default ``"default"``).
Exec and auth-provider plugins are not supported and are reported as such.

Every problem raises `KubeconfigError` naming the file(s) and the entry at fault, with client-go's
validation wording where it has one.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_NAMESPACE = "default"
# client-go re-reads a tokenFile at most this often, so rotated (bound) tokens are picked up.
TOKEN_FILE_REFRESH_SECONDS = 60.0
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeconfigError(Exception):
    """The kubeconfig cannot be found, parsed, or does not describe a usable connection."""


class FileTokenSource:
    """A bearer token read from a file, re-read at most every `refresh_seconds` (thread-safe)."""

    def __init__(self, path: str, refresh_seconds: float = TOKEN_FILE_REFRESH_SECONDS) -> None:
        self.path = path
        self._refresh = refresh_seconds
        self._lock = threading.Lock()
        self._token = ""
        self._read_at = float("-inf")
        self.token()  # fail at load time, not on the first request

    def token(self) -> str:
        with self._lock:
            now = time.monotonic()
            if now - self._read_at >= self._refresh:
                try:
                    self._token = Path(self.path).read_text().strip()
                except OSError as e:
                    raise KubeconfigError(f"cannot read token file {self.path}: {e.strerror}") from e
                self._read_at = now
            return self._token


@dataclass(frozen=True)
class Config:
    """Everything needed to reach one API server as one user.

    ``server`` has no trailing slash and may carry a path prefix. ``ssl_context`` is None for plain
    http. ``headers`` are the static auth headers; call `auth_headers()` per request, which adds the
    current token when it comes from a file.
    """

    server: str
    ssl_context: ssl.SSLContext | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    namespace: str = DEFAULT_NAMESPACE
    tls_server_name: str | None = None
    context: str = ""
    token_source: FileTokenSource | None = None

    def auth_headers(self) -> dict[str, str]:
        out = dict(self.headers)
        if self.token_source is not None:
            out["Authorization"] = f"Bearer {self.token_source.token()}"
        return out


# --- locating and merging files --------------------------------------------------------------------

@dataclass
class _Entry:
    """A named cluster/user/context body and the directory its relative paths are resolved against."""

    body: dict[str, Any]
    base_dir: Path
    source: Path


@dataclass
class _Merged:
    files: list[Path]
    current_context: str = ""
    clusters: dict[str, _Entry] = field(default_factory=dict)
    users: dict[str, _Entry] = field(default_factory=dict)
    contexts: dict[str, _Entry] = field(default_factory=dict)

    def describe(self) -> str:
        return ", ".join(str(f) for f in self.files) or "<no kubeconfig file>"


def kubeconfig_paths(explicit: str | None = None,
                     env: Mapping[str, str] | None = None) -> tuple[list[Path], bool]:
    """The files to read, in precedence order, and whether they must all exist (explicit or default)."""
    env = os.environ if env is None else env
    if explicit:
        return [Path(explicit).expanduser()], True
    listed = env.get("KUBECONFIG", "")
    if listed:
        paths: list[Path] = []
        for part in listed.split(os.pathsep):
            if part and Path(part).expanduser() not in paths:
                paths.append(Path(part).expanduser())
        if paths:
            return paths, False
    home = env.get("HOME") or str(Path.home())
    return [Path(home) / ".kube" / "config"], True


def _read_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise KubeconfigError(f"cannot read kubeconfig {path}: {e.strerror}") from e
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise KubeconfigError(f"kubeconfig {path} is not valid YAML: {e}") from e
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise KubeconfigError(f"kubeconfig {path}: expected a mapping at the top level, "
                              f"got {type(doc).__name__}")
    return doc


def _named_entries(doc: dict[str, Any], section: str, body_key: str,
                   path: Path) -> list[tuple[str, dict[str, Any]]]:
    items = doc.get(section) or []
    if not isinstance(items, list):
        raise KubeconfigError(f"kubeconfig {path}: {section!r} must be a list")
    out: list[tuple[str, dict[str, Any]]] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            raise KubeconfigError(f"kubeconfig {path}: {section}[{i}] has no name")
        body = item.get(body_key) or {}
        if not isinstance(body, dict):
            raise KubeconfigError(f"kubeconfig {path}: {section}[{i}] ({item['name']}): "
                                  f"{body_key!r} must be a mapping")
        out.append((item["name"], body))
    return out


def load_merged(explicit: str | None = None, env: Mapping[str, str] | None = None) -> _Merged:
    paths, must_exist = kubeconfig_paths(explicit, env)
    merged = _Merged(files=[])
    for path in paths:
        if not path.exists():
            if must_exist:
                raise KubeconfigError(f"kubeconfig {path} does not exist")
            continue
        doc = _read_file(path)
        merged.files.append(path)
        base = path.resolve().parent
        # First file to set a value or a named entry wins: never overwrite.
        if not merged.current_context and doc.get("current-context"):
            merged.current_context = str(doc["current-context"])
        for section, body_key, table in (("clusters", "cluster", merged.clusters),
                                         ("users", "user", merged.users),
                                         ("contexts", "context", merged.contexts)):
            for entry_name, body in _named_entries(doc, section, body_key, path):
                table.setdefault(entry_name, _Entry(body, base, path))
    if not merged.files:
        raise KubeconfigError(f"no kubeconfig found: none of {', '.join(str(p) for p in paths)} exists")
    return merged


# --- building the Config ---------------------------------------------------------------------------

def load_kubeconfig(
    path: str | None = None,
    *,
    context: str | None = None,
    cluster: str | None = None,
    user: str | None = None,
    namespace: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load the kubeconfig as kubectl would (see module docstring) and build a `Config`.

    ``context`` picks a named context instead of current-context; ``cluster``, ``user`` and
    ``namespace`` override the context's own, like kubectl's flags of the same names.
    """
    merged = load_merged(path, env)
    where = merged.describe()
    ctx_name = context or merged.current_context
    if not ctx_name:
        if not (cluster and user):
            raise KubeconfigError(f"{where}: current-context is not set and no context was given")
        ctx_body: dict[str, Any] = {}
    else:
        ctx_entry = merged.contexts.get(ctx_name)
        if ctx_entry is None:
            raise KubeconfigError(f'{where}: context "{ctx_name}" does not exist')
        ctx_body = ctx_entry.body
        where = str(ctx_entry.source)

    cluster_name = cluster or str(ctx_body.get("cluster") or "")
    user_name = user if user is not None else str(ctx_body.get("user") or "")
    if not cluster_name:
        raise KubeconfigError(f'{where}: context "{ctx_name}" names no cluster')
    cluster_entry = merged.clusters.get(cluster_name)
    if cluster_entry is None:
        raise KubeconfigError(f'{where}: cluster "{cluster_name}" (context "{ctx_name}") does not exist')
    user_entry: _Entry | None = None
    if user_name:
        user_entry = merged.users.get(user_name)
        if user_entry is None:
            raise KubeconfigError(f'{where}: user "{user_name}" (context "{ctx_name}") does not exist')

    server, ssl_context, tls_server_name = _cluster_tls(cluster_name, cluster_entry)
    headers: dict[str, str] = {}
    token_source: FileTokenSource | None = None
    if user_entry is not None:
        headers, token_source = _user_auth(user_name, user_entry, ssl_context)
    return Config(
        server=server,
        ssl_context=ssl_context,
        headers=headers,
        namespace=namespace or str(ctx_body.get("namespace") or "") or DEFAULT_NAMESPACE,
        tls_server_name=tls_server_name,
        context=ctx_name,
        token_source=token_source,
    )


def _resolve(entry: _Entry, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else entry.base_dir / p)


def _b64(entry: _Entry, what: str, field_name: str) -> bytes:
    raw = entry.body.get(field_name)
    try:
        return base64.b64decode(str(raw), validate=True)
    except (binascii.Error, ValueError) as e:
        raise KubeconfigError(f"kubeconfig {entry.source}: {what}: {field_name} is not valid base64") from e


def _cluster_tls(cluster_name: str, entry: _Entry) -> tuple[str, ssl.SSLContext | None, str | None]:
    body = entry.body
    what = f'cluster "{cluster_name}"'
    server = str(body.get("server") or "").rstrip("/")
    if not server:
        raise KubeconfigError(f"kubeconfig {entry.source}: {what} has no server")
    if "://" not in server:
        server = "https://" + server  # client-go's default scheme
    if not server.startswith(("https://", "http://")):
        raise KubeconfigError(f"kubeconfig {entry.source}: {what}: unsupported server URL {server!r}")
    ca_file, ca_data = body.get("certificate-authority"), body.get("certificate-authority-data")
    insecure = bool(body.get("insecure-skip-tls-verify"))
    if ca_file and ca_data:
        raise KubeconfigError(f"kubeconfig {entry.source}: certificate-authority-data and "
                              f"certificate-authority are both specified for {cluster_name}")
    if insecure and (ca_file or ca_data):
        raise KubeconfigError(f"kubeconfig {entry.source}: {what}: specifying a root certificates file with "
                              "the insecure flag is not allowed")
    tls_server_name = str(body.get("tls-server-name") or "") or None
    if server.startswith("http://"):
        return server, None, tls_server_name
    try:
        if insecure:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif ca_file:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=_resolve(entry, str(ca_file)))
        elif ca_data:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                             cadata=_b64(entry, what, "certificate-authority-data").decode())
        else:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    except (ssl.SSLError, OSError, UnicodeDecodeError) as e:
        source = _resolve(entry, str(ca_file)) if ca_file else "certificate-authority-data"
        raise KubeconfigError(f"kubeconfig {entry.source}: {what}: cannot load CA from {source}: {e}") from e
    return server, ctx, tls_server_name


def _user_auth(user_name: str, entry: _Entry,
               ctx: ssl.SSLContext | None) -> tuple[dict[str, str], FileTokenSource | None]:
    body = entry.body
    what = f'user "{user_name}"'
    headers: dict[str, str] = {}
    token_source: FileTokenSource | None = None
    methods = []
    if body.get("token") or body.get("tokenFile"):
        methods.append("token")
    if body.get("username") or body.get("password"):
        methods.append("basicAuth")
    if len(methods) > 1:
        raise KubeconfigError(f"kubeconfig {entry.source}: more than one authentication method found for "
                              f"{user_name}; found {methods}, only one is allowed")
    has_cert = bool(body.get("client-certificate") or body.get("client-certificate-data"))
    if not methods and not has_cert and (body.get("exec") or body.get("auth-provider")):
        plugin = "exec" if body.get("exec") else "auth-provider"
        raise KubeconfigError(f"kubeconfig {entry.source}: {what} uses an {plugin} credential plugin, "
                              "which kubelite's client does not support")
    if body.get("token"):
        headers["Authorization"] = f"Bearer {body['token']}"
    elif body.get("tokenFile"):
        token_source = FileTokenSource(_resolve(entry, str(body["tokenFile"])))
    elif methods == ["basicAuth"]:
        pair = f"{body.get('username') or ''}:{body.get('password') or ''}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    if has_cert:
        _load_client_cert(user_name, entry, ctx)
    if body.get("as"):
        headers["Impersonate-User"] = str(body["as"])
    if body.get("as-uid"):
        headers["Impersonate-Uid"] = str(body["as-uid"])
    # aiohttp takes one value per header name; the API server accepts a comma-joined list too.
    if body.get("as-groups"):
        headers["Impersonate-Group"] = ",".join(str(g) for g in body["as-groups"])
    return headers, token_source


def _load_client_cert(user_name: str, entry: _Entry, ctx: ssl.SSLContext | None) -> None:
    body = entry.body
    src = entry.source
    for name in ("client-certificate", "client-key"):
        if body.get(name) and body.get(name + "-data"):
            raise KubeconfigError(f"kubeconfig {src}: {name}-data and {name} are both specified "
                                  f"for {user_name}")
    if not (body.get("client-key") or body.get("client-key-data")):
        raise KubeconfigError(f"kubeconfig {src}: client-key-data or client-key must be specified for "
                              f"{user_name} to use the clientCert authentication method")
    if ctx is None:
        return  # plain http: there is no TLS handshake to present a certificate in
    what = f'user "{user_name}"'
    # ssl can only load a certificate chain from files, so inline data goes through a private temp dir.
    with tempfile.TemporaryDirectory(prefix="kubelite-cert-") as tmp:
        paths = {}
        for name in ("client-certificate", "client-key"):
            if body.get(name):
                paths[name] = _resolve(entry, str(body[name]))
            else:
                p = Path(tmp) / name
                p.touch(mode=0o600)
                p.write_bytes(_b64(entry, what, name + "-data"))
                paths[name] = str(p)
        try:
            ctx.load_cert_chain(paths["client-certificate"], paths["client-key"])
        except (ssl.SSLError, OSError) as e:
            raise KubeconfigError(f"kubeconfig {src}: {what}: cannot load client certificate/key: {e}") from e


# --- other sources ---------------------------------------------------------------------------------

def config_for_server(
    server: str,
    *,
    token: str | None = None,
    ca_file: str | None = None,
    ca_data: str | None = None,
    insecure: bool = False,
    namespace: str = DEFAULT_NAMESPACE,
) -> Config:
    """A `Config` from explicit settings (``kubelite agent --server URL --token T``); ``ca_data`` is PEM."""
    server = server.rstrip("/")
    ctx: ssl.SSLContext | None = None
    if server.startswith("https://"):
        try:
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file, cadata=ca_data)
        except (ssl.SSLError, OSError) as e:
            raise KubeconfigError(f"cannot load CA {ca_file or '(inline data)'}: {e}") from e
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Config(server=server, ssl_context=ctx, headers=headers, namespace=namespace)


def in_cluster_config(env: Mapping[str, str] | None = None, sa_dir: str = SERVICE_ACCOUNT_DIR) -> Config:
    """The config of a process running in a pod: service env vars and the mounted service account."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and "
                              "KUBERNETES_SERVICE_PORT must be defined")
    if ":" in host:
        host = f"[{host}]"
    base = Path(sa_dir)
    cfg = config_for_server(f"https://{host}:{port}", ca_file=str(base / "ca.crt"))
    try:
        ns = (base / "namespace").read_text().strip()
    except OSError:
        ns = DEFAULT_NAMESPACE
    return Config(server=cfg.server, ssl_context=cfg.ssl_context, namespace=ns or DEFAULT_NAMESPACE,
                  token_source=FileTokenSource(str(base / "token")))
