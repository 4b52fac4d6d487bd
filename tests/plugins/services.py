"""Services for tests: a real plugin module, loaded through service_modules like a user's."""

from __future__ import annotations

import json
import os
import time

from pydantic import BaseModel

from notifyd import ExtendedData, InvalidModel, Retry, ServiceContext, ServiceSpec
from notifyd.protocol.descriptors import STrigger


class QuickSettings(BaseModel):
    seconds: float = 0.0


class SlowSettings(BaseModel):
    seconds: float = 2.0


class BriefSettings(BaseModel):
    seconds: float = 0.2


def noop(ctx: ServiceContext) -> ExtendedData:
    return ExtendedData(
        data=json.dumps({"job": ctx.job_id, "roid": ctx.roid, "attempt": ctx.attempt}).encode(),
        mime="application/json",
        filename="noop.json",
        title="noop",
    )


def slow(ctx: ServiceContext) -> ExtendedData:
    ctx.progress(10, "sleeping")
    time.sleep(ctx.settings.seconds)
    ctx.log.info("slept", seconds=ctx.settings.seconds)
    return noop(ctx)


def crash(ctx: ServiceContext) -> ExtendedData:
    os._exit(3)


def boom(ctx: ServiceContext) -> ExtendedData:
    raise ValueError("boom")


def reject(ctx: ServiceContext) -> ExtendedData:
    raise InvalidModel("the model has no walls")


def retry_once(ctx: ServiceContext) -> ExtendedData:
    if ctx.attempt < 2:
        raise Retry("not ready yet", delay=0)
    return noop(ctx)


def hog_memory(ctx: ServiceContext) -> ExtendedData:
    blob = bytearray(8 * 1024**3)  # more than any test memory limit
    return ExtendedData(data=bytes(blob[:1]), mime="text/plain", filename="x", title="x")


def _spec(
    identifier: str, handler: object, settings: type[BaseModel] = QuickSettings, **kw: object
) -> ServiceSpec:
    return ServiceSpec(
        identifier=identifier,
        name=f"Test {identifier}",
        description="a service for tests",
        write_extended_data="UNSTRUCTURED_UTF8_TEXT_1_0",
        outputs=("UNSTRUCTURED_UTF8_TEXT_1_0",),
        settings=settings,
        handler=handler,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def register_services() -> list[ServiceSpec]:
    return [
        _spec("test-noop", noop),
        _spec("test-slow", slow, SlowSettings),
        _spec("test-brief", slow, BriefSettings),
        _spec("test-timeout", slow, SlowSettings, timeout_seconds=0.5),
        _spec("test-crash", crash),
        _spec("test-boom", boom),
        _spec("test-reject", reject),
        _spec("test-retry", retry_once),
        _spec("test-memory", hog_memory),
        _spec("test-ifc4-only", noop, inputs=("IFC_STEP_4",)),
        _spec("test-odd-namespace", noop, extended_data_namespace="http://example.test/odd"),
        _spec(
            "test-on-extended-data",
            noop,
            trigger=STrigger.NEW_EXTENDED_DATA,
            read_extended_data="UNSTRUCTURED_UTF8_TEXT_1_0",
        ),
    ]
