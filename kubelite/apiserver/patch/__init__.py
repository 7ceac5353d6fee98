"""Every PATCH flavour kube-apiserver speaks, as pure functions over JSON-shaped dicts.

==================================  ===============================================
Content-Type                        function
==================================  ===============================================
application/merge-patch+json        :func:`apply_merge_patch`
application/json-patch+json         :func:`apply_json_patch`
application/strategic-merge-patch   :func:`apply_strategic_merge_patch`
application/apply-patch+yaml        :func:`server_side_apply`
==================================  ===============================================

and :func:`update_managed_fields`, which every other write (create, update, non-apply patch,
subresource write) calls so that ``metadata.managedFields`` tracks who set what.

All functions leave their inputs untouched and, to stay cheap, share untouched subtrees with them:
the result's top level and ``metadata`` are always fresh dicts, anything deeper may be the input's
own object, so deep-copy a subtree before mutating it in place. Failures raise
:class:`kubelite.api.errors.APIError` with the status code, reason and message kube-apiserver uses.

The modules: ``merge``, ``jsonpatch``, ``strategic`` and ``apply`` (one flavour each),
``managedfields`` (ownership bookkeeping), ``schema`` (which lists merge how, per kind),
``fieldpath`` (field sets and FieldsV1), ``typed`` (schema-aware compare/merge/remove).
"""

from .apply import LAST_APPLIED_ANNOTATION, server_side_apply
from .jsonpatch import apply_json_patch
from .managedfields import manager_from_user_agent, update_managed_fields
from .merge import apply_merge_patch
from .strategic import apply_strategic_merge_patch

__all__ = [
    "LAST_APPLIED_ANNOTATION",
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "manager_from_user_agent",
    "server_side_apply",
    "update_managed_fields",
]
