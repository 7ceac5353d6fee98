"""OpenAPI v3 for kubectl: the published documents and the strict field validation built on them.

- ``documents``: the ``/openapi/v3`` index and one document per served group-version.
- ``fields``: unknown-field detection for ``fieldValidation=Strict|Warn`` and the matching errors.
- ``schemas``: the component schemas generated into ``definitions.json`` by ``scripts/gen_openapi.py``.
"""

from .documents import Document, all_documents, document, index
from .fields import (
    strict_error,
    strict_error_of,
    unknown_field_warnings,
    unknown_fields,
    unknown_fields_of,
    warning_header,
)

__all__ = [
    "Document",
    "all_documents",
    "document",
    "index",
    "strict_error",
    "strict_error_of",
    "unknown_field_warnings",
    "unknown_fields",
    "unknown_fields_of",
    "warning_header",
]
