"""Sun elevation above the horizon at ground points: flags night photos, picks day-lit tiles."""

from __future__ import annotations

from datetime import datetime

import numpy as np
from skyfield.api import wgs84
from skyfield.errors import EphemerisRangeError
from skyfield.framelib import itrs

from geo.lonlat import check_lat_lon, unit_vectors
from geo.sky import ephemeris, require_aware, timescale


def sun_elevation(lat, lon, when: datetime):
    """Elevation (degrees) of the Sun's centre above the horizon at geodetic ``lat``, ``lon``.

    Apparent position (light time, aberration) from JPL DE421, without atmospheric refraction
    (which lifts the Sun by ~0.5° at the horizon). ``lat``/``lon`` may be arrays (same shape);
    returns a float for scalars. ``when`` must be timezone-aware, within 1900-2050.
    """
    lat, lon = check_lat_lon(lat, lon)
    if lat.shape != lon.shape:
        raise ValueError(f"lat and lon must have the same shape, got {lat.shape} and {lon.shape}")
    when = require_aware(when)
    planets = ephemeris()
    try:
        sun = planets["earth"].at(timescale().from_datetime(when)).observe(planets["sun"]).apparent()
    except EphemerisRangeError:
        raise ValueError(
            f"{when.isoformat()} is outside the DE421 ephemeris (1899-07-29 to 2053-10-09)"
        ) from None
    # Seen from a site rather than the geocentre the Sun shifts by its parallax (< 9"), kept
    # by subtracting the site's position; the site's vertical is its geodetic normal.
    sites_km = np.moveaxis(wgs84.latlon(lat, lon).itrs_xyz.km, 0, -1)
    to_sun = sun.frame_xyz(itrs).km - sites_km
    sine = np.einsum("...i,...i->...", unit_vectors(lat, lon), to_sun) / np.linalg.norm(to_sun, axis=-1)
    elevation = np.degrees(np.arcsin(np.clip(sine, -1.0, 1.0)))
    return float(elevation) if elevation.ndim == 0 else elevation
