"""Opening an IFC file the way a service must: ifcopenshell opens truncated and mislabelled
files without raising, so every problem it would pass over silently is looked for here."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from notifyd.errors import InvalidModel

END_MARKER = b"END-ISO-10303-21;"
MAGIC = b"ISO-10303-21;"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFacts:
    """What the bytes say, before any parser runs."""

    size: int
    starts_with_magic: bool
    has_bom: bool
    complete: bool  # ends with END-ISO-10303-21;
    looks_like: str | None  # "zip", "html", "json" or None for a STEP-looking file


def read_file_facts(path: Path) -> FileFacts:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(512)
        handle.seek(max(0, size - 512))
        tail = handle.read()
    stripped = head.lstrip(b"\xef\xbb\xbf").lstrip()
    looks_like = None
    if zipfile.is_zipfile(path):
        looks_like = "zip"
    elif stripped[:1] in (b"{", b"["):
        looks_like = "json"
    elif stripped[:1] == b"<":
        looks_like = "html"
    return FileFacts(
        size=size,
        starts_with_magic=head.startswith(MAGIC),
        has_bom=head.startswith(b"\xef\xbb\xbf"),
        complete=tail.rstrip().endswith(END_MARKER),
        looks_like=looks_like,
    )


def describe_unreadable(facts: FileFacts) -> str | None:
    """Why the file is not an IFC STEP file at all, or None."""
    if facts.size == 0:
        return "the file is empty (0 bytes)"
    if facts.looks_like == "zip":
        return "the file is a zip archive, not an IFC STEP file (an .ifczip named .ifc?)"
    if facts.looks_like == "html":
        return "the file is an HTML page, not an IFC STEP file (an error page saved as IFC?)"
    if facts.looks_like == "json":
        return "the file is JSON, not an IFC STEP file (an error message saved as IFC?)"
    if facts.has_bom:
        return "the file starts with a UTF-8 byte order mark; ISO 10303-21 does not allow one"
    if not facts.starts_with_magic:
        return "the file does not start with ISO-10303-21;"
    return None


@dataclass(slots=True, kw_only=True)
class OpenedModel:
    model: Any
    schema: str
    facts: FileFacts
    log_errors: list[str] = field(default_factory=list)
    log_warnings: list[str] = field(default_factory=list)


def open_model(path: Path) -> OpenedModel:
    """Open ``path`` with ifcopenshell; raise InvalidModel saying why it cannot be read."""
    import ifcopenshell

    facts = read_file_facts(path)
    reason = describe_unreadable(facts)
    if reason:
        raise InvalidModel(reason)
    ifcopenshell.get_log()  # the log is process-wide: drop what an earlier job left
    try:
        model = ifcopenshell.open(str(path))
    except Exception as exc:
        raise InvalidModel(f"ifcopenshell cannot open the file: {exc}") from exc
    errors, warnings = [], []
    for line in ifcopenshell.get_log().splitlines():
        if line.startswith("[error]"):
            errors.append(line)
        elif line.startswith("[warning]"):
            warnings.append(line)
    return OpenedModel(
        model=model,
        schema=str(model.schema),
        facts=facts,
        log_errors=errors,
        log_warnings=warnings,
    )


def open_sound_model(path: Path) -> OpenedModel:
    """Open ``path`` for an analysis that needs a whole, cleanly parsed model."""
    opened = open_model(path)
    if not opened.facts.complete:
        raise InvalidModel(
            "the file is truncated: it does not end with END-ISO-10303-21; "
            f"({opened.facts.size} bytes)"
        )
    if opened.log_errors:
        raise InvalidModel(
            f"ifcopenshell reported {len(opened.log_errors)} errors while reading the file, "
            f"the first: {opened.log_errors[0]}"
        )
    return opened
