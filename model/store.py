"""The model store: a directory of immutable, content-addressed artifacts.

Every artifact (network weights, ONNX graphs, the star catalogue, ...) is stored once under its
sha256: ``<root>/objects/<sha[:2]>/<sha><suffix>``. Records name an artifact by that key relative to
the root (:attr:`Artifact.key`) and :meth:`ModelStore.locate` finds it by content address, so the
records stay valid whatever the working directory and wherever the store is mounted. Writers publish atomically (temporary file in
the same directory tree, fsync, rename), so readers never see half a file; readers verify the
checksum and refuse an artifact whose bytes changed. Which artifact is which model version, and
which one is active, is recorded in the ``model_versions`` table (service/artifacts.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from threading import Lock

from index.files import sha256_file

CHUNK = 1 << 20


class CorruptArtifactError(ValueError):
    """The bytes on disk do not match the recorded sha256."""


@dataclass(frozen=True)
class Artifact:
    sha256: str
    path: Path
    size_bytes: int
    key: str = ""  # the path relative to the store root, what records keep


def artifact_key(sha256: str, suffix: str = "") -> str:
    """An artifact's name inside any store: ``objects/<sha[:2]>/<sha><suffix>``."""
    return f"objects/{sha256[:2]}/{sha256}{suffix}"


class ModelStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._verified: dict[tuple[str, int, int], str] = {}
        self._lock = Lock()

    def path_for(self, sha256: str, suffix: str = "") -> Path:
        return self.root / artifact_key(sha256, suffix)

    def locate(self, recorded: Path | str, sha256: str) -> Path:
        """Where a recorded artifact lives in this store: by its content address (the sha256 and the
        suffix of the recorded name). Records written before keys were relative (``var/models/...``,
        taken from the working directory) resolve the same way."""
        return self.path_for(sha256, Path(recorded).suffix)

    def put_file(self, source: Path, suffix: str | None = None) -> Artifact:
        """Copy ``source`` into the store (idempotent: the same bytes are stored once)."""
        source = Path(source)
        if not source.is_file():
            raise FileNotFoundError(f"no such file: {source}")
        suffix = source.suffix if suffix is None else suffix
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".partial", delete=False) as tmp:
            try:
                with open(source, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        digest.update(chunk)
                        tmp.write(chunk)
                tmp.flush()
                os.fsync(tmp.fileno())
            except BaseException:
                os.unlink(tmp.name)
                raise
        sha = digest.hexdigest()
        final = self.path_for(sha, suffix)
        if final.exists() and sha256_file(final) == sha:
            os.unlink(tmp.name)  # already stored, intact
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp.name, 0o444)  # immutable from now on
            os.replace(tmp.name, final)  # atomic within one filesystem
            _fsync_dir(final.parent)
        return Artifact(sha, final, final.stat().st_size, artifact_key(sha, suffix))

    def put_bytes(self, data: bytes, suffix: str = "") -> Artifact:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".src", delete=False) as tmp:
            tmp.write(data)
        try:
            return self.put_file(Path(tmp.name), suffix)
        finally:
            os.unlink(tmp.name)

    def verify(self, recorded: Path | str, sha256: str) -> Path:
        """The artifact's file in this store (:meth:`locate`) if its bytes hash to ``sha256``;
        FileNotFoundError when it is missing, CorruptArtifactError when its bytes changed. Messages
        name the artifact by its key, never by a server path.

        Hashing a large artifact takes a while, so a verified (path, size, mtime) is remembered for
        the life of the process.
        """
        path = self.locate(recorded, sha256)
        name = artifact_key(sha256, path.suffix)
        if not path.is_file():
            raise FileNotFoundError(f"artifact {sha256[:12]} is missing from the model store ({name})")
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if self._verified.get(key) == sha256:
                return path
        actual = sha256_file(path)
        if actual != sha256:
            raise CorruptArtifactError(
                f"artifact {name} is corrupted: sha256 {actual[:12]}... expected {sha256[:12]}..."
            )
        with self._lock:
            self._verified[key] = sha256
        return path

    def export(self, path: Path, sha256: str, destination: Path) -> Path:
        """Copy a verified artifact out of the store."""
        shutil.copyfile(self.verify(path, sha256), destination)
        return destination


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
