"""Label and field selectors, parsed and evaluated the way Kubernetes does.

Label selectors (``k8s.io/apimachinery/pkg/labels``):

- ``parse_label_selector("app=web,tier!=db,env in (a,b),env notin (c),key,!key")`` parses the
  query-string syntax with Kubernetes' own lexer rules and error messages (also ``==``, ``>``, ``<``).
- ``label_selector_from_dict({"matchLabels": ..., "matchExpressions": ...})`` converts a
  ``metav1.LabelSelector`` like ``LabelSelectorAsSelector``: an empty selector matches everything,
  ``None`` matches nothing.
- ``LabelSelector.matches(labels)`` is the hot path (the server runs it for every object of a list): the
  requirements are compiled once into ``(opcode, key, values)`` tuples and evaluated in one loop.
- ``str(selector)`` is the canonical form (requirements sorted by key, ``in`` values sorted), which
  is also what a Scale's ``status.selector`` carries.

Field selectors (``k8s.io/apimachinery/pkg/fields``):

- ``parse_field_selector("metadata.name=x,spec.nodeName!=n1")`` (``=``, ``==``, ``!=``, values escaped with
  ``\\``); ``FieldSelector.matches(obj)`` reads each field the way the kind's ``ToSelectableFields`` does
  (booleans as ``true``/``false``, numbers in decimal, a missing field as ``""``).
- ``validate_field_selector(kind, selector)`` rejects labels the kind does not support with Kubernetes'
  message ``field label not supported: <label>``.

Every error is a ``ValueError`` whose text is Kubernetes' message, ready to go into a 400 Status.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

# ---------------------------------------------------------------------------------------------------
# Label selector requirements
# ---------------------------------------------------------------------------------------------------

# Operator spellings are those of k8s.io/apimachinery/pkg/selection.
DOES_NOT_EXIST: Final = "!"
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
IN: Final = "in"
NOT_EQUALS: Final = "!="
NOT_IN: Final = "notin"
EXISTS: Final = "exists"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)

# Opcodes of the compiled form; the exact-match operators collapse into set membership.
_OP_IN, _OP_NOT_IN, _OP_EXISTS, _OP_NOT_EXISTS, _OP_GT, _OP_LT = range(6)
_OPCODES = {
    IN: _OP_IN, EQUALS: _OP_IN, DOUBLE_EQUALS: _OP_IN,
    NOT_IN: _OP_NOT_IN, NOT_EQUALS: _OP_NOT_IN,
    EXISTS: _OP_EXISTS, DOES_NOT_EXIST: _OP_NOT_EXISTS,
    GREATER_THAN: _OP_GT, LESS_THAN: _OP_LT,
}
_OPERATOR_TEXT = {
    EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", IN: " in ", NOT_IN: " notin ",
    GREATER_THAN: ">", LESS_THAN: "<",
}

_Compiled = tuple[int, str, Any]


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` term of a label selector (``labels.Requirement``)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return _evaluate(_compile(self), labels)

    def __str__(self) -> str:
        text = ("!" if self.operator == DOES_NOT_EXIST else "") + self.key
        if self.operator in (EXISTS, DOES_NOT_EXIST):
            return text
        text += _OPERATOR_TEXT[self.operator]
        # Values print sorted (without reordering the requirement itself), as Requirement.String does.
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        return text + (f"({values})" if self.operator in (IN, NOT_IN) else values)


def _compile(req: Requirement) -> _Compiled:
    op = _OPCODES[req.operator]
    if op in (_OP_GT, _OP_LT):
        return op, req.key, int(req.values[0])
    return op, req.key, frozenset(req.values)


def _evaluate(compiled: _Compiled, labels: Mapping[str, str]) -> bool:
    op, key, arg = compiled
    value = labels.get(key)
    if op == _OP_IN:
        return value is not None and value in cast(frozenset[str], arg)
    if op == _OP_NOT_IN:
        return value is None or value not in cast(frozenset[str], arg)
    if op == _OP_EXISTS:
        return value is not None
    if op == _OP_NOT_EXISTS:
        return value is None
    if value is None:
        return False
    try:
        number = int(value)
    except ValueError:
        return False
    bound = cast(int, arg)
    return number > bound if op == _OP_GT else number < bound


class LabelSelector:
    """An AND of requirements; or the selector that matches nothing (``LabelSelector.nothing()``)."""

    __slots__ = ("_compiled", "_nothing", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key like internalSelector.Add (a stable sort keeps the order of equal keys).
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing
        self._compiled: tuple[_Compiled, ...] = tuple(_compile(r) for r in self.requirements)

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (it matches every label set)."""
        return not self._nothing and not self.requirements

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        if not self._compiled:
            return True
        labels = labels or {}
        for compiled in self._compiled:
            if not _evaluate(compiled, labels):
                return False
        return True

    def requires_exact_match(self, key: str) -> str | None:
        """The one value ``key`` must have for a match, if the selector pins it (for index lookups)."""
        for req in self.requirements:
            if req.key == key:
                if req.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(req.values) == 1:
                    return req.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self._nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self._nothing == other._nothing and self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash((self._nothing, self.requirements))


def selector_from_set(labels: Mapping[str, str] | None) -> LabelSelector:
    """The selector matching exactly these labels (``labels.SelectorFromValidatedSet``); an empty or
    missing set matches everything. Nothing is validated: the labels come from stored objects."""
    return LabelSelector(Requirement(k, EQUALS, (v,)) for k, v in (labels or {}).items())


def format_labels(labels: Mapping[str, str] | None) -> str:
    """``labels.FormatLabels``: ``a=1,b=2`` sorted by key, or ``<none>``."""
    text = ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items()))
    return text or "<none>"


# ---------------------------------------------------------------------------------------------------
# Validation of keys and values (k8s.io/apimachinery/pkg/util/validation), with field.Error wording
# ---------------------------------------------------------------------------------------------------

_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                       "and must start and end with an alphanumeric character")
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                          "characters, '-' or '.', and must start and end with an alphanumeric character")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                    "'-', '_' or '.', and must start and end with an alphanumeric character")


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


def qualified_name_errors(value: str) -> list[str]:
    """``validation.IsQualifiedName``: ``[prefix/]name`` as label and annotation keys use it."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errs.append("prefix part " + _max_len_error(253))
            if not _DNS1123_SUBDOMAIN_RE.match(prefix):
                errs.append("prefix part " + _regex_error(_DNS1123_SUBDOMAIN_MSG, _DNS1123_SUBDOMAIN_FMT,
                                                          "example.com"))
    else:
        shape = _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name", "123-abc")
        return [f"a qualified name {shape} with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + _max_len_error(63))
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + _regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME_FMT, "MyName", "my.name",
                                                "123-abc"))
    return errs


def label_value_errors(value: str) -> list[str]:
    """``validation.IsValidLabelValue``."""
    errs: list[str] = []
    if len(value) > 63:
        errs.append(_max_len_error(63))
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _go_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_value(value: str | list[str]) -> str:
    """A bad value as field.Error prints it: %q for strings, %#v for string slices (an empty one is
    nil there, because LabelSelectorAsSelector copies values with append to a nil slice)."""
    if isinstance(value, str):
        return _go_quote(value)
    if not value:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in value) + "}"


def _invalid(path: str, value: str | list[str], detail: str) -> str:
    return f"{path}: Invalid value: {_go_value(value)}: {detail}"


def _aggregate(errs: list[str]) -> str:
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """``labels.NewRequirement`` (no field path): validates the key, the operator's value count and every
    value, raising ``ValueError`` with the aggregated ``field.Error`` messages."""
    vals = list(values)
    errs: list[str] = []
    key_problems = qualified_name_errors(key)
    if key_problems:
        errs.append(_invalid("key", key, "; ".join(key_problems)))
    if operator in (IN, NOT_IN):
        if not vals:
            errs.append(_invalid("values", vals, "for 'in', 'notin' operators, values set can't be empty"))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(_invalid("values", vals, "exact-match compatibility requires one single value"))
    elif operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(_invalid("values", vals, "values set must be empty for exists and does not exist"))
    elif operator in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(_invalid("values", vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if not re.fullmatch(r"[+-]?[0-9]+", v):
                errs.append(_invalid(f"values[{i}]", v,
                                     "for 'Gt', 'Lt' operators, the value must be an integer"))
    else:
        supported = ", ".join(_go_quote(o) for o in (*_BINARY_OPERATORS, EXISTS, DOES_NOT_EXIST))
        errs.append(f"operator: Unsupported value: {_go_quote(operator)}: supported values: {supported}")
    for i, v in enumerate(vals):
        problems = label_value_errors(v)
        if problems:
            errs.append(_invalid(f"values[{i}][{key}]", v, "; ".join(problems)))
    if errs:
        raise ValueError(_aggregate(errs))
    return Requirement(key, operator, tuple(vals))


# ---------------------------------------------------------------------------------------------------
# The query-string syntax: a port of labels.Lexer and labels.Parser, so errors read the same
# ---------------------------------------------------------------------------------------------------

_T_END, _T_CLOSE, _T_COMMA, _T_NOT, _T_DEQ, _T_EQ, _T_GT, _T_ID, _T_IN, _T_LT, _T_NEQ, _T_NOTIN, \
    _T_OPEN = range(13)
_TOKENS = {")": _T_CLOSE, ",": _T_COMMA, "!": _T_NOT, "==": _T_DEQ, "=": _T_EQ, ">": _T_GT, "in": _T_IN,
           "<": _T_LT, "!=": _T_NEQ, "notin": _T_NOTIN, "(": _T_OPEN}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_OPERATOR_TOKENS = {_T_IN: IN, _T_EQ: EQUALS, _T_DEQ: DOUBLE_EQUALS, _T_GT: GREATER_THAN, _T_LT: LESS_THAN,
                    _T_NOTIN: NOT_IN, _T_NEQ: NOT_EQUALS}

_Item = tuple[int, str]


def _lex(s: str) -> list[_Item]:
    items: list[_Item] = []
    pos, n = 0, len(s)
    while True:
        while pos < n and s[pos] in _WHITESPACE:
            pos += 1
        if pos >= n:
            items.append((_T_END, ""))
            return items
        if s[pos] in _SPECIAL:
            # The longest run of special characters that spells a token: "!=" is one token, "=(" two.
            # Every special character alone is a token, so a run never fails to scan.
            end = pos + 1
            while end < n and s[pos:end + 1] in _TOKENS:
                end += 1
            items.append((_TOKENS[s[pos:end]], s[pos:end]))
            pos = end
        else:
            start = pos
            while pos < n and s[pos] not in _SPECIAL and s[pos] not in _WHITESPACE:
                pos += 1
            word = s[start:pos]
            items.append((_TOKENS.get(word, _T_ID), word))


class _Parser:
    def __init__(self, selector: str) -> None:
        self.items = _lex(selector)
        self.position = 0

    def lookahead(self, values: bool) -> _Item:
        return self._value_context(self.items[self.position], values)

    def consume(self, values: bool) -> _Item:
        self.position += 1
        return self._value_context(self.items[self.position - 1], values)

    @staticmethod
    def _value_context(item: _Item, values: bool) -> _Item:
        # Where a value is expected, "in" and "notin" are plain words ("x in (in)").
        if values and item[0] in (_T_IN, _T_NOTIN):
            return _T_ID, item[1]
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, lit = self.lookahead(True)
            if tok in (_T_ID, _T_NOT):
                try:
                    requirements.append(self.requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                tok, lit = self.consume(True)
                if tok == _T_END:
                    return requirements
                if tok == _T_COMMA:
                    tok2, lit2 = self.lookahead(True)
                    if tok2 not in (_T_ID, _T_NOT):
                        raise ValueError(f"found '{lit2}', expected: identifier after ','")
                else:
                    raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            elif tok == _T_END:
                return requirements
            else:
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator = ""
        tok, key = self.consume(True)
        if tok == _T_NOT:
            operator = DOES_NOT_EXIST
            tok, key = self.consume(True)
        if tok != _T_ID:
            raise ValueError(f"found '{key}', expected: identifier")
        problems = qualified_name_errors(key)
        if problems:
            # The parser validates the key with a nil field path, which prints as "<nil>".
            raise ValueError(_invalid("<nil>", key, "; ".join(problems)))
        if self.lookahead(True)[0] in (_T_END, _T_COMMA):
            return new_requirement(key, operator or EXISTS)
        if operator == DOES_NOT_EXIST:
            return new_requirement(key, operator)
        tok, lit = self.consume(False)
        if tok not in _OPERATOR_TOKENS:
            raise ValueError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        operator = _OPERATOR_TOKENS[tok]
        values = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def value_set(self) -> set[str]:
        tok, lit = self.consume(True)
        if tok != _T_OPEN:
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead(True)
        if tok in (_T_ID, _T_COMMA):
            values = self.identifiers()
            if self.consume(True)[0] != _T_CLOSE:
                raise ValueError(f"found '{lit}', expected: ')'")
            return values
        if tok == _T_CLOSE:
            self.consume(True)
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume(True)
            if tok == _T_ID:
                values.add(lit)
                tok2, lit2 = self.lookahead(True)
                if tok2 == _T_COMMA:
                    continue
                if tok2 == _T_CLOSE:
                    return values
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == _T_COMMA:
                # Empty values around commas: "(,a)", "(a,)" and "(a,,b)" all contain "".
                if not values:
                    values.add("")
                tok2 = self.lookahead(True)[0]
                if tok2 == _T_CLOSE:
                    values.add("")
                    return values
                if tok2 == _T_COMMA:
                    values.add("")
            else:
                raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        if self.lookahead(True)[0] in (_T_END, _T_COMMA):
            return {""}
        tok, lit = self.consume(True)
        if tok == _T_ID:
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_label_selector(selector: str) -> LabelSelector:
    """Parse the ``labelSelector`` query syntax (``labels.Parse``); ``""`` selects everything."""
    return LabelSelector(_Parser(selector).parse())


_LABEL_SELECTOR_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> LabelSelector:
    """``metav1.LabelSelectorAsSelector``: ``None`` matches nothing, ``{}`` matches everything."""
    if selector is None:
        return LabelSelector.nothing()
    match_labels: Mapping[str, str] = selector.get("matchLabels") or {}
    expressions: list[Mapping[str, Any]] = selector.get("matchExpressions") or []
    requirements = [new_requirement(k, EQUALS, [v]) for k, v in sorted(match_labels.items())]
    for expr in expressions:
        operator = expr.get("operator", "")
        if operator not in _LABEL_SELECTOR_OPERATORS:
            raise ValueError(f"{_go_quote(str(operator))} is not a valid label selector operator")
        requirements.append(new_requirement(expr.get("key", ""), _LABEL_SELECTOR_OPERATORS[operator],
                                             expr.get("values") or []))
    return LabelSelector(requirements)


# ---------------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------------

# Checked in this order so that "==" is not read as "=" followed by a value starting with "=".
_FIELD_OPERATORS = ("!=", "==", "=")


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    """``field=value`` or ``field!=value`` (``==`` parses as ``=``, as Kubernetes' hasTerm does); the value
    is already unescaped."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


def escape_field_value(value: str) -> str:
    """``fields.EscapeValue``: backslash-escape ``\\``, ``,`` and ``=``."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    """``fields.UnescapeValue``."""
    if not any(c in value for c in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for c in value:
        if in_slash:
            if c not in "\\,=":
                raise ValueError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            # Go prints the rune with %v, which is its code point.
            raise ValueError(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if in_slash:
        raise ValueError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(selector: str) -> list[str]:
    terms: list[str] = []
    start, in_slash = 0, False
    for i, c in enumerate(selector):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in _FIELD_OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


# How each supported field label is read from an object, as the kinds' ToSelectableFields write it.
# One table serves every kind: where two kinds share a label (``type``, ``status.phase``) they share
# its path too. Labels a kind accepts but does not expose (``status.podIPs``) read as "".
_Getter = Callable[[Mapping[str, Any]], str]


def _dig(obj: Mapping[str, Any], *path: str) -> Any:
    node: Any = obj
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return node


def _text(*path: str) -> _Getter:
    def get(obj: Mapping[str, Any]) -> str:
        value = _dig(obj, *path)
        return "" if value is None else str(value)
    return get


def _boolean(*path: str) -> _Getter:
    return lambda obj: "true" if _dig(obj, *path) else "false"


def _number(*path: str) -> _Getter:
    return lambda obj: str(int(_dig(obj, *path) or 0))


def _pod_ip(obj: Mapping[str, Any]) -> str:
    pod_ips = _dig(obj, "status", "podIPs")
    if pod_ips:
        return str(pod_ips[0].get("ip") or "")
    return str(_dig(obj, "status", "podIP") or "")


def _event_source(obj: Mapping[str, Any]) -> str:
    return str(_dig(obj, "source", "component") or obj.get("reportingComponent") or "")


_FIELD_GETTERS: dict[str, _Getter] = {
    "metadata.name": _text("metadata", "name"),
    "metadata.namespace": _text("metadata", "namespace"),
    # Namespace keeps a bare "name" for backward compatibility.
    "name": _text("metadata", "name"),
    "spec.nodeName": _text("spec", "nodeName"),
    "spec.restartPolicy": _text("spec", "restartPolicy"),
    "spec.schedulerName": _text("spec", "schedulerName"),
    "spec.serviceAccountName": _text("spec", "serviceAccountName"),
    "spec.hostNetwork": _boolean("spec", "hostNetwork"),
    "status.phase": _text("status", "phase"),
    "status.podIP": _pod_ip,
    "status.nominatedNodeName": _text("status", "nominatedNodeName"),
    "involvedObject.kind": _text("involvedObject", "kind"),
    "involvedObject.namespace": _text("involvedObject", "namespace"),
    "involvedObject.name": _text("involvedObject", "name"),
    "involvedObject.uid": _text("involvedObject", "uid"),
    "involvedObject.apiVersion": _text("involvedObject", "apiVersion"),
    "involvedObject.resourceVersion": _text("involvedObject", "resourceVersion"),
    "involvedObject.fieldPath": _text("involvedObject", "fieldPath"),
    "reason": _text("reason"),
    "reportingComponent": _text("reportingComponent"),
    "source": _event_source,
    "type": _text("type"),
    "spec.unschedulable": _boolean("spec", "unschedulable"),
    "status.replicas": _number("status", "replicas"),
    "spec.clusterIP": _text("spec", "clusterIP"),
    "spec.type": _text("spec", "type"),
}


def _missing_field(obj: Mapping[str, Any]) -> str:
    return ""


_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

# Field labels each kind supports beyond metadata.name and metadata.namespace.
SUPPORTED_FIELDS: dict[str, frozenset[str]] = {
    "Pod": frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                      "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                      "status.nominatedNodeName"}),
    "Event": frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                        "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                        "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    "Secret": frozenset({"type"}),
    "Node": frozenset({"spec.unschedulable"}),
    "Namespace": frozenset({"status.phase", "name"}),
    "ReplicaSet": frozenset({"status.replicas"}),
    "Service": frozenset({"spec.clusterIP", "spec.type"}),
}


def supported_field_labels(kind_name: str) -> frozenset[str]:
    """Every field label a list or watch of ``kind_name`` objects may select on."""
    return _META_FIELDS | SUPPORTED_FIELDS.get(kind_name, frozenset())


class FieldSelector:
    """An AND of field requirements; the empty selector matches everything."""

    __slots__ = ("_compiled", "requirements")

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self.requirements: tuple[FieldRequirement, ...] = tuple(requirements)
        self._compiled: tuple[tuple[_Getter, str, bool], ...] = tuple(
            (_FIELD_GETTERS.get(r.field, _missing_field), r.value, r.operator == "!=")
            for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, obj: Mapping[str, Any]) -> bool:
        for get, value, negate in self._compiled:
            if (get(obj) == value) == negate:
                return False
        return True

    def requires_exact_match(self, field: str) -> str | None:
        """The value ``field`` must equal, if a ``field=value`` term pins it (``metadata.name=x`` lets the
        server read one key instead of listing)."""
        for req in self.requirements:
            if req.field == field and req.operator != "!=":
                return req.value
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


def parse_field_selector(selector: str) -> FieldSelector:
    """Parse the ``fieldSelector`` query syntax (``fields.ParseSelector``); ``""`` selects everything.

    Terms are sorted as Kubernetes sorts them, so ``str()`` is canonical. Field names are taken
    verbatim (no whitespace trimming), as Kubernetes does."""
    if not selector:
        return FieldSelector()
    requirements: list[FieldRequirement] = []
    for term in sorted(_split_terms(selector)):
        if not term:
            continue
        split = _split_term(term)
        if split is None:
            raise ValueError(f"invalid selector: '{selector}'; can't understand '{term}'")
        field, op, raw = split
        requirements.append(FieldRequirement(field, "!=" if op == "!=" else "=", unescape_field_value(raw)))
    return FieldSelector(requirements)


def validate_field_selector(kind_name: str, selector: FieldSelector) -> None:
    """Raise ``ValueError("field label not supported: <label>")`` for the first label ``kind_name``
    cannot select on."""
    supported = supported_field_labels(kind_name)
    for req in selector.requirements:
        if req.field not in supported:
            raise ValueError(f"field label not supported: {req.field}")
