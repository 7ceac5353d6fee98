"""Where the proxies read the cluster from: Services and their EndpointSlices, by Service key.

`ServiceSource` is what a proxier needs; `InformerSource` serves it from shared informers, with the slices
indexed by the Service they belong to (their ``kubernetes.io/service-name`` label), so that looking up one
Service's slices costs as much as that Service has, whatever the cluster holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from kubelite.api.registry import by_resource
from kubelite.client.informer import InformerFactory, SharedInformer
from kubelite.proxy.services import slice_service_key

Obj = dict[str, Any]

SERVICES = by_resource("", "v1", "services")
ENDPOINT_SLICES = by_resource("discovery.k8s.io", "v1", "endpointslices")
SLICES_BY_SERVICE = "proxy/service"


class ServiceSource(Protocol):
    def service(self, key: str) -> Obj | None:
        """The Service ``namespace/name``, or None."""

    def slices(self, key: str) -> list[Obj]:
        """The EndpointSlices of the Service ``namespace/name``."""

    def service_keys(self) -> Iterable[str]:
        """Every Service there is."""


def _by_service(slice_: Obj) -> list[str]:
    key = slice_service_key(slice_)
    return [key] if key else []


class InformerSource:
    """A `ServiceSource` over the Service and EndpointSlice informers of ``factory``."""

    def __init__(self, factory: InformerFactory) -> None:
        self.services: SharedInformer = factory.informer(SERVICES)
        self.endpoint_slices: SharedInformer = factory.informer(ENDPOINT_SLICES)
        try:
            self.endpoint_slices.add_indexers({SLICES_BY_SERVICE: _by_service})
        except ValueError:
            pass  # another proxy in this process shares the informer and added it already

    def service(self, key: str) -> Obj | None:
        return self.services.get(key)

    def slices(self, key: str) -> list[Obj]:
        return self.endpoint_slices.by_index(SLICES_BY_SERVICE, key)

    def service_keys(self) -> Iterable[str]:
        return self.services.keys()

    async def wait_synced(self) -> None:
        await self.services.wait_synced()
        await self.endpoint_slices.wait_synced()
