"""Star identification for star-tracker frames: ROSIA (Chng, Parra Bustos, McCarthy, Chin, 2023).

    catalog = build_catalog()                 # or StarCatalog.load(path) from the model store
    result = identify_pixels(catalog, pixels, 1024, 1024, 14.0, mags)
    result = identify(catalog, unit_vectors)  # camera frame: x right, y down, z boresight

Modules: catalog (Hipparcos 2 -> StarCatalog), rosia (sub-catalogues, bound, branch-and-bound),
identify (validation, search, Wahba attitude), simulate (paper Sec. V scenes), bench (the sweeps).
"""

from starid.catalog import StarCatalog, build_catalog
from starid.identify import StarIdResult, identify, identify_pixels, identify_request, warm_up

__all__ = [
    "StarCatalog",
    "StarIdResult",
    "build_catalog",
    "identify",
    "identify_pixels",
    "identify_request",
    "warm_up",
]
