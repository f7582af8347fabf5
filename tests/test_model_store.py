"""Model store: immutable content-addressed artifacts, atomic publish, corrupted files refused."""

from __future__ import annotations

import os
import stat

import pytest

from index.files import sha256_file
from model.store import CorruptArtifactError, ModelStore
from service import artifacts


def test_put_is_content_addressed_and_idempotent(tmp_path):
    store = ModelStore(tmp_path / "store")
    source = tmp_path / "weights.pt"
    source.write_bytes(b"weights" * 1000)
    first = store.put_file(source)
    second = store.put_file(source)
    assert first == second
    assert first.path.name == f"{first.sha256}.pt" and sha256_file(first.path) == first.sha256
    assert not (first.path.stat().st_mode & stat.S_IWUSR)  # read-only: immutable
    assert list((tmp_path / "store" / "tmp").iterdir()) == []  # no partial file left behind


def test_corrupted_artifact_is_refused(tmp_path):
    store = ModelStore(tmp_path / "store")
    artifact = store.put_bytes(b"catalogue bytes", ".npz")
    assert store.verify(artifact.path, artifact.sha256) == artifact.path
    os.chmod(artifact.path, 0o644)
    artifact.path.write_bytes(b"catalogue bytez")  # same size, one byte flipped
    with pytest.raises(CorruptArtifactError, match="corrupted"):
        ModelStore(tmp_path / "store").verify(artifact.path, artifact.sha256)
    with pytest.raises(FileNotFoundError, match="missing"):
        store.verify(tmp_path / "nope", artifact.sha256)


def test_publish_and_activate_versions(sqlite_settings, tmp_path):
    source = tmp_path / "a.bin"
    source.write_bytes(b"version a")
    a = artifacts.publish(sqlite_settings, source, name="a", kind="star-catalog", activate=True)
    source.write_bytes(b"version b")
    b = artifacts.publish(sqlite_settings, source, name="b", kind="star-catalog")
    assert artifacts.active_artifact(sqlite_settings, "star-catalog")[0].id == a.id
    artifacts.activate(sqlite_settings, b.id)
    version, path = artifacts.active_artifact(sqlite_settings, "star-catalog")
    assert version.id == b.id and path.read_bytes() == b"version b"
    assert artifacts.active_artifact(sqlite_settings, "retrieval") is None
    with pytest.raises(ValueError, match="unknown artifact kind"):
        artifacts.publish(sqlite_settings, source, name="c", kind="weird")
