"""Run one action per manifest document (``apply -f``, ``create -f``, ``delete -f``), kubectl-style: every
document is tried, each failure is reported on stderr naming its file and document
(``error: app.yaml (document 2, Service/web): <the Status message>``), and the exit code is 1 if
anything failed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from enum import Enum

from kubelite.cli import manifests
from kubelite.cli.manifests import Document, ManifestError, Target
from kubelite.cli.session import Session
from kubelite.client.rest import ApiException

Action = Callable[[Target], Awaitable[str | None]]


class Order(Enum):
    """Where Namespace documents go: first when creating (their objects need them), last when deleting
    (so that each object in them is reported, not swept away by the namespace's deletion)."""

    NAMESPACES_FIRST = "first"
    NAMESPACES_LAST = "last"


def ordered(docs: Sequence[Document], order: Order) -> list[Document]:
    first = manifests.namespaces_first(docs)
    if order is Order.NAMESPACES_FIRST:
        return first
    namespaces = [d for d in first if manifests.is_namespace(d)]
    return [d for d in first if not manifests.is_namespace(d)] + namespaces


async def run_documents(s: Session, filenames: Sequence[str], recursive: bool, action: Action, *, verb: str,
                        order: Order = Order.NAMESPACES_FIRST, allow_generate_name: bool = False) -> int:
    """Load the ``-f`` documents and run ``action`` on each; it returns the line to print (or None)."""
    docs, load_errors = manifests.load(filenames, recursive, s.stdin)
    for message in load_errors:
        s.error(message)
    if not docs:
        if not load_errors:
            s.error(f"no objects passed to {verb}")
        return 1
    failed = bool(load_errors)
    for doc in ordered(docs, order):
        try:
            target = manifests.resolve(doc, s.namespace, s.explicit_namespace,
                                       allow_generate_name=allow_generate_name)
            line = await action(target)
        except ManifestError as e:
            s.error(str(e))
            failed = True
            continue
        except ApiException as e:
            s.error(f"{doc.label()}: {e.message or e}")
            failed = True
            continue
        if line:
            s.out.write(line + "\n")
            s.out.flush()
    return 1 if failed else 0
