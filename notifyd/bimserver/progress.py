"""A RUNNING_SERVICE progress topic on the revision, as BIMserver's own services report
(``PluginBase/.../AbstractService.java``): register, STARTED updates, FINISHED or AS_ERROR with
an end time, unregister. ``NotificationRegistryServiceImpl`` checks no rights on these calls."""

from __future__ import annotations

import time
from typing import Any

from notifyd.bimserver.client import BimServerClient


async def register_progress(
    client: BimServerClient, poid: int, roid: int, description: str
) -> int | None:
    topic = await client.call(
        "registerProgressOnRevisionTopic",
        type="RUNNING_SERVICE",
        poid=poid,
        roid=roid,
        description=description,
    )
    return int(topic) if topic is not None else None


async def update_progress(
    client: BimServerClient,
    topic_id: int,
    *,
    state: str,
    title: str,
    started_ms: int,
    progress: int = -1,
    errors: list[str] | None = None,
    ended: bool = False,
) -> None:
    body: dict[str, Any] = {
        "__type": "SLongActionState",
        "state": state,
        "title": title,
        "start": started_ms,
        "progress": progress,
        "stage": 0,
        "errors": errors or [],
        "warnings": [],
        "infos": [],
    }
    if ended:
        body["end"] = int(time.time() * 1000)
    await client.call("updateProgressTopic", topicId=topic_id, state=body)


async def unregister_progress(client: BimServerClient, topic_id: int) -> None:
    await client.call("unregisterProgressTopic", topicId=topic_id)
