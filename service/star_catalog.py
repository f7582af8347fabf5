"""The star catalogue artifact: built once from Hipparcos, published to the model store, loaded
by POST /star-id and `astroloc star-id`."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from service import artifacts
from service.config import Settings
from service.errors import InvalidInput

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
    wanted = {"mag_limit": settings.starid_mag_limit, "min_separation_deg": settings.starid_min_separation_deg}
    if found is None or {key: (found[0].config or {}).get(key) for key in wanted} != wanted:
        # None yet, or one built with other limits (e.g. the mag-6 catalogue before issue 17).
        publish_star_catalog(settings)
        found = artifacts.active_artifact(settings, "star-catalog")
    version, path = found
    with _lock:
        if version.sha256 not in _loaded:
            _loaded[version.sha256] = StarCatalog.load(path)
            warm_up(_loaded[version.sha256])  # compilation and indexes here, not in a request
        return _loaded[version.sha256]


def identify_stars(settings: Settings, request: dict) -> dict:
    """Identify the stars of a POST /star-id body; InvalidInput on a malformed one."""
    from starid import identify_request
    from starid.errors import StarInputError

    catalog = active_star_catalog(settings)
    try:
        result = identify_request(
            catalog,
            request,
            alpha_eps_deg=settings.starid_alpha_eps_deg,
            mag_tolerance=settings.starid_mag_tolerance,
            time_budget_s=settings.starid_time_budget_s,
        )
    except StarInputError as exc:
        raise InvalidInput(str(exc)) from exc
    return result.to_dict()


def identify_frame(
    settings: Settings,
    data: bytes,
    fov_deg: float,
    sigma_threshold: float | None = None,
    psf_sigma_px: float | None = None,
    alpha_eps_deg: float | None = None,
) -> dict:
    """Detect and identify the stars of an encoded frame (PNG, JPEG, TIFF, FITS; 8/16-bit): the
    centroid answer plus the centroids with their identifications. InvalidInput on a bad frame."""
    from starid import identify_image
    from starid.errors import StarInputError
    from starid.centroids import DEFAULT_PSF_SIGMA_PX, DEFAULT_SIGMA_THRESHOLD

    if len(data) > settings.max_upload_bytes:
        raise InvalidInput(f"the frame is larger than {settings.max_upload_bytes} bytes")
    if not isinstance(fov_deg, (int, float)) or not 0.0 < fov_deg < 180.0:
        raise InvalidInput(f"fov_deg must lie strictly between 0 and 180 degrees, got {fov_deg!r}")
    catalog = active_star_catalog(settings)
    try:
        result = identify_image(
            catalog,
            data,
            fov_deg,
            sigma_threshold=DEFAULT_SIGMA_THRESHOLD if sigma_threshold is None else sigma_threshold,
            psf_sigma_px=DEFAULT_PSF_SIGMA_PX if psf_sigma_px is None else psf_sigma_px,
            alpha_eps_deg=settings.starid_alpha_eps_deg if alpha_eps_deg is None else alpha_eps_deg,
            time_budget_s=settings.starid_time_budget_s,
        )
    except StarInputError as exc:
        raise InvalidInput(str(exc)) from exc
    return result.to_dict()
