"""Services for the benchmarks: one that does nothing, one that streams through the model."""

from __future__ import annotations

import time

from notifyd import ExtendedData, ServiceContext, ServiceSpec


def nothing(ctx: ServiceContext) -> ExtendedData:
    return ExtendedData(data=b"{}", mime="application/json", filename="noop.json", title="noop")


def sleep_50ms(ctx: ServiceContext) -> ExtendedData:
    """A service whose work takes 50 ms and no CPU: what more hosts help with."""
    time.sleep(0.05)
    return nothing(ctx)


def count_lines(ctx: ServiceContext) -> ExtendedData:
    """Reads the whole model once, a megabyte at a time, as a streaming service would."""
    assert ctx.model_path is not None
    lines = size = 0
    with ctx.model_path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            lines += chunk.count(b"\n")
            size += len(chunk)
    return ExtendedData(
        data=f'{{"lines": {lines}, "bytes": {size}}}'.encode(),
        mime="application/json",
        filename="lines.json",
        title=f"{lines} lines",
    )


def register_services() -> list[ServiceSpec]:
    common = {
        "write_extended_data": "UNSTRUCTURED_UTF8_TEXT_1_0",
        "outputs": ("UNSTRUCTURED_UTF8_TEXT_1_0",),
    }
    return [
        ServiceSpec(
            identifier="bench-noop",
            name="Benchmark no-op",
            description="does nothing",
            handler=nothing,
            **common,  # type: ignore[arg-type]
        ),
        ServiceSpec(
            identifier="bench-sleep",
            name="Benchmark sleep",
            description="sleeps 50 ms",
            handler=sleep_50ms,
            **common,  # type: ignore[arg-type]
        ),
        ServiceSpec(
            identifier="bench-stream",
            name="Benchmark stream",
            description="counts lines",
            handler=count_lines,
            timeout_seconds=3600,
            **common,  # type: ignore[arg-type]
        ),
    ]
