"""Shared pieces of validation: tolerant accessors and validators used by several kinds.

Validators take the value to check, its field path (``spec.template.spec.containers[0]``) and the list
of causes to append to; they never raise, whatever the JSON holds. A field of the wrong JSON type is read
as absent: the request decoder, not validation, owns type errors.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from kubelite.api.errors import Cause, forbidden, invalid, not_supported, required, too_long

from . import formats, gofmt

Errs = list[Cause]

IS_NEGATIVE = "must be greater than or equal to 0"
FIELD_IMMUTABLE = "field is immutable"
TOTAL_ANNOTATION_SIZE = 256 * 1024


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def semantic(value: Any) -> Any:
    """``value`` with Go's zero values dropped (null, "", 0, false, {} and []), so that two JSON documents
    compare equal exactly when they decode to the same Go struct (apiequality.Semantic.DeepEqual)."""
    if isinstance(value, dict):
        out = {k: semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in _ZERO_VALUES}
    if isinstance(value, list):
        return [semantic(v) for v in value]
    return value


_ZERO_VALUES: tuple[Any, ...] = (None, "", 0, False, {}, [])


def semantic_equal(a: Any, b: Any) -> bool:
    return bool(semantic(a) == semantic(b))


def not_found(path: str, value: Any) -> Cause:
    """``field.NotFound`` (errors.py has no helper for it)."""
    shown = f'"{value}"' if isinstance(value, str) else str(value)
    return Cause(path, f"{path}: Not found: {shown}", "FieldValueNotFound")


def each_invalid(errs: Errs, path: str, value: Any, reasons: list[str]) -> None:
    """One Invalid cause per reason, the way Go loops over ``IsXxx(value)``."""
    for reason in reasons:
        errs.append(invalid(path, value, reason))


def nonnegative(errs: Errs, path: str, value: Any) -> None:
    if is_int(value) and value < 0:
        errs.append(invalid(path, value, IS_NEGATIVE))


def positive(errs: Errs, path: str, value: Any, detail: str = "must be greater than 0") -> None:
    if is_int(value) and value <= 0:
        errs.append(invalid(path, value, detail))


def one_of(errs: Errs, path: str, value: Any, allowed: list[str], *, required_if_empty: bool = True) -> None:
    """Enumerated string field: Required when empty (if asked), NotSupported when unknown."""
    text = as_str(value)
    if not text:
        if required_if_empty:
            errs.append(required(path))
        return
    if text not in allowed:
        errs.append(not_supported(path, text, allowed))


def immutable(errs: Errs, path: str, new: Any, old: Any, shown: Any = None) -> None:
    if new != old:
        errs.append(invalid(path, new if shown is None else shown, FIELD_IMMUTABLE))


def labels(errs: Errs, path: str, value: Any) -> None:
    """Label maps (metadata.labels, nodeSelector, service selector): keys and values both checked, the
    cause's path is the map itself as in apimachinery."""
    for key, val in as_dict(value).items():
        each_invalid(errs, path, key, formats.is_qualified_name(key))
        each_invalid(errs, path, val, formats.is_label_value(as_str(val)))


def annotation_map(errs: Errs, path: str, value: Any) -> None:
    total = 0
    for key, val in as_dict(value).items():
        # Annotation keys are qualified names compared case-insensitively.
        each_invalid(errs, path, key, formats.is_qualified_name(key.lower()))
        total += len(key.encode()) + len(as_str(val).encode())
    if total > TOTAL_ANNOTATION_SIZE:
        errs.append(too_long(path, TOTAL_ANNOTATION_SIZE))


def label_name(errs: Errs, path: str, value: Any) -> None:
    each_invalid(errs, path, as_str(value), formats.is_qualified_name(as_str(value)))


def label_selector(errs: Errs, path: str, value: Any) -> None:
    """A metav1.LabelSelector with label values validated strictly."""
    sel = as_dict(value)
    labels(errs, f"{path}.matchLabels", sel.get("matchLabels"))
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        selector_requirement(errs, f"{path}.matchExpressions[{i}]", expr)


def selector_requirement(errs: Errs, path: str, value: Any) -> None:
    req = as_dict(value)
    operator, values = as_str(req.get("operator")), as_list(req.get("values"))
    if operator in ("In", "NotIn"):
        if not values:
            errs.append(required(f"{path}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
    elif operator in ("Exists", "DoesNotExist"):
        if values:
            errs.append(forbidden(f"{path}.values",
                                  "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    else:
        errs.append(invalid(f"{path}.operator", operator, "not a valid selector operator"))
    label_name(errs, f"{path}.key", req.get("key"))
    for j, val in enumerate(values):
        each_invalid(errs, f"{path}.values[{j}]", as_str(val), formats.is_label_value(as_str(val)))


def selector_matches(selector: Any, labels_: dict[str, Any]) -> bool | None:
    """Whether a metav1.LabelSelector matches ``labels_``; None if the selector is malformed."""
    sel = as_dict(selector)
    for key, val in as_dict(sel.get("matchLabels")).items():
        if labels_.get(key) != val:
            return False
    for expr in as_list(sel.get("matchExpressions")):
        req = as_dict(expr)
        key, operator = as_str(req.get("key")), req.get("operator")
        values = as_list(req.get("values"))
        present = key in labels_
        if operator == "In":
            ok = present and labels_[key] in values
        elif operator == "NotIn":
            ok = not present or labels_[key] not in values
        elif operator == "Exists":
            ok = present
        elif operator == "DoesNotExist":
            ok = not present
        else:
            return None
        if not ok:
            return False
    return True


def selector_is_empty(selector: Any) -> bool:
    sel = as_dict(selector)
    return not as_dict(sel.get("matchLabels")) and not as_list(sel.get("matchExpressions"))


def dns_label(errs: Errs, path: str, value: str) -> None:
    each_invalid(errs, path, value, formats.is_dns1123_label(value))


def dns_subdomain(errs: Errs, path: str, value: str) -> None:
    each_invalid(errs, path, value, formats.is_dns1123_subdomain(value))


def port_num_or_name(errs: Errs, path: str, value: Any) -> None:
    """An IntOrString port: a number in 1..65535 or an IANA_SVC_NAME."""
    if value is None:
        value = 0  # an omitted IntOrString is the integer zero
    if isinstance(value, str):
        each_invalid(errs, path, value, formats.is_valid_port_name(value))
    elif is_int(value):
        each_invalid(errs, path, value, formats.is_valid_port_num(value))
    else:
        errs.append(invalid(path, gofmt.raw(value), "must be an integer or a string"))


def ip_address(errs: Errs, path: str, value: Any) -> None:
    each_invalid(errs, path, as_str(value), formats.is_valid_ip(as_str(value)))


def cidr(errs: Errs, path: str, value: Any) -> None:
    each_invalid(errs, path, as_str(value), formats.is_valid_cidr(as_str(value)))
