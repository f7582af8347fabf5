"""Star identification for star-tracker frames: ROSIA (Chng, Parra Bustos, McCarthy, Chin, 2023).

    catalog = build_catalog()                 # or StarCatalog.load(path) from the model store
    result = identify_pixels(catalog, pixels, 1024, 1024, 14.0, mags)
    result = identify(catalog, unit_vectors)  # camera frame: x right, y down, z boresight
    result = identify_image(catalog, open("frame.png", "rb").read(), fov_deg=14.0)  # + centroids

Modules: catalog (Hipparcos 2 -> StarCatalog, pair index, sky grid), rosia (hypotheses, bound,
branch-and-bound), identify (validation, search, Wahba attitude, field-of-view ladder, images),
centroids (frames -> centroids), simulate (paper Sec. V scenes, sensor scenes, rendered frames).
The benchmark lives in service/bench/starid.py.
"""

from starid.catalog import StarCatalog, build_catalog
from starid.identify import (
    ImageStarIdResult,
    StarIdResult,
    identify,
    identify_image,
    identify_pixels,
    identify_request,
    warm_up,
)

__all__ = [
    "StarCatalog",
    "ImageStarIdResult",
    "StarIdResult",
    "build_catalog",
    "identify",
    "identify_image",
    "identify_pixels",
    "identify_request",
    "warm_up",
]
