"""The star catalogue artifact: built once from Hipparcos, published to the model store, loaded
by POST /star-id and `astroloc star-id`."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from service import artifacts
from service.config import Settings

_loaded: dict[str, object] = {}  # sha256 -> StarCatalog, one per process
_lock = threading.Lock()


def publish_star_catalog(settings: Settings, activate: bool = True):  # noqa: ANN201
    """Build the catalogue with the configured limits and publish it as a `star-catalog` version."""
    from starid import build_catalog

    catalog = build_catalog(
        mag_limit=settings.starid_mag_limit, min_separation_deg=settings.starid_min_separation_deg
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "star-catalog.npz"
        catalog.save(path)
        return artifacts.publish(
            settings,
            path,
            name=f"hipparcos2-mag{settings.starid_mag_limit:g}",
            kind="star-catalog",
            config={"mag_limit": settings.starid_mag_limit,
                    "min_separation_deg": settings.starid_min_separation_deg},
            metrics={"stars": len(catalog)},
            activate=activate,
        )


def active_star_catalog(settings: Settings):  # noqa: ANN201
    """The active catalogue, loaded once per process; built and published on first use."""
    from starid import StarCatalog, warm_up

    found = artifacts.active_artifact(settings, "star-catalog")
    if found is None:
        publish_star_catalog(settings)
        found = artifacts.active_artifact(settings, "star-catalog")
    version, path = found
    with _lock:
        if version.sha256 not in _loaded:
            _loaded[version.sha256] = StarCatalog.load(path)
            warm_up(_loaded[version.sha256])  # compilation and indexes here, not in a request
        return _loaded[version.sha256]


def identify_stars(settings: Settings, request: dict) -> dict:
    """Identify the stars of a POST /star-id body; ValueError on a malformed one."""
    from starid import identify_request

    result = identify_request(
        active_star_catalog(settings),
        request,
        alpha_eps_deg=settings.starid_alpha_eps_deg,
        mag_tolerance=settings.starid_mag_tolerance,
        time_budget_s=settings.starid_time_budget_s,
    )
    return result.to_dict()
