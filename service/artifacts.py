"""Publishing artifacts to the model store and finding the active one of a kind.

Files go to the content-addressed store (model/store.py); their identity, metrics and the active
flag go to the ``model_versions`` table. API, localization worker, training worker and star-ID all
read their artifacts through ``active_artifact``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from service import crud
from service.config import Settings
from service.db import session_scope
from service.models import ModelVersion, utcnow
from model.store import ModelStore

ARTIFACT_KINDS = ("retrieval", "retrieval-onnx", "star-catalog", "index")


@lru_cache(maxsize=8)
def _store(root: str) -> ModelStore:
    return ModelStore(Path(root))


def model_store(settings: Settings) -> ModelStore:
    return _store(str(settings.resolved_model_store_dir))


def publish(
    settings: Settings,
    source: Path,
    *,
    name: str,
    kind: str,
    architecture: str | None = None,
    metrics: dict | None = None,
    config: dict | None = None,
    activate: bool = False,
) -> ModelVersion:
    """Store ``source`` and record it as a new version of ``kind`` (optionally the active one)."""
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"unknown artifact kind {kind!r}; expected one of {ARTIFACT_KINDS}")
    artifact = model_store(settings).put_file(Path(source))
    with session_scope(settings.resolved_database_url) as session:
        version = ModelVersion(
            name=name,
            kind=kind,
            architecture=architecture,
            path=artifact.key,  # relative to the store root: valid wherever the store is mounted
            sha256=artifact.sha256,
            size_bytes=artifact.size_bytes,
            metrics=metrics or {},
            config=config or {},
            active=False,
            created_at=utcnow(),
        )
        session.add(version)
        session.flush()
        if activate:
            crud.activate_model_version(session, version.id)
        return version


def activate(settings: Settings, version_id: int) -> ModelVersion:
    with session_scope(settings.resolved_database_url) as session:
        return crud.activate_model_version(session, version_id)


def active_artifact(settings: Settings, kind: str) -> tuple[ModelVersion, Path] | None:
    """The active version of ``kind`` and its verified file, or None when none is active."""
    with session_scope(settings.resolved_database_url) as session:
        version = crud.active_model_version(session, kind)
    if version is None:
        return None
    return version, model_store(settings).verify(Path(version.path), version.sha256)


def get_version(settings: Settings, version_id: int) -> ModelVersion:
    with session_scope(settings.resolved_database_url) as session:
        version = session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError(f"no model version with id {version_id}")
    return version
