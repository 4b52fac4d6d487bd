"""Facts read from an ISO 10303-21 (STEP) file's header without parsing the model."""

from __future__ import annotations

import re
from pathlib import Path

_FILE_SCHEMA = re.compile(rb"FILE_SCHEMA\s*\(\s*\(\s*'([^']*)'", re.IGNORECASE)


def header_schema(path: Path) -> str | None:
    """FILE_SCHEMA of the file in capitals (``IFC2X3``, ``IFC4``), or None if it has none."""
    with path.open("rb") as handle:
        head = handle.read(16384)
    match = _FILE_SCHEMA.search(head)
    return match.group(1).decode("ascii", "replace").upper() if match else None
