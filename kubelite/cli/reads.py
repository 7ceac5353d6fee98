"""Reads the verbs share on top of `kubelite.client.Client`: whole lists (following ``continue`` tokens),
Tables (kubectl's ``Accept``), and single watch connections (plain objects or one-row Tables).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from kubelite.api.registry import Kind
from kubelite.cli.output import TABLE_ACCEPT
from kubelite.client.rest import Client, TransportError

PAGE_SIZE = 500  # kubectl's --chunk-size


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


async def list_objects(client: Client, kind: Kind, namespace: str | None, *, label_selector: str | None = None,
                       field_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every matching object (with ``apiVersion`` and ``kind`` set) and the list's resourceVersion.
    ``namespace=None`` spans all namespaces."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = await client.list(kind, namespace, label_selector or None, field_selector or None, PAGE_SIZE,
                                 continue_token=token)
        for item in page.get("items") or []:
            item.setdefault("apiVersion", kind.api_version)
            item.setdefault("kind", kind.kind)
            items.append(item)
        md = page.get("metadata") or {}
        token = md.get("continue") or None
        if token is None:
            return items, str(md.get("resourceVersion") or "")


async def get_table(client: Client, kind: Kind, name: str, namespace: str | None) -> dict[str, Any]:
    """One object as a one-row Table."""
    table = await client.request("GET", client.item_path(kind, name, namespace), accept=TABLE_ACCEPT)
    return _as_table(table)


async def list_table(client: Client, kind: Kind, namespace: str | None, *, label_selector: str | None = None,
                     field_selector: str | None = None) -> dict[str, Any]:
    """The whole collection as one Table (pages joined); ``metadata.resourceVersion`` is the first page's."""
    path = kind.base_path(namespace if kind.namespaced else None)
    params = {**_selectors(label_selector, field_selector), "limit": str(PAGE_SIZE)}
    table = _as_table(await client.request("GET", path, params=params, accept=TABLE_ACCEPT))
    token = (table.get("metadata") or {}).get("continue")
    while token:
        page = _as_table(await client.request("GET", path, params={**params, "continue": token},
                                              accept=TABLE_ACCEPT))
        table.setdefault("rows", []).extend(page.get("rows") or [])
        token = (page.get("metadata") or {}).get("continue")
    return table


def _as_table(answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict) or answer.get("kind") != "Table":
        raise TransportError("the server did not answer with a Table "
                             f"(got {answer.get('kind') if isinstance(answer, dict) else type(answer).__name__})")
    return answer


async def watch_events(client: Client, kind: Kind, namespace: str | None, resource_version: str, *,
                       label_selector: str | None = None, field_selector: str | None = None,
                       accept: str = "application/json") -> AsyncGenerator[dict[str, Any], None]:
    """One watch connection: yields each ``{"type", "object"}`` event until the server ends the stream."""
    stream = client.watch_raw(kind, namespace, resource_version or None, label_selector=label_selector or None,
                              field_selector=field_selector or None, accept=accept)
    async with aclosing(stream) as events:
        async for event in events:
            if not isinstance(event.get("object"), dict):
                raise TransportError(f"watch event {event.get('type')!r} has no object")
            yield event
