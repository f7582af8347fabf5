"""Small file helpers (atomic writes, cache stamps, CSV, sha256) shared by index, model, world and service."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path


def write_atomically(path: Path, data: bytes, durable: bool = False) -> None:
    """Write a file via a temporary one and a rename, so readers never see half a file.
    ``durable``: fsync before the rename, so a crash (not only a killed process) leaves the old
    or the new file; worth it for manifests and build state, not for every cached tile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, path)


def claim_with_stamp(stamp: Path, signature: dict) -> dict | None:
    """Compare a directory's JSON stamp with ``signature``: None when it matches or there was no
    stamp (one is written, durably), else the signature found (the caller refuses with it)."""
    if stamp.is_file():
        found = json.loads(stamp.read_text())
        return None if found == signature else found
    write_atomically(stamp, json.dumps(signature, indent=2).encode(), durable=True)
    return None


def write_csv(path: Path, columns: list[str], rows: Iterable[Mapping]) -> None:
    """A CSV of ``rows`` (dicts; keys outside ``columns`` ignored, missing ones empty), written
    atomically: a reader (or a resumed run) sees the old file or the new one."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(path, buffer.getvalue().encode())


def sha256_file(path: Path | str, block_bytes: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes, read in blocks (weights and shards run to gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(block_bytes):
            digest.update(block)
    return digest.hexdigest()
