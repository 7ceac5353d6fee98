"""The admin kubeconfig the server writes, and where kubelite keeps its files by default.

Defaults (like k3s's ``/var/lib/rancher/k3s`` and ``/etc/rancher/k3s/k3s.yaml``):

| who          | data dir                                        | admin kubeconfig              |
| ------------ | ----------------------------------------------- | ----------------------------- |
| root         | ``/var/lib/kubelite``                           | ``/etc/kubelite/kubelite.yaml`` |
| another user | ``$XDG_DATA_HOME/kubelite`` (``~/.local/share``) | ``~/.kube/kubelite.yaml``     |

``KUBELITE_DATA_DIR`` and ``KUBELITE_KUBECONFIG`` override them. The kubelite CLI reads the default
kubeconfig when neither ``--kubeconfig`` nor ``KUBECONFIG`` names one.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

from kubelite.apiserver.certs import write_atomic


def write_admin_kubeconfig(path: str | os.PathLike[str], *, server_url: str, ca_pem: bytes, token: str,
                           cluster_name: str = "kubelite", user: str = "admin") -> None:
    """Write a kubeconfig with one cluster, one user (a bearer token) and one context, all named
    for ``cluster_name`` except the user, and make that context current.

    The file is usable as is by kubectl and client libraries: the CA is embedded
    (``certificate-authority-data``), so the file can be copied to another machine. It is written
    atomically with mode 0600 (it holds a credential); parent folders are created.
    """
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": cluster_name,
            "cluster": {
                "server": server_url,
                "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii"),
            },
        }],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": cluster_name,
        "preferences": {},
    }
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    write_atomic(Path(path), text.encode(), mode=0o600)


def default_data_dir() -> str:
    """Where the server keeps its state (store, PKI, tokens); see the module doc."""
    override = os.environ.get("KUBELITE_DATA_DIR")
    if override:
        return override
    if _is_root():
        return "/var/lib/kubelite"
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "kubelite")


def default_kubeconfig_path() -> str:
    """Where the server writes, and the CLI looks for, the admin kubeconfig; see the module doc."""
    override = os.environ.get("KUBELITE_KUBECONFIG")
    if override:
        return override
    if _is_root():
        return "/etc/kubelite/kubelite.yaml"
    return os.path.join(os.path.expanduser("~"), ".kube", "kubelite.yaml")


def _is_root() -> bool:
    return os.geteuid() == 0
