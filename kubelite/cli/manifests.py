"""Reading manifests for ``apply -f``, ``create -f`` and ``delete -f``: files, directories and stdin, as
kubectl's resource builder does.

- ``-f`` takes files, directories (their ``.yaml``, ``.yml`` and ``.json`` files, in name order; with
  ``-R`` also those of subdirectories) and ``-`` for stdin (named ``STDIN`` in messages).
- A file holds YAML documents separated by ``---`` (empty ones are skipped) or JSON; a ``List`` document
  is expanded into its items.
- Every document keeps its file and 1-based position, so that a failure reads
  ``app.yaml (document 2, Service/web): ...``. A file that cannot be read or parsed is reported and the
  documents read before the fault are still used (kubectl applies what it could read, then fails).

`resolve` maps a document to its served `Kind`, name and namespace: objects without a namespace go to
``-n`` or the context's namespace; an object naming another namespace than an explicit ``-n`` is refused
with kubectl's message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from kubelite.api.registry import Kind, UnknownKind, by_kind

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "STDIN"


class ManifestError(Exception):
    """A manifest that cannot be read or used; the message names the file (and document)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One object read from a manifest: where it came from and its body."""

    source: str
    index: int
    obj: dict[str, Any]

    def label(self) -> str:
        """``app.yaml (document 2, Service/web)``."""
        md = self.obj.get("metadata")
        name = md.get("name") or md.get("generateName") if isinstance(md, dict) else None
        what = f"{self.obj.get('kind') or '<no kind>'}/{name or '<no name>'}"
        return f"{self.source} (document {self.index}, {what})"


@dataclass(frozen=True, slots=True)
class Target:
    """A document resolved against the served kinds; ``obj`` carries the namespace it goes to."""

    doc: Document
    kind: Kind
    name: str
    namespace: str | None
    obj: dict[str, Any]


# --- reading ---------------------------------------------------------------------------------------

def expand_paths(paths: Iterable[str], recursive: bool) -> list[str]:
    """The files named by ``-f`` arguments, in kubectl's order; ``-`` stays as is."""
    files: list[str] = []
    for p in paths:
        if p == "-":
            files.append(p)
            continue
        path = Path(p)
        if not path.exists():
            raise ManifestError(f'the path "{p}" does not exist')
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files.extend(str(f) for f in sorted(path.glob(pattern))
                         if f.is_file() and f.suffix in MANIFEST_SUFFIXES)
        else:
            files.append(p)
    return files


def parse(source: str, text: str) -> tuple[list[Document], list[str]]:
    """The documents of one file's text, and the errors met (at most one: parsing stops at a fault)."""
    docs: list[Document] = []
    if text.lstrip().startswith(("{", "[")):
        try:
            return _documents(source, 1, json.loads(text))
        except ValueError:
            pass  # Not one JSON value: let the YAML parser (a superset) read it and report problems.
    errors: list[str] = []
    index = 0
    try:
        for index, body in enumerate(yaml.safe_load_all(text), start=1):
            found, bad = _documents(source, index, body)
            docs.extend(found)
            errors.extend(bad)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        errors.append(f"{source} (document {index + 1}): invalid YAML{where}: {problem}")
    return docs, errors


def _documents(source: str, index: int, body: Any) -> tuple[list[Document], list[str]]:
    if body is None:
        return [], []
    if not isinstance(body, dict):
        return [], [f"{source} (document {index}): expected an object, got {_type_name(body)}"]
    if isinstance(body.get("kind"), str) and body["kind"].endswith("List") and isinstance(body.get("items"),
                                                                                         list):
        docs: list[Document] = []
        errors: list[str] = []
        for item in body["items"]:
            found, bad = _documents(source, index, item)
            docs.extend(found)
            errors.extend(bad)
        return docs, errors
    return [Document(source, index, body)], []


def _type_name(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__)


def load(paths: Iterable[str], recursive: bool, stdin: TextIO) -> tuple[list[Document], list[str]]:
    """Every document named by the ``-f`` arguments, and the problems met reading them."""
    docs: list[Document] = []
    errors: list[str] = []
    try:
        files = expand_paths(paths, recursive)
    except ManifestError as e:
        return [], [str(e)]
    for f in files:
        if f == "-":
            source, text = STDIN, stdin.read()
        else:
            source = f
            try:
                text = Path(f).read_text()
            except (OSError, UnicodeDecodeError) as e:
                errors.append(f"{f}: cannot read: {getattr(e, 'strerror', None) or e}")
                continue
        found, bad = parse(source, text)
        docs.extend(found)
        errors.extend(bad)
    return docs, errors


def is_namespace(doc: Document) -> bool:
    return doc.obj.get("kind") == "Namespace" and doc.obj.get("apiVersion") == "v1"


def namespaces_first(docs: Iterable[Document]) -> list[Document]:
    """Namespaces before everything else (objects in them need them first), otherwise file order."""
    return sorted(docs, key=lambda d: not is_namespace(d))


# --- resolving -------------------------------------------------------------------------------------

def resolve(doc: Document, namespace: str, explicit_namespace: bool, *,
            allow_generate_name: bool = False) -> Target:
    """Map a document to its kind, name and namespace (see module doc); `ManifestError` on any fault."""
    obj = doc.obj
    missing = [f"{f} not set" for f in ("apiVersion", "kind") if not obj.get(f)]
    if missing:
        raise ManifestError(f"{doc.label()}: error validating data: [{', '.join(missing)}]")
    try:
        kind = by_kind(str(obj["apiVersion"]), str(obj["kind"]))
    except UnknownKind as e:
        raise ManifestError(f"{doc.label()}: {e.args[0]}") from None
    md = obj.get("metadata")
    if md is not None and not isinstance(md, dict):
        raise ManifestError(f"{doc.label()}: metadata must be an object")
    md = md or {}
    name = str(md.get("name") or "")
    if not name and not (allow_generate_name and md.get("generateName")):
        raise ManifestError(f"{doc.label()}: resource name may not be empty")
    body = copy.deepcopy(obj)
    body_md = body.setdefault("metadata", {})
    target_ns: str | None = None
    if kind.namespaced:
        own = str(md.get("namespace") or "")
        if own and explicit_namespace and own != namespace:
            raise ManifestError(f'{doc.label()}: the namespace from the provided object "{own}" does not match '
                                f'the namespace "{namespace}". You must pass \'--namespace={own}\' to perform '
                                "this operation.")
        target_ns = own or namespace
        body_md["namespace"] = target_ns
    else:
        body_md.pop("namespace", None)
    return Target(doc, kind, name, target_ns, body)
