"""An uploaded model's source and sink: the file a BIM-bots client posted, and the result kept
on disk for it to fetch. Both live under the data folder and are swept after
``bots_retention_seconds``."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import structlog

from notifyd.errors import PermanentError
from notifyd.records import Job, StoredResult, Upload
from notifyd.services import ExtendedData, Revision, ServiceOutput, ServiceSpec
from notifyd.stepfile import header_schema
from notifyd.worker.pipeline import Binding, Inputs, RecordStep

log = structlog.get_logger("notifyd.worker")

UPLOADS = "uploads"
RESULTS = "results"


class UploadBindings:
    def __init__(self, *, data_dir: Path, retention_seconds: float) -> None:
        self.data_dir = data_dir
        self.retention_seconds = retention_seconds

    async def bind(self, job: Job, spec: ServiceSpec, record_step: RecordStep) -> Binding:
        del record_step  # a stored result is written in one step, by the job's completion
        if not isinstance(job.origin, Upload):
            raise PermanentError(f"job {job.id} was not brought by an upload")
        return Binding(
            source=UploadSource(self.data_dir, job.origin),
            sink=StoredResultSink(self.data_dir, job, job.origin),
            progress=NoProgress(),
        )

    def failed(self, job: Job) -> None:
        """Nothing was learnt about anyone: an upload talks to no server."""

    async def sweep(self) -> int:
        """Remove uploads and results older than the retention window; how many."""
        cutoff = time.time() - self.retention_seconds
        return await asyncio.to_thread(self._sweep, cutoff)

    def _sweep(self, cutoff: float) -> int:
        removed = 0
        for folder in (self.data_dir / UPLOADS, self.data_dir / RESULTS):
            if not folder.is_dir():
                continue
            for entry in folder.iterdir():
                try:
                    if entry.stat().st_mtime >= cutoff:
                        continue
                    if entry.is_dir():
                        shutil.rmtree(entry)
                    else:
                        entry.unlink()
                    removed += 1
                except FileNotFoundError:
                    continue
        return removed


class UploadSource:
    def __init__(self, data_dir: Path, upload: Upload) -> None:
        self.path = data_dir / upload.model_path
        self.upload = upload

    async def skip_reason(self) -> str | None:
        return None

    async def fetch(self, work_dir: Path) -> Inputs:
        del work_dir  # the model is read where it was stored
        if not self.path.is_file():
            raise PermanentError(
                "the uploaded model is gone (removed after bots_retention_seconds)"
            )
        schema = await asyncio.to_thread(header_schema, self.path)
        log.info("upload_read", bytes=self.upload.size, schema=schema)
        return Inputs(model_path=self.path, schema=schema, extended_data_path=None)


class StoredResultSink:
    def __init__(self, data_dir: Path, job: Job, upload: Upload) -> None:
        self.data_dir = data_dir
        self.job = job
        self.upload = upload

    async def deliver(self, output: ServiceOutput, took_ms: int) -> StoredResult:
        del took_ms
        folder = Path(RESULTS) / f"job-{self.job.id}"
        (self.data_dir / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        if isinstance(output, ExtendedData):
            filename = _safe_name(output.filename, "result")
            relative = folder / filename
            await asyncio.to_thread((self.data_dir / relative).write_bytes, output.data)
            return StoredResult(
                path=str(relative),
                mime=output.mime,
                filename=filename,
                title=output.title,
                output_type=output.schema or self.upload.output_type,
                bytes=len(output.data),
            )
        if isinstance(output, Revision):
            filename = _safe_name(output.path.name, "model.ifc")
            relative = folder / filename
            await asyncio.to_thread(shutil.copyfile, output.path, self.data_dir / relative)
            size = (await asyncio.to_thread((self.data_dir / relative).stat)).st_size
            return StoredResult(
                path=str(relative),
                mime="application/x-step",
                filename=filename,
                title=output.comment,
                output_type=self.upload.output_type,
                bytes=size,
            )
        raise PermanentError(f"unsupported service output {type(output).__name__}")


class NoProgress:
    """Nobody watches an upload's progress but its job's state."""

    async def start(self) -> None:
        return None

    async def report(self, percent: int, message: str = "") -> None:
        return None

    async def finish(self, error: str | None = None) -> None:
        return None


def _safe_name(name: str, default: str) -> str:
    """A file name for a Content-Disposition and a path: no folders, no quotes."""
    cleaned = "".join(c for c in Path(name).name if c.isprintable() and c not in '"\\/;')
    return cleaned.strip(". ") or default
