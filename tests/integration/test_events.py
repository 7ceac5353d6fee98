"""Events recorded through EventBroadcaster: written once, then counted, and findable as describe finds them."""

from __future__ import annotations

from kubelite.api.registry import resolve
from kubelite.client.events import EventBroadcaster
from kubelite.client.rest import Client

CM = resolve("configmaps")
EVENTS = resolve("events")


async def test_repeated_events_are_counted(kclient: Client) -> None:
    cm = await kclient.create(CM, {"metadata": {"name": "c"}}, namespace="default")
    async with EventBroadcaster(kclient, host="node-1") as b:
        rec = b.recorder("test-controller")
        for _ in range(3):
            rec.warning(cm, "Broken", "it broke")
        rec.normal(cm, "Fixed", "all good")
        await b.flush()
    found = await kclient.list(EVENTS, namespace="default",
                               field_selector="involvedObject.name=c,involvedObject.kind=ConfigMap")
    by_reason = {e["reason"]: e for e in found["items"]}
    assert by_reason["Broken"]["count"] == 3 and by_reason["Broken"]["type"] == "Warning"
    assert by_reason["Fixed"]["count"] == 1
    assert by_reason["Broken"]["involvedObject"]["uid"] == cm["metadata"]["uid"]
    assert by_reason["Broken"]["source"] == {"component": "test-controller", "host": "node-1"}
